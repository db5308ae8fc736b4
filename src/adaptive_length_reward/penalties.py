"""Length rewards as composable [`Reward`][] classes.

Each class measures lengths with a [`LengthCounter`][], takes budgets from a
[`BudgetPolicy`][] where the method has one, reads correctness ``c`` by the one
rule of [`correctness`][] where it needs it, and calls the pure function of the same name in
[`functional`][]. See docs/concepts.md.
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
from .history import LengthHistory
from .length import LengthCounter, WhitespaceWords
from .reward import Reward, RewardOutput, collect

__all__ = [
    "ALPReward",
    "AdaptThinkReward",
    "CosineLengthReward",
    "DAPOOverlongPenalty",
    "GRPOLeadReward",
    "HAPOReward",
    "KimiLengthReward",
    "L1ExactReward",
    "L1MaxReward",
    "LASERDReward",
    "LASERReward",
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
    """The batch columns [`correctness`][] reads."""
    return reward.requires if reward is not None else frozenset({"correct"})


@functools.cache
def _parameters(formula: Callable[..., FloatArray]) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(formula).parameters


class _LengthReward(Reward):
    """The shared path of the length rewards (see the module docstring).

    ``only_correct=True`` applies the length term to correct answers only: a wrong answer gets the method's value
    without its length term (``wrong_value``; [`only_correct`][adaptive_length_reward.functional.only_correct]), so a
    length reward never teaches the policy to fail fast on hard problems (prime-rl #2829, PipelineRL #126).
    """

    #: The function of [`functional`][]. It takes those of ``correct``, ``lengths``,
    #: budgets and ``groups`` that the method has, in that order, and the reward's parameters of the same names.
    formula: ClassVar[Callable[..., FloatArray]]
    #: Whether the method always reads correctness ``c`` (otherwise only with ``only_correct=True``).
    graded: ClassVar[bool] = False
    #: Whether ``only_correct`` changes anything: False where the method already leaves wrong answers' rewards
    #: independent of length (L1-Max, GRPO-LEAD, LASER).
    length_applies_to_wrong: ClassVar[bool] = True

    length: LengthCounter = param(
        default_factory=WhitespaceWords, doc="the length counter (default: whitespace words of the whole response)"
    )
    correctness: Reward | None = param(
        default=None, doc="a reward whose value >= correct_threshold marks a correct sample; None: the column 'correct'"
    )
    correct_threshold: float = param(default=1.0, doc="the correctness reward's value that counts as correct")
    only_correct: bool = param(
        default=False, doc="apply the length term to correct answers only (wrong answers: the no-length value)"
    )

    @property
    def requires(self) -> frozenset[str]:
        needed = self.length.requires | ({"group_ids"} if self.uses_groups else frozenset())
        return needed | correctness_requires(self.correctness) if self.reads_correctness else needed

    @property
    def uses_groups(self) -> bool:
        """Whether the method is group-relative (needs ``group_ids``; statistics never cross groups)."""
        return "groups" in _parameters(self.formula)

    @property
    def reads_correctness(self) -> bool:
        """Whether the reward reads correctness (always for graded methods, else with ``only_correct``)."""
        return self.graded or (self.only_correct and self.length_applies_to_wrong)

    def wrong_value(self) -> float:
        """A wrong answer's reward under ``only_correct``: the method's value without its length term."""
        return 0.0

    def _budgets(self, batch: RewardBatch) -> Budgets | None:
        return None

    def _correct(self, batch: RewardBatch, components: dict[str, FloatArray]) -> FloatArray | None:
        if not self.reads_correctness:
            return None
        if self.correctness is not None:
            components.update(collect([self.correctness.evaluate(batch)], [self.correctness.name])[0])
        return correctness(batch, self.correctness, self.correct_threshold, by=class_name(self))

    def _columns(self, batch: RewardBatch, lengths: FloatArray, correct: FloatArray | None) -> dict[str, Any]:
        """Diagnostics of the method beyond length, budget, tier and correctness (none by default)."""
        return {}

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        lengths = np.asarray(self.length(batch), dtype=np.float64)
        budgets = self._budgets(batch)
        components: dict[str, FloatArray] = {}
        correct = self._correct(batch, components)
        groups = batch.group_index(by=class_name(self)) if self.uses_groups else None
        parameters = _parameters(self.formula)
        given = correct if "correct" in parameters else None
        inputs = (given, lengths, None if budgets is None else budgets.values, groups)
        options = {p.name: getattr(self, p.name) for p in parameters.values() if p.kind == p.KEYWORD_ONLY}
        rewards = self.formula(*(x for x in inputs if x is not None), **options)
        if self.only_correct and self.length_applies_to_wrong and correct is not None:
            rewards = F.only_correct(rewards, correct, neutral=self.wrong_value())
        columns: dict[str, Any] = {"length": lengths}
        if budgets is not None:
            columns["budget"] = budgets.values
            if budgets.tiers is not None:
                columns["tier"] = budgets.tiers
        columns.update({name: batch.column(name) for name in ("difficulty", "uncertainty") if batch.has(name)})
        if correct is not None:
            columns["correct"] = correct
        columns.update(self._columns(batch, lengths, correct))
        return RewardOutput(rewards, components, columns)


class _Graded(_LengthReward):
    """Length rewards that always read correctness ``c`` ([`correctness`][])."""

    graded = True


class _Budgeted(_LengthReward):
    """Length rewards with a budget per sample (budgets and tiers come from one
    [`BudgetPolicy.assign`][adaptive_length_reward.budgets.BudgetPolicy.assign])."""

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
    _length_multiplier = True  # scales a base reward: Product's sign-safe rule applies

    budget: BudgetPolicy = param(default_factory=TieredBudget, doc="the budget policy (default PixelThink's tiers)")
    beta: float = param(default=1 / 500, gt=0, doc="slope; the score reaches 0 at L = B + 1/beta")
    bonus_cap: float = param(default=0.0, ge=0, doc="a score above 1 under budget, up to 1 + bonus_cap (official 0)")

    def wrong_value(self) -> float:
        """Under ``only_correct`` a wrong answer's score is 1 (the base reward is left as it is)."""
        return 1.0

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0 + self.bonus_cap)


