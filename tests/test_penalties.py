"""The length-reward classes: they call the functional forms with the right lengths, budgets, correctness and
groups, and report per-sample diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_length_reward import (
    ALPReward,
    ColumnBudget,
    ColumnReward,
    CosineLengthReward,
    DAPOOverlongPenalty,
    FixedBudget,
    KimiLengthReward,
    L1ExactReward,
    L1MaxReward,
    MissingContextError,
    PrecomputedLength,
    RewardBatch,
    ShorterBetterReward,
    SoftLengthPenalty,
    TieredBudget,
    WhitespaceWords,
)
from adaptive_length_reward import functional as F
from adaptive_length_reward.penalties import correctness, correctness_requires

WORDS = [5, 120, 400, 700, 300, 300]


def make_batch(**extra: object) -> RewardBatch:
    return RewardBatch.from_completions(
        ["w " * n for n in WORDS],
        difficulty=[1.0, 2.0, 6.0, 6.0, 4.0, 3.0],
        uncertainty=[0.0, 0.5, 0.2, 1.0, 0.0, 0.9],
        group_ids=["p0", "p0", "p0", "p1", "p1", "p1"],
        correct=[1, 1, 0, 1, 0, 1],
        **extra,
    )


def test_soft_length_penalty_pixelthink_end_to_end() -> None:
    out = SoftLengthPenalty().evaluate(make_batch())
    budgets = [96, 96, 261, 281, np.inf, 96]
    np.testing.assert_allclose(out.columns["budget"], budgets)
    assert out.columns["tier"].tolist() == ["easy", "easy", "hard", "hard", "medium", "easy"]
    np.testing.assert_allclose(out.rewards, F.soft_length_penalty(WORDS, budgets))
    # 120 words, easy budget 96: 1 - 24/500 = 0.952; 700 words, hard budget 281: 1 - 419/500 = 0.162.
    assert out.rewards[1] == pytest.approx(0.952) and out.rewards[3] == pytest.approx(0.162)
    np.testing.assert_array_equal(out.columns["length"], WORDS)
    np.testing.assert_array_equal(out.columns["uncertainty"], [0.0, 0.5, 0.2, 1.0, 0.0, 0.9])


def test_reasoning_token_mode_and_precomputed_lengths() -> None:
    batch = RewardBatch(["<think>" + "w " * 200 + "</think>" + " x" * 500], difficulty=[1.0], lengths=[100])
    assert SoftLengthPenalty(length=WhitespaceWords(span="reasoning"))(batch)[0] == pytest.approx(1 - 104 / 500)
    assert SoftLengthPenalty(length=PrecomputedLength())(batch)[0] == pytest.approx(1 - 4 / 500)


def test_correctness_from_column_or_reward() -> None:
    batch = make_batch(accuracy=[5, 4, 0, 5, 2, 5], target_length=[10, 10, 10, 10, 10, 10])
    from_column = L1MaxReward(budget=ColumnBudget())(batch)
    from_reward = L1MaxReward(budget=ColumnBudget(), correctness=ColumnReward("accuracy"), correct_threshold=4.5)
    out = from_reward.evaluate(batch)
    # accuracy >= 4.5 -> correct for samples 0, 3, 5 only (sample 1 differs from the 'correct' column).
    assert out.columns["correct"].tolist() == [1, 0, 0, 1, 0, 1]
    assert "accuracy" in out.components
    expected = F.l1_max_reward([1, 0, 0, 1, 0, 1], WORDS, [10] * 6)
    np.testing.assert_allclose(out.rewards, expected)
    assert from_column.tolist() != out.rewards.tolist()
    with pytest.raises(ValueError, match="column 'correct': expected 0/1 or bool values"):
        L1MaxReward(budget=FixedBudget(10))(completions=["a"], correct=[0.5])


def test_every_class_equals_its_functional_form() -> None:
    batch = make_batch()
    correct, groups = np.array([1, 1, 0, 1, 0, 1]), np.array([0, 0, 0, 1, 1, 1])
    cases = [
        (L1ExactReward(budget=FixedBudget(200)), F.l1_exact_reward(correct, WORDS, [200] * 6)),
        (L1MaxReward(budget=FixedBudget(200), delta=0.2), F.l1_max_reward(correct, WORDS, [200] * 6, delta=0.2)),
        (
            DAPOOverlongPenalty(max_length=600, cache_length=300),
            F.dapo_overlong_penalty(WORDS, max_length=600, cache_length=300),
        ),
        (CosineLengthReward(max_length=500), F.cosine_length_reward(correct, WORDS, max_length=500)),
        (KimiLengthReward(), F.kimi_length_reward(correct, WORDS, groups)),
        (ShorterBetterReward(), F.shorter_better_reward(correct, WORDS, groups)),
        (ALPReward(normalizer=1000), F.alp_reward(correct, WORDS, groups, normalizer=1000)),
    ]
    for reward, expected in cases:
        np.testing.assert_allclose(reward(batch), expected, err_msg=reward.name)


def test_group_rewards_require_group_ids() -> None:
    for reward in (KimiLengthReward(), ShorterBetterReward(), ALPReward()):
        with pytest.raises(MissingContextError, match="'group_ids'"):
            reward(completions=["a", "b"], correct=[1, 0])


def test_soft_length_penalty_needs_difficulty_with_tiered_budget_only() -> None:
    with pytest.raises(MissingContextError, match="'difficulty'"):
        SoftLengthPenalty()(completions=["a"])
    assert SoftLengthPenalty(budget=FixedBudget(10))(completions=["a"]).tolist() == [1.0]
    assert SoftLengthPenalty(budget=TieredBudget(missing_difficulty=3.0))(completions=["w " * 346]).tolist() == [0.5]


def test_type_errors_name_the_argument() -> None:
    with pytest.raises(TypeError, match="SoftLengthPenalty: length: expected a LengthCounter, got FixedBudget"):
        SoftLengthPenalty(length=FixedBudget(3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="L1ExactReward: budget: expected a BudgetPolicy, got NoneType"):
        L1ExactReward(budget=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="KimiLengthReward: correctness: expected a Reward, got str"):
        KimiLengthReward(correctness="correct")  # type: ignore[arg-type]


def test_correctness_is_one_rule_for_every_reader() -> None:
    batch = RewardBatch.from_completions(["a"] * 4, correct=[1, 0, True, 0.0], score=[5.0, 4.9, 0.0, 7.0])
    # The length rewards: the column is the 0/1 flag itself.
    assert correctness(batch, None, 1.0, by="X").tolist() == [1.0, 0.0, 1.0, 0.0]
    assert correctness(batch, None, 3.0, by="X").tolist() == [1.0, 0.0, 1.0, 0.0]
    # A reward: correct where its value >= threshold.
    assert correctness(batch, ColumnReward("score"), 5.0, by="X").tolist() == [1.0, 0.0, 0.0, 1.0]
    # Pass-rate difficulty: any finite numbers, thresholded like a reward.
    graded = RewardBatch.from_completions(["a"] * 3, correct=[0.2, 0.9, 1.0])
    assert correctness(graded, None, 0.9, by="X", binary=False).tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"X: column 'correct': expected 0/1 or bool values, got \[0.2, 0.9, 1.0\]"):
        correctness(graded, None, 0.9, by="X")
    with pytest.raises(TypeError, match="X: column 'correct': expected numbers or bools, got"):
        correctness(RewardBatch.from_completions(["a"], correct=["yes"]), None, 1.0, by="X", binary=False)
    with pytest.raises(ValueError, match="X: column 'correct': expected finite values"):
        correctness(RewardBatch.from_completions(["a"], correct=[math.nan]), None, 1.0, by="X", binary=False)
    assert correctness_requires(None) == {"correct"}
    assert correctness_requires(ColumnReward("score")) == {"score"}
