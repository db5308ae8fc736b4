"""Length counters: how long is a completion, in words or tokens, of the whole response or its reasoning.

PixelThink's default (official ``seg_pixelthink.py``) is the whitespace word count of the whole decoded
response, ``len(text.split())``, tags and JSON included; its alternative is the tokenizer token count of the
``<think>`` content (``add_special_tokens=False``). Both, and lengths straight from token ids, live here.

Reasoning span policy (text and token ids alike), documented once:

1. a separate reasoning field (``reasoning_content``/``thinking`` of a chat message) wins when present;
2. else the text after the first opening tag up to the first closing tag after it;
3. an opening tag without a closing tag (a truncated completion): everything after the opening tag;
4. a closing tag without an opening tag (the template put ``<think>`` in the prompt): everything before it;
5. neither tag: an empty span (length 0).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .batch import RewardBatch
from .config import ComponentConfig, Configurable, register, validated

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
"""Lengths: int64 from the counters, float64 from :class:`PrecomputedLength`."""
Span = Literal["response", "reasoning"]


def extract_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> str:
    """The reasoning span of ``text`` under the module's span policy (rules 2-5).

    >>> extract_reasoning("<think>a b c</think><answer>x</answer>")
    'a b c'
    >>> extract_reasoning("<think>cut off mid-thou")
    'cut off mid-thou'
    >>> extract_reasoning("no tags at all")
    ''
    """
    start = text.find(open_tag)
    if start >= 0:
        begin = start + len(open_tag)
        end = text.find(close_tag, begin)
        return text[begin:] if end < 0 else text[begin:end]
    end = text.find(close_tag)
    return text[:end] if end >= 0 else ""


def count_words(texts: Sequence[str]) -> IntArray:
    """``[len(t.split()) for t in texts]``, exactly, vectorised over the batch.

    ASCII texts (the common case for model output) are joined into one byte buffer and word starts are counted
    with NumPy: a word starts where a non-whitespace byte follows whitespace, with whitespace as ``str.split``
    defines it for ASCII (``\\t \\n \\v \\f \\r``, ``\\x1c``-``\\x1f`` and space). Other texts use ``str.split``.

    >>> count_words(["a b  c", "", " x\\ty ", "caf\\u00e9 au\\u00a0lait"]).tolist()
    [3, 0, 2, 3]
    """
    n = len(texts)
    out = np.empty(n, dtype=np.int64)
    is_ascii = np.fromiter((t.isascii() for t in texts), dtype=bool, count=n)
    ascii_index = np.flatnonzero(is_ascii)
    # Chunks of texts keep the byte buffer and its masks cache-sized (about 3x faster than one big buffer).
    for start in range(0, ascii_index.size, _WORD_COUNT_CHUNK):
        index = ascii_index[start : start + _WORD_COUNT_CHUNK]
        out[index] = _count_ascii_words([texts[i] for i in index.tolist()])
    for i in np.flatnonzero(~is_ascii).tolist():
        out[i] = len(texts[i].split())
    return out


_WORD_COUNT_CHUNK = 256


def _count_ascii_words(texts: list[str]) -> IntArray:
    # A leading and a separating space: every word start is then a whitespace -> non-whitespace step.
    buf = np.frombuffer((" " + " ".join(texts) + " ").encode("ascii"), dtype=np.uint8)
    space = (buf == 32) | ((buf >= 9) & (buf <= 13)) | ((buf >= 28) & (buf <= 31))
    starts = np.flatnonzero(space[:-1] & ~space[1:]) + 1
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.cumsum(lengths + 1) - lengths  # index of each text's first byte in buf
    counts: IntArray = np.searchsorted(starts, begins + lengths) - np.searchsorted(starts, begins)
    return counts


def _find(haystack: list[int], needle: Sequence[int], start: int = 0) -> int:
    """First index >= start where ``needle`` occurs in ``haystack`` (token ids), or -1."""
    m = len(needle)
    last = len(haystack) - m + 1
    if m == 0:
        return -1
    i = start
    while i < last:
        try:
            i = haystack.index(needle[0], i, last)
        except ValueError:
            return -1
        if haystack[i : i + m] == list(needle):
            return i
        i += 1
    return -1


def reasoning_span(ids: Sequence[int], open_ids: Sequence[int], close_ids: Sequence[int]) -> tuple[int, int]:
    """``(begin, end)`` of the reasoning span in a token id sequence, under the module's policy (rules 2-5).

    >>> reasoning_span([7, 1, 5, 5, 2, 9], open_ids=[1], close_ids=[2])
    (2, 4)
    """
    ids = list(ids)
    start = _find(ids, open_ids)
    if start >= 0:
        begin = start + len(open_ids)
        end = _find(ids, close_ids, begin)
        return (begin, len(ids) if end < 0 else end)
    end = _find(ids, close_ids)
    return (0, end) if end >= 0 else (0, 0)


class LengthCounter(Configurable[ComponentConfig], abc.ABC):
    """Counts one length per completion. ``unit`` says what is counted (``"words"`` or ``"tokens"``)."""

    unit: ClassVar[str]

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns read."""
        return frozenset()

    @abc.abstractmethod
    def __call__(self, batch: RewardBatch) -> IntArray:
        """One non-negative integer per completion."""


class _TaggedConfig(ComponentConfig):
    span: Span = "response"
    open_tag: str = Field("<think>", min_length=1)
    close_tag: str = Field("</think>", min_length=1)


def _span_texts(batch: RewardBatch, config: _TaggedConfig) -> list[str]:
    if config.span == "response":
        return list(batch.completions)
    reasoning = batch.reasoning or (None,) * len(batch)
    return [
        separate if separate is not None else extract_reasoning(text, config.open_tag, config.close_tag)
        for text, separate in zip(batch.completions, reasoning)
    ]


