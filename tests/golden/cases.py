"""The golden case table, shared by ``make_golden.py`` (which wrote ``tests/data/golden_rewards.npz`` with the
pre-redesign code) and ``tests/test_golden.py`` (which re-evaluates every case with the current code).

A :class:`Case` names a reward factory (public API only: ``import adaptive_length_reward as alr`` and its public
submodules), the context columns it is given, the training steps it is evaluated at (in order, on ONE reward
instance, so stateful context providers see a history) and the rows it needs dropped (a budget that refuses
NaN difficulty gets only the rows that have one). Everything that turns stored data into ``evaluate`` calls
lives here, so the generator and the test cannot drift apart.

Changing a factory, a column list, the evaluation helpers or the tokenizer below changes what the golden file
means: do that only together with regenerating the file on the pre-redesign code (see ``make_golden.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import adaptive_length_reward as alr
from adaptive_length_reward import difficulty as alr_difficulty

FORMAT = "adaptive-length-reward/golden-rewards/1"
DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "golden_rewards.npz"

#: Rows per chunk in the chunked evaluation (a chunk only ends at a group boundary).
CHUNK_SIZE = 64

#: Kinds a golden case cannot exercise offline and deterministically (a VLM judge, an HTTP or transformers
#: judge backend, a policy model's uncertainty estimator).
NOT_COVERED_KINDS = frozenset(
    {"judge_difficulty", "openai_compatible_backend", "transformers_backend", "uncertainty_estimator"}
)

ALL = "all"  # Case.columns: every column the dataset has

# ------------------------------------------------------------------------------------------------------------
# The conformance batch (copied from tests/test_conformance.py, not imported)
# ------------------------------------------------------------------------------------------------------------

CONFORMANCE_RESPONSES = [
    "<think>the red square is left of the circle</think>"
    '<answer>{"bbox": [1, 2, 30, 40], "points_1": [5, 6], "points_2": [7, 8]}</answer>',
    "<think>" + "long thinking " * 300 + "</think><answer>x</answer>",
    "<think>truncated mid thou",
    "",
    "no tags at all, just words " * 20,
    "<answer>{}</answer>",
]

CONFORMANCE_CONTEXT: dict[str, Any] = {
    "difficulty": [1.0, 6.0, 4.0, 8.0, 2.0, 5.0],
    "uncertainty": [0.1, 0.9, 0.0, 0.5, 1.0, 0.3],
    "group_ids": ["a", "a", "a", "b", "b", "b"],
    "correct": [1, 0, 1, 1, 0, 0],
    "accuracy": [5.0, 2.0, 0.0, 3.0, 1.0, 4.0],
    "target_length": [100, 50, None, 10, 1000, 200],
    "lengths": [12, 600, 3, 0, 100, 2],
    "ground_truth": ["<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>"] * 3
    + [{"bbox": [0, 0, 10, 10], "points_1": [2, 2], "points_2": [8, 8]}] * 3,
}

# ------------------------------------------------------------------------------------------------------------
# Token ids and the offline tokenizer
# ------------------------------------------------------------------------------------------------------------

#: Token ids of the tags in the ``token_ids`` column (other words get ``10 + crc32(word) % 50``; 0 is padding).
TAG_IDS = {"<think>": (1,), "</think>": (2,), "<answer>": (3, 4), "</answer>": (5, 6)}
PAD_ID = 0

#: The tokenizer's vocabulary (anything else is ``[UNK]``); the counts depend only on the pre-tokenizer.
VOCAB_WORDS = (
    "the a of to is in on left right top bottom red blue green small large object person car dog cat box point "
    "image region target find first then so it that this with near far behind front middle corner edge maybe "
    "think answer bbox points_1 points_2 wait check again because therefore"
).split()


@functools.cache
def tiny_tokenizer() -> Any:
    """A word-level ``PreTrainedTokenizerFast`` built in code (no hub, no training): ``\\w+|[^\\w\\s]+`` pieces,
    ``<think>``/``</think>`` as single added tokens. Needs ``tokenizers`` and ``transformers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1}
    for word in VOCAB_WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.add_tokens(["<think>", "</think>"])
    return fast


# ------------------------------------------------------------------------------------------------------------
# Helpers used by the factories
# ------------------------------------------------------------------------------------------------------------

ACC = alr.ColumnReward("accuracy", low=0.0, high=5.0)


class LengthDifficulty(alr.ContextProvider):
    """A user-written provider without a config (the opaque path), as in the conformance suite."""

    provides = "difficulty"

    def __call__(self, batch: alr.RewardBatch) -> np.ndarray:
        return np.array([min(10.0, len(t) / 100) for t in batch.completions])


