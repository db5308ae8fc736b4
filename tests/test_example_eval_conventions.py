"""The worked example's evaluation under both conventions (issue 15): ``score_completions(..., convention=...)``.

No model: the evaluation helpers are called on tiny samples with a whitespace tokenizer and a segmenter that fills
the prompt box (tests/example_fixtures.py) as stand-ins. Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

pytest.importorskip("torch")

from example_fixtures import BoxSegmenter, WordTokenizer  # noqa: E402
from pixelthink.evaluation import paired_ious, record_ious, score_completions  # noqa: E402
from pixelthink.rewards import RewardSettings, build_reward  # noqa: E402
from pixelthink.scenes import SegSample  # noqa: E402


def _answer(payload: str) -> str:
    return f"<think>a b c</think><answer>{payload}</answer>"


QWEN = _answer('{"bbox_2d": [10, 10, 39, 29], "points_a": [20, 20], "points_b": [30, 20]}')  # substring keys
BOX = _answer('{"bbox": [10, 10, 39, 29], "points_1": [20, 20], "points_2": [30, 20]}')
INVERTED = _answer('{"bbox": [30, 30, 10, 10], "points_1": [20, 20], "points_2": [30, 20]}')  # an empty mask


def _sample(
    name: str, mask: np.ndarray, ignore: np.ndarray | None = None, size: tuple[int, int] = (100, 100)
) -> SegSample:
    return SegSample(
        id=name,
        image=Image.new("RGB", size, (200, 200, 200)),
        query="the box",
        bbox=(10, 10, 39, 29),
        points=((20, 20), (30, 20)),
        frame=100,
        mask=mask,
        ignore=ignore,
        difficulty=2.0,
    )


def _samples() -> list[SegSample]:
    target = np.zeros((100, 100), dtype=bool)
    target[10:30, 10:40] = True  # rows 10..29, columns 10..39: 600 pixels, the box (10, 10, 39, 29)
    ignore = np.zeros((100, 100), dtype=bool)
    ignore[30:40, 10:40] = True  # 300 ignore pixels below the target
    return [
        _sample("qwen", target),
        _sample("ignore", target.copy(), ignore),
        _sample("empty", np.zeros((100, 100), dtype=bool)),
    ]


def _score(samples: list[SegSample], completions: list[str], convention: str, segmenter: Any = None) -> Any:
    settings = RewardSettings(uncertainty="none")
    return score_completions(
        samples,
        completions,
        [0.1] * len(samples),
        segmenter or BoxSegmenter(),
        tokenizer=WordTokenizer(),
        train_reward=build_reward(settings, None),
        reward_settings=settings,
        convention=convention,
    )


def test_lisa_and_seg_zero_score_the_same_answers_differently() -> None:
    completions = [QWEN, BOX, INVERTED]
    lisa = _score(_samples(), completions, "lisa")
    # qwen: bbox_2d does not parse -> I = 0, U = 600; ignore: the box is the target, the ignore pixels are out ->
    # 600 / 600; empty: an empty box on an empty truth -> union 0, IoU 1
    assert [(r["intersection"], r["union"], r["counted"]) for r in lisa.records] == [
        (0, 600, True),
        (600, 600, True),
        (0, 0, True),
    ]
    assert lisa.report.overall.giou == pytest.approx((0 + 1 + 1) / 3)
    assert lisa.report.overall.ciou == pytest.approx(600 / 1200)
    assert lisa.ious.tolist() == [0.0, 1.0, 1.0] and lisa.skipped_samples == 0
    summary = lisa.summary()
    assert summary["convention"] == "lisa" and summary["failed_parses"] == 1 and summary["skipped_samples"] == 0

    seg_zero = _score(_samples(), completions, "seg_zero")
    # qwen: parses -> 600 / 600; ignore: the 300 ignore pixels are target -> I = 600, U = 900; empty: skipped
    assert [(r["intersection"], r["union"], r["counted"]) for r in seg_zero.records] == [
        (600, 600, True),
        (600, 900, True),
        (0, 0, False),
    ]
    assert seg_zero.report.overall.giou == pytest.approx((1 + 600 / 900) / 2)
    assert seg_zero.report.overall.ciou == pytest.approx((600 + 600) / (600 + 900))
    assert seg_zero.ious.tolist() == pytest.approx([1.0, 600 / 900]) and seg_zero.records[2]["iou"] is None
    summary = seg_zero.summary()
    assert summary["convention"] == "seg_zero" and summary["failed_parses"] == 0
    assert summary["skipped_samples"] == 1 and summary["samples"] == 3 and summary["tier_counts"]["easy"] == 2
    assert summary["parsed_answers"] == 3 and summary["segmenter_calls"] == 3
    assert any("1 of 3 samples skipped (empty union" in note for note in seg_zero.notes)
    assert seg_zero.notes[0].startswith("evaluation convention 'seg_zero'")


def test_seg_zero_truncates_before_the_rescale() -> None:
    target = np.zeros((100, 200), dtype=bool)
    target[10:30, 20:80] = True
    text = _answer('{"bbox": [10.6, 10, 39, 29], "points_1": [20.7, 20], "points_2": [30, 20]}')
    calls = {}
    for convention in ("lisa", "seg_zero"):
        segmenter = BoxSegmenter()
        _score([_sample("s", target, size=(200, 100))], [text], convention, segmenter)
        calls[convention] = segmenter.calls[0][1:]  # the policy's prompt (the oracle's call comes second)
    # x doubles (W = 200, frame 100): lisa round(10.6 * 2) = 21 (points already int(): 20 * 2 = 40);
    # seg_zero int(10.6) * 2 = 20, int(20.7) * 2 = 40
    assert calls["lisa"] == ((21, 10, 78, 29), ((40, 20), (60, 20)))
    assert calls["seg_zero"] == ((20, 10, 78, 29), ((40, 20), (60, 20)))


def test_a_non_finite_coordinate_is_a_failed_parse_not_an_error() -> None:
    target = np.zeros((100, 100), dtype=bool)
    target[0:2, 0:3] = True
    text = _answer('{"bbox": [Infinity, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}')
    for convention in ("lisa", "seg_zero"):
        result = _score([_sample("x", target)], [text], convention)
        assert (result.records[0]["parsed"], result.records[0]["union"]) == (False, 6)


def test_an_unknown_convention_is_refused() -> None:
    with pytest.raises(ValueError, match="score_completions: convention: expected one of 'lisa', 'seg_zero', got"):
        _score(_samples()[:1], [BOX], "segzero")


def test_paired_ious_keep_the_samples_counted_in_both_passes() -> None:
    before = _score(_samples(), [BOX, BOX, BOX], "seg_zero")  # 600/600, 600/900, empty truth: 0/600
    after = _score(_samples(), [QWEN, "no", INVERTED], "seg_zero")  # 600/600, failed 0/900, skipped
    assert record_ious(before.records) == pytest.approx([1.0, 600 / 900, 0.0])
    assert record_ious(after.records)[:2] == [1.0, 0.0] and record_ious(after.records)[2] is None
    after_ious, before_ious = paired_ious(after.records, before.records)
    assert after_ious.tolist() == [1.0, 0.0] and before_ious.tolist() == pytest.approx([1.0, 600 / 900])
    legacy = [{"intersection": 1, "union": 4}, {"intersection": 0, "union": 0}]  # records without "iou"/"counted"
    assert record_ious(legacy) == [0.25, 1.0]
    with pytest.raises(ValueError, match="paired_ious: expected records of the same samples, got 2 and 3"):
        paired_ious(legacy, before.records)
