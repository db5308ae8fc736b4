"""From per-token values to one number per completion: reductions, span masks and normalisation to [0, 1].

Conventions (one place, used by every estimator):

* Per-token values come as a padded ``[B, T]`` array plus a boolean ``mask`` of the positions to use, or as a
  list of per-completion 1-D arrays (ragged). A NaN value marks a token without a value (e.g. a top-k entry
  list with fewer than two log-probs); it is skipped like a masked-out position.
* A completion with no usable token gets ``empty_value`` (default ``0.0``, which is what PixelThink's rollout
  code returns for an empty log-prob list; pass ``float('nan')`` to mark it missing instead).
* Reductions: ``"mean"`` (default; PixelThink's choice), ``"max"``, ``"min"``, ``"quantile"`` (linear
  interpolation between order statistics, numpy's default method).

Normalisation to ``[0, 1]`` (higher = more uncertain):

* margin: ``u = clip(1 - (p1 - p2), 0, 1)`` (PixelThink; already in range);
* entropy: ``u = clip(H / ln V, 0, 1)``, or ``clip(H / cap, 0, 1)`` with a configurable cap (``ln V`` is the
  entropy of the uniform distribution; real models rarely exceed a few nats, so a cap such as 2.0 spreads
  the values more);
* sampled-token NLL: ``u = 1 - exp(-nll) = 1 - p_y``, or ``clip(nll / cap, 0, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Reduction",
    "margin_uncertainty",
    "normalized_entropy",
    "normalized_nll",
    "pad_ragged",
    "reasoning_span_mask",
    "reduce_ragged",
    "reduce_tokens",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Reduction = Literal["mean", "max", "min", "quantile"]
_REDUCTIONS = ("mean", "max", "min", "quantile")


def _as_numpy(values: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Array-likes and torch tensors (any device) as numpy arrays."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor; no torch import needed
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected numbers, got {error}") from None


def reduce_tokens(
    values: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    how: Reduction = "mean",
    q: float = 0.9,
    empty_value: float = 0.0,
) -> FloatArray:
    """Reduce padded per-token values ``[B, T]`` to one float per row over the usable positions.

    A position is usable where ``mask`` is true (all positions when ``mask`` is None) and the value is not
    NaN. Rows without a usable position get ``empty_value``.

    Args:
        values: ``[B, T]`` numbers (numpy, lists or a torch tensor); NaN = no value at that token.
        mask: ``[B, T]`` booleans or 0/1, or None.
        how: ``"mean"``, ``"max"``, ``"min"`` or ``"quantile"``.
        q: the quantile in ``[0, 1]`` for ``how="quantile"``.
        empty_value: the value of a row with no usable position.

    >>> reduce_tokens([[0.2, 0.4, 9.0], [float("nan"), 0.0, 0.0]], [[1, 1, 0], [1, 0, 0]]).tolist()
    [0.30000000000000004, 0.0]
    >>> reduce_tokens([[1.0, 2.0, 3.0, 4.0]], how="quantile", q=0.5).tolist()
    [2.5]
    """
    data = _as_numpy(values, "values")
    if data.ndim != 2:
        raise ValueError(f"values: expected a [B, T] array, got shape {data.shape}")
    if how not in _REDUCTIONS:
        raise ValueError(f"how: expected one of {list(_REDUCTIONS)}, got {how!r}")
    if not (isinstance(q, (int, float)) and 0.0 <= q <= 1.0):
        raise ValueError(f"q: expected a number in [0, 1], got {q!r}")
    if np.isinf(data).any():
        raise ValueError("values: expected finite numbers (NaN marks a token without a value), got inf")
    usable = ~np.isnan(data)
    if mask is not None:
        keep = _as_numpy(mask, "mask", dtype=None)
        if keep.shape != data.shape:
            raise ValueError(f"mask: expected shape {data.shape} (the values' shape), got {keep.shape}")
        if keep.dtype != np.bool_:
            if not np.isin(keep, (0, 1)).all():
                raise ValueError("mask: expected booleans or 0/1 values")
            keep = keep.astype(bool)
        usable &= keep
    count = usable.sum(axis=1)
    empty = count == 0
    if how == "mean":
        total = np.where(usable, data, 0.0).sum(axis=1)
        result = total / np.maximum(count, 1)
    elif how == "max":
        result = np.where(usable, data, -np.inf).max(axis=1, initial=-np.inf)
    elif how == "min":
        result = np.where(usable, data, np.inf).min(axis=1, initial=np.inf)
    else:
        result = _row_quantile(np.where(usable, data, np.nan), count, q)
    return np.where(empty, float(empty_value), result).astype(np.float64)


def _row_quantile(data: FloatArray, count: npt.NDArray[np.intp], q: float) -> FloatArray:
    """Per-row quantile with linear interpolation (numpy's default) of the non-NaN entries, vectorised."""
    if data.shape[1] == 0:
        return np.zeros(data.shape[0])
    ordered = np.sort(data, axis=1)  # NaN sort last
    position = (np.maximum(count, 1) - 1) * q
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))
    rows = np.arange(data.shape[0])
    a, b = ordered[rows, low], ordered[rows, high]
    fraction = position - low
    # numpy's _lerp: a + (b - a) * t, evaluated from the other end when t >= 0.5 (exact at t = 1).
    return np.where(fraction >= 0.5, b - (b - a) * (1 - fraction), a + (b - a) * fraction)


