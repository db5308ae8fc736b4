"""The rewards compared: no length term, a uniform budget, PixelThink and its ablations, L1-Max, DAPO, Kimi,
and the PixelThink sweeps, all built from the library's public classes.

Task reward (PixelThink's ``R_acc`` is a sum of binary terms, arXiv 2505.23727 Sec. 3.3)::

    R_acc = correct + thinking_format                                  (0..2)

with ``correct`` = :class:`~.task.ChainAnswerAccuracy` and ``thinking_format`` =
:class:`adaptive_length_reward.ThinkingFormatReward`. Lengths are reasoning tokens
(:class:`adaptive_length_reward.WhitespaceWords` with ``span="reasoning"``; one word is one token here).

Units. PixelThink's constants are in words of a ~90-token segmentation answer; they are mapped to this task's
reasoning tokens by a rule stated once (:class:`Budgets`), not tuned on results:

=====================  ==================================  =================================================
constant               PixelThink (official)               here
=====================  ==================================  =================================================
easy budget            96                                  essential tokens of the longest easy problem
                                                           (``1 + 5 * 3 = 16``): easy problems need no re-check
hard budget            256 + 25 U                          essential tokens of the longest problem plus room
                                                           for three re-checks (``46 + 18 = 64``), + ``6 U``
                                                           (25/256 of the base, the official ratio)
medium                 no penalty                          no penalty
beta                   1/500 (zero at B + 5.2 x 96)        1/80 (zero at B + 5 x 16)
thresholds tau2, tau1  3.5, 5.0 on the judge's 1..10       3.5, 6.5 on the step count 1..9 (3 steps per tier)
=====================  ==================================  =================================================

Baselines, scaled by the same rule:

* ``uniform``: ``R_acc * s(L, 16)``: PixelThink's easy budget for every problem. Easy problems feel exactly the
  pressure they feel under PixelThink; the two differ only in how medium and hard problems are treated, which is
  the difficulty-awareness under test.
* ``difficulty_only``: PixelThink's tiers without the uncertainty term.
* ``uncertainty_only``: ``B = clip(16 + 48 * U / U_ref, 16, 64)`` (:class:`adaptive_length_reward.LinearBudget`
  with ``difficulty_slope=0``); ``U_ref`` is the 90th percentile of ``U`` over the SFT policy's rollouts, so the
  budget spans the same 16..64 range as PixelThink's.
* ``l1_max``: L1 / LCPO-Max (arXiv 2503.04697 Eq. 2) as a full reward, ``thinking_format + c * clip(alpha (B - L)
  + 0.5, 0, 1)`` with the uniform budget ``B = 16`` (no target in the prompt) and ``alpha = 1/80`` (same slope
  as ``beta``).
* ``dapo``: ``R_acc`` plus DAPO's soft overlong punishment (arXiv 2503.14476 Eq. 13) on the whole completion's
  tokens, ``L_max`` = the generation cap (96) and ``L_cache = 0.2 L_max`` (DAPO's 4096 / 20480).
* ``kimi``: ``R_acc`` plus Kimi k1.5's group-relative length reward (arXiv 2501.12599 Sec. 2.3.3), weight 1.

The methods of issue 16, each as a full reward next to ``thinking_format`` (as ``l1_max``), with the papers' or
their reference code's defaults (no tuning on results):

* ``grpo_lead``: GRPO-LEAD (arXiv 2504.09696; TRL PR #6222): ``thinking_format + (exp(-0.5 z) if correct else
  -1)``, ``z`` the reasoning length's z-score among the group's correct answers.
* ``laser_d``: LASER-D (arXiv 2505.15612): ``thinking_format + c + 0.5 c 1[L <= L_T(bucket)]``, the target per
  solve-rate bucket (easy / medium / hard at 2/3 and 1/3) the shortest length whose expected correct responses per
  prompt reach one, estimated on each batch.
* ``hapo``: HAPO (arXiv 2505.11225): ``thinking_format + c + f(L, h)``, ``h`` the shortest correct reasoning
  length of the problem in earlier steps (state keyed by the dataset's ``problem_id``), ``f`` the cosine length
  reward (official ``compute_len_reward``, correct floor -0.7, weight 1).
* ``adaptthink``: AdaptThink (arXiv 2505.13417): ``thinking_format + c - mean R_ref(x) + 0.05 1[L = 0]``, the
  reference accuracy the SFT policy's mean over 8 samples of each training prompt (sampled once before GRPO; no
  importance sampling of the no-thinking prefix, which the SFT policy already writes for ~20% of completions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from adaptive_length_reward import (
    AdaptThinkReward,
    ComponentConfig,
    DAPOOverlongPenalty,
    FixedBudget,
    GRPOLeadReward,
    HAPOReward,
    KimiLengthReward,
    L1MaxReward,
    LASERDReward,
    LinearBudget,
    Product,
    Reward,
    SoftLengthPenalty,
    ThinkingFormatReward,
    TieredBudget,
    TokenIdCount,
    WeightedSum,
    WhitespaceWords,
)
from adaptive_length_reward.config import config_of

from .task import TIERS, ChainAnswerAccuracy, essential_reasoning_tokens

__all__ = [
    "MAIN_VARIANTS",
    "Budgets",
    "VariantSpec",
    "main_variants",
    "method_variants",
    "pixelthink_reward",
    "sweep_variants",
    "task_reward",
]

#: The variants of the main comparison, in report order.
MAIN_VARIANTS = (
    "none",
    "uniform",
    "pixelthink",
    "difficulty_only",
    "uncertainty_only",
    "l1_max",
    "dapo",
    "kimi",
    "grpo_lead",
    "laser_d",
    "hapo",
    "adaptthink",
)

#: Dataset columns a variant's reward reads beyond the task's (the runner adds them to that variant's rows only).
PROBLEM_ID, REFERENCE_ACCURACY = "problem_id", "reference_accuracy"


class Budgets(ComponentConfig):
    """PixelThink's constants in this task's units (see the module docstring for the mapping)."""

    kind: Literal["chain_budgets"] = "chain_budgets"
    thresholds: tuple[float, float] = (3.5, 6.5)
    easy: float = Field(float(essential_reasoning_tokens(3)), ge=0)
    hard: float = Field(float(essential_reasoning_tokens(9) + 3 * 6), ge=0)
    uncertainty_scale: float = Field(6.0, ge=0)
    beta: float = Field(1 / 80, gt=0)
    uniform: float = Field(float(essential_reasoning_tokens(3)), ge=0)
    uncertainty_reference: float = Field(0.1, gt=0, le=1)
    generation_cap: int = Field(96, ge=8)

    @model_validator(mode="after")
    def _ordered(self) -> Budgets:
        if not self.thresholds[0] < self.thresholds[1]:
            raise ValueError(f"thresholds: expected (tau2, tau1) with tau2 < tau1, got {self.thresholds}")
        return self


@dataclass(frozen=True)
class VariantSpec:
    """One GRPO run: a name, its reward, whether it needs uncertainty, and what it varies."""

    name: str
    reward: Reward
    uncertainty: bool
    group: str  # "main" or the sweep's name
    varies: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # extra dataset columns the reward reads (PROBLEM_ID, REFERENCE_ACCURACY)

    def config(self) -> dict[str, Any]:
        """The reward's config as a plain dict (JSON-ready)."""
        return config_of(self.reward).model_dump(mode="json")


