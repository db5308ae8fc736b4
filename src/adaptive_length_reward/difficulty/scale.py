"""The one difficulty scale every scorer writes: 1 (very easy) .. 10 (very hard).

Other sources map onto it linearly: ``x`` in ``[0, 1]`` (a failure rate, a normalised heuristic) becomes
``D = 1 + 9 x``. Tiers live in [`tiers`][] (names re-exported here). See docs/difficulty.md.

    >>> unit_to_scale(np.array([0.0, 0.5, 1.0])).tolist()
    [1.0, 5.5, 10.0]
    >>> tier_names(np.array([1.0, 3.5, 4.9, 5.0, np.nan])).tolist()
    ['easy', 'medium', 'medium', 'hard', 'missing']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import MissingContextError
from ..tiers import *  # noqa: F403 - the tier layout and rule, re-exported where the difficulty package had them
from ..tiers import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, SCALE_MAX, SCALE_MIN, TierLayout, tier_value
from ..tiers import __all__ as _TIERS

__all__ = [
    *_TIERS,
    "MissingPolicy",
    "check_missing_policy",
    "check_on_scale",
    "describe_histogram",
    "resolve_missing",
    "unit_to_scale",
]

FloatArray = npt.NDArray[np.float64]

MissingPolicy = float | str
"""What a sample without a score gets: ``"error"`` (raise, naming the samples), ``"nan"`` (a budget's own
``missing_difficulty`` then places it in a tier), a tier name (its [`tier_value`][], e.g. 4.25 for ``"medium"``),
or a number on the scale."""


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


def check_missing_policy(missing: Any, *, names: Sequence[str] = DEFAULT_TIER_NAMES) -> MissingPolicy:
    """Validate a [`MissingPolicy`][] whose tier names are ``names`` (ValueError naming the field)."""
    options = ["error", "nan", *names]
    if isinstance(missing, str) and missing in options:
        return missing
    if isinstance(missing, (bool, str)) or not isinstance(missing, (int, float)):
        raise ValueError(f"missing: expected one of {options} or a number in [1, 10], got {missing!r}")
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

    ``fell_back`` marks the samples that had no score of their own (under ``"nan"`` they stay NaN). The tier
    layout ``(thresholds, names)`` gives tier names their value; ``owner`` and ``labels`` (sample ids) are quoted
    in the error.

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
    """Lines ``name  [low, high)  count  percent  bar`` for a tier histogram
    ([`TierLayout.describe`][adaptive_length_reward.tiers.TierLayout.describe])."""
    return TierLayout(tuple(thresholds), tuple(names)).describe(histogram)
