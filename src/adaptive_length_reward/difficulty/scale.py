"""The one difficulty scale every scorer writes: 1 (very easy) .. 10 (very hard), and tiers from thresholds.

PixelThink (arXiv 2505.23727, Sec. 3.3) has a judge rate each sample from 1 to 10 and splits the scores into
three tiers with ``tau2 = 3.5`` and ``tau1 = 5.0`` (official ``verl/utils/reward_score/seg_pixelthink.py``)::

    easy    D < 3.5
    medium  3.5 <= D < 5.0
    hard    D >= 5.0

The tier rule here is the one :class:`~adaptive_length_reward.budgets.TieredBudget` applies (a value equal to a
threshold belongs to the tier above it), so a histogram printed by the CLI matches the budgets training uses.

Scores from other sources are mapped onto the scale linearly: a value ``x`` in ``[0, 1]`` (a failure rate, a
normalised heuristic) becomes ``D = 1 + 9 x``.

    >>> unit_to_scale(np.array([0.0, 0.5, 1.0])).tolist()
    [1.0, 5.5, 10.0]
    >>> tier_names(np.array([1.0, 3.5, 4.9, 5.0, np.nan])).tolist()
    ['easy', 'medium', 'medium', 'hard', 'missing']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import MissingContextError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TIER_NAMES",
    "MISSING_TIER",
    "SCALE_MAX",
    "SCALE_MIN",
    "MissingPolicy",
    "check_missing_policy",
    "check_on_scale",
    "check_tiers",
    "resolve_missing",
    "scale_to_unit",
    "tier_histogram",
    "tier_index",
    "tier_names",
    "tier_value",
    "unit_to_scale",
]

FloatArray = npt.NDArray[np.float64]

#: Lowest and highest difficulty (PixelThink's judge rates 1 = very easy .. 10 = very hard).
SCALE_MIN = 1.0
SCALE_MAX = 10.0

#: PixelThink's tier boundaries ``(tau2, tau1)`` and tier names (official ``seg_pixelthink.py``).
DEFAULT_THRESHOLDS: tuple[float, ...] = (3.5, 5.0)
DEFAULT_TIER_NAMES: tuple[str, ...] = ("easy", "medium", "hard")

#: Name used in histograms for samples without a difficulty (NaN).
MISSING_TIER = "missing"

MissingPolicy = float | str
"""What a sample without a score gets: ``"error"`` (raise, naming the samples), ``"nan"`` (leave NaN so a
budget's own ``missing_difficulty`` decides), a tier name (that tier's :func:`tier_value`), or a number on the
scale."""


def unit_to_scale(x: npt.ArrayLike) -> FloatArray:
    """Map ``x`` in ``[0, 1]`` onto the scale: ``D = 1 + 9 x`` (NaN stays NaN).

    Raises:
        ValueError: a finite value outside ``[0, 1]``.
    """
    values = check_unit_interval("unit_to_scale: x", x)
    return SCALE_MIN + (SCALE_MAX - SCALE_MIN) * values


def check_unit_interval(label: str, x: npt.ArrayLike) -> FloatArray:
    """``x`` as float64, or ``ValueError`` naming ``label`` when a finite value lies outside ``[0, 1]``."""
    values = np.asarray(x, dtype=np.float64)
    finite = values[~np.isnan(values)]
    outside = (finite < 0) | (finite > 1)
    if outside.any():
        raise ValueError(f"{label}: expected values in [0, 1], got {finite[outside][:5].tolist()}")
    return values


def scale_to_unit(d: npt.ArrayLike) -> FloatArray:
    """Inverse of :func:`unit_to_scale`: ``x = (D - 1) / 9``."""
    return (np.asarray(d, dtype=np.float64) - SCALE_MIN) / (SCALE_MAX - SCALE_MIN)


def check_on_scale(values: npt.ArrayLike, *, owner: str, what: str = "difficulty") -> FloatArray:
    """Return ``values`` as float64 after checking each is NaN or within ``[1, 10]``.

    Raises:
        ValueError: naming ``owner``, the first offending samples and their values.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = ~np.isnan(array) & ((array < SCALE_MIN) | (array > SCALE_MAX) | ~np.isfinite(array))
    if bad.any():
        index = np.flatnonzero(bad)[:5]
        raise ValueError(
            f"{owner}: {what}: expected values in [{SCALE_MIN:g}, {SCALE_MAX:g}] (or NaN for missing), got "
            f"{array[index].tolist()} for samples {index.tolist()}"
        )
    return array


def check_tiers(thresholds: Sequence[float], names: Sequence[str], *, owner: str) -> None:
    """Validate a tier layout: finite, strictly increasing thresholds and ``len(thresholds) + 1`` names.

    Raises:
        ValueError: naming ``owner`` and what was wrong.
    """
    t = tuple(float(x) for x in thresholds)
    if not all(math.isfinite(x) for x in t) or any(b <= a for a, b in zip(t, t[1:])):
        raise ValueError(f"{owner}: thresholds: expected finite, strictly increasing numbers, got {t}")
    if len(names) != len(t) + 1 or len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{owner}: tier_names: expected {len(t) + 1} distinct non-empty names, got {tuple(names)}")
    if MISSING_TIER in names:
        raise ValueError(f"{owner}: tier_names: {MISSING_TIER!r} is reserved for samples without a score")