def lookup_table() -> dict[str, float | None]:
    """An in-memory ``{prompt id: difficulty}`` table covering some of the generated prompts."""
    table: dict[str, float | None] = {}
    for g in range(0, 1300, 3):
        table[f"p{g}"] = None if g % 33 == 0 else 1.0 + ((g * 37) % 91) / 10.0
    return table


def _fallback_tiers() -> alr.TieredBudget:
    return alr.TieredBudget(missing_difficulty=3.0, missing_uncertainty=0.0)


def _fallback_linear() -> alr.LinearBudget:
    return alr.LinearBudget(missing_difficulty=3.0, missing_uncertainty=0.0)


# ------------------------------------------------------------------------------------------------------------
# The case table
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One reward configuration to freeze.

    Attributes:
        name: the case's name (unique; names the test).
        factory: builds a fresh reward (a new instance per evaluation mode, so state never leaks).
        columns: context columns passed to ``evaluate`` (``ALL``: every column the dataset has); a dataset that
            lacks one of them is not evaluated for this case.
        steps: training steps, evaluated in this order on one instance.
        require_finite: rows where one of these columns is None/NaN are dropped (the reward would refuse them).
        rotate_correct: at step ``s`` the ``correct`` column is rotated by ``3 * s`` rows (online difficulty
            then sees different pass rates at each step).
        needs: importable modules the factory needs (the case is skipped without them).
        chunked: also evaluated on the generated set chunk by chunk (``CHUNK_SIZE`` rows, group-aligned), as a
            trainer that scores micro-batches would (set from :data:`CHUNKED` for the cases where chunking can
            matter: group statistics, stateful providers, per-batch parsing caches, tokenizers).
    """

    name: str
    factory: Callable[[], alr.Reward]
    columns: tuple[str, ...] | str = ALL
    steps: tuple[int, ...] = (0,)
    require_finite: tuple[str, ...] = ()
    rotate_correct: bool = False
    needs: tuple[str, ...] = ()
    chunked: bool = False


DU = ("difficulty", "uncertainty")
TOKENIZER = ("tokenizers", "transformers")
SEG = ("ground_truth",)


def _cases() -> list[Case]:
    d = alr_difficulty
    cases = [
        # -- the conformance suite's table (tests/test_conformance.py), every case ---------------------------
        Case("conf_column", lambda: ACC),
        Case("conf_soft_length_penalty", lambda: alr.SoftLengthPenalty(), require_finite=DU),
        Case(
            "conf_soft_length_penalty_bonus",
            lambda: alr.SoftLengthPenalty(budget=alr.LinearBudget(), bonus_cap=0.5),
            require_finite=DU,
        ),
        Case("conf_l1_exact", lambda: alr.L1ExactReward(budget=alr.ColumnBudget())),
        Case(
            "conf_l1_max",
            lambda: alr.L1MaxReward(budget=alr.FixedBudget(64), correctness=ACC, correct_threshold=4.0),
        ),
        Case("conf_dapo_overlong", lambda: alr.DAPOOverlongPenalty(max_length=500, cache_length=100)),
        Case("conf_cosine_length", lambda: alr.CosineLengthReward(max_length=300, exceed_penalty=-2.0)),
        Case("conf_kimi_length", lambda: alr.KimiLengthReward()),
        Case("conf_shorter_better", lambda: alr.ShorterBetterReward(length=alr.PrecomputedLength())),
        Case("conf_alp", lambda: alr.ALPReward(normalizer=512)),
        Case(
            "conf_weighted_sum",
            lambda: alr.WeightedSum([ACC, alr.KimiLengthReward()], [1.0, alr.LinearSchedule()]),
            steps=(0, 250, 1000, 4000),
        ),
        Case(
            "conf_product",
            lambda: alr.Product([ACC, alr.SoftLengthPenalty()], name="pixelthink_like"),
            require_finite=DU,
        ),
        Case(
            "conf_gate",
            lambda: alr.Gate(
                alr.SoftLengthPenalty(budget=alr.FixedBudget(20)), condition=alr.ColumnReward("correct"), otherwise=1.0
            ),
        ),
        Case("conf_clip", lambda: alr.Clip(alr.L1ExactReward(budget=alr.FixedBudget(10)), low=-1.0, high=1.0)),
        Case(
            "conf_with_context",
            lambda: alr.WithContext(alr.SoftLengthPenalty(budget=alr.FixedBudget(30)), [LengthDifficulty()]),
        ),
        Case("conf_seg_thinking_format", lambda: alr.ThinkingFormatReward()),
        Case("conf_seg_segmentation_format", lambda: alr.SegmentationFormatReward()),
        Case("conf_seg_box_iou", lambda: alr.BoxIoUReward(threshold=0.5)),
        Case("conf_seg_box_l1", lambda: alr.BoxL1Reward(threshold=10.0)),
        Case("conf_seg_point_match", lambda: alr.PointMatchReward(threshold=100.0)),
        Case("conf_seg_accuracy", lambda: alr.SegmentationAccuracy()),
        Case("conf_pixelthink_preset", lambda: alr.pixelthink(), require_finite=DU),
        Case(
            "conf_pixelthink_preset_official_fallbacks",
            lambda: alr.pixelthink(missing_difficulty=3.0, missing_uncertainty=0.0),
        ),
        Case("conf_seg_zero_preset", lambda: alr.seg_zero()),
        # -- presets ------------------------------------------------------------------------------------------
        Case("pixelthink_default", lambda: alr.pixelthink(length="words"), columns=(*SEG, *DU), require_finite=DU),
        Case(
            "pixelthink_official_fallbacks",
            lambda: alr.pixelthink(length="words", missing_difficulty=3.0, missing_uncertainty=0.0),
            columns=(*SEG, *DU),
        ),
        Case(
            "pixelthink_official_fallbacks_no_context",
            lambda: alr.pixelthink(missing_difficulty=3.0, missing_uncertainty=0.0),
            columns=SEG,
        ),
        Case(
            "pixelthink_tier_name_fallback",
            lambda: alr.pixelthink(missing_difficulty="hard", missing_uncertainty=0.5),
            columns=(*SEG, *DU),
        ),
        Case(
            "pixelthink_reasoning_tokens",
            lambda: alr.pixelthink(
                length="reasoning_tokens", tokenizer=tiny_tokenizer(), missing_difficulty=3.0, missing_uncertainty=0.0
            ),
            columns=(*SEG, *DU),
            needs=TOKENIZER,
        ),
        Case(
            "pixelthink_precomputed_lengths",
            lambda: alr.pixelthink(length=alr.PrecomputedLength(), missing_difficulty=3.0, missing_uncertainty=0.0),
            columns=(*SEG, *DU, "lengths"),
        ),
        Case(
            "pixelthink_reasoning_words",
            lambda: alr.pixelthink(
                length=alr.WhitespaceWords(span="reasoning"), missing_difficulty=3.0, missing_uncertainty=0.0
            ),
        ),
        Case(
            "pixelthink_linear_budget",
            lambda: alr.pixelthink(budget=_fallback_linear()),
            columns=(*SEG, *DU),
        ),
        Case(
            "pixelthink_custom_thresholds",
            lambda: alr.pixelthink(
                beta=1 / 250,
                iou_threshold=0.75,
                box_l1_threshold=4.0,
                point_threshold=30.0,
                missing_difficulty=5.0,
                missing_uncertainty=1.0,
                name="pixelthink_custom",
            ),
        ),
        Case("seg_zero_default", lambda: alr.seg_zero(), columns=SEG),
        Case(
            "seg_zero_custom",
            lambda: alr.seg_zero(iou_threshold=0.3, box_l1_threshold=25.0, point_threshold=10.0, name="sz"),
            columns=SEG,
        ),
        # -- segmentation terms ---------------------------------------------------------------------------------
        Case("seg_box_iou_zero", lambda: alr.BoxIoUReward(threshold=0.0, name="iou_any"), columns=SEG),
        Case("seg_box_iou_strict", lambda: alr.BoxIoUReward(threshold=0.9), columns=SEG),
        Case("seg_box_l1_tight", lambda: alr.BoxL1Reward(threshold=0.5), columns=SEG),
        Case("seg_point_match_tight", lambda: alr.PointMatchReward(threshold=5.0), columns=SEG),
        Case(
            "seg_accuracy_lenient",
            lambda: alr.SegmentationAccuracy(
                iou_threshold=0.0, box_l1_threshold=1000.0, point_threshold=1e6, name="lenient"
            ),
            columns=SEG,
        ),
        Case(
            "seg_format_terms_no_context",
            lambda: alr.ThinkingFormatReward() + alr.SegmentationFormatReward(),
            columns=(),
        ),
        # -- length counters ------------------------------------------------------------------------------------
        Case(
            "length_words_reasoning",
            lambda: alr.SoftLengthPenalty(
                budget=alr.FixedBudget(40), length=alr.WhitespaceWords(span="reasoning"), beta=0.01
            ),
        ),
        Case(
            "length_words_custom_tags",
            lambda: alr.SoftLengthPenalty(
                budget=alr.FixedBudget(12),
                length=alr.WhitespaceWords(span="reasoning", open_tag="<answer>", close_tag="</answer>"),
                beta=0.05,
            ),
            columns=(),
        ),
        Case(
            "length_token_ids_response",
            lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(60), length=alr.TokenIdCount(), beta=0.01),
            columns=("token_ids",),
        ),
        Case(
            "length_token_ids_reasoning_ignore_pad",
            lambda: alr.DAPOOverlongPenalty(
                length=alr.TokenIdCount(span="reasoning", open_ids=(1,), close_ids=(2,), ignore_ids=(PAD_ID,)),
                max_length=300,
                cache_length=150,
            ),
            columns=("token_ids",),
        ),
        Case(
            "length_token_ids_multi_id_tags",
            lambda: alr.SoftLengthPenalty(
                budget=alr.FixedBudget(10),
                length=alr.TokenIdCount(span="reasoning", open_ids=(3, 4), close_ids=(5, 6)),
                beta=0.02,
            ),
            columns=("token_ids",),
        ),
        Case(
            "length_token_count_response",
            lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(80), length=alr.TokenCount(tiny_tokenizer())),
            columns=(),
            needs=TOKENIZER,
        ),
        Case(
            "length_token_count_reasoning",
            lambda: alr.DAPOOverlongPenalty(
                length=alr.TokenCount(tiny_tokenizer(), span="reasoning"), max_length=400, cache_length=300
            ),
            columns=(),
            needs=TOKENIZER,
        ),
        Case(
            "length_precomputed",
            lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(300), length=alr.PrecomputedLength(), beta=0.003),
            columns=("lengths",),
        ),
        # -- budgets --------------------------------------------------------------------------------------------
        Case("budget_fixed_none", lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget()), columns=()),
        Case("budget_fixed_zero", lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(0), beta=0.01), columns=()),
        Case("budget_fixed_fraction", lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(123.5)), columns=()),
        Case(
            "budget_column",
            lambda: alr.SoftLengthPenalty(budget=alr.ColumnBudget(), beta=0.004),
            columns=("target_length",),
        ),
        Case("budget_tiered_default", lambda: alr.SoftLengthPenalty(budget=alr.TieredBudget()), require_finite=DU),
        Case(
            "budget_tiered_custom",
            lambda: alr.SoftLengthPenalty(
                budget=alr.TieredBudget(
                    thresholds=(2.0, 4.5, 7.0),
                    names=("trivial", "easy", "medium", "hard"),
                    budgets=(30.0, 80.0, None, 150.0),
                    uncertainty_scales=(-40.0, 5.0, 0.0, 100.0),
                    missing_difficulty="medium",
                    missing_uncertainty=0.25,
                ),
                beta=0.01,
            ),
            columns=DU,
        ),
        Case(
            "budget_tiered_value_fallbacks",
            lambda: alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_difficulty=7.5, missing_uncertainty=0.0)),
            columns=DU,
        ),
        Case(
            "budget_tiered_no_difficulty_column",
            lambda: alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_difficulty="easy")),
            columns=(),
        ),
        Case("budget_linear_default", lambda: alr.SoftLengthPenalty(budget=alr.LinearBudget()), require_finite=DU),
        Case(
            "budget_linear_fallbacks",
            lambda: alr.SoftLengthPenalty(
                budget=alr.LinearBudget(missing_difficulty=5.0, missing_uncertainty=0.5), beta=0.005
            ),
            columns=DU,
        ),
        Case(
            "budget_linear_custom",
            lambda: alr.SoftLengthPenalty(
                budget=alr.LinearBudget(
                    intercept=-20.0,
                    difficulty_slope=50.0,
                    uncertainty_slope=-40.0,
                    min_budget=0.0,
                    max_budget=300.0,
                    missing_difficulty=2.0,
                    missing_uncertainty=1.0,
                ),
                beta=0.01,
            ),
            columns=DU,
        ),
        Case(
            "budget_linear_difficulty_only",
            lambda: alr.SoftLengthPenalty(budget=alr.LinearBudget(uncertainty_slope=0.0, missing_difficulty=4.0)),
            columns=("difficulty",),
        ),
        # -- length rewards -------------------------------------------------------------------------------------
        Case(
            "soft_penalty_bonus_cap",
            lambda: alr.SoftLengthPenalty(budget=alr.FixedBudget(80), beta=0.05, bonus_cap=0.3, name="soft_bonus"),
            columns=(),
        ),
        Case(
            "l1_exact_column_budget",
            lambda: alr.L1ExactReward(budget=alr.ColumnBudget()),
            columns=("target_length", "correct"),
        ),
        Case(
            "l1_exact_accuracy",
            lambda: alr.L1ExactReward(budget=_fallback_tiers(), correctness=ACC, correct_threshold=2.5, alpha=0.001),
        ),
        Case(
            "l1_max_segmentation_accuracy",
            lambda: alr.L1MaxReward(
                budget=alr.FixedBudget(200), correctness=alr.SegmentationAccuracy(), correct_threshold=4.0
            ),
            columns=SEG,
        ),
        Case(
            "l1_max_segmentation_accuracy_strict",
            lambda: alr.L1MaxReward(
                budget=_fallback_linear(),
                correctness=alr.SegmentationAccuracy(),
                correct_threshold=5.0,
                alpha=0.002,
                delta=0.2,
            ),
            columns=(*SEG, *DU),
        ),
        Case("dapo_default", lambda: alr.DAPOOverlongPenalty(), columns=()),
        Case("dapo_short", lambda: alr.DAPOOverlongPenalty(max_length=300, cache_length=100), columns=()),
        Case("dapo_cache_equals_max", lambda: alr.DAPOOverlongPenalty(max_length=100, cache_length=100), columns=()),
        Case("cosine_default", lambda: alr.CosineLengthReward(), columns=("correct",)),
        Case(
            "cosine_segmentation",
            lambda: alr.CosineLengthReward(
                correctness=alr.SegmentationAccuracy(),
                correct_threshold=3.0,
                max_length=200,
                correct_range=(0.2, 2.0),
                wrong_range=(-3.0, 0.0),
                exceed_penalty=-1.5,
            ),
            columns=SEG,
        ),
        Case("kimi_column", lambda: alr.KimiLengthReward(), columns=("group_ids", "correct")),
        Case(
            "kimi_segmentation",
            lambda: alr.KimiLengthReward(correctness=alr.SegmentationAccuracy(), correct_threshold=5.0),
            columns=(*SEG, "group_ids"),
        ),
        Case(
            "kimi_token_ids",
            lambda: alr.KimiLengthReward(length=alr.TokenIdCount(ignore_ids=(PAD_ID,))),
            columns=("group_ids", "correct", "token_ids"),
        ),
        Case("shorter_better_default", lambda: alr.ShorterBetterReward(), columns=("group_ids", "correct")),
        Case(
            "shorter_better_segmentation",
            lambda: alr.ShorterBetterReward(
                correctness=alr.SegmentationAccuracy(), correct_threshold=4.0, alpha=1.0, beta=0.01
            ),
            columns=(*SEG, "group_ids"),
        ),
        Case("alp_default", lambda: alr.ALPReward(), columns=("group_ids", "correct")),
        Case(
            "alp_accuracy",
            lambda: alr.ALPReward(correctness=ACC, correct_threshold=3.0, beta=1.0, normalizer=100),
            columns=("group_ids", "accuracy"),
        ),
        # -- composites -----------------------------------------------------------------------------------------
        Case(
            "weighted_sum_constants",
            lambda: alr.WeightedSum(
                [
                    alr.SegmentationAccuracy(),
                    alr.SoftLengthPenalty(budget=alr.FixedBudget(100)),
                    alr.DAPOOverlongPenalty(max_length=400, cache_length=200),
                ],
                [1.0, 2.0, 0.0],
            ),
            columns=SEG,
        ),
        Case(
            "weighted_sum_schedules",
            lambda: alr.WeightedSum(
                [
                    alr.SegmentationAccuracy(),
                    alr.KimiLengthReward(),
                    alr.DAPOOverlongPenalty(max_length=300, cache_length=150),
                    alr.SoftLengthPenalty(budget=alr.FixedBudget(60)),
                ],
                [
                    alr.ConstantSchedule(0.5),
                    alr.LinearSchedule(start=0.0, end=1.0, begin_step=100, end_step=1100),
                    alr.CosineSchedule(start=1.0, end=0.1, begin_step=0, end_step=2000),
                    alr.StepSchedule(boundaries=(200, 1500), values=(0.0, 0.5, 2.0)),
                ],
            ),
            columns=(*SEG, "group_ids", "correct"),
            steps=(0, 600, 1500, 5000),
        ),
        Case(
            "weighted_sum_duplicate_names",
            lambda: alr.WeightedSum(
                [
                    alr.SoftLengthPenalty(budget=alr.FixedBudget(50)),
                    alr.SoftLengthPenalty(budget=alr.FixedBudget(50), length=alr.WhitespaceWords(span="reasoning")),
                    alr.SoftLengthPenalty(budget=alr.FixedBudget(50), length=alr.PrecomputedLength()),
                ],
                [0.5, 0.25, 0.25],
            ),
            columns=("lengths",),
        ),
        Case(
            "operator_sum",
            lambda: alr.SegmentationAccuracy() + alr.KimiLengthReward(),
            columns=(*SEG, "group_ids", "correct"),
        ),
        Case(
            "operator_product",
            lambda: alr.seg_zero() * alr.SoftLengthPenalty(budget=_fallback_tiers()),
            columns=(*SEG, *DU),
        ),
        Case(
            "product_nested",
            lambda: alr.Product(
                [
                    alr.WeightedSum([ACC, alr.ALPReward()], [0.2, 1.0]),
                    alr.Gate(
                        alr.SoftLengthPenalty(budget=_fallback_tiers()),
                        condition=alr.ColumnReward("correct"),
                        otherwise=1.0,
                    ),
                ],
                name="nested",
            ),
        ),
        Case(
            "gate_segmentation",
            lambda: alr.Gate(
                alr.SoftLengthPenalty(budget=_fallback_tiers()),
                condition=alr.SegmentationAccuracy(),
                threshold=4.0,
                otherwise=0.25,
            ),
            columns=(*SEG, *DU),
        ),
        Case(
            "clip_weighted_sum",
            lambda: alr.Clip(
                alr.WeightedSum([alr.SegmentationAccuracy(), alr.L1ExactReward(budget=alr.ColumnBudget())], [0.3, 1.0]),
                low=-0.5,
                high=2.0,
            ),
            columns=(*SEG, "target_length", "correct"),
        ),
        Case(
            "clip_high_only",
            lambda: alr.Clip(alr.L1ExactReward(budget=alr.FixedBudget(30), correctness=ACC), high=0.5),
            columns=("accuracy",),
        ),
        # -- context providers (difficulty) inside WithContext --------------------------------------------------
        Case(
            "with_context_pass_rate_overwrite",
            lambda: alr.WithContext(
                alr.pixelthink(missing_uncertainty=0.0), [alr_difficulty.PassRateDifficulty()], mode="overwrite"
            ),
            columns=(*SEG, *DU, "group_ids", "correct"),
        ),
        Case(
            "with_context_pass_rate_accuracy_fill",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(),
                [d.PassRateDifficulty(accuracy=alr.SegmentationAccuracy(), pass_threshold=5.0)],
            ),
            columns=(*SEG, *DU, "group_ids"),
            require_finite=("uncertainty",),
        ),
        Case(
            "with_context_ema_current",
            lambda: alr.WithContext(
                alr.Product([ACC, alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_uncertainty=0.0))]),
                [d.EMAPassRateDifficulty(decay=0.7)],
                mode="overwrite",
            ),
            columns=(*DU, "group_ids", "correct", "accuracy"),
            steps=(0, 1, 2, 3, 7),
            rotate_correct=True,
        ),
        Case(
            "with_context_ema_before_step",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=_fallback_linear()),
                [
                    d.EMAPassRateDifficulty(
                        accuracy=alr.SegmentationAccuracy(),
                        pass_threshold=4.0,
                        decay=0.3,
                        include_current=False,
                        unseen="nan",
                    )
                ],
                mode="overwrite",
            ),
            columns=(*SEG, *DU, "group_ids"),
            steps=(0, 1, 2, 4),
        ),
        Case(
            "with_context_ema_prompt_column",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=_fallback_tiers()),
                [d.EMAPassRateDifficulty(decay=0.0, prompt_column="id", include_current=False, unseen="hard")],
            ),
            columns=(*DU, "id", "correct"),
            steps=(3, 4, 9),
            rotate_correct=True,
        ),
        Case(
            "with_context_column_difficulty",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_uncertainty=0.0)),
                [d.ColumnDifficulty("accuracy", source_range=(0.0, 5.0), invert=True)],
                mode="overwrite",
            ),
            columns=(*DU, "accuracy"),
        ),
        Case(
            "with_context_lookup",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_uncertainty=0.0)),
                [d.LookupDifficulty(lookup_table(), key_column="id", missing="medium")],
            ),
            columns=(*DU, "id"),
        ),
        Case(
            "with_context_heuristic",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=alr.LinearBudget(missing_uncertainty=0.0)),
                [d.HeuristicDifficulty(missing=3.0)],
                mode="overwrite",
            ),
            columns=("uncertainty", "mask_area_ratio", "problem"),
        ),
        Case(
            "with_context_heuristic_text_only",
            lambda: alr.WithContext(
                alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_uncertainty=0.5)),
                [d.HeuristicDifficulty(area_column=None, expression_column="problem", area_weight=0.0)],
                mode="overwrite",
            ),
            columns=("uncertainty", "problem"),
        ),
        Case(
            "with_context_chained_providers",
            lambda: alr.WithContext(
                alr.pixelthink(missing_uncertainty=0.0),
                [d.LookupDifficulty(lookup_table(), key_column="id", missing="nan"), d.PassRateDifficulty()],
            ),
            columns=(*SEG, *DU, "id", "group_ids", "correct"),
        ),
        # -- built from plain configs (the config path of the same rewards) ------------------------------------
        Case(
            "config_pixelthink",
            lambda: alr.build(
                {
                    "kind": "product",
                    "name": "pixelthink_from_config",
                    "terms": [
                        {"kind": "seg_accuracy"},
                        {
                            "kind": "soft_length_penalty",
                            "budget": {"kind": "tiered_budget", "missing_difficulty": 3.0, "missing_uncertainty": 0.0},
                        },
                    ],
                }
            ),
            columns=(*SEG, *DU),
        ),
        Case(
            "config_weighted_sum_schedule",
            lambda: alr.build(
                {
                    "kind": "weighted_sum",
                    "terms": [
                        {"kind": "column", "column": "accuracy", "low": 0.0, "high": 5.0},
                        {"kind": "l1_max", "budget": {"kind": "fixed_budget", "budget": 100}, "delta": 0.3},
                    ],
                    "weights": [1.0, {"kind": "linear_schedule", "start": 2.0, "end": 0.0, "end_step": 10}],
                }
            ),
            columns=("accuracy", "correct"),
            steps=(0, 5, 10),
        ),
    ]
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    assert CHUNKED <= set(names), CHUNKED - set(names)
    return [dataclasses.replace(case, chunked=case.name in CHUNKED) for case in cases]


#: Cases also evaluated chunk by chunk (the rest only on the whole batch, to keep the test fast).
CHUNKED = frozenset(
    {
        "conf_kimi_length",
        "conf_shorter_better",
        "conf_alp",
        "conf_weighted_sum",
        "conf_with_context",
        "conf_pixelthink_preset_official_fallbacks",
        "pixelthink_default",
        "seg_zero_default",
        "seg_accuracy_lenient",
        "length_token_ids_reasoning_ignore_pad",
        "budget_tiered_custom",
        "l1_max_segmentation_accuracy",
        "kimi_segmentation",
        "shorter_better_segmentation",
        "alp_accuracy",
        "weighted_sum_duplicate_names",
        "product_nested",
        "gate_segmentation",
        "with_context_pass_rate_overwrite",
        "with_context_pass_rate_accuracy_fill",
        "with_context_ema_current",
        "with_context_ema_before_step",
        "with_context_ema_prompt_column",
        "with_context_lookup",
        "with_context_heuristic",
        "with_context_chained_providers",
    }
)


CASES: dict[str, Case] = {case.name: case for case in _cases()}

# ------------------------------------------------------------------------------------------------------------
# Datasets: encoding into and decoding from the golden file
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Dataset:
    """Completions (strings or chat messages) and per-sample context columns (``token_ids``: lists of ints)."""

    name: str
    completions: list[Any]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.completions)


def _json_bytes(value: Any) -> np.ndarray:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _from_json_bytes(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode("utf-8"))


def encode_dataset(dataset: Dataset) -> dict[str, np.ndarray]:
    """Arrays for the golden file: JSON (UTF-8 bytes) for everything but ``token_ids`` (flat ids + offsets)."""
    prefix = f"datasets/{dataset.name}/"
    columns = {k: v for k, v in dataset.columns.items() if k != "token_ids"}
    arrays = {prefix + "json": _json_bytes({"completions": dataset.completions, "columns": columns})}
    if "token_ids" in dataset.columns:
        ids = dataset.columns["token_ids"]
        flat = [t for row in ids for t in row]
        assert all(0 <= t < 256 for t in flat)
        arrays[prefix + "token_ids_flat"] = np.asarray(flat, dtype=np.uint8)
        arrays[prefix + "token_ids_offsets"] = np.cumsum([0] + [len(row) for row in ids]).astype(np.int64)
    return arrays


def decode_dataset(name: str, files: Mapping[str, np.ndarray]) -> Dataset:
    prefix = f"datasets/{name}/"
    data = _from_json_bytes(files[prefix + "json"])
    columns = data["columns"]
    if prefix + "token_ids_flat" in files:
        flat = files[prefix + "token_ids_flat"].astype(np.int64).tolist()
        offsets = files[prefix + "token_ids_offsets"].tolist()
        columns["token_ids"] = [flat[a:b] for a, b in zip(offsets, offsets[1:])]
    return Dataset(name, data["completions"], columns)


# ------------------------------------------------------------------------------------------------------------
# Evaluation (identical in the generator and the test)
# ------------------------------------------------------------------------------------------------------------


def case_columns(case: Case, dataset: Dataset) -> tuple[str, ...] | None:
    """The columns the case passes on this dataset, or ``None`` when the dataset lacks one of them."""
    if case.columns == ALL:
        return tuple(sorted(dataset.columns))
    if not set(case.columns) <= set(dataset.columns):
        return None
    return tuple(case.columns)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def selected_rows(case: Case, dataset: Dataset) -> list[int]:
    """Rows the case is evaluated on: all but those where a ``require_finite`` column is None/NaN."""
    rows = range(len(dataset))
    for column in case.require_finite:
        values = dataset.columns[column]
        rows = [i for i in rows if not _missing(values[i])]
    return list(rows)


def chunk_bounds(group_ids: Sequence[Any], size: int = CHUNK_SIZE) -> list[int]:
    """Chunk starts (plus the end): a chunk holds at least ``size`` rows and ends only where the group changes."""
    bounds = [0]
    for i in range(1, len(group_ids)):
        if i - bounds[-1] >= size and group_ids[i] != group_ids[i - 1]:
            bounds.append(i)
    bounds.append(len(group_ids))
    return bounds


@dataclasses.dataclass
class Evaluated:
    """One step's outputs: rewards, components and the numeric/bool/string columns (others are skipped)."""

    step: int
    rewards: np.ndarray
    components: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    skipped_columns: list[str]


