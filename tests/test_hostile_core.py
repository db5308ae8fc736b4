"""Hostile numbers in the core (issue 17's numeric and config edge cases): ShorterBetter stays finite for finite
inputs at float64's edge, tier layouts refuse a bare number or a string where a sequence belongs, and one rule for
uncertainty (a number >= 0; NaN = missing in a batch) holds in the batch, the budgets and ``pixelthink_score``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adaptive_length_reward import ConfigError, RewardBatch
from adaptive_length_reward import functional as F
from adaptive_length_reward.budgets import LinearBudget, TieredBudget
from adaptive_length_reward.functional import shorter_better_reward
from adaptive_length_reward.presets import pixelthink, pixelthink_score
from adaptive_length_reward.tiers import TierLayout, check_tiers, tier_histogram, tier_index, tier_names

FLOAT_MAX = float(np.finfo(np.float64).max)
GT = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
ANSWER = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'

# -- ShorterBetter: finite for finite inputs ------------------------------------------------------------------

huge_lengths = st.one_of(st.floats(0.0, FLOAT_MAX), st.sampled_from([0.0, 1.0, 1e300, 1e308, FLOAT_MAX]))
positive = st.one_of(st.floats(1e-300, FLOAT_MAX), st.sampled_from([1e-3, 1.0, 2.0, 1e10, 1e308, FLOAT_MAX]))


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 8),
    alpha=positive,
    beta=positive,
)
def test_shorter_better_is_finite_and_at_most_alpha_for_any_finite_input(
    data: st.DataObject, n: int, alpha: float, beta: float
) -> None:
    lengths = data.draw(hnp.arrays(np.float64, n, elements=huge_lengths))
    correct = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    groups = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2)))
    with np.errstate(over="raise", invalid="raise"):  # no overflow warning escapes either
        rewards = shorter_better_reward(correct, lengths, groups, alpha=alpha, beta=beta)
    assert np.isfinite(rewards).all(), (correct, lengths, groups, alpha, beta, rewards)
    assert (rewards <= alpha).all() and (rewards >= -FLOAT_MAX).all()


def test_shorter_better_group_mean_beyond_float64_is_still_the_mean() -> None:
    # no correct sample: L_SOL is the group's mean, 1.25e308, although the lengths sum to 2.5e308
    rewards = shorter_better_reward([0, 0], [1e308, 1.5e308], [0, 0], beta=1.0)
    assert rewards.tolist() == pytest.approx([-0.25e308, -0.25e308], rel=1e-12)


def test_shorter_better_penalty_beyond_float64_saturates_at_the_documented_bound() -> None:
    rewards = shorter_better_reward([1, 0], [0.0, FLOAT_MAX], [0, 0], alpha=2.0, beta=10.0)
    assert rewards.tolist() == [2.0, -FLOAT_MAX]


def test_shorter_better_ordinary_inputs_are_unchanged() -> None:
    assert shorter_better_reward([1, 1, 0], [100, 300, 50], [0, 0, 0]).tolist() == [2.0, 1.8, -0.05]
    assert shorter_better_reward([0, 0], [100, 300], [0, 0], beta=0.01).tolist() == [-1.0, -1.0]


# -- tier layouts: a sequence where a sequence belongs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TierLayout(5), r"TierLayout: thresholds: expected a sequence, each entry a number, got 5 \(a int\)"),
        (lambda: TierLayout((1.0, 2.0), "abc"), r"TierLayout: names: expected a sequence, .* got 'abc' \(a str\)"),
        (lambda: TierLayout((1.0,), b"ab"), r"TierLayout: names: expected a sequence, .* got b'ab' \(a bytes\)"),
        (lambda: TierLayout((1.0, True)), r"TierLayout: thresholds\[1\]: expected a number, got True \(a bool\)"),
        (lambda: TierLayout(("3.5",)), r"TierLayout: thresholds\[0\]: expected a number, got '3.5' \(a str\)"),
        (lambda: TierLayout((1.0,), ("a", 2)), r"TierLayout: names\[1\]: expected a string, got 2 \(a int\)"),
        (lambda: tier_names([1.0], names="abc"), r"TierLayout: names: expected a sequence"),
        (lambda: tier_histogram([1.0], (1.0, 2.0), "abc"), r"TierLayout: names: expected a sequence"),
        (lambda: tier_index([1.0], thresholds=5), r"TierLayout: thresholds: expected a sequence"),
        (lambda: check_tiers(5, ("a", "b"), owner="x"), r"TierLayout: thresholds: expected a sequence"),
    ],
)
def test_tier_layouts_refuse_a_number_or_a_string_where_a_sequence_belongs(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_tier_layouts_still_take_lists_tuples_and_arrays() -> None:
    for thresholds in ([3.5, 5], (3.5, 5.0), np.array([3.5, 5.0])):
        layout = TierLayout(thresholds, ["easy", "medium", "hard"])  # type: ignore[arg-type]
        assert layout == TierLayout() and layout.thresholds == (3.5, 5.0)
    assert tier_names([1.0, 4.0, 9.0]).tolist() == ["easy", "medium", "hard"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": 5}, r"TieredBudget: thresholds: expected .*tuple, got 5"),
        ({"names": "abc"}, r"TieredBudget: names: expected .*tuple, got 'abc'"),
        ({"thresholds": (1.0, 2.0), "names": "abc"}, r"TieredBudget: names: expected .*tuple, got 'abc'"),
    ],
)
def test_tiered_budget_refuses_a_bare_number_or_string_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TieredBudget(**kwargs)  # type: ignore[arg-type]


# -- one rule for uncertainty -----------------------------------------------------------------------------------


def _batch_accepts(u: float) -> bool:
    try:
        RewardBatch(("a",), uncertainty=[u])
    except ValueError as error:
        assert "uncertainty" in str(error)
        return False
    return True


def _score_accepts(u: float) -> bool:
    try:
        pixelthink_score(ANSWER, GT, difficulty=7.0, uncertainty=u, length=10)
    except ValueError as error:
        assert "uncertainty" in str(error)
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(u=st.one_of(st.floats(allow_nan=False), st.sampled_from([-5.0, -1e-300, -0.0, 0.0, 1e-300, 0.5, 1.0, 5.0])))
def test_the_batch_and_pixelthink_score_accept_the_same_uncertainties(u: float) -> None:
    assert _batch_accepts(u) == _score_accepts(u) == (math.isfinite(u) and u >= 0)


def test_the_batch_path_refuses_a_negative_uncertainty_naming_the_column() -> None:
    message = r"RewardBatch: uncertainty: expected numbers >= 0 \(NaN or None marks a missing one.*got \[-5\.0\]"
    with pytest.raises(ValueError, match=message):
        RewardBatch.from_completions([ANSWER], ground_truth=[GT], difficulty=[7.0], uncertainty=[-5.0])
    with pytest.raises(ValueError, match=r"RewardBatch: uncertainty: expected numbers >= 0"):
        RewardBatch(("a", "b"), uncertainty=np.array([0.5, -1e-9]))
    batch = RewardBatch.from_completions([ANSWER], ground_truth=[GT], difficulty=[7.0], uncertainty=[0.5])
    with pytest.raises(ValueError, match=r"RewardBatch: uncertainty: expected numbers >= 0"):
        batch.replace(uncertainty=[-5.0])


def test_a_missing_uncertainty_is_still_nan_and_follows_the_budgets_missing_rule() -> None:
    batch = RewardBatch.from_completions(
        [ANSWER, ANSWER], ground_truth=[GT, GT], difficulty=[7.0, 7.0], uncertainty=[None, float("nan")]
    )
    assert np.isnan(batch.uncertainty).all()  # type: ignore[arg-type]
    reward = pixelthink(missing_uncertainty=0.0)
    assert np.isfinite(reward(batch)).all()  # type: ignore[operator]


@pytest.mark.parametrize("cls", [TieredBudget, LinearBudget])
def test_a_budgets_missing_uncertainty_fallback_follows_the_same_rule(cls: type) -> None:
    with pytest.raises(ConfigError, match=r"missing_uncertainty: expected a number >= 0 or 'error', got -5"):
        cls(missing_uncertainty=-5.0)
    assert cls(missing_uncertainty=0.0).missing_uncertainty == 0.0


# -- budgets at float64's edge: finite, never NaN, never "no penalty" by overflow -----------------------------------


def test_a_tiered_budget_grown_beyond_float64_saturates_instead_of_becoming_no_penalty() -> None:
    batch = RewardBatch(("a", "b", "c"), difficulty=[7.0, 7.0, 4.0], uncertainty=[1e308, 0.5, 1e308])
    with np.errstate(over="raise", invalid="raise"):
        budgets = TieredBudget()(batch)
    assert budgets.tolist() == [FLOAT_MAX, 256.0 + 25 * 0.5, np.inf]  # the medium tier has no penalty by design


@settings(max_examples=200, deadline=None)
@given(
    d=st.floats(-FLOAT_MAX, FLOAT_MAX),
    u=st.floats(0.0, FLOAT_MAX),
    slopes=st.tuples(st.floats(-1e10, 1e10), st.floats(-1e10, 1e10)),
)
def test_a_linear_budget_is_within_its_bounds_for_any_finite_context(
    d: float, u: float, slopes: tuple[float, float]
) -> None:
    policy = LinearBudget(difficulty_slope=slopes[0], uncertainty_slope=slopes[1])
    with np.errstate(over="raise", invalid="raise"):
        budgets = policy(RewardBatch(("a",), difficulty=[d], uncertainty=[u]))
    assert policy.min_budget <= budgets[0] <= policy.max_budget


# -- every functional length reward: finite for finite inputs at float64's edge -----------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 8), coefficient=positive, small=st.sampled_from([1e-300, 1e-10, 1.0]))
def test_every_functional_length_reward_is_finite_for_finite_inputs(
    data: st.DataObject, n: int, coefficient: float, small: float
) -> None:
    lengths = data.draw(hnp.arrays(np.float64, n, elements=huge_lengths))
    targets = data.draw(hnp.arrays(np.float64, n, elements=huge_lengths))
    correct = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    groups = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2)))
    calls = {
        "l1_exact": lambda: F.l1_exact_reward(correct, lengths, targets, alpha=coefficient),
        "l1_max": lambda: F.l1_max_reward(correct, lengths, targets, alpha=coefficient),
        "alp": lambda: F.alp_reward(correct, lengths, groups, beta=coefficient, normalizer=small),
        "grpo_lead": lambda: F.grpo_lead_reward(correct, lengths, groups, alpha=coefficient),
        "kimi": lambda: F.kimi_length_reward(correct, lengths, groups),
        "cosine": lambda: F.cosine_length_reward(correct, lengths, max_length=small),
        "dapo": lambda: F.dapo_overlong_penalty(lengths, max_length=coefficient, cache_length=min(small, coefficient)),
        "laser": lambda: F.laser_reward(correct, lengths, targets, alpha=coefficient),
        "hapo": lambda: F.hapo_reward(correct, lengths, targets, weight=coefficient),
        "soft": lambda: F.soft_length_penalty(lengths, targets, beta=coefficient),
    }
    for name, call in calls.items():
        with np.errstate(all="ignore"):  # intermediate overflows that are clipped are fine: the output is checked
            rewards = call()
        assert np.isfinite(rewards).all(), (name, correct, lengths, targets, groups, coefficient, small, rewards)


def test_grpo_lead_z_scores_are_scale_free_even_beyond_float64() -> None:
    expected = F.grpo_lead_reward([1, 1, 0], [100, 300, 50], [0, 0, 0]).tolist()
    assert F.grpo_lead_reward([1, 1, 0], [1e308, 1.7e308, 50], [0, 0, 0]).tolist() == pytest.approx(expected)
    assert F.grpo_lead_reward([1, 1, 0], [1e300, 3e300, 50], [0, 0, 0]).tolist() == pytest.approx(expected)
