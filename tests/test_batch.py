"""RewardBatch: formats accepted, validation messages, missing-context errors."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_length_reward import MissingContextError, RewardBatch


def test_from_completions_standard_and_conversational() -> None:
    batch = RewardBatch.from_completions(
        [
            "plain",
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "chat"}],
            [{"role": "assistant", "content": [{"type": "text", "text": "multi"}, {"type": "image"}]}],
        ],
        difficulty=[1, None, 3],
        group_ids=["a", "a", "b"],
        answer=["x", "y", "z"],
        step=4,
    )
    assert batch.completions == ("plain", "chat", "multi")
    assert batch.reasoning is None
    assert np.isnan(batch.difficulty[1]) and batch.difficulty[2] == 3
    assert batch.extra == {"answer": ("x", "y", "z")}
    assert batch.step == 4 and len(batch) == 3
    assert batch.group_index(by="t").tolist() == [0, 0, 1]


def test_columns_are_read_only() -> None:
    batch = RewardBatch(["a"], difficulty=[2.0])
    with pytest.raises(ValueError):
        batch.difficulty[0] = 5.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"completions": "abc"}, TypeError, "completions: expected a sequence of strings, got a single str"),
        ({"completions": ["a", 3]}, TypeError, r"completions\[1\]: expected str, got int"),
        (
            {"completions": ["a"], "difficulty": [1, 2]},
            ValueError,
            r"difficulty: expected 1 values \(one per completion\)",
        ),
        ({"completions": ["a"], "uncertainty": [np.inf]}, ValueError, "uncertainty: expected finite values"),
        ({"completions": ["a"], "lengths": [-1]}, ValueError, "lengths: expected non-negative numbers"),
        (
            {"completions": ["a"], "difficulty": ["hard"]},
            TypeError,
            r"difficulty: expected numbers \(or None for missing\)",
        ),
        ({"completions": ["a"], "step": -1}, ValueError, "step: expected a non-negative int, got -1"),
        ({"completions": ["a"], "extra": {"difficulty": [1]}}, ValueError, "'difficulty' is a context field"),
        ({"completions": ["a"], "extra": {"x": [1, 2]}}, ValueError, r"extra\['x'\]: expected 1 values"),
    ],
)
def test_invalid_batches_say_what_was_expected(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RewardBatch(**kwargs)  # type: ignore[arg-type]


def test_unsupported_completion_format() -> None:
    with pytest.raises(TypeError, match=r"completions\[0\]: expected .* chat messages with an assistant message"):
        RewardBatch.from_completions([[{"role": "user", "content": "q"}]])
    with pytest.raises(TypeError, match=r"completions\[0\]: expected a string, a chat message"):
        RewardBatch.from_completions([42])


def test_missing_column_names_it_and_who_needs_it() -> None:
    batch = RewardBatch(["a"], difficulty=[1.0])
    with pytest.raises(
        MissingContextError,
        match=r"MyReward needs the batch column 'group_ids', which is missing \(present: completions, difficulty\)",
    ):
        batch.column("group_ids", by="MyReward")


def test_replace_merges_extra_and_validates() -> None:
    batch = RewardBatch(["a", "b"], extra={"x": [1, 2]})
    new = batch.replace(difficulty=[1.0, 2.0], y=[3, 4])
    assert new.extra == {"x": (1, 2), "y": (3, 4)} and new.difficulty.tolist() == [1.0, 2.0]
    assert batch.difficulty is None
    with pytest.raises(ValueError, match="uncertainty: expected 2 values"):
        batch.replace(uncertainty=[0.1])


def test_take_keeps_every_column_of_the_rows_and_the_step() -> None:
    batch = RewardBatch.from_completions(
        ["a", "b", "c"],
        difficulty=[1.0, None, 3.0],
        group_ids=["g", "g", "h"],
        token_ids=[[1], [2, 2], [3]],
        reasoning=("r", None, "t"),
        step=7,
        score=[0.1, 0.2, 0.3],
    )
    rows = batch.take(np.array([2, 0]))
    assert rows.completions == ("c", "a") and rows.reasoning == ("t", "r") and rows.step == 7
    assert rows.difficulty.tolist() == [3.0, 1.0] and rows.group_ids == ("h", "g")
    assert rows.token_ids == ([3], [1]) and rows.extra == {"score": (0.3, 0.1)}
    assert rows.uncertainty is None and len(batch.take([])) == 0


# -- Group keys: one function per trainer layout ----------------------------------------------------------------------


def test_group_keys_of_each_trainer_layout() -> None:
    from adaptive_length_reward.batch import (
        consecutive_group_ids,
        dense_group_index,
        group_ids_from_blocks,
        group_ids_from_uids,
    )

    # TRL: runs of equal prompts; a prompt that comes back later is a new group (another GRPO group).
    assert consecutive_group_ids(["p", "p", "q", "q", "q", "p"]) == [0, 0, 1, 1, 1, 2]
    assert consecutive_group_ids([1, 2, 3], same=lambda a, b: abs(a - b) < 2) == [0, 0, 0]
    # verl: the DataProto's uid column (numpy strings become str); rows of a group need not be adjacent.
    uids = np.array(["u1", "u2", "u1", "u2"], dtype=object)
    assert group_ids_from_uids(uids) == ["u1", "u2", "u1", "u2"]
    assert group_ids_from_uids(np.array(["a", "b"])) == ["a", "b"]
    assert dense_group_index(group_ids_from_uids(uids)).tolist() == [0, 1, 0, 1]
    # OpenRLHF: n_samples_per_prompt consecutive rows per prompt.
    assert group_ids_from_blocks(6, samples_per_prompt=2) == [0, 0, 1, 1, 2, 2]
    batch = RewardBatch(["a"] * 4, group_ids=group_ids_from_uids(["x", "y", "y", "x"]))
    assert batch.group_index(by="t").tolist() == [0, 1, 1, 0]


def test_group_keys_refuse_what_cannot_be_a_group() -> None:
    from adaptive_length_reward.batch import group_ids_from_blocks, group_ids_from_uids

    with pytest.raises(ValueError, match=r"uids\[1\]: expected the prompt's uid, got None"):
        group_ids_from_uids(["a", None])
    with pytest.raises(ValueError, match=r"uids\[0\]: expected the prompt's uid, got nan"):
        group_ids_from_uids([float("nan")])
    with pytest.raises(TypeError, match="expected hashable ids"):
        group_ids_from_uids([["list"]])
    with pytest.raises(ValueError, match="a group must not be split across calls"):
        group_ids_from_blocks(5, samples_per_prompt=2)
    with pytest.raises(ValueError, match="samples_per_prompt: expected an int >= 1, got 0"):
        group_ids_from_blocks(4, samples_per_prompt=0)


def test_group_rewards_see_the_same_groups_from_every_layout() -> None:
    from adaptive_length_reward import ShorterBetterReward
    from adaptive_length_reward.batch import consecutive_group_ids, group_ids_from_blocks, group_ids_from_uids

    completions = ["a b c", "a", "a b", "a b c d"]
    correct = [1, 1, 0, 1]
    layouts = [
        consecutive_group_ids(["p", "p", "q", "q"]),
        group_ids_from_uids(["u", "u", "v", "v"]),
        group_ids_from_blocks(4, samples_per_prompt=2),
    ]
    scores = [ShorterBetterReward()(completions=completions, correct=correct, group_ids=ids) for ids in layouts]
    for other in scores[1:]:
        np.testing.assert_array_equal(other, scores[0])
    np.testing.assert_allclose(scores[0], [2 - 0.002, 2.0, -0.002, 2.0])