def _storable(values: Any) -> np.ndarray | None:
    array = np.asarray(values)
    if array.dtype.kind in "biufU":
        return np.array(array)  # a writable, contiguous copy
    return None


def _from_output(step: int, output: alr.RewardOutput) -> Evaluated:
    columns, skipped = {}, []
    for key, values in output.columns.items():
        array = _storable(values)
        if array is None:
            skipped.append(key)
        else:
            columns[key] = array
    components = {key: np.array(np.asarray(values)) for key, values in output.components.items()}
    return Evaluated(step, np.array(np.asarray(output.rewards)), components, columns, skipped)


def _concat(parts: list[Evaluated]) -> Evaluated:
    """Chunk outputs joined in row order; a component or column absent from some chunk is left out."""
    components = {
        key: np.concatenate([p.components[key] for p in parts])
        for key in parts[0].components
        if all(key in p.components for p in parts)
    }
    columns = {
        key: np.concatenate([p.columns[key] for p in parts])
        for key in parts[0].columns
        if all(key in p.columns for p in parts)
    }
    skipped = sorted({key for p in parts for key in p.skipped_columns})
    return Evaluated(parts[0].step, np.concatenate([p.rewards for p in parts]), components, columns, skipped)


def run_case(case: Case, dataset: Dataset, *, chunked: bool) -> list[Evaluated]:
    """Evaluate a fresh reward of ``case`` on ``dataset`` at each of its steps (whole batch or chunk by chunk)."""
    names = case_columns(case, dataset)
    assert names is not None, f"{case.name}: dataset {dataset.name} lacks some of {case.columns}"
    rows = selected_rows(case, dataset)
    completions = [dataset.completions[i] for i in rows]
    base = {name: [dataset.columns[name][i] for i in rows] for name in names}
    group_ids = [dataset.columns["group_ids"][i] for i in rows]
    bounds = chunk_bounds(group_ids) if chunked else [0, len(rows)]
    reward = case.factory()
    results = []
    for step in case.steps:
        context = dict(base)
        if case.rotate_correct and "correct" in context:
            shift = (3 * step) % max(1, len(rows))
            context["correct"] = context["correct"][shift:] + context["correct"][:shift]
        parts = []
        for a, b in zip(bounds, bounds[1:]):
            chunk = {name: values[a:b] for name, values in context.items()}
            parts.append(_from_output(step, reward.evaluate(completions=completions[a:b], step=step, **chunk)))
        results.append(parts[0] if len(parts) == 1 else _concat(parts))
    return results


