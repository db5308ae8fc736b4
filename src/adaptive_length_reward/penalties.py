"""Length rewards as composable :class:`~adaptive_length_reward.reward.Reward` classes.

Each class measures lengths with a :class:`~adaptive_length_reward.length.LengthCounter`, takes budgets from a
:class:`~adaptive_length_reward.budgets.BudgetPolicy` where the method has one, reads correctness ``c`` by the one
rule of :func:`correctness` where it needs it, and calls the pure function of the same name in
:mod:`adaptive_length_reward.functional`. See docs/concepts.md.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from . import functional as F
from .batch import RewardBatch
from .budgets import BudgetPolicy, Budgets, TieredBudget
from .config import class_name, param
from .length import LengthCounter, WhitespaceWords
from .reward import Reward, RewardOutput, collect

__all__ = [
    "ALPReward",
    "CosineLengthReward",
    "DAPOOverlongPenalty",
    "KimiLengthReward",
    "L1ExactReward",
    "L1MaxReward",
    "ShorterBetterReward",
    "SoftLengthPenalty",
    "correctness",
    "correctness_requires",
]

FloatArray = npt.NDArray[np.float64]


def correctness(
    batch: RewardBatch, reward: Reward | None, threshold: float, *, by: str, binary: bool = True
) -> FloatArray:
    """1.0 where a completion is correct, else 0.0.

    With ``reward``: correct where its value is ``>= threshold``. Without: the batch column ``correct``; with
    ``binary=True`` (the length rewards) it must hold 0/1 or bools and is the flag itself; with ``binary=False``
    (pass-rate difficulty) any finite numbers, correct where ``>= threshold`` like a reward's value. A column
    that is not numbers, or not 0/1 (``binary``) / not finite, raises TypeError / ValueError naming ``by``.
    """
    if reward is not None:
        return np.asarray(reward.evaluate(batch).rewards >= threshold, dtype=np.float64)
    raw = batch.column("correct", by=by)
    try:
        values = np.asarray([float(v) for v in raw], dtype=np.float64)
    except (TypeError, ValueError):
        expected = "0/1 or bool values" if binary else "numbers or bools"
        raise TypeError(f"{by}: column 'correct': expected {expected}, got {list(raw)[:5]!r}") from None
    valid, expected = (np.isin(values, (0.0, 1.0)), "0/1 or bool") if binary else (np.isfinite(values), "finite")
    if not valid.all():
        raise ValueError(f"{by}: column 'correct': expected {expected} values, got {values.tolist()[:8]}")
    return values if binary else np.asarray(values >= threshold, dtype=np.float64)


def correctness_requires(reward: Reward | None) -> frozenset[str]:
    """The batch columns :func:`correctness` reads."""
    return reward.requires if reward is not None else frozenset({"correct"})


@functools.cache
def _parameters(formula: Callable[..., FloatArray]) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(formula).parameters


class _LengthReward(Reward):
    """The shared path of the length rewards (see the module docstring)."""

    #: The function of :mod:`~adaptive_length_reward.functional`. It takes those of ``correct``, ``lengths``,
    #: budgets and ``groups`` that the method has, in that order, and the reward's parameters of the same names.
    formula: ClassVar[Callable[..., FloatArray]]

    length: LengthCounter = param(
        default_factory=WhitespaceWords, doc="the length counter (default: whitespace words of the whole response)"
    )

    @property
    def requires(self) -> frozenset[str]:
        return self.length.requires | ({"group_ids"} if self.uses_groups else frozenset())

    @property
    def uses_groups(self) -> bool:
        """Whether the method is group-relative (needs ``group_ids``; statistics never cross groups)."""
        return "groups" in _parameters(self.formula)

    def _budgets(self, batch: RewardBatch) -> Budgets | None:
        return None

    def _correct(self, batch: RewardBatch, components: dict[str, FloatArray]) -> FloatArray | None:
        return None

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        lengths = np.asarray(self.length(batch), dtype=np.float64)
        budgets = self._budgets(batch)
        components: dict[str, FloatArray] = {}
        correct = self._correct(batch, components)
        groups = batch.group_index(by=class_name(self)) if self.uses_groups else None
        inputs = (correct, lengths, None if budgets is None else budgets.values, groups)
        parameters = _parameters(self.formula).values()
        options = {p.name: getattr(self, p.name) for p in parameters if p.kind == p.KEYWORD_ONLY}
        rewards = self.formula(*(x for x in inputs if x is not None), **options)
        columns: dict[str, Any] = {"length": lengths}
        if budgets is not None:
            columns["budget"] = budgets.values
            if budgets.tiers is not None:
                columns["tier"] = budgets.tiers
        columns.update({name: batch.column(name) for name in ("difficulty", "uncertainty") if batch.has(name)})
        if correct is not None:
            columns["correct"] = correct
        return RewardOutput(rewards, components, columns)


class _Graded(_LengthReward):
    """Length rewards that read correctness ``c`` (:func:`correctness`)."""

    correctness: Reward | None = param(
        default=None, doc="a reward whose value >= correct_threshold marks a correct sample; None: the column 'correct'"
    )
    correct_threshold: float = param(default=1.0, doc="the correctness reward's value that counts as correct")

    @property
    def requires(self) -> frozenset[str]:
        return super().requires | correctness_requires(self.correctness)

    def _correct(self, batch: RewardBatch, components: dict[str, FloatArray]) -> FloatArray:
        if self.correctness is not None:
            components.update(collect([self.correctness.evaluate(batch)], [self.correctness.name])[0])
        return correctness(batch, self.correctness, self.correct_threshold, by=class_name(self))


class _Budgeted(_LengthReward):
    """Length rewards with a budget per sample (budgets and tiers come from one :meth:`BudgetPolicy.assign`)."""

    budget: BudgetPolicy = param(doc="the budget policy (a target length per sample: in L1, a ColumnBudget)")

    @property
    def requires(self) -> frozenset[str]:
        return super().requires | self.budget.requires

    def _budgets(self, batch: RewardBatch) -> Budgets:
        return self.budget.assign(batch)


class SoftLengthPenalty(_Budgeted, kind="soft_length_penalty"):
    """PixelThink's soft length score ``s(L, B) = clip(1 - beta * max(0, L - B), 0, 1)``
    (arXiv 2505.23727, Eq. 5; official ``seg_pixelthink.py``), a multiplier for the task reward.

    The default budget needs ``difficulty`` and, for the hard tier, ``uncertainty``. Range: ``[0, 1 + bonus_cap]``.

    >>> penalty = SoftLengthPenalty()
    >>> penalty(completions=["word " * 50, "word " * 346], difficulty=[2.0, 2.0]).tolist()
    [1.0, 0.5]
    """

    formula = staticmethod(F.soft_length_penalty)

    budget: BudgetPolicy = param(default_factory=TieredBudget, doc="the budget policy (default PixelThink's tiers)")
    beta: float = param(default=1 / 500, gt=0, doc="slope; the score reaches 0 at L = B + 1/beta")
    bonus_cap: float = param(default=0.0, ge=0, doc="a score above 1 under budget, up to 1 + bonus_cap (official 0)")

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0 + self.bonus_cap)


class _L1(_Graded, _Budgeted):
    alpha: float = param(default=0.0003, gt=0, doc="the weight of the length gap")


class L1ExactReward(_L1, kind="l1_exact"):
    """L1 / LCPO-Exact (arXiv 2503.04697, Eq. 1): ``r = c - alpha * |B - L|``; a full reward (replaces accuracy).

    The target ``B`` comes from the budget policy (in L1, from the prompt:
    :class:`~adaptive_length_reward.budgets.ColumnBudget`). Range: ``(-inf, 1]``.
    """

    formula = staticmethod(F.l1_exact_reward)
    bounds = (-math.inf, 1.0)


class L1MaxReward(_L1, kind="l1_max"):
    """L1 / LCPO-Max (arXiv 2503.04697, Eq. 2): ``r = c * clip(alpha * (B - L) + delta, 0, 1)``. Range: ``[0, 1]``."""

    formula = staticmethod(F.l1_max_reward)
    bounds = (0.0, 1.0)

    delta: float = param(default=0.5, doc="the score at L = B")


class DAPOOverlongPenalty(_LengthReward, kind="dapo_overlong"):
    """DAPO soft overlong punishment (arXiv 2503.14476, Eq. 13), added to the task reward. Range ``[-1, 0]``.

    Lengths should be in the unit of ``max_length`` (tokens in DAPO: use a token counter).
    """

    formula = staticmethod(F.dapo_overlong_penalty)
    bounds = (-1.0, 0.0)

    max_length: float = param(default=20480, gt=0, doc="L_max: the penalty reaches -1 here")
    cache_length: float = param(default=4096, gt=0, doc="L_cache: the penalty ramps over the last cache_length")

    @staticmethod
    def _check(config: Any) -> None:
        if config.cache_length > config.max_length:
            raise ValueError(f"cache_length: expected <= max_length ({config.max_length}), got {config.cache_length}")


class CosineLengthReward(_Graded, kind="cosine_length"):
    """Cosine length scaling (arXiv 2502.03373, Eq. 1): short correct answers earn most, short wrong answers
    are punished most. A full reward (replaces accuracy).
    See :func:`~adaptive_length_reward.functional.cosine_length_reward`.
    """

    formula = staticmethod(F.cosine_length_reward)

    max_length: float = param(default=1000, gt=0, doc="L_max: the end of the cosine")
    correct_range: tuple[float, float] = param(default=(0.5, 1.0), doc="(min, max) reward of correct answers")
    wrong_range: tuple[float, float] = param(default=(-1.0, -0.5), doc="(min, max) reward of wrong answers")
    exceed_penalty: float | None = param(default=None, doc="the reward beyond max_length (default: the value at it)")

    @staticmethod
    def _check(config: Any) -> None:
        for field in ("correct_range", "wrong_range"):
            low, high = getattr(config, field)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f"{field}: expected finite (min, max) with min <= max, got {(low, high)}")

    @property
    def bounds(self) -> tuple[float, float]:
        ends = [*self.correct_range, *self.wrong_range]
        if self.exceed_penalty is not None:
            ends.append(self.exceed_penalty)
        return (min(ends), max(ends))


class KimiLengthReward(_Graded, kind="kimi_length"):
    """Kimi k1.5 group-relative length reward (arXiv 2501.12599, Sec. 2.3.3), added to the task reward.

    Range ``[-0.5, 0.5]``.
    """

    formula = staticmethod(F.kimi_length_reward)
    bounds = (-0.5, 0.5)


class ShorterBetterReward(_Graded, kind="shorter_better"):
    """ShorterBetter (arXiv 2504.21370, Eq. 3): ``r = alpha * c - beta * |L - L_SOL|`` per GRPO group.

    A full reward (replaces accuracy). Range ``(-inf, alpha]``.
    """

    formula = staticmethod(F.shorter_better_reward)

    alpha: float = param(default=2.0, gt=0, doc="the reward of a correct answer")
    beta: float = param(default=0.001, gt=0, doc="the weight of the distance to the optimal length")

    @property
    def bounds(self) -> tuple[float, float]:
        return (-math.inf, self.alpha)


class ALPReward(_Graded, kind="alp"):
    """Adaptive Length Penalty (arXiv 2506.05256, Eq. 2): ``r = c - (beta/N) * max(p_solved, 1/K) * L``.

    The group's online solve rate is the difficulty signal. A full reward. Range ``(-inf, 1]``.
    """

    formula = staticmethod(F.alp_reward)
    bounds = (-math.inf, 1.0)

    beta: float = param(default=0.5, gt=0, doc="the penalty's weight")
    normalizer: float = param(default=4096, gt=0, doc="N: a normalising length")
