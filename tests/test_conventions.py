"""Evaluation conventions (issue 15): ``seg_zero`` follows Seg-Zero's ``evaluation_scripts/evaluation.py``
(dvlab-research/Seg-Zero at 42a3345: ``extract_bbox_points_think``, ``compute_iou``, the penalty branch),
``calculate_iou.py`` and ``create_reasonseg_hf.py``; ``lisa`` keeps the library's ReasonSeg rules.

Every expected value below is worked out by hand from those formulas (written next to it), not computed by the
code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import completions

from adaptive_length_reward.conventions import (
    CONVENTIONS,
    SEG_ZERO_FRAME,
    ConventionIoU,
    GroundTruthMask,
    SegmentationPrompt,
    check_convention,
    convention_note,
    parse_prompt,
    prepare_ground_truth,
    rescale_prompt,
    sample_counts,
)


def _answer(payload: str, think: str = "<think>the red cup</think>") -> str:
    return f"{think}<answer>{payload}</answer>"


# -- Names ------------------------------------------------------------------------------------------------------


def test_conventions_and_their_check() -> None:
    assert CONVENTIONS == ("lisa", "seg_zero") and SEG_ZERO_FRAME == 840
    assert check_convention("lisa") == "lisa" and check_convention("seg_zero") == "seg_zero"
    for bad in ("LISA", "segzero", "", None, 1):
        with pytest.raises(ValueError, match=r"where: expected one of 'lisa', 'seg_zero', got"):
            check_convention(bad, where="where")
    assert "empty union counts IoU 1" in convention_note("lisa")
    assert "empty union skipped" in convention_note("seg_zero") and "evaluation.py" in convention_note("seg_zero")


# -- Parsing ----------------------------------------------------------------------------------------------------


def test_seg_zero_matches_keys_by_substring_lisa_needs_the_exact_keys() -> None:
    text = _answer('{"bbox_2d": [10, 20, 30, 40], "points_a": [11, 21], "points_b": [12, 22]}')
    assert parse_prompt(text, "seg_zero") == SegmentationPrompt((10, 20, 30, 40), ((11, 21), (12, 22)))
    assert parse_prompt(text, "lisa") is None  # no key "bbox" / "points_1" / "points_2"
    official = _answer('{"bbox": [10, 20, 30, 40], "points_1": [11, 21], "points_2": [12, 22]}')
    for convention in CONVENTIONS:
        assert parse_prompt(official, convention) == SegmentationPrompt((10, 20, 30, 40), ((11, 21), (12, 22)))


def test_seg_zero_takes_the_first_bbox_key_and_the_first_two_points_keys_in_order_case_insensitive() -> None:
    text = _answer(
        '{"Points_z": [1, 2], "bbox_a": [0, 0, 9, 9], "BBox": [5, 5, 5, 5], "x_POINTS": [3, 4], "points_1": [5, 6]}'
    )
    # bbox: "bbox_a" comes before "BBox"; points: "Points_z" then "x_POINTS" ("points_1" is the third)
    assert parse_prompt(text, "seg_zero") == SegmentationPrompt((0, 0, 9, 9), ((1, 2), (3, 4)))


def test_seg_zero_needs_two_points_keys_and_a_bbox_of_length_four() -> None:
    one_point = _answer('{"bbox": [0, 0, 9, 9], "points_1": [1, 2], "point_2": [3, 4]}')  # "point_2": no 'points'
    five = _answer('{"bbox": [0, 0, 9, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}')
    no_box = _answer('{"box": [0, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}')
    for text in (one_point, five, no_box):
        assert parse_prompt(text, "seg_zero") is None
    # a point of three elements: the script reads [0] and [1]
    longer = _answer('{"bbox": [0, 0, 9, 9], "points_1": [1, 2, 7], "points_2": [3, 4]}')
    assert parse_prompt(longer, "seg_zero") == SegmentationPrompt((0, 0, 9, 9), ((1, 2), (3, 4)))


def test_seg_zero_applies_int_to_every_coordinate() -> None:
    text = _answer('{"bbox": [10.9, -0.5, 29.99, 40.0], "points_1": [1.7, 2.2], "points_2": [-3.9, 4]}')
    # int() truncates toward zero: 10.9 -> 10, -0.5 -> 0, 29.99 -> 29, -3.9 -> -3
    assert parse_prompt(text, "seg_zero") == SegmentationPrompt((10, 0, 29, 40), ((1, 2), (-3, 4)))
    # lisa: the box as written, the points after int() (parse_answer)
    assert parse_prompt(text, "lisa") == SegmentationPrompt((10.9, -0.5, 29.99, 40.0), ((1, 2), (-3, 4)))
    # int() of strings, as the script applies it: "12" -> 12, and a 4-character string is a box of 4 digits
    strings = _answer('{"bbox": "1234", "points_1": ["5", " 6 "], "points_2": "78"}')
    assert parse_prompt(strings, "seg_zero") == SegmentationPrompt((1, 2, 3, 4), ((5, 6), (7, 8)))
    for bad in ('["1.5", 0, 9, 9]', "[null, 0, 9, 9]", "[NaN, 0, 9, 9]", "[Infinity, 0, 9, 9]", "[[1], 0, 9, 9]"):
        assert parse_prompt(_answer(f'{{"bbox": {bad}, "points_1": [1, 2], "points_2": [3, 4]}}'), "seg_zero") is None


def test_seg_zero_needs_a_think_block_without_angle_brackets() -> None:
    payload = '{"bbox": [0, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}'
    expected = SegmentationPrompt((0, 0, 9, 9), ((1, 2), (3, 4)))
    assert parse_prompt(_answer(payload, think=""), "lisa") == expected  # lisa does not read the reasoning
    for think in ("", "<think></think>", "<think>a < b</think>", "<think>unclosed"):
        assert parse_prompt(_answer(payload, think=think), "seg_zero") is None  # think_text unbound in the script
    assert parse_prompt(f"<answer>{payload}</answer> <think>after</think>", "seg_zero") == expected  # anywhere


def test_a_single_quoted_or_missing_object_is_a_failed_parse_in_both() -> None:
    for text in (
        _answer("{'bbox': [0, 0, 9, 9], 'points_1': [1, 2], 'points_2': [3, 4]}"),
        _answer("none"),
        _answer('{"bbox": [0, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]'),
        "",
        "{",
        "{}",
    ):
        for convention in CONVENTIONS:
            assert parse_prompt(text, convention) is None


HOSTILE = [
    "",
    "{",
    "}",
    "{}",
    "{ }",
    "{]",
    '{"bbox": }',
    "{" + "[" * 5000 + "}",
    '{"bbox": [1e999, 0, 1, 1]}',
    '{"bbox": ' + "9" * 5000 + "}",
    '{"bbox": 1234, "points_1": 1, "points_2": 2}',
    '{"bbox": null}',
    '{"\\ud800bbox": [1, 2, 3, 4]}',
    '<think>x</think>{"bbox": [1,2,3,4], "points": [1], "points2": []}',
    '<think>x</think>{"bbox": [true, false, 3, 4], "points_1": [true, 2], "points_2": [3, false]}',
    "\x00{\x00}",
    "<think>" * 100,
    "{" * 1000 + "}" * 1000,
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_malformed_output_is_a_failed_parse_or_a_prompt_never_an_exception(text: str, convention: str) -> None:
    found = parse_prompt(text, convention)  # type: ignore[arg-type]
    if found is not None:
        scaled = rescale_prompt(found, (1000, 500), convention=convention)  # type: ignore[arg-type]
        assert scaled is None or all(isinstance(v, int) for v in (*scaled.bbox, *scaled.points[0], *scaled.points[1]))


def test_booleans_read_as_integers_in_seg_zero() -> None:
    text = '<think>x</think>{"bbox": [true, false, 3, 4], "points_1": [true, 2], "points_2": [3, false]}'
    assert parse_prompt(text, "seg_zero") == SegmentationPrompt((1, 0, 3, 4), ((1, 2), (3, 0)))  # int(True) = 1


@given(completions())
def test_any_completion_parses_or_fails_cleanly(text: str) -> None:
    for convention in CONVENTIONS:
        found = parse_prompt(text, convention)
        if found is not None:
            rescale_prompt(found, (640, 480), convention=convention)


@given(st.text(alphabet='{}[]"bpointsx:,0123456789.-e <>/think', max_size=80))
def test_any_brace_soup_parses_or_fails_cleanly(text: str) -> None:
    for convention in CONVENTIONS:
        found = parse_prompt(text, convention)
        if found is not None:
            rescale_prompt(found, (640, 480), convention=convention)


def test_parse_prompt_rejects_a_non_string_and_an_unknown_convention() -> None:
    with pytest.raises(TypeError, match="parse_prompt: text: expected str, got bytes"):
        parse_prompt(b"{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parse_prompt: convention: expected one of"):
        parse_prompt("{}", "seg-zero")  # type: ignore[arg-type]


# -- Rescaling --------------------------------------------------------------------------------------------------


def test_seg_zero_rescale_is_round_of_int_times_the_factor_half_to_even() -> None:
    # W = 420, H = 1680, frame 840: x_factor 0.5, y_factor 2.0 (both exact in binary)
    prompt = SegmentationPrompt((5, 7, 9.99, -1.5), ((1.9, 3), (7, 0)))
    seg_zero = rescale_prompt(prompt, (420, 1680), convention="seg_zero")
    # x1: 5 * 0.5 = 2.5 -> 2 (half to even); y1: 7 * 2 = 14; x2: int(9.99) = 9 -> 4.5 -> 4; y2: int(-1.5) = -1 -> -2
    # p1: int(1.9) = 1 -> 0.5 -> 0, 3 * 2 = 6; p2: 7 * 0.5 = 3.5 -> 4 (half to even), 0
    assert seg_zero == SegmentationPrompt((2, 14, 4, -2), ((0, 6), (4, 0)))
    lisa = rescale_prompt(prompt, (420, 1680), convention="lisa")
    # x2: round(9.99 * 0.5) = round(4.995) = 5; y2: round(-1.5 * 2) = -3; p1: round(1.9 * 0.5) = round(0.95) = 1
    assert lisa == SegmentationPrompt((2, 14, 5, -3), ((1, 6), (4, 0)))


def test_rescale_of_an_uneven_factor() -> None:
    # W = 1000: x_factor = 1000 / 840 = 1.190476...; H = 500: y_factor = 0.595238...
    prompt = SegmentationPrompt((100, 421, 420, 1), ((839, 840), (0, 2)))
    # 100 * 1.1905 = 119.05 -> 119; 421 * 0.5952 = 250.60 -> 251; 420 * 1.1905 = 500.0 -> 500; 1 * 0.5952 -> 1
    # 839 * 1.1905 = 998.81 -> 999; 840 * 0.5952 = 500.0 -> 500; 0 -> 0; 2 * 0.5952 = 1.19 -> 1
    expected = SegmentationPrompt((119, 251, 500, 1), ((999, 500), (0, 1)))
    for convention in CONVENTIONS:
        assert rescale_prompt(prompt, (1000, 500), convention=convention) == expected
    # another frame: the tiny example's 100-pixel frame, W = 200: x doubles
    assert rescale_prompt(
        SegmentationPrompt((10, 10, 39, 29), ((20, 20), (30, 20))), (200, 100), frame=100
    ) == SegmentationPrompt((20, 10, 78, 29), ((40, 20), (60, 20)))


def test_a_coordinate_that_cannot_be_rounded_is_a_failed_parse() -> None:
    huge = 10**400  # json.loads reads it; int * float overflows, as in the script's try block
    text = _answer(f'{{"bbox": [{huge}, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}}')
    found = parse_prompt(text, "seg_zero")
    assert found is not None and found.bbox[0] == huge
    assert rescale_prompt(found, (840, 840), convention="seg_zero") is None
    for bad in (math.nan, math.inf, -math.inf):
        prompt = SegmentationPrompt((bad, 0, 9, 9), ((1, 2), (3, 4)))
        for convention in CONVENTIONS:
            assert rescale_prompt(prompt, (840, 840), convention=convention) is None
    lisa = parse_prompt(_answer('{"bbox": [Infinity, 0, 9, 9], "points_1": [1, 2], "points_2": [3, 4]}'), "lisa")
    assert lisa is not None and rescale_prompt(lisa, (840, 840)) is None


def test_rescale_rejects_bad_sizes() -> None:
    prompt = SegmentationPrompt((0, 0, 1, 1), ((0, 0), (1, 1)))
    with pytest.raises(ValueError, match=r"rescale_prompt: size\[0\] \(width\): expected a positive integer, got 0"):
        rescale_prompt(prompt, (0, 10))
    with pytest.raises(ValueError, match="rescale_prompt: frame: expected a positive integer, got 840.0"):
        rescale_prompt(prompt, (10, 10), frame=840.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rescale_prompt: size: expected \(width, height\), got 10"):
        rescale_prompt(prompt, 10)  # type: ignore[arg-type]


# -- Ground truth -----------------------------------------------------------------------------------------------

LABELS = np.array([[0, 1, 255, 255], [1, 1, 0, 255]], dtype=np.uint8)  # 3 target pixels, 3 ignore pixels


def test_ignore_pixels_are_excluded_in_lisa_and_target_in_seg_zero() -> None:
    lisa = prepare_ground_truth(LABELS, convention="lisa")
    assert lisa.target.tolist() == [[False, True, False, False], [True, True, False, False]]
    assert lisa.valid is not None and lisa.valid.tolist() == [[True, True, False, False], [True, True, True, False]]
    seg_zero = prepare_ground_truth(LABELS, convention="seg_zero")
    assert seg_zero.target.tolist() == [[False, True, True, True], [True, True, False, True]]
    assert seg_zero.valid is None
    # the same from a boolean target and a separate ignore mask (the worked example's SegSample)
    target, ignore = LABELS == 1, LABELS == 255
    for convention in CONVENTIONS:
        split = prepare_ground_truth(target, ignore, convention=convention)
        joined = prepare_ground_truth(LABELS, convention=convention)
        assert split.target.tolist() == joined.target.tolist()
        assert (split.valid is None) == (joined.valid is None)


def test_without_ignore_pixels_every_pixel_counts() -> None:
    truth = prepare_ground_truth(np.array([[0, 1]], dtype=np.int64), np.zeros((1, 2), dtype=bool))
    assert truth.target.tolist() == [[False, True]] and truth.valid is None


def test_malformed_ground_truth_raises() -> None:
    with pytest.raises(ValueError, match=r"mask: expected a boolean mask or labels 0/1/255, got values \[0 1 2\]"):
        prepare_ground_truth(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="got dtype float64"):
        prepare_ground_truth(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"ignore: expected the mask's shape \(2,\), got \(3,\)"):
        prepare_ground_truth(np.array([True, False]), np.array([True, False, False]))
    with pytest.raises(ValueError, match="prepare_ground_truth: convention"):
        prepare_ground_truth(np.array([True]), convention="LISA")  # type: ignore[arg-type]


# -- Counting ---------------------------------------------------------------------------------------------------


def test_counts_with_ignore_pixels() -> None:
    labels = np.array([[1, 1, 255, 0]], dtype=np.uint8)
    prediction = np.ones((1, 4), dtype=bool)
    # lisa: target {0, 1}, pixel 2 ignored: prediction {0, 1, 3} -> I = 2, U = 3
    assert sample_counts(prediction, prepare_ground_truth(labels, convention="lisa")) == (2, 3)
    # seg_zero: target {0, 1, 2}, prediction {0, 1, 2, 3} -> I = 3, U = 4
    assert sample_counts(prediction, prepare_ground_truth(labels, convention="seg_zero"), convention="seg_zero") == (
        3,
        4,
    )


def test_a_failed_parse_counts_no_intersection_and_the_truth_as_union() -> None:
    labels = np.array([[1, 255, 255, 0]], dtype=np.uint8)
    assert sample_counts(None, prepare_ground_truth(labels, convention="lisa")) == (0, 1)  # |GT| without ignore
    # seg_zero: union = np.array(mask).sum() of the mask whose 255 pixels are True: 3
    assert sample_counts(None, prepare_ground_truth(labels, convention="seg_zero"), convention="seg_zero") == (0, 3)


def test_an_empty_union_counts_one_in_lisa_and_is_skipped_in_seg_zero() -> None:
    empty = np.zeros((2, 2), dtype=bool)
    assert sample_counts(empty, prepare_ground_truth(empty)) == (0, 0)
    assert sample_counts(empty, prepare_ground_truth(empty), convention="seg_zero") is None
    hit, miss = np.array([[True, True], [False, False]]), np.array([[True, False], [False, False]])
    for convention, giou, ciou, skipped in (("lisa", (0.5 + 1.0) / 2, 1 / 2, 0), ("seg_zero", 0.5, 1 / 2, 1)):
        metric = ConventionIoU(convention)  # type: ignore[arg-type]
        metric.update(miss, hit)  # I = 1, U = 2
        metric.update(empty, empty)  # empty union
        assert (metric.giou, metric.ciou, metric.skipped, len(metric)) == (pytest.approx(giou), ciou, skipped, 2)
        assert metric.counted.tolist() == [True, convention == "lisa"]


def test_a_failed_parse_on_an_empty_truth_counts_zero_in_seg_zero_and_one_in_lisa() -> None:
    empty = np.zeros((1, 3), dtype=bool)
    for convention, iou in (("lisa", 1.0), ("seg_zero", 0.0)):  # calculate_iou.py: iou = 0 if union == 0
        metric = ConventionIoU(convention)  # type: ignore[arg-type]
        assert metric.update(None, empty) is True  # counted in both: the penalty branch writes a record
        assert metric.giou == iou and metric.ciou == iou and metric.metric.failed.tolist() == [True]


def test_gIoU_and_cIoU_of_a_mixed_set_by_hand() -> None:
    samples = [
        (np.ones((1, 4), dtype=bool), np.array([[1, 1, 255, 0]], dtype=np.uint8)),  # ignore pixel predicted
        (np.zeros((1, 4), dtype=bool), np.zeros((1, 4), dtype=np.uint8)),  # empty union
        (None, np.array([[1, 255, 255, 0]], dtype=np.uint8)),  # failed parse
    ]
    results = {}
    for convention in CONVENTIONS:
        metric = ConventionIoU(convention)
        for prediction, labels in samples:
            metric.update(prediction, labels)  # a raw label map is prepared under the metric's convention
        results[convention] = (metric.giou, metric.ciou, metric.skipped)
    # lisa: (2/3, empty 1, 0/1): gIoU (2/3 + 1 + 0) / 3 = 5/9, cIoU (2 + 0 + 0) / (3 + 0 + 1) = 1/2
    assert results["lisa"] == (pytest.approx(5 / 9), pytest.approx(1 / 2), 0)
    # seg_zero: (3/4, skipped, 0/3): gIoU (3/4 + 0) / 2 = 3/8, cIoU 3 / (4 + 3) = 3/7
    assert results["seg_zero"] == (pytest.approx(3 / 8), pytest.approx(3 / 7), 1)


def test_the_parse_and_the_counts_together_as_seg_zero_scores_an_answer() -> None:
    """One answer end to end: substring keys, int(), the rescale, then I and U on the original image."""
    text = _answer('{"bbox_2d": [420.9, 0, 839, 419.5], "points_a": [600, 200], "points_b": [700, 300]}')
    found = parse_prompt(text, "seg_zero")
    assert found is not None
    prompt = rescale_prompt(found, (8, 4), convention="seg_zero")
    # x_factor 8/840, y_factor 4/840: x1 int(420.9) = 420 -> 4.0 -> 4; x2 839 -> 7.99 -> 8; y2 int(419.5) = 419
    # -> 1.995 -> 2
    assert prompt is not None and prompt.bbox == (4, 0, 8, 2)
    prediction = np.zeros((4, 8), dtype=bool)
    x1, y1, x2, y2 = prompt.bbox
    prediction[y1 : y2 + 1, x1 : x2 + 1] = True  # a box segmenter: columns 4..7, rows 0..2 = 12 pixels
    labels = np.zeros((4, 8), dtype=np.uint8)
    labels[0:2, 4:8] = 1  # 8 target pixels inside the box
    labels[3, 4:8] = 255  # 4 ignore pixels below it
    # seg_zero: target 12 pixels (8 + 4 ignore); I = 8, U = 12 + 4 = 16
    assert sample_counts(prediction, prepare_ground_truth(labels, convention="seg_zero"), convention="seg_zero") == (
        8,
        16,
    )
    # lisa: ignore pixels out of both; I = 8, U = 12
    assert sample_counts(prediction, prepare_ground_truth(labels)) == (8, 12)


def test_counting_rejects_shape_mismatch_and_non_masks() -> None:
    truth = prepare_ground_truth(np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"prediction: expected the target's shape \(2, 2\), got \(4,\)"):
        sample_counts(np.zeros(4, dtype=bool), truth, convention="seg_zero")
    with pytest.raises(TypeError, match="prediction: expected a boolean mask"):
        sample_counts(np.full((2, 2), 0.5), truth)
    with pytest.raises(ValueError, match="ConventionIoU: convention"):
        ConventionIoU("Seg-Zero")  # type: ignore[arg-type]


def test_the_ground_truth_type_is_a_named_tuple() -> None:
    truth = prepare_ground_truth(np.array([True]))
    assert isinstance(truth, GroundTruthMask) and truth._fields == ("target", "valid")
    assert json.dumps(truth.target.tolist()) == "[true]"
