"""Reasoning spans: which part of a completion is its reasoning, by one policy, seen as text, token ids or a mask.

The policy, written once (``_bounds``) and used by every view:

1. a separate reasoning field (``reasoning_content``/``thinking`` of a chat message) wins when present;
2. else the part after the first opening tag up to the first closing tag after it;
3. an opening tag without a closing tag (a truncated completion): everything after the opening tag;
4. a closing tag without an opening tag (the template put ``<think>`` in the prompt): everything before it;
5. neither tag: an empty span. Tags themselves never belong to the span.

Views: text ([`reasoning_text_span`][], [`extract_reasoning`][], [`span_texts`][]), token ids
([`reasoning_span`][]) and masks ([`reasoning_span_mask`][], [`reasoning_piece_mask`][]). PixelThink's
official token mode reads the reasoning differently, on purpose apart:
[`official_reasoning_text`][adaptive_length_reward.presets.official_reasoning_text]. See docs/concepts.md.

>>> extract_reasoning("<think>a b c</think><answer>x</answer>")
'a b c'
>>> reasoning_span([7, 1, 5, 5, 2, 9], open_ids=[1], close_ids=[2])
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from .batch import RewardBatch

__all__ = [
    "Span",
    "extract_reasoning",
    "reasoning_piece_mask",
    "reasoning_span",
    "reasoning_span_mask",
    "reasoning_text_span",
    "span_texts",
]

Span = Literal["response", "reasoning"]
"""What a length or an uncertainty is measured over: the whole response, or its reasoning span."""

BoolArray = npt.NDArray[np.bool_]
Needle = TypeVar("Needle")


def _bounds(
    find: Callable[[Needle, int], int], size: int, open_: Needle, close: Needle, open_size: int
) -> tuple[int, int]:
    """The policy's rules 2-5 over any sequence: ``find(needle, start)`` is the first index ``>= start`` where
    ``needle`` occurs (or -1), ``size`` the sequence's length, ``open_size`` the opening tag's length."""
    start = find(open_, 0)
    if start >= 0:
        begin = start + open_size
        end = find(close, begin)
        return (begin, size if end < 0 else end)
    end = find(close, 0)
    return (0, end) if end >= 0 else (0, 0)


def reasoning_text_span(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[int, int]:
    """``(begin, end)`` character bounds of the reasoning span of ``text`` (rules 2-5).

    >>> reasoning_text_span("ab<think>cd</think>ef")
    (9, 11)
    """
    return _bounds(text.find, len(text), open_tag, close_tag, len(open_tag))


def extract_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> str:
    """The reasoning span of ``text`` (rules 2-5).

    >>> extract_reasoning("<think>cut off mid-thou")
    'cut off mid-thou'
    >>> extract_reasoning("no tags at all")
    ''
    """
    begin, end = reasoning_text_span(text, open_tag, close_tag)
    return text[begin:end]


def span_texts(batch: RewardBatch, span: Span, open_tag: str = "<think>", close_tag: str = "</think>") -> list[str]:
    """The text each completion is measured over: the response, or its reasoning (rules 1-5)."""
    if span == "response":
        return list(batch.completions)
    reasoning = batch.reasoning or (None,) * len(batch)
    return [
        separate if separate is not None else extract_reasoning(text, open_tag, close_tag)
        for text, separate in zip(batch.completions, reasoning)
    ]


def _find(haystack: list[Any], needle: Sequence[int], start: int = 0) -> int:
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


def reasoning_span(ids: Sequence[Any], open_ids: Sequence[int], close_ids: Sequence[int]) -> tuple[int, int]:
    """``(begin, end)`` of the reasoning span in a token id sequence, the tags given as ids (rules 2-5).

    An entry that is no id (``None``, e.g. a masked-out position) matches no tag.
    """
    haystack = list(ids)
    return _bounds(
        lambda needle, start: _find(haystack, needle, start), len(haystack), open_ids, close_ids, len(open_ids)
    )


def reasoning_span_mask(
    token_ids: Any, open_ids: Sequence[int], close_ids: Sequence[int], *, mask: npt.ArrayLike | None = None
) -> BoolArray:
    """``[B, T]`` booleans marking each completion's reasoning span, found from the tags' token ids.

    A tag only matches where all its tokens are real (``mask``); the span never covers padding.

    Args:
        token_ids: ``[B, T]`` integer ids (padded; numpy or a torch tensor), or a list of per-completion id lists.
        open_ids: the opening tag's ids, e.g. ``tokenizer.encode("<think>", add_special_tokens=False)``.
        close_ids: the closing tag's ids.
        mask: ``[B, T]`` booleans marking real (non-padding) tokens; default all (or the ragged lengths).

    >>> reasoning_span_mask([[7, 1, 5, 5, 2, 9]], open_ids=[1], close_ids=[2]).astype(int).tolist()
    [[0, 0, 1, 1, 0, 0]]
    >>> reasoning_span_mask([[5, 5, 2, 9], [1, 5]], open_ids=[1], close_ids=[2]).astype(int).tolist()
    [[1, 1, 0, 0], [0, 1, 0, 0]]
    """
    open_ids, close_ids = [int(i) for i in open_ids], [int(i) for i in close_ids]
    if not open_ids or not close_ids:
        raise ValueError(f"open_ids and close_ids: expected non-empty id sequences, got {open_ids!r} and {close_ids!r}")
    if hasattr(token_ids, "detach"):  # a torch tensor (any device); no torch import needed
        token_ids = token_ids.detach().cpu().numpy()
    padded = isinstance(token_ids, np.ndarray)  # else ragged: one id list per completion
    if padded and token_ids.ndim != 2:
        raise ValueError(f"token_ids: expected [B, T] ids, got shape {token_ids.shape}")
    try:
        rows = np.asarray(token_ids, dtype=np.int64).tolist() if padded else [[int(t) for t in r] for r in token_ids]
    except (TypeError, ValueError) as error:
        raise TypeError(f"token_ids: expected integer ids, got {error}") from None
    sizes = np.array([len(row) for row in rows], dtype=np.intp)
    valid = np.arange(token_ids.shape[1] if padded else sizes.max(initial=0))[None, :] < sizes[:, None]
    if mask is not None:
        given = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask, dtype=bool)
        if given.shape != valid.shape:
            raise ValueError(f"mask: expected shape {valid.shape} (the token ids' shape), got {given.shape}")
        valid = valid & given
    out = np.zeros(valid.shape, dtype=bool)
    for i, (row, keep) in enumerate(zip(rows, valid)):
        real = int(keep.sum())  # the fast path: real tokens first, padding after
        visible = row[:real] if keep[:real].all() else [t if k else None for t, k in zip(row, keep.tolist())]
        begin, end = reasoning_span(visible, open_ids, close_ids)
        out[i, begin:end] = True
    return out & valid


def reasoning_piece_mask(pieces: Sequence[str], open_tag: str = "<think>", close_tag: str = "</think>") -> BoolArray:
    """One boolean per token: whether the token, decoded on its own as ``pieces[i]``, overlaps the reasoning span
    of the pieces laid end to end (rules 2-5 on that text).

    >>> reasoning_piece_mask(["a <", "think>b", "c</", "think>"]).tolist()
    [False, True, True, False]
    """
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    ends = np.cumsum(lengths, dtype=np.int64)
    starts = ends - lengths
    begin, end = reasoning_text_span("".join(pieces), open_tag, close_tag)
    if end <= begin:
        return np.zeros(len(pieces), dtype=bool)
    return np.asarray((starts < end) & (ends > begin), dtype=bool)