class _L1(_Graded, _Budgeted):
    alpha: float = param(default=0.0003, gt=0, doc="the weight of the length gap")


class L1ExactReward(_L1, kind="l1_exact"):
    """L1 / LCPO-Exact (arXiv 2503.04697, Eq. 1): ``r = c - alpha * |B - L|``; a full reward (replaces accuracy).

    The target ``B`` comes from the budget policy (in L1, from the prompt:
    [`ColumnBudget`][]). Range: ``(-inf, 1]``.
    """

    formula = staticmethod(F.l1_exact_reward)
    bounds = (-math.inf, 1.0)


class L1MaxReward(_L1, kind="l1_max"):
    """L1 / LCPO-Max (arXiv 2503.04697, Eq. 2): ``r = c * clip(alpha * (B - L) + delta, 0, 1)``. Range: ``[0, 1]``."""

    formula = staticmethod(F.l1_max_reward)
    bounds = (0.0, 1.0)
    length_applies_to_wrong = False  # c * clip(...): wrong answers already get 0

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
    See [`cosine_length_reward`][adaptive_length_reward.functional.cosine_length_reward].
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

    def wrong_value(self) -> float:
        """Under ``only_correct`` a wrong answer gets ``wrong_range[0]`` (the shortest wrong answer's value)."""
        return float(self.wrong_range[0])

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


# -- GRPO-LEAD, LASER / LASER-D, HAPO, AdaptThink ---------------------------------------------------------------------


class GRPOLeadReward(_Graded, kind="grpo_lead"):
    """GRPO-LEAD's length-dependent accuracy reward (arXiv 2504.09696; TRL PR #6222): a correct answer earns
    ``exp(-alpha z)``, ``z`` its length's z-score among its group's correct answers; a wrong one ``wrong_reward``.

    A full reward (replaces accuracy). Group-relative: needs ``group_ids``. Range ``[min(wrong_reward, 0), inf)``
    (a correct answer's reward is below ``exp(alpha sqrt(K - 1))`` in a group of ``K``).
    See [`grpo_lead_reward`][adaptive_length_reward.functional.grpo_lead_reward].
    """

    formula = staticmethod(F.grpo_lead_reward)
    length_applies_to_wrong = False  # wrong answers get wrong_reward whatever their length

    alpha: float = param(default=0.5, gt=0, doc="how strongly the length z-score scales a correct answer's reward")
    wrong_reward: float = param(default=-1.0, doc="the reward of a wrong answer")

    @property
    def bounds(self) -> tuple[float, float]:
        return (min(self.wrong_reward, 0.0), math.inf)


