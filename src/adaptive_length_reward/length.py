"""Length counters: how long is a completion, in words or tokens, of the whole response or its reasoning.

PixelThink's default (official ``seg_pixelthink.py``) is ``len(text.split())`` of the whole decoded response, tags
and JSON included; its alternative counts tokenizer tokens of the ``<think>`` content. ``span="reasoning"``
measures the span of [`spans`][] (whose [`extract_reasoning`][] and
[`reasoning_span`][] are re-exported here). See docs/concepts.md.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from .batch import RewardBatch
from .config import Component, param
from .errors import ConfigError
from .evaluation import once
from .spans import Span, extract_reasoning, reasoning_span, span_texts

__all__ = [
    "LengthCounter",
    "PrecomputedLength",
    "TokenCount",
    "TokenIdCount",
    "WhitespaceWords",
    "count_words",
    "extract_reasoning",
    "reasoning_span",
]

IntArray = npt.NDArray[Any]
"""Lengths: int64 from the counters, float64 from [`PrecomputedLength`][]."""


def count_words(texts: Sequence[str]) -> IntArray:
    """``[len(t.split()) for t in texts]``, exactly, vectorised over the batch.

    ASCII texts (the common case for model output) are counted with NumPy over one byte buffer; others use
    ``str.split``.

    >>> count_words(["a b  c", "", " x\\ty ", "caf\\u00e9 au\\u00a0lait"]).tolist()
    [3, 0, 2, 3]
    """
    n = len(texts)
    out = np.empty(n, dtype=np.int64)
    is_ascii = np.fromiter(map(str.isascii, texts), dtype=bool, count=n)
    ascii_index = np.flatnonzero(is_ascii)
    # Chunks of texts keep every buffer under glibc's 128 KiB mmap threshold: no fresh pages (faults) per call.
    for start in range(0, ascii_index.size, _WORD_COUNT_CHUNK):
        index = ascii_index[start : start + _WORD_COUNT_CHUNK]
        out[index] = _count_ascii_words([texts[i] for i in index.tolist()])
    for i in np.flatnonzero(~is_ascii).tolist():
        out[i] = len(texts[i].split())
    return out


_WORD_COUNT_CHUNK = 96
#: Byte -> 1 for a word byte, 0 for whitespace as ``str.split`` defines it for ASCII.
_WORD_BYTE = bytes(0 if b in b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f " else 1 for b in range(256))


def _count_ascii_words(texts: list[str]) -> IntArray:
    # A leading and a separating space: every word start is then a whitespace -> word step (0 -> 1).
    word = np.frombuffer((" " + " ".join(texts) + " ").encode("ascii").translate(_WORD_BYTE), dtype=np.uint8)
    starts = np.flatnonzero(word[1:] > word[:-1]) + 1
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.cumsum(lengths + 1) - lengths  # index of each text's first byte in buf
    counts: IntArray = np.searchsorted(starts, begins + lengths) - np.searchsorted(starts, begins)
    return counts


class LengthCounter(Component, abc.ABC):
    """Counts one length per completion. ``unit`` says what is counted (``"words"`` or ``"tokens"``).

    Subclasses implement ``_count``; calling the counter runs it once per batch within an evaluation.
    """

    unit: ClassVar[str]

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns read."""
        return frozenset()

    def __call__(self, batch: RewardBatch) -> IntArray:
        """One non-negative length per completion."""
        return once(self, batch, self._count, batch)

    @abc.abstractmethod
    def _count(self, batch: RewardBatch) -> IntArray:
        """Count the lengths (every column in [`requires`][] is present)."""


class _Tagged(LengthCounter):
    """Counters of text: the whole response, or the reasoning span between two tags."""

    span: Span = param(default="response", doc="'response' (the whole text) or 'reasoning' (the span)")
    open_tag: str = param(default="<think>", min_length=1, doc="the tag that opens the reasoning")
    close_tag: str = param(default="</think>", min_length=1, doc="the tag that closes the reasoning")

    def _texts(self, batch: RewardBatch) -> list[str]:
        return span_texts(batch, self.span, self.open_tag, self.close_tag)


class WhitespaceWords(_Tagged, kind="whitespace_words"):
    """``len(text.split())`` of the whole response (PixelThink's default) or of the reasoning span.

    >>> from adaptive_length_reward import RewardBatch
    >>> WhitespaceWords()(RewardBatch(["<think>a b</think> <answer>c</answer>"])).tolist()
    [3]
    >>> WhitespaceWords(span="reasoning")(RewardBatch(["<think>a b</think> <answer>c</answer>"])).tolist()
    [2]
    """

    unit = "words"

    def _count(self, batch: RewardBatch) -> IntArray:
        return count_words(self._texts(batch))


#: The path a config records for a tokenizer object without ``name_or_path``; building it back raises.
IN_MEMORY_TOKENIZER = "<in-memory tokenizer>"