def pad_ragged(sequences: Sequence[npt.ArrayLike], *, fill: float = np.nan) -> tuple[FloatArray, BoolArray]:
    """Stack per-completion 1-D arrays into ``([B, T_max] values, [B, T_max] mask)``; padding gets ``fill``.

    >>> values, mask = pad_ragged([[0.5, 0.25], [1.0]])
    >>> values.tolist(), mask.tolist()
    ([[0.5, 0.25], [1.0, nan]], [[True, True], [True, False]])
    """
    arrays = [_as_numpy(s, f"sequences[{i}]").reshape(-1) for i, s in enumerate(sequences)]
    lengths = np.fromiter((a.size for a in arrays), dtype=np.intp, count=len(arrays))
    width = int(lengths.max(initial=0))
    mask = np.arange(width)[None, :] < lengths[:, None]
    values = np.full((len(arrays), width), fill, dtype=np.float64)
    if arrays:
        values[mask] = np.concatenate(arrays) if lengths.sum() else np.zeros(0)
    return values, mask


def reduce_ragged(sequences: Sequence[npt.ArrayLike], *, how: Reduction = "mean", q: float = 0.9,
                  empty_value: float = 0.0) -> FloatArray:
    """:func:`reduce_tokens` over per-completion 1-D arrays of different lengths.

    >>> reduce_ragged([[0.2, 0.4], [], [1.0, float("nan")]]).tolist()
    [0.30000000000000004, 0.0, 1.0]
    """
    values, mask = pad_ragged(sequences)
    return reduce_tokens(values, mask, how=how, q=q, empty_value=empty_value)


def _pattern_starts(ids: npt.NDArray[np.int64], valid: BoolArray, pattern: Sequence[int]) -> BoolArray:
    """``[B, T]``: where a full occurrence of ``pattern`` starts inside the valid tokens."""
    batch, width = ids.shape
    m = len(pattern)
    hits = np.zeros((batch, width), dtype=bool)
    if m == 0 or m > width:
        return hits
    span = width - m + 1
    match = np.ones((batch, span), dtype=bool)
    for j, token in enumerate(pattern):
        match &= (ids[:, j : j + span] == token) & valid[:, j : j + span]
    hits[:, :span] = match
    return hits


def _first_true(hits: BoolArray) -> npt.NDArray[np.intp]:
    """Index of the first true per row, or -1."""
    if hits.shape[1] == 0:
        return np.full(hits.shape[0], -1, dtype=np.intp)
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), first, -1)