def pixelthink_score_inputs(dataset: Dataset, limit: int = 400) -> list[tuple[str, Any, float, float, int | None]]:
    """``(completion, ground_truth, difficulty, uncertainty, length)`` for :func:`alr.pixelthink_score`: the
    first ``limit`` string completions with a string or mapping ground truth, a difficulty and an uncertainty;
    every third one passes a length."""
    out: list[tuple[str, Any, float, float, int | None]] = []
    cols = dataset.columns
    for i, text in enumerate(dataset.completions):
        if len(out) >= limit:
            break
        d, u = cols["difficulty"][i], cols["uncertainty"][i]
        if not isinstance(text, str) or not isinstance(cols["ground_truth"][i], (str, dict)):
            continue
        if _missing(d) or _missing(u):
            continue
        length = cols["lengths"][i]
        given = int(length) if i % 3 == 0 and float(length).is_integer() else None
        out.append((text, cols["ground_truth"][i], float(d), float(u), given))
    return out


def run_pixelthink_score(dataset: Dataset) -> np.ndarray:
    return np.array(
        [
            alr.pixelthink_score(text, gt, difficulty=d, uncertainty=u, length=length)
            for text, gt, d, u, length in pixelthink_score_inputs(dataset)
        ],
        dtype=np.float64,
    )


# ------------------------------------------------------------------------------------------------------------
# Storage of outputs (content-addressed: identical arrays are stored once)
# ------------------------------------------------------------------------------------------------------------


def array_key(array: np.ndarray) -> str:
    digest = hashlib.sha1(array.dtype.str.encode() + str(array.shape).encode() + array.tobytes()).hexdigest()
    return "arrays/" + digest[:20]


def record_id(case: str, dataset: str, mode: str) -> str:
    return f"{case}[{dataset},{mode}]"


def config_kinds(value: Any) -> set[str]:
    """Every ``kind`` in a dumped config tree."""
    kinds: set[str] = set()
    if isinstance(value, Mapping):
        if isinstance(value.get("kind"), str):
            kinds.add(value["kind"])
        for item in value.values():
            kinds |= config_kinds(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            kinds |= config_kinds(item)
    return kinds