if TYPE_CHECKING:
    TokenizerSource = Any  # the constructor takes a tokenizer object or a local path
else:
    TokenizerSource = str  # the config holds the path


class Tokenized(LengthCounter):
    """Base of counters that tokenize text (``add_special_tokens=False``) with a Hugging Face tokenizer.

    ``tokenizer`` is a tokenizer object (kept as given; its ``name_or_path`` is what the config records) or a
    local path loaded with ``AutoTokenizer`` on first use. Equality and hashing cover the object given. The config
    of a tokenizer without ``name_or_path`` records ``IN_MEMORY_TOKENIZER``, and building that back raises
    [`ConfigError`][] (save the tokenizer and pass its path instead).
    """

    unit = "tokens"

    tokenizer_path: TokenizerSource = param(
        alias="tokenizer", kw_only=False, min_length=1, doc="a tokenizer, or a local path for AutoTokenizer"
    )

    if not TYPE_CHECKING:  # type checkers see the constructor the declaration derives

        def __init__(self, tokenizer, **options):
            expected = f"{type(self).__name__}: tokenizer: expected a tokenizer or a local path"
            if isinstance(tokenizer, str) and tokenizer == IN_MEMORY_TOKENIZER:
                raise ConfigError(
                    f"{expected}, got {tokenizer!r} (the config of an in-memory tokenizer cannot be "
                    "rebuilt: save the tokenizer with save_pretrained and pass that path)"
                )
            if isinstance(tokenizer, str):
                path, given = tokenizer, None
            elif callable(tokenizer):
                path, given = getattr(tokenizer, "name_or_path", "") or IN_MEMORY_TOKENIZER, tokenizer
            else:
                raise TypeError(f"{expected}, got {type(tokenizer).__name__}")
            super().__init__(path, **options)
            self._given = self._loaded = given

    def __post_init__(self) -> None:
        self._given: Any = None  # the tokenizer object given (None for a path): part of the identity
        self._loaded: Any = None  # the tokenizer in use, loaded from the path on first use

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded from the configured path on first use."""
        if self._loaded is None:
            from .errors import import_optional

            transformers = import_optional("transformers", extra="transformers", purpose=type(self).__name__)
            self._loaded = transformers.AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self._loaded

    def _identity_extras(self) -> tuple[Any, ...]:
        return (self._given,)

    def _tokens(self, texts: Sequence[str]) -> IntArray:
        """Token counts of ``texts``."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(texts))


class TokenCount(Tokenized, _Tagged, kind="token_count"):
    """Tokenizer tokens of the response or of the reasoning span (``add_special_tokens=False``).

    ``span="reasoning"`` is PixelThink's token mode but for truncated completions, which count here (see
    [`PixelThinkReasoningTokens`][adaptive_length_reward.presets.PixelThinkReasoningTokens] for the official rule).
    """

    def _count(self, batch: RewardBatch) -> IntArray:
        return self._tokens(self._texts(batch))


class TokenIdCount(LengthCounter, kind="token_id_count"):
    """Lengths straight from the completions' token ids (no re-tokenisation).

    ``span="reasoning"`` counts the ids between ``open_ids`` and ``close_ids`` (the tags' token ids, e.g.
    ``tokenizer.encode("<think>", add_special_tokens=False)``).
    """

    unit = "tokens"
    requires = frozenset({"token_ids"})

    span: Span = param(default="response", doc="'response' counts every id, 'reasoning' the ids between the tags")
    open_ids: Sequence[int] = param(default=(), doc="the opening tag's token ids (span='reasoning')")
    close_ids: Sequence[int] = param(default=(), doc="the closing tag's token ids (span='reasoning')")
    ignore_ids: Sequence[int] = param(default=(), doc="ids not counted, e.g. the pad token of right-padded rows")

    @staticmethod
    def _check(config: Any) -> None:
        if config.span == "reasoning" and not (config.open_ids and config.close_ids):
            raise ValueError("open_ids and close_ids (the token ids of the tags) when span='reasoning'")

    def _count(self, batch: RewardBatch) -> IntArray:
        ignore, reasoning = set(self.ignore_ids), self.span == "reasoning"
        out = np.empty(len(batch), dtype=np.int64)
        for i, row in enumerate(batch.column("token_ids", by="TokenIdCount")):
            ids = [t for t in map(int, row) if t not in ignore]
            begin, end = reasoning_span(ids, self.open_ids, self.close_ids) if reasoning else (0, len(ids))
            out[i] = end - begin
        return out


class PrecomputedLength(LengthCounter, kind="precomputed_length"):
    """The batch's ``lengths`` column, as the caller measured it (rounding is the caller's business)."""

    unit = "precomputed"
    requires = frozenset({"lengths"})

    def _count(self, batch: RewardBatch) -> IntArray:
        return np.asarray(batch.column("lengths", by="PrecomputedLength"), dtype=np.float64)
