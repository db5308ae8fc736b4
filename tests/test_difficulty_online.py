"""Online difficulty: group pass rate on hand-made GRPO groups, the per-prompt EMA and its JSON state; and the
mask-area / expression-length heuristic baseline."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import group_batches

from adaptive_length_reward import (
    ColumnReward,
    ConfigError,
    MissingContextError,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
    WithContext,
    build,
)
from adaptive_length_reward.difficulty import (
    EMAPassRateDifficulty,
    HeuristicDifficulty,
    PassRateDifficulty,
    heuristic_difficulty,
    mask_area_ratio,
    pass_rate_to_difficulty,
)


def grpo_batch(correct: list[int], groups: list[object], step: int = 0, **extra: object) -> RewardBatch:
    return RewardBatch.from_completions(
        ["<think>x</think>"] * len(correct), correct=correct, group_ids=groups, step=step, **extra
    )


# ------------------------------------------------------------------------------------------------------------
# Group pass rate
# ------------------------------------------------------------------------------------------------------------


def test_pass_rate_on_hand_made_groups() -> None:
    # group "a": 4/4 solved -> 1.0; "b": 3/4 -> 3.25; "c": 1/4 -> 7.75; "d": 0/2 -> 10.0 (groups interleaved)
    batch = grpo_batch(
        [1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0],
        ["a", "b", "a", "b", "a", "b", "b", "a", "c", "c", "c", "c", "d", "d"],
    )
    values = PassRateDifficulty()(batch)
    expected = {"a": 1.0, "b": 3.25, "c": 7.75, "d": 10.0}
    assert values.tolist() == [expected[g] for g in batch.group_ids]


def test_pass_rate_from_an_accuracy_reward_and_threshold() -> None:
    # PixelThink's accuracy is 0..5; count a completion as solved only when all five terms hold
    batch = grpo_batch([0] * 4, [0, 0, 1, 1], accuracy=[5.0, 3.0, 5.0, 5.0])
    scorer = PassRateDifficulty(accuracy=ColumnReward("accuracy", low=0, high=5), pass_threshold=5.0)
    assert scorer(batch).tolist() == [5.5, 5.5, 1.0, 1.0]
    assert scorer.requires == {"accuracy", "group_ids"}
    assert PassRateDifficulty().requires == {"correct", "group_ids"}


def test_pass_rate_drives_tiered_budgets_through_with_context() -> None:
    scorer = PassRateDifficulty()
    reward = WithContext(SoftLengthPenalty(budget=TieredBudget()), [scorer], mode="overwrite")
    long = "x " * 150  # 150 words: over the easy budget (96) by 54
    batch = grpo_batch([1, 1, 0, 0], ["easy", "easy", "hard", "hard"])
    batch = batch.replace(completions=(long,) * 4, uncertainty=np.zeros(4))
    # easy group (all solved, D = 1) is penalised; hard group (none solved, D = 10) has budget 256: no penalty
    assert reward(batch).tolist() == pytest.approx([1 - 54 / 500] * 2 + [1.0] * 2)


def test_pass_rate_sees_the_whole_group_when_filling_missing_rows() -> None:
    assert not PassRateDifficulty.row_wise and not EMAPassRateDifficulty.row_wise  # group statistics
    scorer = PassRateDifficulty()
    reward = WithContext(SoftLengthPenalty(budget=TieredBudget()), [scorer])  # mode="fill_missing"
    batch = grpo_batch([1, 1, 1, 0], ["g"] * 4).replace(difficulty=[2.0, None, None, None], uncertainty=np.zeros(4))
    # the group's rate is 3/4 over all four rows (D = 3.25), not 2/3 over the three missing ones; 2.0 is kept
    assert reward.evaluate(batch).columns["difficulty"].tolist() == [2.0, 3.25, 3.25, 3.25]
    assert scorer.stats["scored"] == 4


@given(group_batches())
def test_pass_rate_difficulty_is_on_scale_and_decreases_with_the_rate(data) -> None:
    correct, _, groups = data
    values = PassRateDifficulty()(grpo_batch(correct.tolist(), groups.tolist()))
    assert ((values >= 1.0) & (values <= 10.0)).all()
    rate = np.array([correct[groups == g].mean() for g in groups])
    order = np.argsort(rate)
    assert (np.diff(values[order]) <= 1e-12).all()
    assert values == pytest.approx(1 + 9 * (1 - rate))


def test_pass_rate_errors() -> None:
    with pytest.raises(MissingContextError, match="PassRateDifficulty needs the batch column 'group_ids'"):
        PassRateDifficulty()(RewardBatch.from_completions(["a"], correct=[1]))
    with pytest.raises(TypeError, match="column 'correct': expected numbers or bools"):
        PassRateDifficulty()(grpo_batch(["yes"], [0]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="accuracy: expected a Reward, got str"):
        PassRateDifficulty(accuracy="accuracy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        pass_rate_to_difficulty([1.2])


def test_pass_rate_config_round_trip() -> None:
    scorer = PassRateDifficulty(accuracy=ColumnReward("accuracy", low=0, high=5), pass_threshold=4.0)
    rebuilt = build(json.loads(json.dumps(scorer.to_config().model_dump())))
    batch = grpo_batch([0, 0], [0, 0], accuracy=[4.0, 1.0])
    assert rebuilt == scorer and rebuilt(batch).tolist() == scorer(batch).tolist() == [5.5, 5.5]


# ------------------------------------------------------------------------------------------------------------
# EMA per prompt id
# ------------------------------------------------------------------------------------------------------------


def test_ema_across_steps_by_hand() -> None:
    scorer = EMAPassRateDifficulty(decay=0.5, prompt_column="prompt_id")
    step0 = grpo_batch([1, 1, 0, 0], [0, 0, 1, 1], step=0, prompt_id=["p", "p", "q", "q"])
    assert scorer(step0).tolist() == [1.0, 1.0, 10.0, 10.0]  # r_p = 1, r_q = 0
    step1 = grpo_batch([0, 0, 1, 1], [0, 0, 1, 1], step=1, prompt_id=["p", "p", "q", "q"])
    assert scorer(step1).tolist() == [5.5, 5.5, 5.5, 5.5]  # 0.5*1 + 0.5*0; 0.5*0 + 0.5*1
    step3 = grpo_batch([1, 1, 0, 0], [0, 0, 1, 1], step=3, prompt_id=["p", "p", "r", "r"])
    assert scorer(step3).tolist() == [3.25, 3.25, 10.0, 10.0]  # r_p = 0.5*0.5 + 0.5*1 = 0.75; r new: 0
    assert scorer.rates(["p", "q", "r"]).tolist() == [0.75, 0.5, 0.0]  # q was not in step 3: unchanged
    assert math.isnan(scorer.rates(["never"])[0]) and len(scorer) == 3


def test_ema_same_step_is_replaced_not_counted_twice() -> None:
    scorer = EMAPassRateDifficulty(decay=0.8)
    scorer(grpo_batch([1, 1], ["p", "p"], step=0))
    once = scorer(grpo_batch([0, 0], ["p", "p"], step=1)).tolist()
    twice = scorer(grpo_batch([0, 0], ["p", "p"], step=1)).tolist()  # a second reward sharing the scorer
    assert once == twice == pytest.approx([1 + 9 * (1 - 0.8)] * 2)
    assert scorer.state_dict()["prompts"][0]["count"] == 2
    with pytest.raises(ValueError, match="prompt 'p' was last observed at step 1, got step 0"):
        scorer(grpo_batch([1], ["p"], step=0))


def test_ema_prior_mode_uses_only_earlier_steps() -> None:
    scorer = EMAPassRateDifficulty(decay=0.5, include_current=False, unseen="medium")
    first = scorer(grpo_batch([0, 0], ["p", "p"], step=0))
    assert first.tolist() == [4.25, 4.25] and scorer.fallback_count == 2  # never seen before: the policy
    second = scorer(grpo_batch([1, 1], ["p", "p"], step=1))
    assert second.tolist() == [10.0, 10.0]  # what was known before step 1: r = 0
    assert scorer.rates(["p"]).tolist() == [0.5]
    with pytest.raises(MissingContextError, match="no difficulty for 1 of 1"):
        EMAPassRateDifficulty(include_current=False, unseen="error")(grpo_batch([1], ["new"], step=0))


def test_ema_state_round_trips_through_json() -> None:
    scorer = EMAPassRateDifficulty(decay=0.7)
    rng = np.random.default_rng(0)
    choices = ["a", "b", "c", 17, 3.5]  # str, int and float ids all round-trip as themselves
    for step in range(5):
        prompts = [choices[i] for i in rng.integers(0, len(choices), 12)]
        scorer(grpo_batch(rng.integers(0, 2, 12).tolist(), prompts, step=step))
    text = json.dumps(scorer.state_dict())
    restored = EMAPassRateDifficulty(decay=0.7)
    restored.load_state_dict(json.loads(text))
    assert restored.state_dict() == scorer.state_dict()
    assert {p["id"] for p in json.loads(text)["prompts"]} == set(choices)
    batch = grpo_batch([1, 0, 1, 0], ["a", "a", 17, "new"], step=5)
    assert restored(batch).tolist() == scorer(batch).tolist()
    assert restored.state_dict() == scorer.state_dict()
    with_ints = EMAPassRateDifficulty()
    with_ints(grpo_batch([1, 0], [np.int64(4), np.int64(4)]))
    state = json.loads(json.dumps(with_ints.state_dict()))
    assert state["prompts"][0]["id"] == 4
    copy = pickle.loads(pickle.dumps(scorer))
    assert copy.state_dict() == scorer.state_dict()
    assert "prompts" not in scorer.to_config().model_dump()  # the config does not carry the state


def test_ema_state_errors() -> None:
    scorer = EMAPassRateDifficulty()
    with pytest.raises(ValueError, match="expected format 'adaptive-length-reward/ema-pass-rate/1', got 'other'"):
        scorer.load_state_dict({"format": "other"})
    with pytest.raises(ValueError, match=r"prompts\[0\]: expected id, rate, before, step, count"):
        scorer.load_state_dict({"format": "adaptive-length-reward/ema-pass-rate/1", "prompts": [{"id": 1}]})
    with pytest.raises(ValueError, match=r"prompts\[0\].rate: expected a rate in \[0, 1\], got 1.5"):
        scorer.load_state_dict(
            {
                "format": "adaptive-length-reward/ema-pass-rate/1",
                "prompts": [{"id": 1, "rate": 1.5, "before": None, "step": 0, "count": 1}],
            }
        )
    scorer(grpo_batch([1], [("tuple", "id")]))
    with pytest.raises(TypeError, match="prompt ids must be str, int or float"):
        scorer.state_dict()
    scorer.reset()
    assert len(scorer) == 0
    with pytest.raises(ConfigError, match="EMAPassRateDifficulty: decay: expected < 1"):
        EMAPassRateDifficulty(decay=1.0)


def test_ema_config_round_trip() -> None:
    scorer = EMAPassRateDifficulty(decay=0.9, prompt_column="id", include_current=False, unseen=3.0)
    rebuilt = build(scorer.to_config().model_dump())
    assert rebuilt == scorer and hash(rebuilt) == hash(scorer)
    scorer(grpo_batch([1, 0], ["p", "p"], id=["p", "p"]))
    assert rebuilt != scorer  # the history changes what it scores, so equality covers it
    rebuilt.load_state_dict(scorer.state_dict())
    assert rebuilt == scorer


# ------------------------------------------------------------------------------------------------------------
# Heuristic baseline
# ------------------------------------------------------------------------------------------------------------


def test_heuristic_formula_anchors() -> None:
    assert heuristic_difficulty([0.25, 0.005, 0.0, 0.9], [3, 20, 40, 0]).tolist() == [1.0, 10.0, 10.0, 1.0]
    # area half-way on the log scale (sqrt(0.25 * 0.005)) and expression half-way (11.5 words)
    middle = heuristic_difficulty([math.sqrt(0.25 * 0.005)], [11.5])
    assert middle.tolist() == pytest.approx([5.5])
    assert heuristic_difficulty(None, [20]).tolist() == [10.0]
    assert heuristic_difficulty([0.005], None).tolist() == [10.0]
    assert math.isnan(heuristic_difficulty([np.nan], [5])[0])


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.integers(0, 60), st.integers(0, 60))
def test_heuristic_is_on_scale_and_monotone(a1: float, a2: float, n1: int, n2: int) -> None:
    low_area, high_area = sorted([a1, a2])
    few, many = sorted([n1, n2])
    harder, easier = heuristic_difficulty([low_area, high_area], [many, few])
    assert 1.0 <= easier <= harder <= 10.0


def test_heuristic_scorer_from_columns_and_masks() -> None:
    scorer = HeuristicDifficulty()
    batch = RewardBatch.from_completions(
        ["a", "b"],
        mask_area_ratio=[0.25, 0.005],
        problem=["the dog", "the small blue cup behind the lamp on the left of the shelf"],
    )
    values = scorer(batch)
    assert values[0] == 1.0 and values[1] > 8.0
    mask = np.zeros((10, 10))
    mask[:5, :5] = 1
    assert mask_area_ratio(mask) == 0.25
    by_mask = HeuristicDifficulty(mask_column="mask", expression_column=None)
    assert by_mask.requires == {"mask"}
    assert by_mask(RewardBatch.from_completions(["a"], mask=[mask])).tolist() == [1.0]
    conversational = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "w " * 20}]}]]
    text_only = HeuristicDifficulty(area_column=None)
    assert text_only(RewardBatch.from_completions(["a"], problem=conversational)).tolist() == [10.0]


def test_heuristic_missing_and_validation() -> None:
    batch = RewardBatch.from_completions(["a"], mask_area_ratio=[None], problem=["x"])
    with pytest.raises(MissingContextError, match="HeuristicDifficulty: no difficulty for 1 of 1"):
        HeuristicDifficulty()(batch)
    assert HeuristicDifficulty(missing="hard")(batch).tolist() == [7.5]
    with pytest.raises(ConfigError, match="large_area: expected > small_area"):
        HeuristicDifficulty(small_area=0.5, large_area=0.1)
    with pytest.raises(ConfigError, match="mask_column: expected None when area_column is set"):
        HeuristicDifficulty(area_column="ratio", mask_column="mask")
    with pytest.raises(ConfigError, match="got no source at all"):
        HeuristicDifficulty(area_column=None, expression_column=None)
    with pytest.raises(ValueError, match=r"area_ratio: expected values in \[0, 1\]"):
        HeuristicDifficulty()(RewardBatch.from_completions(["a"], mask_area_ratio=[2.0], problem=["x"]))
    with pytest.raises(TypeError, match=r"column 'problem'\[0\]: expected a string or chat messages"):
        HeuristicDifficulty()(RewardBatch.from_completions(["a"], mask_area_ratio=[0.1], problem=[3]))
    scorer = HeuristicDifficulty(area_weight=0.3, missing=2.0)
    assert build(scorer.to_config().model_dump()) == scorer