def tier_index(difficulty: npt.ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> npt.NDArray[np.intp]:
    """Tier per sample: ``k`` such that ``thresholds[k-1] <= D < thresholds[k]``; ``-1`` for NaN."""
    values = np.asarray(difficulty, dtype=np.float64).reshape(-1)
    index = np.searchsorted(np.asarray(thresholds, dtype=np.float64), values, side="right").astype(np.intp)
    return np.where(np.isnan(values), -1, index)


def tier_names(
    difficulty: npt.ArrayLike,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    names: Sequence[str] = DEFAULT_TIER_NAMES,
) -> npt.NDArray[np.str_]:
    """Tier name per sample (``"missing"`` for NaN)."""
    check_tiers(thresholds, names, owner="tier_names")
    index = tier_index(difficulty, thresholds)
    labels = np.array([*names, MISSING_TIER])
    return labels[np.where(index < 0, len(names), index)]


def tier_histogram(
    difficulty: npt.ArrayLike,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    names: Sequence[str] = DEFAULT_TIER_NAMES,
) -> dict[str, int]:
    """Count of samples per tier, in tier order, plus ``"missing"`` (NaN) last."""
    labels = tier_names(difficulty, thresholds, names)
    return {name: int((labels == name).sum()) for name in (*names, MISSING_TIER)}


def tier_value(
    tier: str, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, names: Sequence[str] = DEFAULT_TIER_NAMES
) -> float:
    """The value that stands for a whole tier: the midpoint of its interval clipped to ``[1, 10]``.

    With the PixelThink tiers: easy ``[1, 3.5)`` -> 2.25, medium ``[3.5, 5)`` -> 4.25, hard ``[5, 10]`` -> 7.5.

    Raises:
        ValueError: ``tier`` is not one of ``names``.
    """
    if tier not in names:
        raise ValueError(f"tier_value: tier: expected one of {list(names)}, got {tier!r}")
    k = list(names).index(tier)
    edges = [SCALE_MIN, *thresholds, SCALE_MAX]
    low, high = max(SCALE_MIN, min(edges[k], SCALE_MAX)), min(SCALE_MAX, max(edges[k + 1], SCALE_MIN))
    return (low + high) / 2.0


def check_missing_policy(
    missing: Any, *, owner: str, thresholds: Sequence[float], names: Sequence[str], allow_nan: bool = True
) -> MissingPolicy:
    """Validate a :data:`MissingPolicy` (used by pydantic validators; raises ValueError naming the field)."""
    options = ["error", *(["nan"] if allow_nan else []), *names]
    if isinstance(missing, bool) or not isinstance(missing, (int, float, str)):
        raise ValueError(f"missing: expected one of {options} or a number in [1, 10], got {missing!r}")
    if isinstance(missing, str):
        if missing not in options:
            raise ValueError(f"missing: expected one of {options} or a number in [1, 10], got {missing!r}")
        return missing
    if not SCALE_MIN <= float(missing) <= SCALE_MAX:
        raise ValueError(f"missing: expected a number in [{SCALE_MIN:g}, {SCALE_MAX:g}], got {missing!r}")
    return float(missing)


def resolve_missing(
    values: FloatArray,
    missing: MissingPolicy,
    *,
    owner: str,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    names: Sequence[str] = DEFAULT_TIER_NAMES,
    labels: Sequence[Any] | None = None,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Apply a missing policy to NaN entries; return ``(values, fell_back)``.

    ``fell_back`` marks the samples that had no score of their own (under ``"nan"`` they stay NaN).

    Args:
        values: scores on the scale, NaN where there is none.
        missing: the :data:`MissingPolicy`.
        owner: who asks (named in the error).
        thresholds, names: the tier layout that gives tier names their value.
        labels: per-sample labels (sample ids) quoted in the error message.

    Raises:
        ~adaptive_length_reward.errors.MissingContextError: ``missing="error"`` and some value is NaN.
    """
    absent = np.isnan(values)
    if missing == "nan" or not absent.any():
        return values, absent
    if missing == "error":
        index = np.flatnonzero(absent)
        quoted = [labels[i] for i in index[:10]] if labels is not None else index[:10].tolist()
        raise MissingContextError(
            f"{owner}: no difficulty for {index.size} of {values.size} samples (first: {quoted}); "
            "set missing= to a tier name, a value in [1, 10], or 'nan' to allow that"
        )
    fill = tier_value(missing, thresholds, names) if isinstance(missing, str) else float(missing)
    return np.where(absent, fill, values), absent


def describe_histogram(histogram: Mapping[str, int], thresholds: Sequence[float], names: Sequence[str]) -> list[str]:
    """Lines ``name  [low, high)  count  percent  bar`` for a tier histogram (used by the CLI summary)."""
    total = sum(histogram.values()) or 1
    edges = [SCALE_MIN, *thresholds, SCALE_MAX]
    lines = []
    for k, name in enumerate(names):
        closing = "]" if k == len(names) - 1 else ")"
        interval = f"[{edges[k]:g}, {edges[k + 1]:g}{closing}"
        count = histogram.get(name, 0)
        lines.append(f"{name:<10} {interval:<12} {count:>8} {100 * count / total:6.1f}%  "
                     f"{'#' * round(30 * count / total)}")
    count = histogram.get(MISSING_TIER, 0)
    lines.append(f"{MISSING_TIER:<10} {'':<12} {count:>8} {100 * count / total:6.1f}%  "
                 f"{'#' * round(30 * count / total)}")
    return lines
