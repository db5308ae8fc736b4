"""Budget policies: how many length units a completion may use before the length penalty starts.

A budget is a float per completion; ``inf`` (``NO_PENALTY``; ``None`` in configs) means "no penalty". A
policy hands out budgets and, where it has tiers, each completion's tier together
([`BudgetPolicy.assign`][adaptive_length_reward.budgets.BudgetPolicy.assign]). [`TieredBudget`][] defaults to
PixelThink's tiers (arXiv 2505.23727, Sec. 3.3; official ``seg_pixelthink.py``): 96 for ``D < 3.5``, no penalty for
``3.5 <= D < 5``, ``256 + 25 * U`` for ``D >= 5``. See docs/concepts.md.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from .batch import RewardBatch
from .config import Component, param
from .errors import MissingContextError
from .evaluation import once
from .tiers import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, TierLayout

__all__ = ["NO_PENALTY", "BudgetPolicy", "Budgets", "ColumnBudget", "FixedBudget", "LinearBudget", "TieredBudget"]

FloatArray = npt.NDArray[np.float64]

#: The budget that means "no length penalty" (``None`` in configs).
NO_PENALTY = math.inf
_FLOAT_MAX = float(np.finfo(np.float64).max)


class Budgets(NamedTuple):
    """What a [`BudgetPolicy`][] assigns: one budget per completion, and its tier name where the policy has
    tiers (else ``None``)."""

    values: FloatArray
    tiers: npt.NDArray[np.str_] | None = None


class BudgetPolicy(Component, abc.ABC):
    """One budget per completion (``inf`` = no penalty), from the batch's context.

    Subclasses implement ``_budgets``; [`assign`][] runs it once per batch within an evaluation.
    """

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns read; a missing one raises before any work."""
        return frozenset()

    def assign(self, batch: RewardBatch) -> Budgets:
        """Budgets (each ``>= 0`` or ``inf``) and tiers, one per completion."""
        return once(self, batch, self._assigned, batch)

    def _assigned(self, batch: RewardBatch) -> Budgets:
        result = self._budgets(batch)
        return result if isinstance(result, Budgets) else Budgets(result)

    @abc.abstractmethod
    def _budgets(self, batch: RewardBatch) -> FloatArray | Budgets:
        """The budgets (with tiers, for a policy that has them)."""

    def __call__(self, batch: RewardBatch) -> FloatArray:
        """Budgets, one per completion, each ``>= 0`` or ``inf``."""
        return self.assign(batch).values

    def tiers(self, batch: RewardBatch) -> npt.NDArray[np.str_] | None:
        """Tier name per completion, for policies that have tiers (for logging); else ``None``."""
        return self.assign(batch).tiers


def _column_or_nan(batch: RewardBatch, name: str) -> FloatArray:
    if batch.has(name):
        return np.asarray(batch.column(name), dtype=np.float64)
    return np.full(len(batch), np.nan)


def _check_finite_fallbacks(config: Any, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field}: expected a finite number or 'error', got {value}")
    uncertainty = getattr(config, "missing_uncertainty", "error")
    if isinstance(uncertainty, (int, float)) and uncertainty < 0:  # the batch's and pixelthink_score's rule
        raise ValueError(f"missing_uncertainty: expected a number >= 0 or 'error', got {uncertainty}")


