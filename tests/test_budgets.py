"""Budget policies: PixelThink tier defaults, boundaries, missing-value policies, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import difficulty_st, uncertainty_st

from adaptive_length_reward import (
    NO_PENALTY,
    ColumnBudget,
    ConfigError,
    FixedBudget,
    LinearBudget,
    MissingContextError,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
)
from adaptive_length_reward.budgets import Budgets
from adaptive_length_reward.tiers import (
    DEFAULT_TIER_NAMES,
    TierLayout,
    check_tiers,
    tier_histogram,
    tier_index,
    tier_names,
    tier_value,
)


def batch(
    difficulty: list[float | None], uncertainty: list[float | None] | None = None, **extra: object
) -> RewardBatch:
    n = len(difficulty)
    return RewardBatch.from_completions(["x"] * n, difficulty=difficulty, uncertainty=uncertainty, **extra)


def test_tiered_defaults_are_pixelthink() -> None:
    # Official seg_pixelthink.py: easy D < 3.5 -> 96; 3.5 <= D < 5.0 -> no penalty; D >= 5.0 -> 256 + 25 U.
    policy = TieredBudget()
    b = batch([1.0, 3.49, 3.5, 4.99, 5.0, 9.0], [0.0, 0.0, 0.0, 0.0, 0.4, 1.0])
    np.testing.assert_array_equal(policy(b), [96, 96, NO_PENALTY, NO_PENALTY, 266.0, 281.0])
    assert policy.tiers(b).tolist() == ["easy", "easy", "medium", "medium", "hard", "hard"]


def test_tiered_is_fully_configurable() -> None:
    policy = TieredBudget(
        thresholds=(2.0,), names=("short", "long"), budgets=(50.0, 100.0), uncertainty_scales=(10.0, -20.0)
    )
    np.testing.assert_allclose(policy(batch([1.0, 3.0], [0.5, 0.5])), [55.0, 90.0])
    np.testing.assert_allclose(policy(batch([3.0], [1.0])), [80.0])
    # Budgets never go below 0, whatever the scale.
    steep = TieredBudget(thresholds=(2.0,), names=("a", "b"), budgets=(50.0, 100.0), uncertainty_scales=(0.0, -200.0))
    np.testing.assert_allclose(steep(batch([3.0], [1.0])), [0.0])


def test_tiered_missing_difficulty_policies() -> None:
    with pytest.raises(MissingContextError, match=r"needs 'difficulty', which is missing \(NaN\) for samples \[1\]"):
        TieredBudget()(batch([2.0, None]))
    assert TieredBudget().requires == {"difficulty"}
    # Official loader falls back to 3.0 (easy tier); expressible as a value or as a tier name.
    assert TieredBudget(missing_difficulty=3.0)(batch([None]))[0] == 96
    assert TieredBudget(missing_difficulty="medium")(batch([None, 1.0])).tolist() == [NO_PENALTY, 96]
    no_column = RewardBatch(["a", "b"])
    assert TieredBudget(missing_difficulty="easy")(no_column).tolist() == [96, 96]
    assert "difficulty" not in TieredBudget(missing_difficulty="easy").requires


def test_tiered_uncertainty_needed_only_by_scaled_tiers() -> None:
    # Easy and medium samples need no uncertainty; a hard one does, and the error names it and the sample.
    assert TieredBudget()(batch([1.0, 4.0])).tolist() == [96, NO_PENALTY]
    with pytest.raises(MissingContextError, match=r"needs 'uncertainty', which is missing \(NaN\) for samples \[1\]"):
        TieredBudget()(batch([1.0, 6.0]))
    with pytest.raises(MissingContextError, match=r"samples \[0\]"):
        TieredBudget()(batch([6.0, 6.0], [None, 0.5]))
    assert TieredBudget(missing_uncertainty=0.0)(batch([6.0])).tolist() == [256.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": (5.0, 3.5)}, "thresholds: expected finite, strictly increasing numbers, got (5.0, 3.5)"),
        ({"budgets": (96.0, None)}, "budgets: expected 3 entries"),
        ({"budgets": (-1.0, None, 2.0)}, "budgets: expected each >= 0"),
        ({"names": ("a", "a", "b")}, "names: expected 3 distinct"),
        ({"missing_difficulty": "hardest"}, "missing_difficulty: expected 'error', a tier name"),
        ({"uncertainty_scales": (0.0, 0.0, math.inf)}, "uncertainty_scales: expected finite numbers"),
    ],
)
def test_tiered_invalid_config(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="TieredBudget: " + message.replace("(", r"\(").replace(")", r"\)")):
        TieredBudget(**kwargs)  # type: ignore[arg-type]


@given(difficulty_st, uncertainty_st, uncertainty_st)
def test_hard_tier_budget_non_decreasing_in_uncertainty(d: float, u1: float, u2: float) -> None:
    low, high = sorted((u1, u2))
    policy = TieredBudget()
    b_low, b_high = policy(batch([d], [low]))[0], policy(batch([d], [high]))[0]
    assert b_low <= b_high
    assert b_low == 96 or b_low == NO_PENALTY or 256 <= b_low <= 281


@given(st.lists(st.tuples(difficulty_st, uncertainty_st), min_size=1, max_size=30))
def test_linear_budget_clamped_and_monotone(samples: list[tuple[float, float]]) -> None:
    policy = LinearBudget()
    d, u = zip(*samples)
    b = policy(batch(list(d), list(u)))
    assert ((b >= 32) & (b <= 512)).all()
    shifted = policy(batch([x + 1 for x in d], list(u)))
    assert (shifted >= b).all()


def test_linear_budget_values_and_policies() -> None:
    # Defaults: B = 32 + 32 D + 25 U, clamped to [32, 512]: D=2 -> 96; D=7, U=0 -> 256; D=20 -> 512.
    np.testing.assert_allclose(LinearBudget()(batch([2.0, 7.0, 20.0], [0.0, 0.0, 0.0])), [96, 256, 512])
    assert LinearBudget(uncertainty_slope=0).requires == {"difficulty"}
    with pytest.raises(MissingContextError, match="'uncertainty'"):
        LinearBudget()(batch([2.0], [None]))
    assert LinearBudget(missing_uncertainty=1.0)(batch([2.0], [None]))[0] == 121
    with pytest.raises(ConfigError, match=r"max_budget: expected >= min_budget \(100.0\), got 10.0"):
        LinearBudget(min_budget=100, max_budget=10)


def test_fixed_and_column_budgets() -> None:
    b = batch([1.0, 2.0], target_length=[100, None])
    assert FixedBudget(300)(b).tolist() == [300, 300]
    assert FixedBudget()(b).tolist() == [NO_PENALTY, NO_PENALTY]
    assert ColumnBudget()(b).tolist() == [100, NO_PENALTY]
    with pytest.raises(ValueError, match="expected budgets >= 0"):
        ColumnBudget()(batch([1.0], target_length=[-5]))
    with pytest.raises(ConfigError, match=r"FixedBudget: budget: expected >= 0, got -1"):
        FixedBudget(-1)


# ------------------------------------------------------------------------------------------------------------
# Budgets and tiers together; one tier layout
# ------------------------------------------------------------------------------------------------------------


def test_assign_returns_budgets_and_tiers_together() -> None:
    b = batch([1.0, 4.0, None, 7.0], [0.0, 0.0, 0.0, 0.2])
    assigned = TieredBudget(missing_difficulty="hard").assign(b)
    assert isinstance(assigned, Budgets)
    np.testing.assert_array_equal(assigned.values, [96.0, NO_PENALTY, 256.0, 261.0])
    assert assigned.tiers is not None and assigned.tiers.tolist() == ["easy", "medium", "hard", "hard"]
    fixed = FixedBudget(12).assign(b)
    assert fixed.tiers is None and fixed.values.tolist() == [12.0] * 4
    assert FixedBudget(12).tiers(b) is None


def test_a_numeric_missing_difficulty_places_the_sample_in_that_values_tier() -> None:
    # missing_difficulty places a sample in a tier; it does not write a difficulty (see adaptive_length_reward.tiers).
    b = batch([None, None], [0.0, 0.0])
    assert TieredBudget(missing_difficulty=4.25).tiers(b).tolist() == ["medium", "medium"]
    assert TieredBudget(missing_difficulty="medium").tiers(b).tolist() == ["medium", "medium"]
    assert TieredBudget(missing_difficulty=3.0).tiers(b).tolist() == ["easy", "easy"]


def test_the_tiered_budget_uses_the_one_tier_layout() -> None:
    policy = TieredBudget(
        thresholds=(2.0, 6.0, 8.0), names=("a", "b", "c", "d"), budgets=(1, 2, 3, 4), uncertainty_scales=(0, 0, 0, 0)
    )
    assert policy.layout == TierLayout((2.0, 6.0, 8.0), ("a", "b", "c", "d"))
    values = [1.0, 2.0, 5.9, 6.0, 8.0, 10.0]
    assert (
        policy.tiers(batch(values)).tolist()
        == policy.layout.labels(values).tolist()
        == tier_names(values, (2.0, 6.0, 8.0), ("a", "b", "c", "d")).tolist()
        == ["a", "b", "b", "c", "d", "d"]
    )


@given(st.lists(st.one_of(st.none(), st.floats(1.0, 10.0)), min_size=1, max_size=20))
def test_every_tier_reader_agrees(values: list[float | None]) -> None:
    difficulty = np.array([np.nan if v is None else v for v in values])
    layout = TierLayout()
    index = layout.index(difficulty)
    assert tier_index(difficulty).tolist() == index.tolist()
    labels = ["missing" if i < 0 else DEFAULT_TIER_NAMES[i] for i in index]
    assert layout.labels(difficulty).tolist() == tier_names(difficulty).tolist() == labels
    assert tier_histogram(difficulty) == {name: labels.count(name) for name in (*DEFAULT_TIER_NAMES, "missing")}
    policy = TieredBudget(missing_difficulty="medium", missing_uncertainty=0.0)
    expected = ["medium" if v is None else label for v, label in zip(values, labels)]
    assert policy.tiers(batch(values)).tolist() == expected


def test_tier_values_and_layout_checks() -> None:
    layout = TierLayout()
    assert [layout.value(name) for name in DEFAULT_TIER_NAMES] == [2.25, 4.25, 7.5]
    assert tier_value("medium") == 4.25 and layout.interval(2) == (5.0, 10.0)
    with pytest.raises(ValueError, match=r"tier_value: tier: expected one of \['easy', 'medium', 'hard'\], got 'x'"):
        layout.value("x")
    with pytest.raises(ValueError, match="owner: thresholds: expected finite, strictly increasing numbers"):
        TierLayout((5.0, 3.5)).check(owner="owner")
    with pytest.raises(ValueError, match="owner: tier_names: expected 3 distinct non-empty names"):
        check_tiers((3.5, 5.0), ("a", "a", "b"), owner="owner")
    with pytest.raises(ValueError, match="'missing' is reserved"):
        TierLayout(names=("easy", "missing", "hard")).check(owner="owner")
    lines = layout.describe({"easy": 1, "medium": 0, "hard": 2, "missing": 1})
    assert [line.split()[0] for line in lines] == ["easy", "medium", "hard", "missing"]
    assert "[5, 10]" in lines[2] and "50.0%" in lines[2]


def test_the_tier_index_runs_once_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = TieredBudget.tier_index
    monkeypatch.setattr(TieredBudget, "tier_index", lambda self, b: calls.append(1) or original(self, b))
    penalty = SoftLengthPenalty(budget=TieredBudget())
    output = penalty.evaluate(batch([1.0, 4.0, 6.0], [0.0, 0.0, 0.5]))
    assert calls == [1]
    assert output.columns["tier"].tolist() == ["easy", "medium", "hard"]
