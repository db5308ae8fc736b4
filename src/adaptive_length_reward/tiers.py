"""Difficulty tiers: one layout (thresholds and names) and one rule, used by budgets, scorers, metrics and the CLI.

PixelThink (arXiv 2505.23727, Sec. 3.3; official ``verl/utils/reward_score/seg_pixelthink.py``) splits the judge's
1..10 scores at ``tau2 = 3.5`` and ``tau1 = 5.0`` into easy, medium and hard. Tier ``k`` holds
``thresholds[k-1] <= D < thresholds[k]``: a value equal to a threshold belongs to the tier above. A budget's
``missing_difficulty`` *places* a sample without difficulty in a tier; a scorer's ``missing`` *writes* a
difficulty value ([`TierLayout.value`][adaptive_length_reward.tiers.TierLayout.value]). See docs/difficulty.md and
docs/concepts.md.

>>> layout = TierLayout()
>>> layout.labels(np.array([1.0, 3.5, 4.9, 5.0, np.nan])).tolist()
['easy', 'medium', 'medium', 'hard', 'missing']
>>> layout.value("medium")
4.25
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ConfigError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TIER_NAMES",
    "MISSING_TIER",
    "SCALE_MAX",
    "SCALE_MIN",
    "TierLayout",
    "check_tiers",
    "tier_histogram",
    "tier_index",
    "tier_names",
    "tier_value",
]

#: Lowest and highest difficulty (PixelThink's judge rates 1 = very easy .. 10 = very hard).
SCALE_MIN = 1.0
SCALE_MAX = 10.0

#: PixelThink's tier boundaries ``(tau2, tau1)`` and tier names (official ``seg_pixelthink.py``).
DEFAULT_THRESHOLDS: tuple[float, ...] = (3.5, 5.0)
DEFAULT_TIER_NAMES: tuple[str, ...] = ("easy", "medium", "hard")

#: Name used in histograms for samples without a difficulty (NaN).
MISSING_TIER = "missing"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _entries(field: str, value: object, what: str, ok: Callable[[object], bool]) -> tuple[Any, ...]:
    """``value`` as a tuple after checking it is a sequence (not a string: ``"abc"`` is not three names), each entry
    ``what`` (``"a number"``: no bool, no string).

    Raises:
        ConfigError: naming ``field``, what was expected and what was got.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ConfigError(
            f"TierLayout: {field}: expected a sequence, each entry {what}, got {value!r:.80} (a {type(value).__name__})"
        )
    entries = tuple(value)
    bad = [i for i, entry in enumerate(entries) if not ok(entry)]
    if bad:
        got = entries[bad[0]]
        raise ConfigError(f"TierLayout: {field}[{bad[0]}]: expected {what}, got {got!r:.80} (a {type(got).__name__})")
    return entries


