"""The evaluation graph: every node (reward, length counter, budget, parser, context provider) runs once per
``evaluate``, however many parents use it, and a row-wise context provider sees only the rows that miss its column.

Each test wraps the nodes' computations with counters and asserts the exact counts of one ``evaluate``.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import adaptive_length_reward as alr
from adaptive_length_reward import segmentation
from adaptive_length_reward.difficulty import PassRateDifficulty

GT = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
GOOD = '<think>look</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
OFF = '<think>hmm</think><answer>{"bbox": [50, 50, 60, 60], "points_1": [1, 1], "points_2": [2, 2]}</answer>'
COMPLETIONS = [GOOD, "<think>" + "w " * 400 + GOOD[len("<think>") :], OFF, "no answer", GOOD, OFF, "", GOOD]
CONTEXT: dict[str, Any] = {
    "ground_truth": [GT] * 8,
    "difficulty": [2.0, 2.0, 4.0, 6.0, 6.0, 9.0, 1.0, 3.5],
    "uncertainty": [0.1, 0.5, 0.0, 0.9, 0.2, 0.3, 0.0, 0.4],
    "group_ids": [0, 0, 0, 0, 1, 1, 1, 1],
    "target_length": [10, 100, 1000, None, 50, 5, 20, 200],
}

# The computations counted: (owner, attribute).
NODES: list[tuple[Any, str]] = [
    (alr.Product, "_evaluate"),
    (alr.WeightedSum, "_evaluate"),
    (alr.WithContext, "_evaluate"),
    (alr.SegmentationAccuracy, "_evaluate"),
    (alr.SoftLengthPenalty, "_evaluate"),
    (alr.L1MaxReward, "_evaluate"),
    (alr.KimiLengthReward, "_evaluate"),
    (alr.WhitespaceWords, "_count"),
    (alr.TieredBudget, "_budgets"),
    (alr.TieredBudget, "tier_index"),
    (alr.ColumnBudget, "_budgets"),
    (PassRateDifficulty, "_score"),
    (segmentation, "_read_answers"),
]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts of every node in :data:`NODES`, keyed ``Owner.attribute``."""
    counts: collections.Counter[str] = collections.Counter()
    for owner, attribute in NODES:
        original = getattr(owner, attribute)
        label = f"{owner.__name__.rsplit('.', 1)[-1]}.{attribute}"

        def counted(*args: Any, _original: Callable[..., Any] = original, _label: str = label, **kwargs: Any) -> Any:
            counts[_label] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, functools.wraps(original)(counted))
    return counts


def batch(**changes: Any) -> alr.RewardBatch:
    return alr.RewardBatch.from_completions(COMPLETIONS, **{**CONTEXT, **changes})


def evaluate(reward: alr.Reward, counts: collections.Counter[str], data: alr.RewardBatch) -> dict[str, int]:
    counts.clear()
    reward.evaluate(data)
    return dict(counts)


#: The nodes of the PixelThink preset, each run once.
PIXELTHINK_NODES = {
    "Product._evaluate": 1,
    "SegmentationAccuracy._evaluate": 1,
    "segmentation._read_answers": 1,
    "SoftLengthPenalty._evaluate": 1,
    "WhitespaceWords._count": 1,
    "TieredBudget._budgets": 1,
    "TieredBudget.tier_index": 1,
}


def test_pixelthink_runs_each_node_once(calls: collections.Counter[str]) -> None:
    assert evaluate(alr.pixelthink(), calls, batch()) == PIXELTHINK_NODES


def test_the_memo_lives_for_one_evaluate(calls: collections.Counter[str]) -> None:
    reward, data = alr.pixelthink(), batch()
    calls.clear()
    reward.evaluate(data)
    reward.evaluate(data)
    assert calls["SegmentationAccuracy._evaluate"] == calls["TieredBudget.tier_index"] == 2


def test_seg_zero_parses_once(calls: collections.Counter[str]) -> None:
    assert evaluate(alr.seg_zero(), calls, batch()) == {
        "SegmentationAccuracy._evaluate": 1,
        "segmentation._read_answers": 1,
    }


@pytest.mark.parametrize("combine", [alr.WeightedSum, alr.Product])
def test_l1_max_on_segmentation_accuracy_shares_the_accuracy(
    calls: collections.Counter[str], combine: Callable[[list[alr.Reward]], alr.Reward]
) -> None:
    l1 = alr.L1MaxReward(budget=alr.ColumnBudget(), correctness=alr.SegmentationAccuracy(), correct_threshold=5.0)
    reward = combine([alr.SegmentationAccuracy(), l1])  # two equal accuracy nodes, built separately
    assert evaluate(reward, calls, batch()) == {
        f"{combine.__name__}._evaluate": 1,
        "SegmentationAccuracy._evaluate": 1,
        "segmentation._read_answers": 1,
        "L1MaxReward._evaluate": 1,
        "WhitespaceWords._count": 1,
        "ColumnBudget._budgets": 1,
    }


