"""The training reward for each ablation, built from the library (no reward maths lives in the example).

``--length-reward``:

=============  =================================================================================================
``pixelthink``  ``R = R_acc * s(L, B)``: :func:`adaptive_length_reward.presets.pixelthink` (arXiv 2505.23727,
                Sec. 3.3); with budgets other than the official ones, the same ``Product`` of
                :class:`~adaptive_length_reward.segmentation.SegmentationAccuracy` and
                :class:`~adaptive_length_reward.SoftLengthPenalty` over a
                :class:`~adaptive_length_reward.TieredBudget` built from the flags.
``none``        ``R = R_acc`` (Seg-Zero, :func:`adaptive_length_reward.presets.seg_zero`).
``l1-max``      ``R = R_acc + w * c * clip(alpha (B - L) + delta, 0, 1)`` (L1 / LCPO-Max, arXiv 2503.04697, Eq. 2).
``l1-exact``    ``R = R_acc + w * (c - alpha |B - L|)`` (L1 / LCPO-Exact, Eq. 1).
``dapo``        ``R = R_acc + w * overlong(L_tokens)`` (DAPO soft overlong punishment, arXiv 2503.14476, Eq. 13).
``cosine``      ``R = R_acc + w * cosine(c, L_tokens)`` (arXiv 2502.03373, Eq. 1).
``kimi``        ``R = R_acc + w * lambda_i`` per GRPO group (Kimi k1.5, arXiv 2501.12599, Sec. 2.3.3).
=============  =================================================================================================

The peer rewards are defined for a binary correctness ``c``; here ``c = [R_acc >= correct_threshold]`` and the
peer term is added to ``R_acc`` so the format and geometry terms keep shaping the answer (the peers' papers
train on tasks with one correctness bit). L1 targets a fixed length ``B = target_length`` (L1 reads it from the
prompt; PixelThink's medium tier has no budget, which L1-Exact cannot express). DAPO and cosine count tokens
against ``max_completion_length``, as their papers do.

``--difficulty``: ``dataset`` (the samples' scores; a missing one gets ``missing_difficulty``, 3.0 = the
official loader's fallback), ``heuristic`` (:class:`~adaptive_length_reward.difficulty.HeuristicDifficulty`
on the mask area ratio and expression length), ``judge`` (scores from
:class:`~adaptive_length_reward.difficulty.DifficultyJudge`, written into the dataset before training) or
``online`` (:class:`~adaptive_length_reward.difficulty.PassRateDifficulty`: the GRPO group's solve rate).

``--uncertainty``: ``margin`` / ``entropy`` (measured by
:class:`~adaptive_length_reward.adapters.trl.UncertaintyGRPOTrainer`) or ``none`` (``U = 0``, the official
function's default, so the hard budget is the base budget).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from adaptive_length_reward import (
    CosineLengthReward,
    DAPOOverlongPenalty,
    FixedBudget,
    KimiLengthReward,
    L1ExactReward,
    L1MaxReward,
    LengthCounter,
    Product,
    Reward,
    SoftLengthPenalty,
    TieredBudget,
    TokenIdCount,
    WeightedSum,
    WhitespaceWords,
    WithContext,
)
from adaptive_length_reward.presets import PixelThinkReasoningTokens, pixelthink, seg_zero

__all__ = [
    "DIFFICULTY_SOURCES",
    "LENGTH_REWARDS",
    "UNCERTAINTY_ESTIMATORS",
    "RewardSettings",
    "build_reward",
    "difficulty_providers",
    "reference_penalty",
]

LENGTH_REWARDS = ("pixelthink", "none", "l1-max", "l1-exact", "dapo", "cosine", "kimi")
DIFFICULTY_SOURCES = ("dataset", "heuristic", "judge", "online")
UNCERTAINTY_ESTIMATORS = ("margin", "entropy", "none")
LENGTH_UNITS = ("words", "reasoning_tokens")

#: PixelThink's official reward settings (``seg_pixelthink.py``), which the ``pixelthink`` preset hard-codes.
OFFICIAL = {"easy_budget": 96.0, "hard_budget": 256.0, "uncertainty_scale": 25.0, "thresholds": (3.5, 5.0)}


@dataclass(frozen=True)
class RewardSettings:
    """Everything that decides the training reward (see the module docstring for each choice).

    Attributes:
        length_reward: one of :data:`LENGTH_REWARDS`.
        difficulty: one of :data:`DIFFICULTY_SOURCES`.
        uncertainty: one of :data:`UNCERTAINTY_ESTIMATORS`.
        length_unit: ``"words"`` (whitespace words of the whole response, PixelThink's default) or
            ``"reasoning_tokens"`` (tokens of the ``<think>`` content).
        easy_budget, hard_budget, uncertainty_scale: PixelThink's tier budgets ``96`` and ``256 + 25 U``.
        thresholds: the tier thresholds ``(tau2, tau1) = (3.5, 5.0)``.
        beta: slope of the soft length score (``1/500``).
        missing_difficulty: difficulty of a sample without one (3.0: the official loader's fallback).
        target_length: L1's target length ``B``.
        correct_threshold: ``R_acc`` at which a completion counts as correct for the peer rewards and the
            online pass rate.
        length_weight: weight ``w`` of the added peer term.
        max_completion_length: tokens; DAPO's ``L_max`` and cosine's ``L_max``.
    """

    length_reward: str = "pixelthink"
    difficulty: str = "dataset"
    uncertainty: str = "margin"
    length_unit: str = "words"
    easy_budget: float = 96.0
    hard_budget: float = 256.0
    uncertainty_scale: float = 25.0
    thresholds: tuple[float, float] = (3.5, 5.0)
    beta: float = 1 / 500
    missing_difficulty: float = 3.0
    target_length: float = 96.0
    correct_threshold: float = 3.0
    length_weight: float = 1.0
    max_completion_length: int = 1300

    def __post_init__(self) -> None:
        for name, allowed in (
            ("length_reward", LENGTH_REWARDS),
            ("difficulty", DIFFICULTY_SOURCES),
            ("uncertainty", UNCERTAINTY_ESTIMATORS),
            ("length_unit", LENGTH_UNITS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"RewardSettings: {name}: expected one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("easy_budget", "hard_budget", "target_length"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RewardSettings: {name}: expected a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"RewardSettings: beta: expected a number > 0, got {self.beta!r}")
        if not 1.0 <= self.missing_difficulty <= 10.0:
            raise ValueError(
                f"RewardSettings: missing_difficulty: expected a number in [1, 10], got {self.missing_difficulty!r}"
            )
        if self.max_completion_length < 1:
            raise ValueError(
                f"RewardSettings: max_completion_length: expected an int >= 1, got {self.max_completion_length!r}"
            )

    @property
    def official_budgets(self) -> bool:
        """Whether the budgets and thresholds are PixelThink's (so the preset itself can be used)."""
        return all(getattr(self, k) == v for k, v in OFFICIAL.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_policy(settings: RewardSettings) -> TieredBudget:
    """PixelThink's tiers with the settings' budgets: easy ``B``, medium none, hard ``B + scale * U``."""
    return TieredBudget(
        thresholds=settings.thresholds,
        budgets=(settings.easy_budget, None, settings.hard_budget),
        uncertainty_scales=(0.0, 0.0, settings.uncertainty_scale),
        missing_difficulty=settings.missing_difficulty,
        missing_uncertainty=0.0 if settings.uncertainty == "none" else "error",
    )


def length_counter(settings: RewardSettings, tokenizer: Any) -> LengthCounter:
    """Whitespace words of the response, or the tokenizer tokens of the official ``<think>`` content."""
    if settings.length_unit == "words":
        return WhitespaceWords()
    return PixelThinkReasoningTokens(tokenizer)


def reference_penalty(settings: RewardSettings, tokenizer: Any) -> SoftLengthPenalty:
    """The PixelThink soft length score under these settings; evaluation measures budget adherence with it
    whatever reward trained the policy, so ablations are compared against the same budgets."""
    return SoftLengthPenalty(
        budget=budget_policy(settings), length=length_counter(settings, tokenizer), beta=settings.beta
    )


def difficulty_providers(settings: RewardSettings, *, missing: float | str | None = None) -> list[Any]:
    """The context providers that fill ``difficulty`` for ``settings.difficulty`` (none for dataset/judge values).

    ``missing``: what the heuristic scorer writes where it cannot score (default ``settings.missing_difficulty``;
    ``"nan"`` leaves those samples NaN, so that evaluation can count them).
    """
    if settings.difficulty == "online":
        from adaptive_length_reward.difficulty import PassRateDifficulty

        return [PassRateDifficulty(accuracy=seg_zero(), pass_threshold=settings.correct_threshold)]
    if settings.difficulty == "heuristic":
        from adaptive_length_reward.difficulty import HeuristicDifficulty

        return [
            HeuristicDifficulty(
                area_column="mask_area_ratio",
                expression_column="query",
                missing=settings.missing_difficulty if missing is None else missing,
            )
        ]
    return []  # "dataset" and "judge": the dataset's difficulty column


def build_reward(settings: RewardSettings, tokenizer: Any) -> Reward:
    """The training reward for ``settings`` (see the module docstring).

    Reads the batch columns ``ground_truth``, ``difficulty`` (except for ``online``, which computes it from the
    group, and ``heuristic``, which reads ``mask_area_ratio`` and ``query``), ``uncertainty`` for hard samples
    unless ``uncertainty="none"``, ``group_ids`` for ``kimi`` and ``online``, and ``token_ids`` for ``dapo`` and
    ``cosine``.
    """
    accuracy = seg_zero(name="segmentation_accuracy")
    counter = length_counter(settings, tokenizer)
    choice = settings.length_reward
    if choice == "pixelthink":
        if settings.official_budgets:
            reward: Reward = pixelthink(
                length=settings.length_unit,  # type: ignore[arg-type]
                tokenizer=tokenizer if settings.length_unit == "reasoning_tokens" else None,
                missing_difficulty=settings.missing_difficulty,
                missing_uncertainty=0.0 if settings.uncertainty == "none" else "error",
                beta=settings.beta,
            )
        else:
            reward = Product(
                [accuracy, SoftLengthPenalty(budget=budget_policy(settings), length=counter, beta=settings.beta)],
                name="pixelthink",
            )
    elif choice == "none":
        reward = seg_zero(name="seg_zero")
    else:
        tokens = TokenIdCount()
        peers: dict[str, Reward] = {
            "l1-max": L1MaxReward(
                budget=FixedBudget(settings.target_length),
                length=counter,
                correctness=accuracy,
                correct_threshold=settings.correct_threshold,
            ),
            "l1-exact": L1ExactReward(
                budget=FixedBudget(settings.target_length),
                length=counter,
                correctness=accuracy,
                correct_threshold=settings.correct_threshold,
            ),
            "dapo": DAPOOverlongPenalty(
                length=tokens,
                max_length=settings.max_completion_length,
                cache_length=max(1, settings.max_completion_length // 4),
                name="dapo_overlong_penalty",
            ),
            "cosine": CosineLengthReward(
                length=tokens,
                correctness=accuracy,
                correct_threshold=settings.correct_threshold,
                max_length=settings.max_completion_length,
            ),
            "kimi": KimiLengthReward(
                length=counter, correctness=accuracy, correct_threshold=settings.correct_threshold
            ),
        }
        reward = WeightedSum([accuracy, peers[choice]], [1.0, settings.length_weight], name=choice.replace("-", "_"))
    providers = difficulty_providers(settings)
    if providers and choice == "pixelthink":  # the only reward here whose budget depends on difficulty
        reward = WithContext(reward, providers, mode="overwrite", name=reward.name)
    return reward