class LASERReward(_Graded, _Budgeted, kind="laser"):
    """LASER (arXiv 2505.15612): ``r = c + alpha * c * 1[L <= L_T]``, a step bonus for correct answers within the
    target length ``L_T`` (from the budget policy, e.g. ``FixedBudget(4096)``). A full reward. Range ``[0, 1 + alpha]``.

    For the difficulty-aware, adaptive targets use [`LASERDReward`][].
    See [`laser_reward`][adaptive_length_reward.functional.laser_reward].
    """

    formula = staticmethod(F.laser_reward)
    length_applies_to_wrong = False  # only correct answers earn the bonus

    alpha: float = param(default=0.5, gt=0, doc="the bonus of a correct answer within the target")

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0 + self.alpha)


_BUCKETS = np.array(["easy", "medium", "hard"])


class LASERDReward(_Graded, kind="laser_d"):
    """LASER-D (arXiv 2505.15612): LASER's step bonus with a target per difficulty bucket, set adaptively.

    A group's bucket comes from its solve rate; each bucket's target is the shortest length at which the expected
    number of correct responses per prompt reaches one
    ([`laser_d_targets`][adaptive_length_reward.functional.laser_d_targets]), estimated on the batch being scored (the
    paper uses a monitoring set every few steps). Needs ``group_ids``. Reports the targets as the ``budget`` column and
    the buckets as ``tier``. A full reward. Range ``[0, 1 + alpha]``.
    """

    formula = staticmethod(F.laser_d_reward)
    length_applies_to_wrong = False

    alpha: float = param(default=0.5, gt=0, doc="the bonus of a correct answer within its bucket's target")
    pass_rate_cuts: tuple[float, float] = param(
        default=(1 / 3, 2 / 3), doc="solve-rate cuts (low, high): hard below low, easy from high"
    )
    max_target: float = param(
        default=math.inf, ge=0, allow_inf_nan=True, doc="the target of a bucket with too few correct answers"
    )

    @staticmethod
    def _check(config: Any) -> None:
        low, high = config.pass_rate_cuts
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"pass_rate_cuts: expected (low, high) with 0 <= low <= high <= 1, got {(low, high)}")

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0 + self.alpha)

    def _columns(self, batch: RewardBatch, lengths: FloatArray, correct: FloatArray | None) -> dict[str, Any]:
        assert correct is not None  # graded
        targets, buckets = F.laser_d_targets(
            correct,
            lengths,
            batch.group_index(by="LASERDReward"),
            pass_rate_cuts=self.pass_rate_cuts,
            max_target=self.max_target,
        )
        return {"budget": targets, "tier": _BUCKETS[buckets]}


