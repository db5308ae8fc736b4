"""Which generated tokens belong to the reasoning span, found on the decoded text instead of tag token ids.

A tag such as ``</think>`` is not one fixed id sequence in context: a byte-level BPE merges it with what
precedes it (``" </"`` + ``"think"`` + ``">"`` after a space), so matching ``tokenizer.encode("</think>")``
misses it. Here every token is decoded on its own and [`reasoning_piece_mask`][]
applies the library's one span policy to the pieces laid end to end: a token belongs to the span when at least
one of its characters does. (A multi-byte character split across tokens decodes to replacement characters, but
positions stay consistent and the ASCII tags are found exactly.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..spans import reasoning_piece_mask

__all__ = ["reasoning_token_mask", "token_pieces"]


def token_pieces(token_ids: Sequence[int], tokenizer: Any) -> list[str]:
    """Each token decoded on its own, special tokens kept as text (one ``batch_decode`` call)."""
    if len(token_ids) == 0:
        return []
    return list(
        tokenizer.batch_decode(
            [[int(t)] for t in token_ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
    )


def reasoning_token_mask(
    token_ids: Sequence[int], tokenizer: Any, *, open_tag: str = "<think>", close_tag: str = "</think>"
) -> npt.NDArray[np.bool_]:
    """Booleans, one per token of ``token_ids`` (no padding): whether the token overlaps the reasoning span of
    the decoded completion. ``tokenizer``: a Hugging Face tokenizer (``batch_decode`` is all that is used)."""
    return reasoning_piece_mask(token_pieces(token_ids, tokenizer), open_tag, close_tag)