def _filled(by: BudgetPolicy, values: FloatArray, column: str, fallback: float | str, advice: str = "") -> FloatArray:
    """``values`` with NaN replaced by ``fallback``, or [`MissingContextError`][] where that is ``"error"``."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    if fallback == "error":
        raise MissingContextError(
            f"{type(by).__name__} needs {column!r}, which is missing (NaN) for samples "
            f"{np.flatnonzero(missing)[:10].tolist()}; {advice or f'set missing_{column} to a value'} to allow that"
        )
    return np.where(missing, float(fallback), values)


class FixedBudget(BudgetPolicy, kind="fixed_budget"):
    """The same budget for every completion (``None`` = no penalty). A uniform-budget baseline."""

    budget: float | None = param(default=None, kw_only=False, ge=0, doc="the budget; None = no penalty")

    def _budgets(self, batch: RewardBatch) -> FloatArray:
        return np.full(len(batch), NO_PENALTY if self.budget is None else self.budget)


class ColumnBudget(BudgetPolicy, kind="column_budget"):
    """Budgets read from a batch column, e.g. the target length an L1-style prompt asked for.

    ``None``/NaN/``inf`` entries mean no penalty for that sample; negative values raise.
    """

    column: str = param(default="target_length", kw_only=False, min_length=1, doc="the column holding the budgets")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.column})

    def _budgets(self, batch: RewardBatch) -> FloatArray:
        raw = batch.column(self.column, by="ColumnBudget")
        where = f"ColumnBudget: column {self.column!r}"
        try:
            values = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: expected numbers or None, got {list(raw)[:5]!r}") from None
        if (values < 0).any():
            raise ValueError(f"{where}: expected budgets >= 0, got {values.tolist()[:8]}")
        return np.where(np.isnan(values), NO_PENALTY, values)


class TieredBudget(BudgetPolicy, kind="tiered_budget"):
    """Difficulty tiers, each with a base budget (or none) scaled by uncertainty (PixelThink, Sec. 3.3).

    Tier ``k`` holds ``thresholds[k-1] <= D < thresholds[k]`` ([`TierLayout`][]);
    its budget is ``budgets[k] + uncertainty_scales[k] * U`` (clamped to ``[0, float64 max]``), or no penalty
    where ``budgets[k]`` is None. Defaults reproduce the official code: easy (D < 3.5) 96; medium no penalty;
    hard (D >= 5) 256 + 25 U.
    ``missing_difficulty`` *places* a sample without difficulty in a tier and writes no difficulty value (see
    docs/concepts.md); the official loader's fallback is 3.0 (easy).
    """

    thresholds: Sequence[float] = param(default=DEFAULT_THRESHOLDS, doc="tier boundaries, strictly increasing")
    names: Sequence[str] = param(default=DEFAULT_TIER_NAMES, doc="one name per tier (for logging)")
    budgets: Sequence[float | None] = param(default=(96.0, None, 256.0), doc="one base budget per tier, None = none")
    uncertainty_scales: Sequence[float] = param(
        default=(0.0, 0.0, 25.0), doc="one per tier; the tier's budget grows by scale * U"
    )
    missing_difficulty: float | str = param(
        default="error", doc="a sample without difficulty: 'error', a tier name or a difficulty value"
    )
    missing_uncertainty: float | Literal["error"] = param(
        default="error", doc="'error', or the U used where a tier that scales with U meets a sample without one"
    )

    @staticmethod
    def _check(config: Any) -> None:
        t = config.thresholds
        if not all(math.isfinite(x) for x in t) or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"thresholds: expected finite, strictly increasing numbers, got {t}")
        n = len(t) + 1
        for field in ("names", "budgets", "uncertainty_scales"):
            if len(getattr(config, field)) != n:
                raise ValueError(f"{field}: expected {n} entries (len(thresholds) + 1), got {getattr(config, field)}")
        if len(set(config.names)) != n or not all(config.names):
            raise ValueError(f"names: expected {n} distinct non-empty tier names, got {config.names}")
        if not all(b is None or (math.isfinite(b) and b >= 0) for b in config.budgets):
            raise ValueError(f"budgets: expected each >= 0 and finite, or None for no penalty, got {config.budgets}")
        if not all(math.isfinite(s) for s in config.uncertainty_scales):
            raise ValueError(f"uncertainty_scales: expected finite numbers, got {config.uncertainty_scales}")
        md = config.missing_difficulty
        if isinstance(md, str) and md != "error" and md not in config.names:
            raise ValueError(
                f"missing_difficulty: expected 'error', a tier name {list(config.names)} or a number, got {md!r}"
            )
        _check_finite_fallbacks(config, "missing_difficulty", "missing_uncertainty")

    def __post_init__(self) -> None:
        self.layout = TierLayout(tuple(self.thresholds), tuple(self.names))
        self._base = np.array([NO_PENALTY if b is None else b for b in self.budgets], dtype=np.float64)
        self._scales = np.array(self.uncertainty_scales, dtype=np.float64)
        self._names = np.array(self.names)

    @property
    def requires(self) -> frozenset[str]:
        # ``uncertainty`` is checked per sample: only samples in a tier whose budget scales with it need one.
        return frozenset({"difficulty"} if self.missing_difficulty == "error" else ())

    def tier_index(self, batch: RewardBatch) -> npt.NDArray[np.intp]:
        """Tier index per completion (0 = lowest difficulty)."""
        difficulty, md = _column_or_nan(batch, "difficulty"), self.missing_difficulty
        if isinstance(md, str) and md != "error":  # a tier name places the sample in that tier
            return np.where(np.isnan(difficulty), self.layout.names.index(md), self.layout.index(difficulty))
        advice = "set missing_difficulty to a tier name or a value"
        return self.layout.index(_filled(self, difficulty, "difficulty", md, advice))

    def _budgets(self, batch: RewardBatch) -> Budgets:
        index = self.tier_index(batch)
        tiers = self._names[index]
        base, scale = self._base[index], self._scales[index]
        scaled = np.isfinite(base) & (scale != 0)
        if not scaled.any():
            return Budgets(base, tiers)
        advice = "the tier's budget scales with it: pass uncertainty=..., add an estimator or set missing_uncertainty"
        uncertainty = np.where(scaled, _column_or_nan(batch, "uncertainty"), 0.0)
        uncertainty = _filled(self, uncertainty, "uncertainty", self.missing_uncertainty, advice)
        with np.errstate(over="ignore"):  # a scaled budget beyond float64 saturates: it is never "no penalty"
            grown = np.minimum(base + scale * uncertainty, _FLOAT_MAX)
        budget = np.where(scaled, grown, base)
        return Budgets(np.maximum(budget, 0.0), tiers)


class LinearBudget(BudgetPolicy, kind="linear_budget"):
    """Continuous in difficulty and uncertainty:
    ``B = clip(intercept + difficulty_slope * D + uncertainty_slope * U, min_budget, max_budget)``.

    A smooth alternative to [`TieredBudget`][] (no jumps at the thresholds). Defaults give
    B(D=2) = 96 and B(D=7, U=0) = 256, the two PixelThink budgets. Set ``uncertainty_slope=0`` for a
    difficulty-only budget, which then needs no uncertainty column.
    """

    intercept: float = param(default=32.0, doc="the budget at D = U = 0 (before clipping)")
    difficulty_slope: float = param(default=32.0, doc="budget per difficulty point")
    uncertainty_slope: float = param(default=25.0, doc="budget per unit of uncertainty")
    min_budget: float = param(default=32.0, ge=0, doc="the lowest budget")
    max_budget: float = param(default=512.0, ge=0, doc="the highest budget")
    missing_difficulty: float | Literal["error"] = param(default="error", doc="'error', or D for samples without")
    missing_uncertainty: float | Literal["error"] = param(default="error", doc="'error', or U for samples without")

    @staticmethod
    def _check(config: Any) -> None:
        if config.max_budget < config.min_budget:
            raise ValueError(f"max_budget: expected >= min_budget ({config.min_budget}), got {config.max_budget}")
        _check_finite_fallbacks(config, "missing_difficulty", "missing_uncertainty")

    def _inputs(self) -> tuple[tuple[str, float, float | str], ...]:
        return (
            ("difficulty", self.difficulty_slope, self.missing_difficulty),
            ("uncertainty", self.uncertainty_slope, self.missing_uncertainty),
        )

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(column for column, slope, fallback in self._inputs() if slope != 0 and fallback == "error")

    def _budgets(self, batch: RewardBatch) -> FloatArray:
        total = np.full(len(batch), self.intercept)
        for column, slope, fallback in self._inputs():
            if slope == 0:
                continue
            with np.errstate(over="ignore"):  # each term kept finite: a sum of finite terms is never NaN
                term = np.clip(
                    slope * _filled(self, _column_or_nan(batch, column), column, fallback), -_FLOAT_MAX, _FLOAT_MAX
                )
                total = total + term
        clipped: FloatArray = np.clip(total, self.min_budget, self.max_budget)
        return clipped