def reasoning_span_mask(
    token_ids: Any,
    open_ids: Sequence[int],
    close_ids: Sequence[int],
    *,
    mask: npt.ArrayLike | None = None,
) -> BoolArray:
    """``[B, T]`` booleans marking each completion's reasoning span, found from the tags' token ids.

    Vectorised over the batch; the same span policy as
    :func:`adaptive_length_reward.length.reasoning_span` (``length.py``): tokens after the first opening tag
    up to the first closing tag after it; an opening tag without a closing tag: everything after it; a closing
    tag without an opening tag: everything before it; neither: empty. Tags themselves are excluded.

    Args:
        token_ids: ``[B, T]`` integer ids (padded), or a list of per-completion id lists.
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
    if isinstance(token_ids, np.ndarray) or hasattr(token_ids, "detach"):
        ids = _as_numpy(token_ids, "token_ids", dtype=np.int64)
        valid = np.ones(ids.shape, dtype=bool) if mask is None else _as_numpy(mask, "mask", dtype=bool)
    else:
        rows = [np.asarray(list(r), dtype=np.int64).reshape(-1) for r in token_ids]
        width = max((r.size for r in rows), default=0)
        ids = np.full((len(rows), width), -1, dtype=np.int64)
        valid = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            ids[i, : r.size] = r
            valid[i, : r.size] = True
        if mask is not None:
            valid &= _as_numpy(mask, "mask", dtype=bool)
    if ids.ndim != 2:
        raise ValueError(f"token_ids: expected [B, T] ids, got shape {ids.shape}")
    if valid.shape != ids.shape:
        raise ValueError(f"mask: expected shape {ids.shape} (the token ids' shape), got {valid.shape}")
    width = ids.shape[1]
    positions = np.arange(width)[None, :]
    opens = _first_true(_pattern_starts(ids, valid, open_ids))
    begin = np.where(opens >= 0, opens + len(open_ids), 0)
    closes_at = _pattern_starts(ids, valid, close_ids)
    after_open = closes_at & (positions >= begin[:, None])
    close_after = _first_true(after_open)
    close_any = _first_true(closes_at)
    end = np.where(opens >= 0, np.where(close_after >= 0, close_after, width),
                   np.where(close_any >= 0, close_any, 0))
    return np.asarray((positions >= begin[:, None]) & (positions < end[:, None]) & valid, dtype=bool)


def margin_uncertainty(margin: npt.ArrayLike) -> FloatArray:
    """PixelThink's token uncertainty ``clip(1 - (p1 - p2), 0, 1)`` from margins ``p1 - p2`` (NaN stays NaN).

    >>> margin_uncertainty([0.9, 0.0]).tolist()
    [0.09999999999999998, 1.0]
    """
    return np.clip(1.0 - _as_numpy(margin, "margin"), 0.0, 1.0)


def normalized_entropy(entropy: npt.ArrayLike, *, vocab_size: int | None = None,
                       cap: float | None = None) -> FloatArray:
    """Entropy in ``[0, 1]``: ``clip(H / ln V, 0, 1)``, or ``clip(H / cap, 0, 1)`` when ``cap`` is given.

    >>> normalized_entropy([0.0, 1.0, 5.0], cap=2.0).tolist()
    [0.0, 0.5, 1.0]
    """
    if (vocab_size is None) == (cap is None):
        raise ValueError(f"normalized_entropy: expected exactly one of vocab_size and cap, got {vocab_size!r} "
                         f"and {cap!r}")
    if cap is not None:
        if not (np.isfinite(cap) and cap > 0):
            raise ValueError(f"cap: expected a finite number > 0, got {cap!r}")
        scale = float(cap)
    else:
        if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
            raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        scale = float(np.log(vocab_size))
    return np.clip(_as_numpy(entropy, "entropy") / scale, 0.0, 1.0)


def normalized_nll(nll: npt.ArrayLike, *, cap: float | None = None) -> FloatArray:
    """Sampled-token NLL in ``[0, 1]``: ``1 - exp(-nll)`` (one minus the sampled token's probability), or
    ``clip(nll / cap, 0, 1)`` when ``cap`` is given.

    >>> normalized_nll([0.0, 0.6931471805599453]).tolist()
    [0.0, 0.5]
    """
    values = _as_numpy(nll, "nll")
    if cap is None:
        return np.asarray(np.clip(-np.expm1(-values), 0.0, 1.0), dtype=np.float64)
    if not (np.isfinite(cap) and cap > 0):
        raise ValueError(f"cap: expected a finite number > 0, got {cap!r}")
    return np.clip(values / float(cap), 0.0, 1.0)