class HAPOReward(_Graded, kind="hapo"):
    """HAPO (arXiv 2505.11225; official ``utils.py::compute_len_reward``): ``r = c + weight * f(L, h)``, ``h`` the
    shortest correct length seen for the problem in *earlier* steps, ``f`` the cosine length reward
    ([`hapo_length_reward`][adaptive_length_reward.functional.hapo_length_reward]).

    Stateful: a [`LengthHistory`][] keyed by ``problem_column`` (a dataset id
    that is stable across steps; trainers' group ids are not), updated with each call's correct lengths at the
    batch's ``step``. Save it with [`state_dict`][] (JSON-native) next to the trainer's checkpoint and restore it
    with [`load_state_dict`][] to resume. The state is in equality, not in the configuration.
    A full reward. Range ``[-weight, 1 + weight]``.
    """

    formula = staticmethod(F.hapo_reward)

    weight: float = param(default=1.0, ge=0, doc="the weight of the length reward (official w_lr)")
    correct_floor: float = param(default=-0.7, ge=-1, le=0, doc="the lowest length reward of a correct answer")
    problem_column: str = param(default="problem_id", min_length=1, doc="the column naming the problem across steps")

    def __post_init__(self) -> None:
        self.history = LengthHistory()

    def __eq__(self, other: object) -> bool:
        same = super().__eq__(other)
        return same if same is not True else self.history == other.history  # type: ignore[attr-defined]

    __hash__ = _Graded.__hash__

    @property
    def requires(self) -> frozenset[str]:
        return super().requires | {self.problem_column}

    @property
    def bounds(self) -> tuple[float, float]:
        return (-self.weight, 1.0 + self.weight)

    def state_dict(self) -> dict[str, Any]:
        """The history as JSON-native types (see
        [`LengthHistory.state_dict`][adaptive_length_reward.history.LengthHistory.state_dict])."""
        return self.history.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the history saved by [`state_dict`][]."""
        self.history.load_state_dict(state)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        components: dict[str, FloatArray] = {}
        correct = self._correct(batch, components)
        assert correct is not None  # graded
        lengths = np.asarray(self.length(batch), dtype=np.float64)
        problems = list(batch.column(self.problem_column, by="HAPOReward"))
        prior = self.history.observe(problems, correct, lengths, step=batch.step)
        rewards = F.hapo_reward(correct, lengths, prior, weight=self.weight, correct_floor=self.correct_floor)
        if self.only_correct:
            rewards = F.only_correct(rewards, correct, neutral=0.0)
        columns = {"length": lengths, "correct": correct, "history_length": prior}
        return RewardOutput(rewards, components, columns)


class AdaptThinkReward(Reward, kind="adaptthink"):
    """AdaptThink (arXiv 2505.13417): ``r = delta * 1[no thinking] + c - mean R_ref(x)``.

    ``c`` is correctness (``correctness``), ``mean R_ref(x)`` the reference model's mean accuracy on the prompt
    (the batch column ``reference_column``, in [0, 1], sampled once before training), and a completion does not
    think when ``length`` (default: words of the ``<think>`` span) is 0. With ``only_correct=True`` the ``delta``
    bonus goes to correct answers only. Range ``[-1, 1 + delta]``.
    See [`adaptthink_reward`][adaptive_length_reward.functional.adaptthink_reward].
    """

    length: LengthCounter = param(
        default_factory=lambda: WhitespaceWords(span="reasoning"),
        doc="the reasoning length; 0 means the completion does not think",
    )
    correctness: Reward | None = param(
        default=None, doc="a reward whose value >= correct_threshold marks a correct sample; None: the column 'correct'"
    )
    correct_threshold: float = param(default=1.0, doc="the correctness reward's value that counts as correct")
    reference_column: str = param(
        default="reference_accuracy",
        min_length=1,
        doc="the column of the reference model's mean accuracy on the prompt",
    )
    delta: float = param(default=0.05, ge=0, doc="the bonus for not thinking")
    only_correct: bool = param(default=False, doc="give the no-thinking bonus to correct answers only")

    @property
    def requires(self) -> frozenset[str]:
        return self.length.requires | correctness_requires(self.correctness) | {self.reference_column}

    @property
    def bounds(self) -> tuple[float, float]:
        return (-1.0, 1.0 + self.delta)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        components: dict[str, FloatArray] = {}
        if self.correctness is not None:
            components.update(collect([self.correctness.evaluate(batch)], [self.correctness.name])[0])
        correct = correctness(batch, self.correctness, self.correct_threshold, by="AdaptThinkReward")
        reference = np.asarray(batch.column(self.reference_column, by="AdaptThinkReward"), dtype=np.float64)
        if not (np.isfinite(reference).all() and ((reference >= 0) & (reference <= 1)).all()):
            raise ValueError(
                f"AdaptThinkReward: column {self.reference_column!r}: expected mean accuracies in "
                f"[0, 1], got {reference.tolist()[:8]}"
            )
        lengths = np.asarray(self.length(batch), dtype=np.float64)
        rewards = F.adaptthink_reward(correct, lengths, reference, delta=self.delta)
        if self.only_correct:
            rewards = rewards - self.delta * ((lengths == 0) & (correct == 0))
        columns = {"length": lengths, "correct": correct, "thinking": lengths > 0, "reference_accuracy": reference}
        return RewardOutput(rewards, components, columns)