class WhitespaceWordsConfig(_TaggedConfig):
    kind: Literal["whitespace_words"] = "whitespace_words"


@register("whitespace_words", WhitespaceWordsConfig)
class WhitespaceWords(LengthCounter):
    """``len(text.split())`` of the whole response (PixelThink's default) or of the reasoning span.

    >>> from adaptive_length_reward import RewardBatch
    >>> WhitespaceWords()(RewardBatch(["<think>a b</think> <answer>c</answer>"])).tolist()
    [3]
    >>> WhitespaceWords(span="reasoning")(RewardBatch(["<think>a b</think> <answer>c</answer>"])).tolist()
    [2]
    """

    unit = "words"

    def __init__(self, *, span: Span = "response", open_tag: str = "<think>", close_tag: str = "</think>") -> None:
        self._config = validated(
            "WhitespaceWords", WhitespaceWordsConfig, span=span, open_tag=open_tag, close_tag=close_tag
        )

    def __call__(self, batch: RewardBatch) -> IntArray:
        return count_words(_span_texts(batch, self._config))

    def to_config(self) -> WhitespaceWordsConfig:
        return self._config


class TokenCountConfig(_TaggedConfig):
    kind: Literal["token_count"] = "token_count"
    tokenizer: str = Field(min_length=1, description="local path (or name) given to AutoTokenizer.from_pretrained")


@register("token_count", TokenCountConfig)
class TokenCount(LengthCounter):
    """Tokenizer tokens of the response or of the reasoning span (``add_special_tokens=False``).

    Args:
        tokenizer: a Hugging Face tokenizer object, or a local path loaded with ``AutoTokenizer`` on first use.
        span: ``"response"`` or ``"reasoning"`` (PixelThink's token mode counts the ``<think>`` content).
    """

    unit = "tokens"

    def __init__(
        self, tokenizer: Any, *, span: Span = "response", open_tag: str = "<think>", close_tag: str = "</think>"
    ) -> None:
        if isinstance(tokenizer, str):
            path, self._tokenizer = tokenizer, None
        elif callable(tokenizer):
            path, self._tokenizer = getattr(tokenizer, "name_or_path", "") or "<in-memory tokenizer>", tokenizer
        else:
            raise TypeError(
                f"TokenCount: tokenizer: expected a tokenizer or a local path, got {type(tokenizer).__name__}"
            )
        self._config = validated(
            "TokenCount", TokenCountConfig, tokenizer=path, span=span, open_tag=open_tag, close_tag=close_tag
        )

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded from the configured path on first use."""
        if self._tokenizer is None:
            from .errors import import_optional

            transformers = import_optional("transformers", extra="tokenizers", purpose="TokenCount")
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self._config.tokenizer)
        return self._tokenizer

    def __call__(self, batch: RewardBatch) -> IntArray:
        texts = _span_texts(batch, self._config)
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(texts))

    def to_config(self) -> TokenCountConfig:
        return self._config


class TokenIdCountConfig(ComponentConfig):
    kind: Literal["token_id_count"] = "token_id_count"
    span: Span = "response"
    open_ids: tuple[int, ...] = ()
    close_ids: tuple[int, ...] = ()
    ignore_ids: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _tags(self) -> TokenIdCountConfig:
        if self.span == "reasoning" and not (self.open_ids and self.close_ids):
            raise ValueError("open_ids and close_ids (the token ids of the tags) when span='reasoning'")
        return self


@register("token_id_count", TokenIdCountConfig)
class TokenIdCount(LengthCounter):
    """Lengths straight from the completions' token ids (no re-tokenisation).

    Args:
        span: ``"response"`` counts every id; ``"reasoning"`` counts the ids between ``open_ids`` and
            ``close_ids`` (the tags' token ids, e.g. ``tokenizer.encode("<think>", add_special_tokens=False)``).
        ignore_ids: ids not counted, e.g. the pad token of right-padded rows.
    """

    unit = "tokens"

    def __init__(
        self,
        *,
        span: Span = "response",
        open_ids: Sequence[int] = (),
        close_ids: Sequence[int] = (),
        ignore_ids: Sequence[int] = (),
    ) -> None:
        self._config = validated(
            "TokenIdCount",
            TokenIdCountConfig,
            span=span,
            open_ids=tuple(open_ids),
            close_ids=tuple(close_ids),
            ignore_ids=tuple(ignore_ids),
        )

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"token_ids"})

    def __call__(self, batch: RewardBatch) -> IntArray:
        c = self._config
        ignore = set(c.ignore_ids)
        out = np.empty(len(batch), dtype=np.int64)
        for i, ids in enumerate(batch.column("token_ids", by="TokenIdCount")):
            ids = [int(t) for t in ids if int(t) not in ignore] if ignore else [int(t) for t in ids]
            if c.span == "response":
                out[i] = len(ids)
            else:
                begin, end = reasoning_span(ids, c.open_ids, c.close_ids)
                out[i] = end - begin
        return out

    def to_config(self) -> TokenIdCountConfig:
        return self._config


class PrecomputedLengthConfig(ComponentConfig):
    kind: Literal["precomputed_length"] = "precomputed_length"


@register("precomputed_length", PrecomputedLengthConfig)
class PrecomputedLength(LengthCounter):
    """The batch's ``lengths`` column, as the caller measured it (rounding is the caller's business)."""

    unit = "precomputed"

    def __init__(self) -> None:
        self._config = PrecomputedLengthConfig()

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"lengths"})

    def __call__(self, batch: RewardBatch) -> IntArray:
        return np.asarray(batch.column("lengths", by="PrecomputedLength"), dtype=np.float64)

    def to_config(self) -> PrecomputedLengthConfig:
        return self._config