def reasoning_tokens() -> WhitespaceWords:
    """The length every budgeted reward measures: tokens of the ``<think>`` span."""
    return WhitespaceWords(span="reasoning")


def task_reward() -> WeightedSum:
    """``R_acc = correct + thinking_format`` (0..2)."""
    return WeightedSum([ChainAnswerAccuracy(), ThinkingFormatReward()], name="task_accuracy")


def pixelthink_reward(budgets: Budgets, *, uncertainty: bool = True, name: str = "pixelthink") -> Product:
    """``R_acc * s(L, B)`` with PixelThink's tiered budget (easy ``B_e``; medium none; hard ``B_h + k U``)."""
    tiered = TieredBudget(
        thresholds=budgets.thresholds,
        names=TIERS,
        budgets=(budgets.easy, None, budgets.hard),
        uncertainty_scales=(0.0, 0.0, budgets.uncertainty_scale if uncertainty else 0.0),
    )
    penalty = SoftLengthPenalty(budget=tiered, length=reasoning_tokens(), beta=budgets.beta)
    return Product([task_reward(), penalty], name=name)


def main_variants(budgets: Budgets) -> list[VariantSpec]:
    """The variants of the main comparison (the eight of the first run, then :func:`method_variants`)."""
    b = budgets
    soft = SoftLengthPenalty
    uniform = Product(
        [task_reward(), soft(budget=FixedBudget(b.uniform), length=reasoning_tokens(), beta=b.beta)], name="uniform"
    )
    span = b.hard - b.easy
    linear = LinearBudget(
        intercept=b.easy,
        difficulty_slope=0.0,
        uncertainty_slope=span / b.uncertainty_reference,
        min_budget=b.easy,
        max_budget=b.hard,
    )
    uncertainty_only = Product(
        [task_reward(), soft(budget=linear, length=reasoning_tokens(), beta=b.beta)], name="uncertainty_only"
    )
    l1_max = WeightedSum(
        [
            ThinkingFormatReward(),
            L1MaxReward(
                budget=FixedBudget(b.uniform),
                length=reasoning_tokens(),
                correctness=ChainAnswerAccuracy(),
                alpha=b.beta,
            ),
        ],
        name="l1_max",
    )
    dapo = WeightedSum(
        [
            task_reward(),
            DAPOOverlongPenalty(
                length=TokenIdCount(), max_length=b.generation_cap, cache_length=0.2 * b.generation_cap
            ),
        ],
        name="dapo",
    )
    kimi = WeightedSum(
        [task_reward(), KimiLengthReward(length=reasoning_tokens(), correctness=ChainAnswerAccuracy())], name="kimi"
    )
    return [
        VariantSpec("none", WeightedSum([task_reward()], name="none"), False, "main"),
        VariantSpec("uniform", uniform, False, "main", {"budget": b.uniform}),
        VariantSpec("pixelthink", pixelthink_reward(b), True, "main"),
        VariantSpec("difficulty_only", pixelthink_reward(b, uncertainty=False, name="difficulty_only"), False, "main"),
        VariantSpec(
            "uncertainty_only", uncertainty_only, True, "main", {"uncertainty_reference": b.uncertainty_reference}
        ),
        VariantSpec("l1_max", l1_max, False, "main", {"budget": b.uniform, "alpha": b.beta}),
        VariantSpec(
            "dapo", dapo, False, "main", {"max_length": b.generation_cap, "cache_length": 0.2 * b.generation_cap}
        ),
        VariantSpec("kimi", kimi, False, "main"),
        *method_variants(),
    ]


