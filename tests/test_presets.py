"""Presets: PixelThink's reward and Seg-Zero's built from the library's parts, their options and policies."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from test_segmentation_official import GOOD, GT, ref_pixelthink
from text_fixtures import tiny_tokenizer

from adaptive_length_reward import (
    MissingContextError,
    PrecomputedLength,
    Product,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
    WhitespaceWords,
    build,
)
from adaptive_length_reward.presets import (
    PixelThinkReasoningTokens,
    official_reasoning_text,
    pixelthink,
    pixelthink_score,
    seg_zero,
)
from adaptive_length_reward.segmentation import SegmentationAccuracy

WORDS_IN_GOOD = len(GOOD.split())


def padded(words: int) -> str:
    """GOOD with its reasoning padded to exactly ``words`` whitespace words in total."""
    extra = words - WORDS_IN_GOOD
    return GOOD.replace("<think>the cup", "<think>the cup" + " w" * extra)


def test_pixelthink_is_accuracy_times_soft_length_penalty_with_tiered_defaults() -> None:
    reward = pixelthink()
    assert isinstance(reward, Product) and reward.name == "pixelthink"
    accuracy, penalty = reward.terms
    assert accuracy.to_config() == SegmentationAccuracy().to_config()
    assert isinstance(penalty, SoftLengthPenalty)
    assert penalty.to_config().beta == 1 / 500 and penalty.to_config().bonus_cap == 0.0
    assert penalty.budget.to_config() == TieredBudget().to_config()  # 3.5 / 5.0, 96 / none / 256 + 25 U
    assert penalty.length.to_config() == WhitespaceWords().to_config()  # whole-response words
    assert reward.bounds == (0.0, 5.0)
    assert reward.requires == frozenset({"ground_truth", "difficulty"})


@pytest.mark.parametrize(
    ("words", "difficulty", "uncertainty", "expected"),
    [
        (96, 2.0, 0.0, 5.0),  # easy: within the 96-word budget
        (346, 2.0, 0.0, 2.5),  # easy: 250 over -> 1 - 250/500
        (596, 3.4999, 0.0, 0.0),  # easy: 500 over -> 0
        (2000, 3.5, 1.0, 5.0),  # medium (3.5 <= D < 5): no penalty
        (2000, 4.9999, 1.0, 5.0),
        (281, 5.0, 1.0, 5.0),  # hard: budget 256 + 25 * 1.0
        (531, 5.0, 1.0, 2.5),
        (506, 9.0, 0.0, 2.5),  # hard: budget 256
    ],
)
def test_pixelthink_tiers_by_hand(words: int, difficulty: float, uncertainty: float, expected: float) -> None:
    text = padded(words)
    assert len(text.split()) == words
    out = pixelthink().evaluate(
        completions=[text], ground_truth=[GT], difficulty=[difficulty], uncertainty=[uncertainty]
    )
    assert out.rewards.tolist() == [expected] == [ref_pixelthink(text, GT, uncertainty, difficulty)]
    assert out.components["segmentation_accuracy"].tolist() == [5.0]
    assert out.columns["length"].tolist() == [words]
    assert pixelthink_score(text, GT, difficulty=difficulty, uncertainty=uncertainty) == expected


def test_missing_difficulty_is_an_error_by_default_and_explicit_otherwise() -> None:
    with pytest.raises(MissingContextError, match="'difficulty'"):
        pixelthink()(completions=[GOOD], ground_truth=[GT])
    with pytest.raises(MissingContextError, match=r"missing \(NaN\) for samples \[1\]"):
        pixelthink()(completions=[GOOD, padded(346)], ground_truth=[GT, GT], difficulty=[2.0, None])
    # The official loader's fallback: D = 3.0, the easy tier (budget 96).
    official = pixelthink(missing_difficulty=3.0)
    assert official(completions=[padded(346)], ground_truth=[GT]).tolist() == [2.5]
    assert official.requires == frozenset({"ground_truth"})
    assert pixelthink(missing_difficulty="medium")(completions=[padded(346)], ground_truth=[GT]).tolist() == [5.0]


def test_missing_uncertainty_only_matters_for_hard_samples() -> None:
    easy = pixelthink()(completions=[padded(346)], ground_truth=[GT], difficulty=[2.0])
    assert easy.tolist() == [2.5]
    with pytest.raises(MissingContextError, match="'uncertainty'"):
        pixelthink()(completions=[padded(506)], ground_truth=[GT], difficulty=[6.0])
    hard = pixelthink(missing_uncertainty=0.0)(completions=[padded(506)], ground_truth=[GT], difficulty=[6.0])
    assert hard.tolist() == [2.5]


def test_seg_zero_is_the_accuracy_alone() -> None:
    reward = seg_zero()
    assert isinstance(reward, SegmentationAccuracy) and reward.name == "seg_zero"
    out = reward(completions=[padded(2000), GOOD[:30]], ground_truth=[GT, GT])
    assert out.tolist() == [5.0, 0.0]
    assert seg_zero(iou_threshold=0.9, ground_truth_column="solution").requires == frozenset({"solution"})


def test_thresholds_and_columns_pass_through() -> None:
    reward = pixelthink(
        iou_threshold=0.9,
        box_l1_threshold=1.0,
        point_threshold=5.0,
        beta=0.01,
        ground_truth_column="solution",
        missing_difficulty=3.0,
        name="pt",
    )
    answer = GOOD.replace("[100, 100, 199, 199]", "[100, 100, 199, 180]")  # IoU 0.82, L1 4.75
    out = reward.evaluate(completions=[answer], solution=[GT])
    assert out.components["segmentation_accuracy/box_iou"].tolist() == [0.0]
    assert out.components["segmentation_accuracy/box_l1"].tolist() == [0.0]
    assert reward.terms[1].to_config().beta == 0.01 and reward.__name__ == "pt"


def test_preset_round_trips_through_json_and_pickle() -> None:
    reward = pixelthink(missing_difficulty=3.0, missing_uncertainty=0.0)
    rebuilt = build(json.loads(reward.to_config().model_dump_json()))
    assert rebuilt.to_config() == reward.to_config()
    batch = RewardBatch((GOOD, padded(400)), ground_truth=(GT, GT), difficulty=np.array([2.0, 6.0]))
    np.testing.assert_array_equal(rebuilt(batch), reward(batch))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reward))(batch), reward(batch))


# ------------------------------------------------------------------------------------------------------------
# Reasoning-token length (official alternative mode)


def test_official_reasoning_text() -> None:
    assert official_reasoning_text("<think>\n  a b \n</think><answer>x</answer>") == "a b"
    assert official_reasoning_text("<think>a</think> <think>b</think>") == "a"
    assert official_reasoning_text("<think>truncated") == ""  # no closing tag: no reasoning
    assert official_reasoning_text("a</think>") == ""
    assert official_reasoning_text("") == ""


@pytest.mark.slow
def test_reasoning_token_mode_counts_official_reasoning_tokens(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    texts = [GOOD, "<think>  the red square is left  </think><answer>{}</answer>", "<think>cut off", "no tags"]
    reasoning = [None, None, None, "separate reasoning field"]
    batch = RewardBatch(tuple(texts), reasoning=tuple(reasoning), ground_truth=(GT,) * 4, difficulty=np.full(4, 2.0))
    counter = PixelThinkReasoningTokens(tokenizer)
    expected = [len(tokenizer(official_reasoning_text(t), add_special_tokens=False)["input_ids"]) for t in texts[:3]]
    expected.append(len(tokenizer("separate reasoning field", add_special_tokens=False)["input_ids"]))
    assert counter(batch).tolist() == expected and expected[2] == 0
    reward = pixelthink(length="reasoning_tokens", tokenizer=tokenizer)
    out = reward.evaluate(batch)
    assert out.columns["length"].tolist() == expected
    assert out.rewards[0] == 5.0  # a few tokens: within the easy budget
    # A saved tokenizer round-trips through the config by path.
    tokenizer.save_pretrained(tmp_path)
    by_path = pixelthink(length="reasoning_tokens", tokenizer=str(tmp_path))
    rebuilt = build(json.loads(by_path.to_config().model_dump_json()))
    assert rebuilt.terms[1].length.to_config().kind == "pixelthink_reasoning_tokens"
    np.testing.assert_array_equal(rebuilt(batch), out.rewards)


def test_length_option_errors_say_what_was_expected() -> None:
    with pytest.raises(
        ValueError, match="tokenizer: expected a tokenizer or a local path with length='reasoning_tokens'"
    ):
        pixelthink(length="reasoning_tokens")
    with pytest.raises(ValueError, match="tokenizer: expected None with length='words'"):
        pixelthink(tokenizer="some/path")
    with pytest.raises(
        ValueError, match=r"length: expected 'words', 'reasoning_tokens' or a LengthCounter, got 'chars'"
    ):
        pixelthink(length="chars")  # type: ignore[arg-type]
    reward = pixelthink(length=PrecomputedLength())
    assert reward(completions=[GOOD], ground_truth=[GT], difficulty=[2.0], lengths=[346]).tolist() == [2.5]


# ------------------------------------------------------------------------------------------------------------
# pixelthink_score


def test_pixelthink_score_examples() -> None:
    assert pixelthink_score(GOOD, GT, difficulty=2.0) == 5.0
    assert pixelthink_score(GOOD, GT, difficulty=2.0, length=346) == 2.5
    assert pixelthink_score(GOOD, GT, difficulty=6.0, uncertainty=0.4, length=266) == 5.0  # budget 266
    assert pixelthink_score(GOOD, GT, difficulty=6.0, uncertainty=0.4, length=516) == 2.5
    mapping = {"bbox": [100, 100, 199, 199], "points": [[130, 140], [170, 160]]}
    assert pixelthink_score(padded(346), mapping, difficulty=1.0) == 2.5
    assert pixelthink_score("garbage", GT, difficulty=1.0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"difficulty": math.nan}, ValueError, "difficulty: expected a finite number, got nan"),
        ({"difficulty": "hard"}, ValueError, "difficulty: expected a finite number, got 'hard'"),
        ({"difficulty": 2.0, "uncertainty": -0.5}, ValueError, "uncertainty: expected a number >= 0, got -0.5"),
        ({"difficulty": 2.0, "uncertainty": math.inf}, ValueError, "uncertainty: expected a finite number"),
        ({"difficulty": 2.0, "length": -1}, ValueError, "length: expected None or an int >= 0, got -1"),
        ({"difficulty": 2.0, "length": 3.5}, ValueError, "length: expected None or an int >= 0, got 3.5"),
        ({"difficulty": 2.0, "length": True}, ValueError, "length: expected None or an int >= 0, got True"),
    ],
)
def test_pixelthink_score_validates_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        pixelthink_score(GOOD, GT, **kwargs)


def test_pixelthink_score_type_errors_and_bad_truth() -> None:
    with pytest.raises(TypeError, match=r"completions\[0\]: expected str, got list"):
        pixelthink_score([GOOD], GT, difficulty=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ground_truth: expected the official string or a mapping, got list"):
        pixelthink_score(GOOD, [1, 2, 3, 4], difficulty=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ground_truth\[0\]: expected '<box>"):
        pixelthink_score(GOOD, "nothing", difficulty=2.0)


def test_pixelthink_accepts_a_budget_policy() -> None:
    from adaptive_length_reward import FixedBudget, LinearBudget, TieredBudget, pixelthink

    custom = TieredBudget(budgets=(40.0, None, 80.0), uncertainty_scales=(0.0, 0.0, 10.0))
    reward = pixelthink(budget=custom)
    assert reward.terms[1].budget is custom
    assert pixelthink(budget=TieredBudget()).to_config() == pixelthink().to_config()
    assert isinstance(pixelthink(budget=LinearBudget()).terms[1].budget, LinearBudget)
    with pytest.raises(ValueError, match="missing_difficulty/missing_uncertainty: expected the defaults"):
        pixelthink(budget=FixedBudget(10), missing_difficulty=3.0)
    with pytest.raises(TypeError, match="SoftLengthPenalty: budget: expected a BudgetPolicy, got int"):
        pixelthink(budget=96)  # type: ignore[arg-type]
