"""One suite over every public reward: shape and dtype, documented range, pickling, ``__name__``, unknown
context ignored, missing required context named, config round trip.

Every registered reward kind must have a case here (``test_every_registered_reward_has_a_case``), so a new
reward cannot skip the suite.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import adaptive_length_reward as alr
from adaptive_length_reward import MissingContextError, Reward, RewardBatch, build
from adaptive_length_reward.config import _REGISTRY

RESPONSES = [
    "<think>the red square is left of the circle</think>"
    '<answer>{"bbox": [1, 2, 30, 40], "points_1": [5, 6], "points_2": [7, 8]}</answer>',
    "<think>" + "long thinking " * 300 + "</think><answer>x</answer>",
    "<think>truncated mid thou",
    "",
    "no tags at all, just words " * 20,
    "<answer>{}</answer>",
]
N = len(RESPONSES)

CONTEXT: dict[str, Any] = {
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

ACC = alr.ColumnReward("accuracy", low=0.0, high=5.0)

# name -> factory. Kinds of rewards registered by other modules are added to this table with their batches.
CASES: dict[str, Callable[[], Reward]] = {
    "column": lambda: ACC,
    "soft_length_penalty": lambda: alr.SoftLengthPenalty(),
    "soft_length_penalty_bonus": lambda: alr.SoftLengthPenalty(budget=alr.LinearBudget(), bonus_cap=0.5),
    "l1_exact": lambda: alr.L1ExactReward(budget=alr.ColumnBudget()),
    "l1_max": lambda: alr.L1MaxReward(budget=alr.FixedBudget(64), correctness=ACC, correct_threshold=4.0),
    "dapo_overlong": lambda: alr.DAPOOverlongPenalty(max_length=500, cache_length=100),
    "cosine_length": lambda: alr.CosineLengthReward(max_length=300, exceed_penalty=-2.0),
    "kimi_length": lambda: alr.KimiLengthReward(),
    "shorter_better": lambda: alr.ShorterBetterReward(length=alr.PrecomputedLength()),
    "alp": lambda: alr.ALPReward(normalizer=512),
    "weighted_sum": lambda: alr.WeightedSum([ACC, alr.KimiLengthReward()], [1.0, alr.LinearSchedule()]),
    "product": lambda: alr.Product([ACC, alr.SoftLengthPenalty()], name="pixelthink_like"),
    "gate": lambda: alr.Gate(
        alr.SoftLengthPenalty(budget=alr.FixedBudget(20)), condition=alr.ColumnReward("correct"), otherwise=1.0
    ),
    "clip": lambda: alr.Clip(alr.L1ExactReward(budget=alr.FixedBudget(10)), low=-1.0, high=1.0),
    "with_context": lambda: alr.WithContext(
        alr.SoftLengthPenalty(budget=alr.FixedBudget(30)), [_DifficultyFromLength()]
    ),
    "seg_thinking_format": lambda: alr.ThinkingFormatReward(),
    "seg_segmentation_format": lambda: alr.SegmentationFormatReward(),
    "seg_box_iou": lambda: alr.BoxIoUReward(threshold=0.5),
    "seg_box_l1": lambda: alr.BoxL1Reward(threshold=10.0),
    "seg_point_match": lambda: alr.PointMatchReward(threshold=100.0),
    "seg_accuracy": lambda: alr.SegmentationAccuracy(),
    "pixelthink_preset": lambda: alr.pixelthink(),
    "pixelthink_preset_official_fallbacks": lambda: alr.pixelthink(missing_difficulty=3.0, missing_uncertainty=0.0),
    "seg_zero_preset": lambda: alr.seg_zero(),
    "grpo_lead": lambda: alr.GRPOLeadReward(),
    "laser": lambda: alr.LASERReward(budget=alr.FixedBudget(64), correctness=ACC, correct_threshold=4.0),
    "laser_d": lambda: alr.LASERDReward(length=alr.PrecomputedLength(), max_target=50),
    "hapo": lambda: alr.HAPOReward(problem_column="group_ids"),
    "adaptthink": lambda: alr.AdaptThinkReward(reference_column="uncertainty"),
    "soft_length_penalty_only_correct": lambda: alr.SoftLengthPenalty(only_correct=True),
}


class _DifficultyFromLength(alr.ContextProvider):
    """Test-only provider without a config (exercises the opaque path)."""

    provides = "difficulty"

    def __call__(self, batch: RewardBatch) -> np.ndarray:
        return np.array([min(10.0, len(t) / 100) for t in batch.completions])


def make_batch(drop: str | None = None, **more: Any) -> RewardBatch:
    context = {k: v for k, v in CONTEXT.items() if k != drop}
    return RewardBatch.from_completions(RESPONSES, **context, **more)


@pytest.fixture(params=sorted(CASES))
def reward(request: pytest.FixtureRequest) -> Reward:
    return CASES[request.param]()


def test_every_registered_reward_has_a_case() -> None:
    library = {kind: cls for kind, (_, cls) in _REGISTRY.items() if cls.__module__.startswith("adaptive_length_reward")}
    reward_kinds = {kind for kind, cls in library.items() if issubclass(cls, Reward)}  # not the tests' own kinds
    covered = {CASES[name]().kind for name in CASES}
    assert reward_kinds - covered == set(), "add a conformance case for these reward kinds"


def test_shape_dtype_and_documented_range(reward: Reward) -> None:
    out = reward(make_batch())
    assert out.shape == (N,) and out.dtype == np.float64
    low, high = reward.bounds
    assert np.isfinite(out).all()
    assert (out >= low).all() and (out <= high).all(), (out, reward.bounds)


def test_pickle_round_trip_and_name(reward: Reward) -> None:
    clone = pickle.loads(pickle.dumps(reward))
    assert isinstance(reward.__name__, str) and reward.__name__ and "/" not in reward.__name__
    assert clone.__name__ == reward.__name__
    np.testing.assert_array_equal(clone(make_batch()), reward(make_batch()))


def test_unknown_context_is_ignored(reward: Reward) -> None:
    noisy = make_batch(some_unknown_column=list(range(N)), another=["x"] * N)
    np.testing.assert_array_equal(reward(noisy), reward(make_batch()))


def test_missing_required_context_is_named(reward: Reward) -> None:
    for name in sorted(reward.requires):
        with pytest.raises(MissingContextError, match=f"'{name}'"):
            reward(make_batch(drop=name))


def test_config_round_trip_through_json(reward: Reward) -> None:
    config = reward.to_config()
    if "opaque" in config.model_dump_json():
        with pytest.raises(alr.ConfigError, match="cannot build"):
            build(json.loads(config.model_dump_json()))
        return
    rebuilt = build(json.loads(config.model_dump_json()))
    assert rebuilt.to_config() == config
    assert rebuilt.to_config().model_dump() == config.model_dump()
    np.testing.assert_array_equal(rebuilt(make_batch()), reward(make_batch()))


def test_components_and_columns_are_per_sample(reward: Reward) -> None:
    out = reward.evaluate(make_batch())
    for key, values in {**out.components, **out.columns}.items():
        assert np.asarray(values).shape == (N,), key
