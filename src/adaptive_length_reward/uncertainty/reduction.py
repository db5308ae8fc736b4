"""From per-token values to one number per completion: reductions and normalisation to [0, 1] (docs/uncertainty.md).

Conventions every estimator shares: NaN marks a token without a value and is skipped like a masked-out position;
a completion with no usable token gets ``empty_value`` (default ``0.0``, what PixelThink's rollout code returns for
an empty log-prob list; ``float('nan')`` marks it missing); normalisations map to ``[0, 1]``, higher = more
uncertain. [`reasoning_span_mask`][] is [`reasoning_span_mask`][], re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from ..spans import reasoning_span_mask

__all__ = [
    "LOGPROB_TOLERANCE",
    "logprob_uncertainty",
    "margin_uncertainty",
    "normalized_entropy",
    "normalized_nll",
    "pad_ragged",
    "reasoning_span_mask",
    "reduce_ragged",
    "reduce_tokens",
    "unit_uncertainty",
]

FloatArray = npt.NDArray[np.float64]
Reduction = Literal["mean", "max", "min", "quantile"]
_REDUCTIONS = get_args(Reduction)

#: How far above 0 a log-probability may lie and still be read as 0 (certain), for every reader of log-probs
#: ([`logprob_uncertainty`][], the top-k readers). vLLM and SGLang compute ``z - logsumexp(z)`` in float32 and
#: return a near-certain token slightly positive: ~1e-5 for logits of a few hundred (float32's relative precision
#: is 6e-8). Anything that is not a log-probability (a probability or a logit passed by mistake) is far larger.
LOGPROB_TOLERANCE = 1e-4


def _as_numpy(values: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Array-likes and torch tensors (any device, any dtype numpy lacks: bfloat16, float8) as numpy arrays; a value
    that is not numbers raises ``TypeError`` naming ``name``."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor; no torch import needed
        tensor = values.detach().cpu()
        if tensor.is_complex():
            raise TypeError(f"{name}: expected real numbers, got a tensor of dtype {tensor.dtype}")
        try:
            values = tensor.numpy()
        except TypeError as error:  # a dtype numpy lacks
            if not tensor.is_floating_point():
                raise TypeError(f"{name}: expected a tensor of numbers, got dtype {tensor.dtype} ({error})") from None
            values = tensor.float().numpy()  # bfloat16 / float8 -> float32 is exact
    if isinstance(values, np.ndarray) and values.dtype.kind == "c":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {values.dtype}")
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected a sequence of numbers, got {error}") from None


def reduce_tokens(
    values: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    how: Reduction = "mean",
    q: float = 0.9,
    empty_value: float = 0.0,
) -> FloatArray:
    """Reduce padded per-token values ``[B, T]`` to one float per row over the usable positions.

    ``values``: numbers (numpy, lists or a torch tensor), NaN = no value at that token; a position is usable
    where ``mask`` (booleans or 0/1; None: all positions) is true and the value is not NaN; rows without one
    get ``empty_value``. ``how``: ``"mean"`` (PixelThink's), ``"max"``, ``"min"`` or ``"quantile"`` at ``q``
    (linear interpolation between order statistics, numpy's default).

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


def pad_ragged(sequences: Sequence[npt.ArrayLike], *, fill: float = np.nan) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
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


def reduce_ragged(
    sequences: Sequence[npt.ArrayLike], *, how: Reduction = "mean", q: float = 0.9, empty_value: float = 0.0
) -> FloatArray:
    """[`reduce_tokens`][] over per-completion 1-D arrays of different lengths.

    >>> reduce_ragged([[0.2, 0.4], [], [1.0, float("nan")]]).tolist()
    [0.30000000000000004, 0.0, 1.0]
    """
    values, mask = pad_ragged(sequences)
    return reduce_tokens(values, mask, how=how, q=q, empty_value=empty_value)


def margin_uncertainty(margin: npt.ArrayLike) -> FloatArray:
    """PixelThink's token uncertainty ``clip(1 - (p1 - p2), 0, 1)`` from margins ``p1 - p2`` (NaN stays NaN).

    >>> margin_uncertainty([0.9, 0.0]).tolist()
    [0.09999999999999998, 1.0]
    """
    return np.clip(1.0 - _as_numpy(margin, "margin"), 0.0, 1.0)


def check_vocab_size(vocab_size: Any) -> int:
    """``vocab_size``, checked to be an int >= 2 (``ValueError`` naming it otherwise)."""
    if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
        raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
    return int(vocab_size)


def normalized_entropy(
    entropy: npt.ArrayLike, *, vocab_size: int | None = None, cap: float | None = None
) -> FloatArray:
    """Entropy in ``[0, 1]``: ``clip(H / ln V, 0, 1)``, or ``clip(H / cap, 0, 1)`` when ``cap`` is given.

    >>> normalized_entropy([0.0, 1.0, 5.0], cap=2.0).tolist()
    [0.0, 0.5, 1.0]
    """
    if (vocab_size is None) == (cap is None):
        raise ValueError(
            f"normalized_entropy: expected exactly one of vocab_size and cap, got {vocab_size!r} and {cap!r}"
        )
    scale = _check_cap(cap) if cap is not None else float(np.log(check_vocab_size(vocab_size)))
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
    return np.clip(values / _check_cap(cap), 0.0, 1.0)


def _check_cap(cap: float) -> float:
    if not (np.isfinite(cap) and cap > 0):
        raise ValueError(f"cap: expected a finite number > 0, got {cap!r}")
    return float(cap)


def logprob_uncertainty(logprobs: npt.ArrayLike, *, cap: float | None = None, where: str = "logprobs") -> FloatArray:
    """Sampled-token uncertainty per token from its log-prob: [`normalized_nll`][] of ``-logprob``, i.e.
    ``1 - p_y`` (or ``-logprob / cap``, clipped). The one conversion every adapter and estimator uses.

    ``logprobs`` may have any shape. NaN (a token without a log-prob) stays NaN, so the reductions skip it;
    ``-inf`` (probability 0) gives 1. Values up to ``LOGPROB_TOLERANCE`` above 0 are rounding and read as 0;
    a larger one (or ``+inf``) raises ``ValueError`` naming ``where`` (and the row of a 2-D input).

    >>> logprob_uncertainty([0.0, -0.6931471805599453, 3e-7, float("nan")]).tolist()
    [0.0, 0.5, 0.0, nan]
    """
    values = _as_numpy(logprobs, where)
    bad = values > LOGPROB_TOLERANCE
    if bad.any():
        if values.ndim >= 2:
            row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
            where, values = f"{where}[{row}]", values[row]
        raise ValueError(f"{where}: expected log-probabilities <= 0, got {float(np.nanmax(values))}")
    return normalized_nll(np.maximum(-values, 0.0), cap=cap)


def unit_uncertainty(
    measure: str,
    values: npt.ArrayLike,
    *,
    vocab_size: int | None = None,
    entropy_cap: float | None = None,
    nll_cap: float | None = None,
) -> FloatArray:
    """Per-token values of a measure as uncertainty in ``[0, 1]``: ``"margin"`` (``p1 - p2``) by
    [`margin_uncertainty`][], ``"entropy"`` (nats) by [`normalized_entropy`][] (``entropy_cap``, else
    ``ln vocab_size``), ``"nll"`` by [`normalized_nll`][] (``nll_cap``, else ``1 - p_y``).

    >>> unit_uncertainty("entropy", [0.5, 4.0], entropy_cap=2.0).tolist()
    [0.25, 1.0]
    """
    if measure == "margin":
        return margin_uncertainty(values)
    if measure == "nll":
        return normalized_nll(values, cap=nll_cap)
    if entropy_cap is not None:
        return normalized_entropy(values, cap=entropy_cap)
    return normalized_entropy(values, vocab_size=vocab_size)