def method_variants() -> list[VariantSpec]:
    """GRPO-LEAD, LASER-D, HAPO and AdaptThink (issue 16), each next to ``thinking_format``."""
    length, correct = reasoning_tokens, ChainAnswerAccuracy
    grpo_lead = WeightedSum(
        [ThinkingFormatReward(), GRPOLeadReward(length=length(), correctness=correct())], name="grpo_lead"
    )
    laser_d = WeightedSum(
        [ThinkingFormatReward(), LASERDReward(length=length(), correctness=correct())], name="laser_d"
    )
    hapo = WeightedSum(
        [ThinkingFormatReward(), HAPOReward(length=length(), correctness=correct(), problem_column=PROBLEM_ID)],
        name="hapo",
    )
    adaptthink = WeightedSum(
        [
            ThinkingFormatReward(),
            AdaptThinkReward(length=length(), correctness=correct(), reference_column=REFERENCE_ACCURACY),
        ],
        name="adaptthink",
    )
    return [
        VariantSpec("grpo_lead", grpo_lead, False, "main", {"alpha": 0.5, "wrong_reward": -1.0}),
        VariantSpec("laser_d", laser_d, False, "main", {"alpha": 0.5, "pass_rate_cuts": [1 / 3, 2 / 3]}),
        VariantSpec("hapo", hapo, False, "main", {"weight": 1.0, "correct_floor": -0.7}, (PROBLEM_ID,)),
        VariantSpec("adaptthink", adaptthink, False, "main", {"delta": 0.05}, (REFERENCE_ACCURACY,)),
    ]


def sweep_variants(
    budgets: Budgets,
    *,
    thresholds: tuple[tuple[float, float], ...] = ((2.5, 5.5), (4.5, 7.5)),
    betas: tuple[float, ...] = (1 / 160, 1 / 40, 1 / 10),
    budget_scales: tuple[float, ...] = (0.25, 0.5, 1.5),
) -> list[VariantSpec]:
    """PixelThink with one setting changed at a time: ``(tau2, tau1)``, ``beta``, and both budgets scaled."""
    out = []
    for tau in thresholds:
        name = f"pixelthink_tau_{tau[0]:g}_{tau[1]:g}"
        changed = budgets.model_copy(update={"thresholds": tau})
        out.append(
            VariantSpec(
                name, pixelthink_reward(changed, name=name), True, "thresholds", {"tau2": tau[0], "tau1": tau[1]}
            )
        )
    for beta in betas:
        name = f"pixelthink_beta_1_{1 / beta:g}"
        out.append(
            VariantSpec(
                name,
                pixelthink_reward(budgets.model_copy(update={"beta": beta}), name=name),
                True,
                "beta",
                {"beta": beta},
            )
        )
    for scale in budget_scales:
        name = f"pixelthink_budgets_x{scale:g}"
        changed = budgets.model_copy(
            update={
                "easy": budgets.easy * scale,
                "hard": budgets.hard * scale,
                "uncertainty_scale": budgets.uncertainty_scale * scale,
            }
        )
        out.append(
            VariantSpec(
                name,
                pixelthink_reward(changed, name=name),
                True,
                "budgets",
                {"scale": scale, "easy": changed.easy, "hard": changed.hard},
            )
        )
    return out
