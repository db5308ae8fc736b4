"""Reward composition: weighted sums with schedules, products, gates, clipping, context providers, naming."""

from __future__ import annotations

import pickle
from typing import ClassVar

import numpy as np
import pytest

from adaptive_length_reward import (
    Clip,
    ColumnReward,
    ContextProvider,
    CosineSchedule,
    FixedBudget,
    Gate,
    LinearSchedule,
    Product,
    RewardBatch,
    SoftLengthPenalty,
    StepSchedule,
    WeightedSum,
    WithContext,
)

ACC = ColumnReward("accuracy")
PEN = SoftLengthPenalty(budget=FixedBudget(2))


def batch(**extra: object) -> RewardBatch:
    return RewardBatch.from_completions(["a b", "a b c d", "a b c d e f g"], accuracy=[1.0, 3.0, 5.0], **extra)


def test_product_is_pixelthink_shape_and_reports_components() -> None:
    out = Product([ACC, PEN]).evaluate(batch())
    # s(L, 2) with beta = 1/500: L=2 -> 1, L=4 -> 0.996, L=7 -> 0.99.
    np.testing.assert_allclose(out.rewards, [1.0, 3.0 * 0.996, 5.0 * 0.99])
    assert list(out.components) == ["accuracy", "soft_length_penalty"]
    np.testing.assert_allclose(out.components["soft_length_penalty"], [1.0, 0.996, 0.99])
    assert out.columns["length"].tolist() == [2, 4, 7] and out.columns["budget"].tolist() == [2, 2, 2]
    assert (ACC * PEN).to_config() == Product([ACC, PEN]).to_config()


def test_weighted_sum_with_schedules_follows_the_step() -> None:
    reward = WeightedSum([ACC, PEN], [1.0, LinearSchedule(start=0.0, end=2.0, begin_step=0, end_step=10)])
    assert reward(batch(step=0)).tolist() == [1.0, 3.0, 5.0]
    np.testing.assert_allclose(reward(batch(step=5)), [2.0, 3.996, 5.99])
    np.testing.assert_allclose(reward(batch(step=50)), [3.0, 4.992, 6.98])
    assert reward.bounds == (-np.inf, np.inf)  # a scheduled weight has no static bound
    assert WeightedSum([ACC, PEN], [2.0, -1.0]).bounds == (-np.inf, np.inf)  # ACC is unbounded
    assert WeightedSum([PEN, PEN], [2.0, -1.0]).bounds == (-1.0, 2.0)


def test_weight_zero_logs_only() -> None:
    out = WeightedSum([ACC, PEN], [1.0, 0.0]).evaluate(batch())
    assert out.rewards.tolist() == [1.0, 3.0, 5.0]
    assert "soft_length_penalty" in out.components


def test_schedules() -> None:
    assert LinearSchedule(start=1, end=0, begin_step=10, end_step=20)(15) == 0.5
    assert CosineSchedule(start=1, end=0, begin_step=0, end_step=10)(5) == pytest.approx(0.5)
    assert CosineSchedule(start=1, end=0, begin_step=0, end_step=10)(0) == 1.0
    step = StepSchedule(boundaries=(10, 20), values=(0.0, 0.5, 1.0))
    assert [step(s) for s in (0, 9, 10, 19, 20, 99)] == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]


def test_gate_applies_term_only_where_condition_holds() -> None:
    # Length penalty only for correct answers; wrong ones keep 1.0 (an L1-Max / Kimi-style gating).
    gated = Gate(PEN, condition=ColumnReward("correct"), threshold=1.0, otherwise=1.0)
    out = gated.evaluate(batch(correct=[1, 0, 1]))
    np.testing.assert_allclose(out.rewards, [1.0, 1.0, 0.99])
    assert out.columns["gate_open"].tolist() == [True, False, True]


def test_clip() -> None:
    assert Clip(ACC, low=2.0, high=4.0)(batch()).tolist() == [2.0, 3.0, 4.0]
    assert Clip(ACC, low=2.0, high=4.0).bounds == (2.0, 4.0)


def test_duplicate_names_are_suffixed_and_nested_components_prefixed() -> None:
    inner = Product([ACC, PEN], name="shaped")
    out = WeightedSum([inner, ACC]).evaluate(batch())
    assert set(out.components) == {"shaped", "shaped/accuracy", "shaped/soft_length_penalty", "accuracy"}
    out = WeightedSum([ACC, ACC]).evaluate(batch())
    assert list(out.components) == ["accuracy", "accuracy_2"]


def test_requirements_are_checked_before_any_work() -> None:
    with pytest.raises(Exception, match="'accuracy'"):
        Product([ACC, PEN])(completions=["a"])


class _Counter(ContextProvider):
    """A provider that fills 'difficulty' with the word count (test-only)."""

    provides: ClassVar[str] = "difficulty"
    calls = 0

    def __call__(self, batch: RewardBatch) -> np.ndarray:
        _Counter.calls += 1
        return np.array([len(t.split()) for t in batch.completions], dtype=float)