def test_kimi_on_segmentation_accuracy_shares_the_accuracy(calls: collections.Counter[str]) -> None:
    accuracy = alr.SegmentationAccuracy()
    reward = accuracy + alr.KimiLengthReward(correctness=accuracy, correct_threshold=5.0)
    assert evaluate(reward, calls, batch()) == {
        "WeightedSum._evaluate": 1,
        "SegmentationAccuracy._evaluate": 1,
        "segmentation._read_answers": 1,
        "KimiLengthReward._evaluate": 1,
        "WhitespaceWords._count": 1,
    }


def test_length_rewards_share_one_counter_and_one_budget(calls: collections.Counter[str]) -> None:
    budget = alr.TieredBudget(missing_uncertainty=0.0)
    reward = alr.WeightedSum(
        [alr.SoftLengthPenalty(budget=budget), alr.L1MaxReward(budget=alr.TieredBudget(missing_uncertainty=0.0))]
    )
    assert evaluate(reward, calls, batch(correct=[1, 0, 1, 1, 0, 1, 0, 1])) == {
        "WeightedSum._evaluate": 1,
        "SoftLengthPenalty._evaluate": 1,
        "L1MaxReward._evaluate": 1,
        "WhitespaceWords._count": 1,
        "TieredBudget._budgets": 1,
        "TieredBudget.tier_index": 1,
    }


def test_online_difficulty_runs_each_node_once(calls: collections.Counter[str]) -> None:
    shaped = alr.Product(
        [alr.SegmentationAccuracy(), alr.SoftLengthPenalty(budget=alr.TieredBudget(missing_uncertainty=0.0))]
    )
    reward = alr.WithContext(shaped, [PassRateDifficulty(accuracy=alr.SegmentationAccuracy(), pass_threshold=5.0)])
    data = batch(difficulty=None)
    # The provider's accuracy (on the batch without difficulty) is the reward's: it reads neither column it fills.
    assert evaluate(reward, calls, data) == {
        "WithContext._evaluate": 1,
        "PassRateDifficulty._score": 1,
        **PIXELTHINK_NODES,
    }


# ------------------------------------------------------------------------------------------------------------
# Providers see only the rows that miss their column
# ------------------------------------------------------------------------------------------------------------


class RowDifficulty(alr.ContextProvider, kind="test_graph_row_difficulty"):
    """Difficulty 7 for every row it is asked about; records the size of each batch it sees."""

    provides = "difficulty"

    def __post_init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, batch: alr.RewardBatch) -> npt.NDArray[np.float64]:
        self.seen.append(len(batch))
        return np.full(len(batch), 7.0)


class GroupDifficulty(RowDifficulty, kind="test_graph_group_difficulty"):
    row_wise = False


def _with(provider: RowDifficulty, mode: str = "fill_missing") -> alr.WithContext:
    budget = alr.TieredBudget(missing_uncertainty=0.0)
    return alr.WithContext(alr.SoftLengthPenalty(budget=budget), [provider], mode=mode)  # type: ignore[arg-type]


@pytest.fixture
def rows() -> Iterator[RowDifficulty]:
    yield RowDifficulty()


def test_a_row_wise_provider_sees_only_the_missing_rows(rows: RowDifficulty) -> None:
    difficulty = [2.0, None, 4.0, None, None, 9.0, 1.0, 3.5]
    output = _with(rows).evaluate(batch(difficulty=difficulty))
    assert rows.seen == [3]
    assert output.columns["difficulty"].tolist() == [2.0, 7.0, 4.0, 7.0, 7.0, 9.0, 1.0, 3.5]


def test_a_provider_is_not_asked_when_nothing_is_missing(rows: RowDifficulty) -> None:
    _with(rows).evaluate(batch())
    assert rows.seen == []


@pytest.mark.parametrize(("provider", "mode"), [(RowDifficulty, "overwrite"), (GroupDifficulty, "fill_missing")])
def test_overwrite_and_group_providers_see_every_row(provider: type[RowDifficulty], mode: str) -> None:
    instance = provider()
    output = _with(instance, mode).evaluate(batch(difficulty=[2.0, None, 4.0, 6.0, 6.0, 9.0, 1.0, 3.5]))
    assert instance.seen == [8]
    expected = [7.0] * 8 if mode == "overwrite" else [2.0, 7.0, 4.0, 6.0, 6.0, 9.0, 1.0, 3.5]
    assert output.columns["difficulty"].tolist() == expected


def test_an_absent_column_is_provided_for_every_row(rows: RowDifficulty) -> None:
    _with(rows).evaluate(batch(difficulty=None))
    assert rows.seen == [8]