@dataclasses.dataclass(frozen=True)
class TierLayout:
    """Tier boundaries and one name per tier (``len(names) == len(thresholds) + 1``); PixelThink's by default.

    Construction checks only the types (a sequence of numbers, one of strings; else [`ConfigError`][] naming
    the field); [`check`][] validates the values (a budget validates its own fields).
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    names: tuple[str, ...] = DEFAULT_TIER_NAMES

    def __post_init__(self) -> None:
        thresholds = _entries("thresholds", self.thresholds, "a number", _is_number)
        object.__setattr__(self, "thresholds", tuple(float(x) for x in thresholds))
        object.__setattr__(self, "names", _entries("names", self.names, "a string", _is_str))

    def check(self, *, owner: str) -> TierLayout:
        """The layout itself after checking finite, strictly increasing thresholds and ``len + 1`` distinct,
        non-empty names other than ``"missing"``.

        Raises:
            ValueError: naming ``owner`` and what was wrong.
        """
        t, names = self.thresholds, self.names
        if not all(math.isfinite(x) for x in t) or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"{owner}: thresholds: expected finite, strictly increasing numbers, got {t}")
        if len(names) != len(t) + 1 or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"{owner}: tier_names: expected {len(t) + 1} distinct non-empty names, got {names}")
        if MISSING_TIER in names:
            raise ValueError(f"{owner}: tier_names: {MISSING_TIER!r} is reserved for samples without a score")
        return self

    def index(self, difficulty: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Tier per sample: ``k`` such that ``thresholds[k-1] <= D < thresholds[k]``; ``-1`` for NaN."""
        values = np.asarray(difficulty, dtype=np.float64).reshape(-1)
        index = np.searchsorted(np.asarray(self.thresholds, dtype=np.float64), values, side="right").astype(np.intp)
        return np.where(np.isnan(values), -1, index)

    def labels(self, difficulty: npt.ArrayLike, *, missing: str = MISSING_TIER) -> npt.NDArray[np.str_]:
        """Tier name per sample; NaN gets ``missing``."""
        return np.array([*self.names, missing])[self.index(difficulty)]  # index -1 (NaN): the last name, missing

    def histogram(self, difficulty: npt.ArrayLike) -> dict[str, int]:
        """Count of samples per tier, in tier order, plus ``"missing"`` (NaN) last."""
        labels = self.labels(difficulty)
        return {name: int((labels == name).sum()) for name in (*self.names, MISSING_TIER)}

    def interval(self, k: int) -> tuple[float, float]:
        """Tier ``k``'s interval ``[low, high)`` on the scale (the outer ends are 1 and 10)."""
        edges = (SCALE_MIN, *self.thresholds, SCALE_MAX)
        return edges[k], edges[k + 1]

    def value(self, tier: str) -> float:
        """The value that stands for a whole tier: the midpoint of its interval clipped to ``[1, 10]``.

        With the PixelThink tiers: easy ``[1, 3.5)`` -> 2.25, medium ``[3.5, 5)`` -> 4.25, hard ``[5, 10]`` -> 7.5.

        Raises:
            ValueError: ``tier`` is not one of the names.
        """
        if tier not in self.names:
            raise ValueError(f"tier_value: tier: expected one of {list(self.names)}, got {tier!r}")
        low, high = self.interval(self.names.index(tier))
        low, high = max(SCALE_MIN, min(low, SCALE_MAX)), min(SCALE_MAX, max(high, SCALE_MIN))
        return (low + high) / 2.0

    def describe(self, histogram: Mapping[str, int]) -> list[str]:
        """Lines ``name  [low, high)  count  percent  bar`` for a [`histogram`][] (the CLI summary)."""
        total, last = sum(histogram.values()) or 1, len(self.names) - 1
        lines = []
        for k, name in enumerate((*self.names, MISSING_TIER)):
            interval = ""
            if k <= last:
                low, high = self.interval(k)
                interval = f"[{low:g}, {high:g}{']' if k == last else ')'}"
            count = histogram.get(name, 0)
            bar = "#" * round(30 * count / total)
            lines.append(f"{name:<10} {interval:<12} {count:>8} {100 * count / total:6.1f}%  {bar}")
        return lines


def _layout(thresholds: Sequence[float], names: Sequence[str]) -> TierLayout:
    """A layout from any sequences, with [`TierLayout`][]'s type checks (a string is not a sequence of names)."""
    checked = _entries("thresholds", thresholds, "a number", _is_number)
    return TierLayout(tuple(float(x) for x in checked), _entries("names", names, "a string", _is_str))


# Function forms (the difficulty package's API since before the layout existed); names are checked where they
# label samples.


def check_tiers(thresholds: Sequence[float], names: Sequence[str], *, owner: str) -> None:
    """[`TierLayout.check`][adaptive_length_reward.tiers.TierLayout.check] of ``(thresholds, names)``."""
    _layout(thresholds, names).check(owner=owner)


def tier_index(difficulty: npt.ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> npt.NDArray[np.intp]:
    """[`TierLayout.index`][adaptive_length_reward.tiers.TierLayout.index]: ``k`` with
    ``thresholds[k-1] <= D < thresholds[k]``; ``-1`` for NaN."""
    return _layout(thresholds, ()).index(difficulty)


def tier_names(
    difficulty: npt.ArrayLike,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    names: Sequence[str] = DEFAULT_TIER_NAMES,
) -> npt.NDArray[np.str_]:
    """[`TierLayout.labels`][adaptive_length_reward.tiers.TierLayout.labels]: the tier name per sample (``"missing"``
    for NaN)."""
    return _layout(thresholds, names).check(owner="tier_names").labels(difficulty)


def tier_histogram(
    difficulty: npt.ArrayLike,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    names: Sequence[str] = DEFAULT_TIER_NAMES,
) -> dict[str, int]:
    """[`TierLayout.histogram`][adaptive_length_reward.tiers.TierLayout.histogram]: samples per tier, plus ``"missing"``
    (NaN) last."""
    return _layout(thresholds, names).check(owner="tier_names").histogram(difficulty)


def tier_value(
    tier: str, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, names: Sequence[str] = DEFAULT_TIER_NAMES
) -> float:
    """[`TierLayout.value`][adaptive_length_reward.tiers.TierLayout.value]: the midpoint of the tier's interval clipped
    to ``[1, 10]``."""
    return _layout(thresholds, names).value(tier)