def test_with_context_fills_missing_or_overwrites() -> None:
    from adaptive_length_reward import TieredBudget

    reward = SoftLengthPenalty(budget=TieredBudget(budgets=(1.0, 1.0, 1.0), uncertainty_scales=(0, 0, 0)))
    b = RewardBatch(["a b c", "a b c d e f g h"], difficulty=[np.nan, 2.0])
    out = WithContext(reward, [_Counter()]).evaluate(b)
    assert out.columns["difficulty"].tolist() == [3.0, 2.0]  # only the missing entry was filled
    out = WithContext(reward, [_Counter()], mode="overwrite").evaluate(b)
    assert out.columns["difficulty"].tolist() == [3.0, 8.0]
    assert "difficulty" not in WithContext(reward, [_Counter()]).requires
    assert WithContext(reward, [_Counter()]).name == "soft_length_penalty"


def test_names_and_pickling() -> None:
    reward = Product([ACC, PEN], name="pixelthink")
    assert reward.__name__ == "pixelthink" and reward.name == "pixelthink"
    assert Product.__name__ == "Product"
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "pixelthink" and clone(batch()).tolist() == reward(batch()).tolist()
    with pytest.raises(ValueError, match="name: expected a non-empty string without '/'"):
        Product([ACC], name="a/b")


def test_bad_terms() -> None:
    with pytest.raises(TypeError, match=r"Product: terms\[1\]: expected a Reward, got int"):
        Product([ACC, 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="WeightedSum: terms: expected a non-empty sequence"):
        WeightedSum([])
    with pytest.raises(ValueError, match=r"WeightedSum: weights\[0\]: expected a finite number or a Schedule"):
        WeightedSum([ACC], [float("nan")])


def test_non_finite_output_is_an_error_not_a_score() -> None:
    from adaptive_length_reward import Reward

    class Broken(Reward):
        def _evaluate(self, batch: RewardBatch) -> np.ndarray:
            return np.full(len(batch), np.nan)

    with pytest.raises(FloatingPointError, match="Broken 'broken' produced a non-finite reward"):
        Broken()(completions=["a"])


def test_column_reward_validates_values() -> None:
    with pytest.raises(ValueError, match=r"column 'accuracy': expected values in \[0.0, 1.0\]"):
        ColumnReward("accuracy", low=0, high=1)(batch())


def test_components_without_config_compose_but_cannot_be_rebuilt() -> None:
    from adaptive_length_reward import ConfigError, build

    reward = WithContext(SoftLengthPenalty(), [_Counter()])
    dumped = reward.to_config().model_dump()
    assert dumped["providers"][0] == {"kind": "opaque", "type": "test_reward._Counter"}
    with pytest.raises(ConfigError, match="cannot build test_reward._Counter from a config"):
        build(dumped)


def test_default_names_are_snake_case_with_whole_acronyms() -> None:
    from adaptive_length_reward import ALPReward, DAPOOverlongPenalty, KimiLengthReward, L1ExactReward

    assert DAPOOverlongPenalty().__name__ == "dapo_overlong_penalty"
    assert ALPReward().__name__ == "alp_reward"
    assert L1ExactReward(budget=FixedBudget(1)).__name__ == "l1_exact_reward"
    assert KimiLengthReward().__name__ == "kimi_length_reward"
    assert SoftLengthPenalty().__name__ == "soft_length_penalty"


def test_product_is_sign_safe_with_a_length_multiplier() -> None:
    # Base -1 for all three: a plain product would give -1 * [1, 0.996, 0.99] = [-1, -0.996, -0.99], so the longest
    # completion would score highest. Sign-safe: -1 * (2 - s) = [-1, -1.004, -1.01].
    out = Product([ColumnReward("accuracy"), PEN]).evaluate(batch().replace(accuracy=[-1.0, -1.0, -1.0]))
    np.testing.assert_allclose(out.rewards, [-1.0, -1.004, -1.01])
    assert np.all(np.diff(out.rewards) < 0)
    # Mixed signs: each row by its own base's sign; a base of 0 stays 0.
    mixed = Product([PEN, ColumnReward("accuracy")])(batch().replace(accuracy=[2.0, 0.0, -3.0]))
    np.testing.assert_allclose(mixed, [2.0, 0.0, -3.0 * (2 - 0.99)])
    # Where no term is a length multiplier, Product is the plain product (negative times negative included).
    plain = Product([ColumnReward("accuracy"), ColumnReward("other")])
    np.testing.assert_allclose(
        plain(batch().replace(accuracy=[-1.0, -2.0, 3.0], other=[-2.0, 0.5, -1.0])), [2.0, -1.0, -3.0]
    )


def test_product_bounds_cover_the_sign_safe_branch() -> None:
    base = ColumnReward("accuracy", low=-1.0, high=2.0)
    assert Product([base, PEN]).bounds == (-2.0, 2.0)  # -1 * (2 - 0) at the low end
    assert Product([ColumnReward("accuracy", low=0.0, high=5.0), PEN]).bounds == (0.0, 5.0)
    bonus = SoftLengthPenalty(budget=FixedBudget(2), bonus_cap=0.5)
    assert Product([base, bonus]).bounds == (-2.0, 3.0)
    assert PEN.length_multiplier and Gate(PEN, condition=ACC, otherwise=1.0).length_multiplier
    assert not Gate(PEN, condition=ACC, otherwise=0.0).length_multiplier and not ACC.length_multiplier
