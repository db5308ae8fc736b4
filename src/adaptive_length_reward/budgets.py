"""Budget policies: how many length units a completion may use before the length penalty starts.

A budget is a float per completion; ``inf`` (:data:`NO_PENALTY`; ``None`` in configs) means "no penalty":
every penalty in :mod:`adaptive_length_reward.penalties` returns its no-penalty value for it.

PixelThink (arXiv 2505.23727, Sec. 3.3; official ``seg_pixelthink.py``) uses three difficulty tiers with
``tau2 = 3.5`` and ``tau1 = 5.0``::

    easy    D < 3.5          B = 96
    medium  3.5 <= D < 5.0   no penalty
    hard    D >= 5.0         B = 256 + 25 * U        (U = model uncertainty in [0, 1])

:class:`TieredBudget` defaults to exactly that.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .batch import RewardBatch
from .config import ComponentConfig, Configurable, register, validated
from .errors import MissingContextError

__all__ = ["NO_PENALTY", "BudgetPolicy", "ColumnBudget", "FixedBudget", "LinearBudget", "TieredBudget"]

FloatArray = npt.NDArray[np.float64]

#: The budget that means "no length penalty" (``None`` in configs).
NO_PENALTY = math.inf


class BudgetPolicy(Configurable[ComponentConfig], abc.ABC):
    """One budget per completion (``inf`` = no penalty), from the batch's context."""

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns read; a missing one raises before any work."""
        return frozenset()

    @abc.abstractmethod
    def __call__(self, batch: RewardBatch) -> FloatArray:
        """Budgets, one per completion, each ``>= 0`` or ``inf``."""

    def tiers(self, batch: RewardBatch) -> npt.NDArray[np.str_] | None:
        """Tier name per completion, for policies that have tiers (for logging); else ``None``."""
        return None


def _column_or_nan(batch: RewardBatch, name: str) -> FloatArray:
    if batch.has(name):
        return np.asarray(batch.column(name), dtype=np.float64)
    return np.full(len(batch), np.nan)


# ------------------------------------------------------------------------------------------------------------


class FixedBudgetConfig(ComponentConfig):
    kind: Literal["fixed_budget"] = "fixed_budget"
    budget: float | None = Field(None, ge=0, allow_inf_nan=False)


@register("fixed_budget", FixedBudgetConfig)
class FixedBudget(BudgetPolicy):
    """The same budget for every completion (``None`` = no penalty). A uniform-budget baseline."""

    def __init__(self, budget: float | None = None) -> None:
        self._config = validated("FixedBudget", FixedBudgetConfig, budget=budget)

    def __call__(self, batch: RewardBatch) -> FloatArray:
        return np.full(len(batch), NO_PENALTY if self._config.budget is None else self._config.budget)

    def to_config(self) -> FixedBudgetConfig:
        return self._config


class ColumnBudgetConfig(ComponentConfig):
    kind: Literal["column_budget"] = "column_budget"
    column: str = Field("target_length", min_length=1)


@register("column_budget", ColumnBudgetConfig)
class ColumnBudget(BudgetPolicy):
    """Budgets read from a batch column, e.g. the target length an L1-style prompt asked for.

    ``None``/NaN/``inf`` entries mean no penalty for that sample; negative values raise.
    """

    def __init__(self, column: str = "target_length") -> None:
        self._config = validated("ColumnBudget", ColumnBudgetConfig, column=column)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self._config.column})

    def __call__(self, batch: RewardBatch) -> FloatArray:
        column = self._config.column
        raw = batch.column(column, by="ColumnBudget")
        try:
            values = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"ColumnBudget: column {column!r}: expected numbers or None, got {list(raw)[:5]!r}"
            ) from None
        if (values < 0).any():
            raise ValueError(f"ColumnBudget: column {column!r}: expected budgets >= 0, got {values.tolist()[:8]}")
        return np.where(np.isnan(values), NO_PENALTY, values)

    def to_config(self) -> ColumnBudgetConfig:
        return self._config


# ------------------------------------------------------------------------------------------------------------


class TieredBudgetConfig(ComponentConfig):
    """Configuration of :class:`TieredBudget`; parallel tuples, one entry per tier."""

    kind: Literal["tiered_budget"] = "tiered_budget"
    thresholds: tuple[float, ...] = (3.5, 5.0)
    names: tuple[str, ...] = ("easy", "medium", "hard")
    budgets: tuple[float | None, ...] = (96.0, None, 256.0)
    uncertainty_scales: tuple[float, ...] = (0.0, 0.0, 25.0)
    missing_difficulty: float | str = "error"
    missing_uncertainty: float | Literal["error"] = "error"

    @model_validator(mode="after")
    def _consistent(self) -> TieredBudgetConfig:
        t = self.thresholds
        if not all(math.isfinite(x) for x in t) or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"thresholds: expected finite, strictly increasing numbers, got {t}")
        n = len(t) + 1
        for field in ("names", "budgets", "uncertainty_scales"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{field}: expected {n} entries (len(thresholds) + 1), got {getattr(self, field)}")
        if len(set(self.names)) != n or not all(self.names):
            raise ValueError(f"names: expected {n} distinct non-empty tier names, got {self.names}")
        for b in self.budgets:
            if b is not None and not (math.isfinite(b) and b >= 0):
                raise ValueError(f"budgets: expected each >= 0 and finite, or None for no penalty, got {self.budgets}")
        if not all(math.isfinite(s) for s in self.uncertainty_scales):
            raise ValueError(f"uncertainty_scales: expected finite numbers, got {self.uncertainty_scales}")
        md = self.missing_difficulty
        if isinstance(md, str) and md != "error" and md not in self.names:
            raise ValueError(
                f"missing_difficulty: expected 'error', a tier name {list(self.names)} or a number, got {md!r}"
            )
        if isinstance(md, float) and not math.isfinite(md):
            raise ValueError(f"missing_difficulty: expected a finite number, got {md}")
        mu = self.missing_uncertainty
        if isinstance(mu, float) and not math.isfinite(mu):
            raise ValueError(f"missing_uncertainty: expected a finite number or 'error', got {mu}")
        return self


@register("tiered_budget", TieredBudgetConfig)
class TieredBudget(BudgetPolicy):
    """Difficulty tiers, each with a base budget (or none) scaled by uncertainty (PixelThink, Sec. 3.3).

    Tier ``k`` holds ``thresholds[k-1] <= D < thresholds[k]``; its budget is
    ``budgets[k] + uncertainty_scales[k] * U`` (clamped at 0), or no penalty where ``budgets[k]`` is None.
    Defaults reproduce the official code: easy (D < 3.5) 96; medium no penalty; hard (D >= 5) 256 + 25 U.

    Args:
        thresholds: tier boundaries, strictly increasing.
        names: one name per tier (for logging).
        budgets: one base budget per tier, ``None`` for no penalty.
        uncertainty_scales: one per tier; the hard-tier budget grows with uncertainty when positive.
        missing_difficulty: what a sample without difficulty (absent column or NaN) gets: ``"error"``
            (default: raise, naming the samples), a tier name, or a difficulty value. The official loader
            falls back to 3.0 (easy) and the function default is 2.0; :func:`adaptive_length_reward.presets`
            makes that choice explicit.
        missing_uncertainty: ``"error"`` (default) or the value to use where a tier with a non-zero
            uncertainty scale meets a sample without uncertainty.
    """

    def __init__(
        self,
        *,
        thresholds: Sequence[float] = (3.5, 5.0),
        names: Sequence[str] = ("easy", "medium", "hard"),
        budgets: Sequence[float | None] = (96.0, None, 256.0),
        uncertainty_scales: Sequence[float] = (0.0, 0.0, 25.0),
        missing_difficulty: float | str = "error",
        missing_uncertainty: float | Literal["error"] = "error",
    ) -> None:
        self._config = validated(
            "TieredBudget",
            TieredBudgetConfig,
            thresholds=tuple(thresholds),
            names=tuple(names),
            budgets=tuple(budgets),
            uncertainty_scales=tuple(uncertainty_scales),
            missing_difficulty=missing_difficulty,
            missing_uncertainty=missing_uncertainty,
        )
        c = self._config
        self._base = np.array([NO_PENALTY if b is None else b for b in c.budgets], dtype=np.float64)
        self._scales = np.array(c.uncertainty_scales, dtype=np.float64)
        self._names = np.array(c.names)

    @property
    def requires(self) -> frozenset[str]:
        c = self._config
        needed = set()
        if c.missing_difficulty == "error":
            needed.add("difficulty")
        # ``uncertainty`` is checked per sample: only samples in a tier whose budget scales with it need one.
        return frozenset(needed)

    def tier_index(self, batch: RewardBatch) -> npt.NDArray[np.intp]:
        """Tier index per completion (0 = lowest difficulty)."""
        c = self._config
        difficulty = _column_or_nan(batch, "difficulty")
        missing = np.isnan(difficulty)
        if missing.any():
            md = c.missing_difficulty
            if md == "error":
                raise MissingContextError(
                    f"TieredBudget needs 'difficulty', which is missing (NaN) for samples "
                    f"{np.flatnonzero(missing)[:10].tolist()}; set missing_difficulty to a tier name or a value "
                    "to allow that"
                )
            if isinstance(md, str):
                index = np.searchsorted(c.thresholds, difficulty, side="right")
                return np.where(missing, c.names.index(md), index).astype(np.intp)
            difficulty = np.where(missing, md, difficulty)
        return np.searchsorted(c.thresholds, difficulty, side="right").astype(np.intp)

    def __call__(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        index = self.tier_index(batch)
        base, scale = self._base[index], self._scales[index]
        scaled = np.isfinite(base) & (scale != 0)
        if not scaled.any():
            return base
        uncertainty = _column_or_nan(batch, "uncertainty")
        missing = scaled & np.isnan(uncertainty)
        if missing.any():
            if c.missing_uncertainty == "error":
                raise MissingContextError(
                    f"TieredBudget needs the batch column 'uncertainty' for samples "
                    f"{np.flatnonzero(missing)[:10].tolist()} (their tier's budget scales with it), and it is "
                    "missing or NaN there. Pass uncertainty=..., add an uncertainty estimator, or set "
                    "missing_uncertainty to a value"
                )
            uncertainty = np.where(np.isnan(uncertainty), float(c.missing_uncertainty), uncertainty)
        budget = np.where(scaled, base + scale * np.where(scaled, uncertainty, 0.0), base)
        return np.maximum(budget, 0.0)

    def tiers(self, batch: RewardBatch) -> npt.NDArray[np.str_]:
        return self._names[self.tier_index(batch)]

    def to_config(self) -> TieredBudgetConfig:
        return self._config


# ------------------------------------------------------------------------------------------------------------


class LinearBudgetConfig(ComponentConfig):
    kind: Literal["linear_budget"] = "linear_budget"
    intercept: float = Field(32.0, allow_inf_nan=False)
    difficulty_slope: float = Field(32.0, allow_inf_nan=False)
    uncertainty_slope: float = Field(25.0, allow_inf_nan=False)
    min_budget: float = Field(32.0, ge=0, allow_inf_nan=False)
    max_budget: float = Field(512.0, ge=0, allow_inf_nan=False)
    missing_difficulty: float | Literal["error"] = "error"
    missing_uncertainty: float | Literal["error"] = "error"

    @model_validator(mode="after")
    def _ordered(self) -> LinearBudgetConfig:
        if self.max_budget < self.min_budget:
            raise ValueError(f"max_budget: expected >= min_budget ({self.min_budget}), got {self.max_budget}")
        for field in ("missing_difficulty", "missing_uncertainty"):
            value = getattr(self, field)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{field}: expected a finite number or 'error', got {value}")
        return self


@register("linear_budget", LinearBudgetConfig)
class LinearBudget(BudgetPolicy):
    """Continuous in difficulty and uncertainty:
    ``B = clip(intercept + difficulty_slope * D + uncertainty_slope * U, min_budget, max_budget)``.

    A smooth alternative to :class:`TieredBudget` (no jumps at the thresholds). Defaults give
    B(D=2) = 96 and B(D=7, U=0) = 256, the two PixelThink budgets. Set ``uncertainty_slope=0`` for a
    difficulty-only budget, which then needs no uncertainty column.
    """

    def __init__(
        self,
        *,
        intercept: float = 32.0,
        difficulty_slope: float = 32.0,
        uncertainty_slope: float = 25.0,
        min_budget: float = 32.0,
        max_budget: float = 512.0,
        missing_difficulty: float | Literal["error"] = "error",
        missing_uncertainty: float | Literal["error"] = "error",
    ) -> None:
        self._config = validated(
            "LinearBudget",
            LinearBudgetConfig,
            intercept=intercept,
            difficulty_slope=difficulty_slope,
            uncertainty_slope=uncertainty_slope,
            min_budget=min_budget,
            max_budget=max_budget,
            missing_difficulty=missing_difficulty,
            missing_uncertainty=missing_uncertainty,
        )

    @property
    def requires(self) -> frozenset[str]:
        c = self._config
        needed = set()
        if c.difficulty_slope != 0 and c.missing_difficulty == "error":
            needed.add("difficulty")
        if c.uncertainty_slope != 0 and c.missing_uncertainty == "error":
            needed.add("uncertainty")
        return frozenset(needed)

    def __call__(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        total = np.full(len(batch), c.intercept)
        for column, slope, fallback in (
            ("difficulty", c.difficulty_slope, c.missing_difficulty),
            ("uncertainty", c.uncertainty_slope, c.missing_uncertainty),
        ):
            if slope == 0:
                continue
            values = _column_or_nan(batch, column)
            missing = np.isnan(values)
            if missing.any():
                if fallback == "error":
                    raise MissingContextError(
                        f"LinearBudget needs {column!r}, which is missing (NaN) for samples "
                        f"{np.flatnonzero(missing)[:10].tolist()}; set missing_{column} to allow that"
                    )
                values = np.where(missing, float(fallback), values)
            total = total + slope * values
        clipped: FloatArray = np.clip(total, c.min_budget, c.max_budget)
        return clipped

    def to_config(self) -> LinearBudgetConfig:
        return self._config


def describe_budget(budget: Any) -> str:
    """Human-readable budget value (``"none"`` for no penalty)."""
    return "none" if not math.isfinite(budget) else f"{budget:g}"
