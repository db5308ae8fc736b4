"""Which generated tokens belong to the reasoning span, found on the decoded text instead of tag token ids.

A tag such as ``</think>`` is not one fixed id sequence in context: a byte-level BPE merges it with what
precedes it (``" </"`` + ``"think"`` + ``">"`` after a space, ``"</"`` + ... at the start). Matching the tag's
standalone ids (``tokenizer.encode("</think>")``) therefore misses it. Here every token is decoded on its own
(no re-tokenisation), the pieces are laid end to end, the span is found in that text with the library's span
policy (:func:`adaptive_length_reward.length.extract_reasoning`), and a token belongs to the span when at least
one of its characters does.

A character of several UTF-8 bytes split across tokens decodes to replacement characters in each piece; the
pieces text is then not the decoded text, but positions stay consistent within it and the ASCII tags are found
exactly, so the mask is right.

>>> _reasoning_char_span("ab<think>cd</think>ef", "<think>", "</think>")
(9, 11)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["reasoning_token_mask", "token_pieces"]


def _reasoning_char_span(text: str, open_tag: str, close_tag: str) -> tuple[int, int]:
    """``(begin, end)`` with ``text[begin:end] == extract_reasoning(text, open_tag, close_tag)`` (same policy:
    after the first opening tag up to the next closing tag; to the end if unclosed; before a lone closing tag;
    empty without tags)."""
    start = text.find(open_tag)
    if start >= 0:
        begin = start + len(open_tag)
        end = text.find(close_tag, begin)
        return (begin, len(text) if end < 0 else end)
    end = text.find(close_tag)
    return (0, end) if end >= 0 else (0, 0)


def token_pieces(token_ids: Sequence[int], tokenizer: Any) -> list[str]:
    """Each token decoded on its own, special tokens kept as text (one ``batch_decode`` call)."""
    if len(token_ids) == 0:
        return []
    return list(tokenizer.batch_decode([[int(t)] for t in token_ids], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False))


def reasoning_token_mask(token_ids: Sequence[int], tokenizer: Any, *, open_tag: str = "<think>",
                         close_tag: str = "</think>") -> npt.NDArray[np.bool_]:
    """Booleans, one per token: whether the token overlaps the reasoning span of the decoded completion.

    Args:
        token_ids: the completion's token ids (no padding).
        tokenizer: a Hugging Face tokenizer (``batch_decode`` is all that is used).
        open_tag: the opening tag, as text.
        close_tag: the closing tag, as text.
    """
    pieces = token_pieces(token_ids, tokenizer)
    ends = np.cumsum([len(p) for p in pieces], dtype=np.int64)
    starts = ends - np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    begin, end = _reasoning_char_span("".join(pieces), open_tag, close_tag)
    if end <= begin:
        return np.zeros(len(pieces), dtype=bool)
    return (starts < end) & (ends > begin)
