"""Length rewards as composable :class:`~adaptive_length_reward.reward.Reward` classes.

Each class measures lengths with a :class:`~adaptive_length_reward.length.LengthCounter`, takes budgets from a
:class:`~adaptive_length_reward.budgets.BudgetPolicy` where the method has one, reads correctness where the
method needs it, and calls the pure function of the same name in :mod:`adaptive_length_reward.functional`.

Correctness (``c`` in the formulas) comes from a reward given as ``correctness=`` (a sample is correct where
that reward is ``>= correct_threshold``), or, when none is given, from the batch column ``correct``
(0/1 or bool).

Every reward reports per-sample ``length`` (and ``budget``, ``tier``, ``difficulty``, ``uncertainty`` where
relevant) in :attr:`RewardOutput.columns <adaptive_length_reward.reward.RewardOutput.columns>`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from . import functional as F
from .batch import RewardBatch
from .budgets import BudgetPolicy, TieredBudget, TieredBudgetConfig
from .config import ComponentConfig, Nested, build, class_name, config_of, register, validated
from .length import LengthCounter, WhitespaceWords, WhitespaceWordsConfig
from .reward import Reward, RewardOutput

__all__ = [
    "ALPReward",
    "CosineLengthReward",
    "DAPOOverlongPenalty",
    "KimiLengthReward",
    "L1ExactReward",
    "L1MaxReward",
    "ShorterBetterReward",
    "SoftLengthPenalty",
]

FloatArray = npt.NDArray[np.float64]


class _LengthConfig(ComponentConfig):
    length: Nested = Field(default_factory=WhitespaceWordsConfig)  # type: ignore[arg-type]
    name: str | None = None


class _CorrectnessConfig(_LengthConfig):
    correctness: Nested | None = None
    correct_threshold: float = Field(1.0, allow_inf_nan=False)


class _LengthReward(Reward):
    """Shared plumbing: a length counter, an optional budget policy, an optional correctness source."""

    uses_budget: ClassVar[bool] = False
    uses_correctness: ClassVar[bool] = False
    uses_groups: ClassVar[bool] = False

    def __init__(
        self,
        *,
        length: LengthCounter | None,
        budget: BudgetPolicy | None = None,
        correctness: Reward | None = None,
        name: str | None,
        **scalars: Any,
    ) -> None:
        owner = class_name(self)
        length = WhitespaceWords() if length is None else length
        if not isinstance(length, LengthCounter):
            raise TypeError(f"{owner}: length: expected a LengthCounter, got {type(length).__name__}")
        if self.uses_budget and not isinstance(budget, BudgetPolicy):
            raise TypeError(f"{owner}: budget: expected a BudgetPolicy, got {type(budget).__name__}")
        if correctness is not None and not isinstance(correctness, Reward):
            raise TypeError(f"{owner}: correctness: expected a Reward or None, got {type(correctness).__name__}")
        values: dict[str, Any] = dict(scalars, length=length, name=name)
        if self.uses_budget:
            values["budget"] = budget
        if self.uses_correctness:
            values["correctness"] = correctness
        self._config = validated(owner, self.config_class, **values)
        super().__init__(name=name)
        self.length, self.budget, self.correctness = length, budget, correctness

    # -- contract -------------------------------------------------------------------------------------------
    @property
    def requires(self) -> frozenset[str]:
        needed = set(self.length.requires)
        if self.budget is not None:
            needed |= self.budget.requires
        if self.uses_correctness:
            needed |= self.correctness.requires if self.correctness is not None else {"correct"}
        if self.uses_groups:
            needed.add("group_ids")
        return frozenset(needed)

    # -- helpers --------------------------------------------------------------------------------------------
    def _correct(self, batch: RewardBatch, components: dict[str, FloatArray]) -> FloatArray:
        if self.correctness is not None:
            output = self.correctness.evaluate(batch)
            components[self.correctness.name] = output.rewards
            for key, values in output.components.items():
                components[f"{self.correctness.name}/{key}"] = values
            flags: FloatArray = (output.rewards >= self._scalar("correct_threshold")).astype(np.float64)
            return flags
        raw = batch.column("correct", by=class_name(self))
        try:
            values = np.asarray([float(v) for v in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{class_name(self)}: column 'correct': expected 0/1 or bool values, got {list(raw)[:5]!r}"
            ) from None
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(
                f"{class_name(self)}: column 'correct': expected 0/1 or bool values, got {values.tolist()[:8]}"
            )
        return values

    def _columns(self, batch: RewardBatch, lengths: FloatArray, budgets: FloatArray | None = None) -> dict[str, Any]:
        columns: dict[str, Any] = {"length": lengths}
        if budgets is not None:
            columns["budget"] = budgets
            tiers = self.budget.tiers(batch) if self.budget is not None else None
            if tiers is not None:
                columns["tier"] = tiers
        for name in ("difficulty", "uncertainty"):
            if batch.has(name):
                columns[name] = batch.column(name)
        return columns

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        lengths = np.asarray(self.length(batch), dtype=np.float64)
        budgets = self.budget(batch) if self.budget is not None else None
        components: dict[str, FloatArray] = {}
        correct = self._correct(batch, components) if self.uses_correctness else None
        groups = batch.group_index(by=class_name(self)) if self.uses_groups else None
        rewards = self._formula(lengths=lengths, budgets=budgets, correct=correct, groups=groups)
        columns = self._columns(batch, lengths, budgets)
        if correct is not None:
            columns["correct"] = correct
        return RewardOutput(rewards, components, columns)

    def _formula(
        self,
        *,
        lengths: FloatArray,
        budgets: FloatArray | None,
        correct: FloatArray | None,
        groups: npt.NDArray[np.intp] | None,
    ) -> FloatArray:
        raise NotImplementedError

    # -- config ---------------------------------------------------------------------------------------------
    def to_config(self) -> ComponentConfig:
        update: dict[str, Any] = {"length": config_of(self.length)}
        if self.budget is not None:
            update["budget"] = config_of(self.budget)
        if self.correctness is not None:
            update["correctness"] = config_of(self.correctness)
        return self._config.model_copy(update=update)

    @classmethod
    def from_config(cls, config: Any) -> Any:
        values = {name: getattr(config, name) for name in type(config).model_fields if name != "kind"}
        for key in ("length", "budget", "correctness"):
            if values.get(key) is not None:
                values[key] = build(values[key])
        return cls(**values)

    def _scalar(self, name: str) -> Any:
        return getattr(self._config, name)


# ------------------------------------------------------------------------------------------------------------


class SoftLengthPenaltyConfig(_LengthConfig):
    kind: Literal["soft_length_penalty"] = "soft_length_penalty"
    budget: Nested = Field(default_factory=TieredBudgetConfig)
    beta: float = Field(1 / 500, gt=0, allow_inf_nan=False)
    bonus_cap: float = Field(0.0, ge=0, allow_inf_nan=False)


@register("soft_length_penalty", SoftLengthPenaltyConfig)
class SoftLengthPenalty(_LengthReward):
    """PixelThink's soft length score ``s(L, B) = clip(1 - beta * max(0, L - B), 0, 1)``
    (arXiv 2505.23727, Eq. 5; official ``seg_pixelthink.py``), a multiplier for the task reward.

    Args:
        budget: the budget policy; default :class:`~adaptive_length_reward.budgets.TieredBudget` (PixelThink's
            tiers, which need ``difficulty`` and, for the hard tier, ``uncertainty``).
        length: the length counter; default whitespace words of the whole response (PixelThink's default).
        beta: slope; the score reaches 0 at ``L = B + 1/beta`` (default ``1/500``).
        bonus_cap: allow a score above 1 under budget, up to ``1 + bonus_cap`` (default 0, as the official code).

    Range: ``[0, 1 + bonus_cap]``.

    >>> penalty = SoftLengthPenalty()
    >>> penalty(completions=["word " * 50, "word " * 346], difficulty=[2.0, 2.0]).tolist()
    [1.0, 0.5]
    """

    uses_budget = True

    def __init__(
        self,
        *,
        budget: BudgetPolicy | None = None,
        length: LengthCounter | None = None,
        beta: float = 1 / 500,
        bonus_cap: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            budget=TieredBudget() if budget is None else budget,
            name=name,
            beta=beta,
            bonus_cap=bonus_cap,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0 + self._scalar("bonus_cap"))

    def _formula(self, *, lengths: FloatArray, budgets: FloatArray | None, **_: Any) -> FloatArray:
        assert budgets is not None
        return F.soft_length_penalty(lengths, budgets, beta=self._scalar("beta"), bonus_cap=self._scalar("bonus_cap"))


# ------------------------------------------------------------------------------------------------------------


class _L1Config(_CorrectnessConfig):
    budget: Nested
    alpha: float = Field(0.0003, gt=0, allow_inf_nan=False)


class L1ExactRewardConfig(_L1Config):
    kind: Literal["l1_exact"] = "l1_exact"


class L1MaxRewardConfig(_L1Config):
    kind: Literal["l1_max"] = "l1_max"
    delta: float = Field(0.5, allow_inf_nan=False)


@register("l1_exact", L1ExactRewardConfig)
class L1ExactReward(_LengthReward):
    """L1 / LCPO-Exact (arXiv 2503.04697, Eq. 1): ``r = c - alpha * |B - L|``; a full reward (replaces accuracy).

    Args:
        budget: the target length per sample; in L1 it comes from the prompt
            (:class:`~adaptive_length_reward.budgets.ColumnBudget`), any policy works.
        correctness: a reward whose value ``>= correct_threshold`` marks a correct sample; default: the
            batch column ``correct``.

    Range: ``(-inf, 1]``.
    """

    uses_budget = uses_correctness = True

    def __init__(
        self,
        *,
        budget: BudgetPolicy,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        alpha: float = 0.0003,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            budget=budget,
            correctness=correctness,
            name=name,
            correct_threshold=correct_threshold,
            alpha=alpha,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (-math.inf, 1.0)

    def _formula(self, *, lengths: FloatArray, budgets: Any, correct: Any, **_: Any) -> FloatArray:
        return F.l1_exact_reward(correct, lengths, budgets, alpha=self._scalar("alpha"))


@register("l1_max", L1MaxRewardConfig)
class L1MaxReward(_LengthReward):
    """L1 / LCPO-Max (arXiv 2503.04697, Eq. 2): ``r = c * clip(alpha * (B - L) + delta, 0, 1)``.

    Same arguments as :class:`L1ExactReward`, plus ``delta`` (default 0.5). Range: ``[0, 1]``.
    """

    uses_budget = uses_correctness = True

    def __init__(
        self,
        *,
        budget: BudgetPolicy,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        alpha: float = 0.0003,
        delta: float = 0.5,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            budget=budget,
            correctness=correctness,
            name=name,
            correct_threshold=correct_threshold,
            alpha=alpha,
            delta=delta,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def _formula(self, *, lengths: FloatArray, budgets: Any, correct: Any, **_: Any) -> FloatArray:
        return F.l1_max_reward(correct, lengths, budgets, alpha=self._scalar("alpha"), delta=self._scalar("delta"))


# ------------------------------------------------------------------------------------------------------------


class DAPOOverlongPenaltyConfig(_LengthConfig):
    kind: Literal["dapo_overlong"] = "dapo_overlong"
    max_length: float = Field(20480, gt=0, allow_inf_nan=False)
    cache_length: float = Field(4096, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> DAPOOverlongPenaltyConfig:
        if self.cache_length > self.max_length:
            raise ValueError(f"cache_length: expected <= max_length ({self.max_length}), got {self.cache_length}")
        return self


@register("dapo_overlong", DAPOOverlongPenaltyConfig)
class DAPOOverlongPenalty(_LengthReward):
    """DAPO soft overlong punishment (arXiv 2503.14476, Eq. 13), added to the task reward. Range ``[-1, 0]``.

    Lengths should be in the unit of ``max_length`` (tokens in DAPO: use a token counter).
    """

    def __init__(
        self,
        *,
        length: LengthCounter | None = None,
        max_length: float = 20480,
        cache_length: float = 4096,
        name: str | None = None,
    ) -> None:
        super().__init__(length=length, name=name, max_length=max_length, cache_length=cache_length)

    @property
    def bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def _formula(self, *, lengths: FloatArray, **_: Any) -> FloatArray:
        return F.dapo_overlong_penalty(
            lengths, max_length=self._scalar("max_length"), cache_length=self._scalar("cache_length")
        )


# ------------------------------------------------------------------------------------------------------------


class CosineLengthRewardConfig(_CorrectnessConfig):
    kind: Literal["cosine_length"] = "cosine_length"
    max_length: float = Field(1000, gt=0, allow_inf_nan=False)
    correct_range: tuple[float, float] = (0.5, 1.0)
    wrong_range: tuple[float, float] = (-1.0, -0.5)
    exceed_penalty: float | None = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ranges(self) -> CosineLengthRewardConfig:
        for field in ("correct_range", "wrong_range"):
            low, high = getattr(self, field)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f"{field}: expected finite (min, max) with min <= max, got {(low, high)}")
        return self


@register("cosine_length", CosineLengthRewardConfig)
class CosineLengthReward(_LengthReward):
    """Cosine length scaling (arXiv 2502.03373, Eq. 1): short correct answers earn most, short wrong answers
    are punished most. A full reward (replaces accuracy).
    See :func:`~adaptive_length_reward.functional.cosine_length_reward`.
    """

    uses_correctness = True

    def __init__(
        self,
        *,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        max_length: float = 1000,
        correct_range: tuple[float, float] = (0.5, 1.0),
        wrong_range: tuple[float, float] = (-1.0, -0.5),
        exceed_penalty: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            correctness=correctness,
            name=name,
            correct_threshold=correct_threshold,
            max_length=max_length,
            correct_range=correct_range,
            wrong_range=wrong_range,
            exceed_penalty=exceed_penalty,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        ends = [*self._scalar("correct_range"), *self._scalar("wrong_range")]
        if self._scalar("exceed_penalty") is not None:
            ends.append(self._scalar("exceed_penalty"))
        return (min(ends), max(ends))

    def _formula(self, *, lengths: FloatArray, correct: Any, **_: Any) -> FloatArray:
        return F.cosine_length_reward(
            correct,
            lengths,
            max_length=self._scalar("max_length"),
            correct_range=self._scalar("correct_range"),
            wrong_range=self._scalar("wrong_range"),
            exceed_penalty=self._scalar("exceed_penalty"),
        )


# ------------------------------------------------------------------------------------------------------------


class KimiLengthRewardConfig(_CorrectnessConfig):
    kind: Literal["kimi_length"] = "kimi_length"


@register("kimi_length", KimiLengthRewardConfig)
class KimiLengthReward(_LengthReward):
    """Kimi k1.5 group-relative length reward (arXiv 2501.12599, Sec. 2.3.3), added to the task reward.

    Needs ``group_ids`` (one GRPO group per prompt); statistics never cross groups. Range ``[-0.5, 0.5]``.
    """

    uses_correctness = uses_groups = True

    def __init__(
        self,
        *,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(length=length, correctness=correctness, name=name, correct_threshold=correct_threshold)

    @property
    def bounds(self) -> tuple[float, float]:
        return (-0.5, 0.5)

    def _formula(self, *, lengths: FloatArray, correct: Any, groups: Any, **_: Any) -> FloatArray:
        return F.kimi_length_reward(correct, lengths, groups)


class ShorterBetterRewardConfig(_CorrectnessConfig):
    kind: Literal["shorter_better"] = "shorter_better"
    alpha: float = Field(2.0, gt=0, allow_inf_nan=False)
    beta: float = Field(0.001, gt=0, allow_inf_nan=False)


@register("shorter_better", ShorterBetterRewardConfig)
class ShorterBetterReward(_LengthReward):
    """ShorterBetter (arXiv 2504.21370, Eq. 3): ``r = alpha * c - beta * |L - L_SOL|`` per GRPO group.

    A full reward (replaces accuracy). Needs ``group_ids``. Range ``(-inf, alpha]``.
    """

    uses_correctness = uses_groups = True

    def __init__(
        self,
        *,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        alpha: float = 2.0,
        beta: float = 0.001,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            correctness=correctness,
            name=name,
            correct_threshold=correct_threshold,
            alpha=alpha,
            beta=beta,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (-math.inf, self._scalar("alpha"))

    def _formula(self, *, lengths: FloatArray, correct: Any, groups: Any, **_: Any) -> FloatArray:
        return F.shorter_better_reward(correct, lengths, groups, alpha=self._scalar("alpha"), beta=self._scalar("beta"))


class ALPRewardConfig(_CorrectnessConfig):
    kind: Literal["alp"] = "alp"
    beta: float = Field(0.5, gt=0, allow_inf_nan=False)
    normalizer: float = Field(4096, gt=0, allow_inf_nan=False)


@register("alp", ALPRewardConfig)
class ALPReward(_LengthReward):
    """Adaptive Length Penalty (arXiv 2506.05256, Eq. 2): ``r = c - (beta/N) * max(p_solved, 1/K) * L``.

    The group's online solve rate is the difficulty signal. A full reward. Needs ``group_ids``.
    Range ``(-inf, 1]``.
    """

    uses_correctness = uses_groups = True

    def __init__(
        self,
        *,
        length: LengthCounter | None = None,
        correctness: Reward | None = None,
        correct_threshold: float = 1.0,
        beta: float = 0.5,
        normalizer: float = 4096,
        name: str | None = None,
    ) -> None:
        super().__init__(
            length=length,
            correctness=correctness,
            name=name,
            correct_threshold=correct_threshold,
            beta=beta,
            normalizer=normalizer,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (-math.inf, 1.0)

    def _formula(self, *, lengths: FloatArray, correct: Any, groups: Any, **_: Any) -> FloatArray:
        return F.alp_reward(correct, lengths, groups, beta=self._scalar("beta"), normalizer=self._scalar("normalizer"))
