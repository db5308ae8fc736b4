"""Segmentation rewards: parsing as the official code parses, the five terms, ground truth forms, reward
classes (config, pickling, names, requirements), robustness to anything a policy may emit."""

from __future__ import annotations

import json
import math
import pickle
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_segmentation_official import (
    FIRST_OBJECT,
    GOOD,
    GT,
    GT_CORNER,
    THINK_ANSWER,
    generate_cases,
    ref_accuracy,
    ref_box_iou,
    ref_box_l1,
    ref_point_match,
    ref_segmentation_format,
    ref_thinking_format,
)

from adaptive_length_reward import ConfigError, MissingContextError, RewardBatch, WeightedSum, build, segmentation
from adaptive_length_reward.evaluation import scope
from adaptive_length_reward.segmentation import (
    EXACT_INTEGER_LIMIT,
    BoxIoUReward,
    BoxL1Reward,
    PointMatchReward,
    SegmentationAccuracy,
    SegmentationAnswer,
    SegmentationFormatReward,
    SegmentationTarget,
    ThinkingFormatReward,
    box_iou_inclusive,
    box_mean_l1,
    first_json_object,
    has_thinking_format,
    matched_point_distance,
    parse_answer,
    parse_ground_truth,
    segmentation_terms,
)

# ------------------------------------------------------------------------------------------------------------
# Parsing, against the official regexes

TAGGY = st.lists(
    st.sampled_from(
        [
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            " ",
            "\n",
            "\t",
            "\u00a0",
            "\u2003",
            "\u200b",
            "x",
            "<",
            ">",
            "/",
            "think",
            "answer",
        ]
    )
    | st.text(max_size=3),
    max_size=14,
).map("".join)

BRACY = st.lists(
    st.sampled_from(["{", "}", '"bbox"', ":", "[", "]", ",", " ", "1", "{}", "\n"]) | st.text(max_size=2),
    max_size=16,
).map("".join)


@given(TAGGY)
def test_thinking_format_equals_official_fullmatch(text: str) -> None:
    official = re.fullmatch(THINK_ANSWER, text, re.DOTALL) is not None
    assert has_thinking_format(text) is official
    assert ThinkingFormatReward()(completions=[text, text]).tolist() == [float(official)] * 2


@given(BRACY)
def test_first_json_object_equals_official_search(text: str) -> None:
    found = re.search(FIRST_OBJECT, text)
    assert first_json_object(text) == (found.group(0) if found else None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>b</answer>", True),
        ("<think>a</think> \n\t<answer>b</answer>", True),
        ("<think>a</think>\u00a0<answer>b</answer>", True),  # \s is Unicode whitespace
        ("<think>a</think>\u200b<answer>b</answer>", False),  # zero-width space is not whitespace
        ("<think>a</think><answer>b</answer>\n", False),  # nothing may follow </answer>
        (" <think>a</think><answer>b</answer>", False),  # nor precede <think>
        ("<think>a</think>x<think>b</think><answer>c</answer>", True),  # a later </think> may close it
        ("<think></answer>", False),
        ("<think></think><answer></answer>", True),
    ],
)
def test_thinking_format_cases(text: str, expected: bool) -> None:
    assert has_thinking_format(text) is expected is (re.fullmatch(THINK_ANSWER, text, re.DOTALL) is not None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, SegmentationAnswer(True, True, True, (100, 100, 199, 199), ((130, 140), (170, 160)))),
        # float points are truncated toward zero; true/false in a box are 1/0
        (
            '{"bbox": [true, false, 9.5, 9], "points_1": [-0.9, 3.99], "points_2": [2, 2]}',
            SegmentationAnswer(False, True, True, (1, 0, 9.5, 9), ((0, 3), (2, 2))),
        ),
        # a string point is indexed character by character; numeric strings are int()-parsed
        (
            '{"bbox": [0, 0, 9, 9], "points_1": "37", "points_2": [" 4 ", "5"]}',
            SegmentationAnswer(False, True, False, (0, 0, 9, 9), ((3, 7), (4, 5))),
        ),
        # only the first two elements of a point are read (a third fails the format term, not the conversion)
        (
            '{"bbox": [0, 0, 9, 9], "points_1": [1, 2, 3], "points_2": [4, 5, "x"]}',
            SegmentationAnswer(False, True, False, (0, 0, 9, 9), ((1, 2), (4, 5))),
        ),
        # the format term checks lengths only: non-numeric contents still pass it, but give no box
        (
            '{"bbox": ["a", "b", "c", "d"], "points_1": [null, 1], "points_2": [1, 2]}',
            SegmentationAnswer(False, True, True, None, None),
        ),
        # nested object: the span ends at the inner brace and is not JSON
        ('{"answer": {"bbox": [0, 0, 9, 9]}}', SegmentationAnswer(False, False, False, None, None)),
        # NaN and Infinity are JSON to Python; the box is numeric (and then fails every comparison)
        ('{"bbox": [NaN, 0, Infinity, 9]}', SegmentationAnswer(False, True, False, (math.nan, 0, math.inf, 9), None)),
        (
            '{"bbox": [0, 0, 9, 9], "points_1": [NaN, 1], "points_2": [1, 1]}',
            SegmentationAnswer(False, True, True, (0, 0, 9, 9), None),
        ),
        ("no json at all {", SegmentationAnswer(False, False, False, None, None)),
        ('{"bbox": [' + "[" * 5000 + "]" * 5000 + "]}", SegmentationAnswer(False, False, False, None, None)),
    ],
)
def test_parse_answer_documented_behaviour(text: str, expected: SegmentationAnswer) -> None:
    got = parse_answer(text)
    assert got[:3] == expected[:3] and got.points == expected.points
    if expected.bbox is None:
        assert got.bbox is None
    else:
        np.testing.assert_array_equal(np.asarray(got.bbox, dtype=float), np.asarray(expected.bbox, dtype=float))


def test_parse_answer_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="text: expected str, got int"):
        parse_answer(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# Ground truth


@pytest.mark.parametrize(
    "value",
    [
        GT,
        "  " + GT + "\n",
        {"bbox": [100, 100, 199, 199], "points": [[130, 140], [170, 160]]},
        {"bbox": (100, 100, 199, 199), "points_1": [130, 140], "points_2": (170, 160), "other": "ignored"},
        ([100, 100, 199, 199], [[130, 140], [170, 160]]),
        (np.array([100, 100, 199, 199]), np.array([[130, 140], [170, 160]])),
    ],
)
def test_ground_truth_forms_are_equivalent(value: object) -> None:
    assert parse_ground_truth(value) == SegmentationTarget((100, 100, 199, 199), ((130, 140), (170, 160)))
    assert SegmentationAccuracy()(completions=[GOOD], ground_truth=[value]).tolist() == [5.0]


def test_ground_truth_box_only() -> None:
    assert parse_ground_truth([1, 2, 3, 4]) == SegmentationTarget((1, 2, 3, 4), None)
    assert parse_ground_truth("<box>(1,2),(3,4)</box>") == SegmentationTarget((1, 2, 3, 4), None)
    assert BoxIoUReward()(completions=['{"bbox": [1, 2, 3, 4]}'], ground_truth=["<box>(1,2),(3,4)</box>"]).tolist() == [
        1.0
    ]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("no tags here", ValueError, r"ground_truth\[1\]: expected '<box>\(x1,y1\),\(x2,y2\)</box>'"),
        (
            "<box>(1,2),(3)</box>",
            ValueError,
            r"ground_truth\[1\]: bbox: expected '<box>.*, got '<box>\(1,2\),\(3\)</box>'",
        ),
        (
            "<box>(-1,2),(30,40)</box><points>(5,6),(7,8)</points>",
            ValueError,
            r"ground_truth\[1\]: bbox: expected '<box>\(x1,y1\),\(x2,y2\)</box>' with non-negative integer "
            r"coordinates, got '<box>\(-1,2\),\(30,40\)</box>'",
        ),
        (
            "<box>(1,2),(30,40)</box><points>(5,6),(7.5,8)</points>",
            ValueError,
            r"ground_truth\[1\]: points: expected '<points>.*non-negative integer coordinates, "
            r"got '<points>\(5,6\),\(7.5,8\)</points>'",
        ),
        ({"bbox": [1, 2, 3]}, ValueError, r"ground_truth\[1\]: bbox: expected 4 numbers, got \[1, 2, 3\]"),
        ({"bbox": [1, 2, 3, math.nan]}, ValueError, r"ground_truth\[1\]: bbox: expected finite numbers"),
        ({"bbox": [1, 2, 3, True]}, ValueError, r"ground_truth\[1\]: bbox: expected 4 numbers"),
        ({"bbox": [1, 2, 3, 4], "points_1": [1, 2]}, ValueError, r"expected both 'points_1' and 'points_2'"),
        ({"bbox": [1, 2, 3, 4], "points": [[1, 2]]}, ValueError, r"points: expected two \(x, y\) points"),
        ({"box": [1, 2, 3, 4]}, ValueError, r"ground_truth\[1\]: expected a mapping with 'bbox'"),
        ([1, 2, 3], ValueError, r"ground_truth\[1\]: expected \[x1, y1, x2, y2\] or \(box, points\)"),
        (7, TypeError, r"ground_truth\[1\]: expected the official string, a mapping or a sequence, got int"),
        ("<box>(" + "9" * 5000 + ",1),(2,3)</box>", ValueError, r"ground_truth\[1\]: expected coordinates of at most"),
    ],
)
def test_malformed_ground_truth_raises_naming_the_sample(value: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SegmentationAccuracy()(completions=[GOOD, GOOD], ground_truth=[GT, value])


def test_official_string_truths_take_integers_of_any_size() -> None:
    huge = "1" + "0" * 400
    truth = f"<box>({huge},2),(3,4)</box><points>(1,2),(3,4)</points>"
    answer = f'<think>a</think><answer>{{"bbox": [{huge}, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4]}}</answer>'
    assert parse_ground_truth(truth).bbox == (int(huge), 2, 3, 4)
    got = SegmentationAccuracy()(completions=[answer, GOOD], ground_truth=[truth, truth]).tolist()
    assert got == [ref_accuracy(answer, truth), ref_accuracy(GOOD, truth)] == [3.0, 2.0]  # box L1 passes


def test_a_term_that_needs_a_missing_part_says_so() -> None:
    with pytest.raises(ValueError, match=r"ground_truth\[0\]: PointMatchReward needs two points"):
        PointMatchReward()(completions=[GOOD], ground_truth=["<box>(1,2),(3,4)</box>"])
    with pytest.raises(ValueError, match=r"ground_truth\[0\]: BoxL1Reward needs a box"):
        BoxL1Reward()(completions=[GOOD], ground_truth=[{"points": [[1, 2], [3, 4]]}])


def test_mapping_truths_score_like_strings_on_generated_cases() -> None:
    cases = generate_cases(800, seed=3)
    texts = [c[0] for c in cases]
    strings = [c[1] for c in cases]
    mappings = [
        {"bbox": list(t.bbox), "points": [list(p) for p in t.points]}  # type: ignore[union-attr]
        for t in map(parse_ground_truth, strings)
    ]
    a, b = segmentation_terms(texts, strings), segmentation_terms(texts, mappings)
    for name in a.terms():
        np.testing.assert_array_equal(a.terms()[name], b.terms()[name])


# ------------------------------------------------------------------------------------------------------------
# Geometry and the five terms


def test_geometry_functions_on_hand_computed_values() -> None:
    # inclusive areas: 10x10 boxes overlapping on 5 columns -> 50 / (100 + 100 - 50)
    np.testing.assert_allclose(box_iou_inclusive([[0, 0, 9, 9]], [[5, 0, 14, 9]]), [50 / 150])
    # touching on a line: the strict overlap test gives 0 although inclusive areas would share a column
    assert box_iou_inclusive([[0, 0, 9, 9]], [[9, 0, 18, 9]]).tolist() == [0.0]
    # zero union (inverted box of area -100 against a 100 box): NaN, as the official division raises
    assert np.isnan(box_iou_inclusive([[10, 0, -1, 9]], [[0, 0, 9, 9]])).all()
    assert box_mean_l1([[0, 0, 10, 10]], [[1, 2, 13, 14]]).tolist() == [2.5]
    # 3-4-5 triangles; the swapped pairing is chosen
    np.testing.assert_allclose(matched_point_distance([[[3, 4], [10, 10]]], [[[10, 10], [0, 0]]]), [2.5])


@pytest.mark.parametrize(
    ("reward", "answer", "expected"),
    [
        (BoxIoUReward(), '{"bbox": [100, 100, 199, 149]}', 0.0),  # IoU = 5000 / 10000 = 0.5, not > 0.5
        (BoxIoUReward(), '{"bbox": [100, 100, 199, 150]}', 1.0),  # 0.51
        (BoxIoUReward(threshold=0.6), '{"bbox": [100, 100, 199, 150]}', 0.0),
        (BoxIoUReward(threshold=0.25), '{"bbox": [100, 100, 199, 149]}', 1.0),
        (BoxL1Reward(), '{"bbox": [110, 110, 209, 209]}', 0.0),  # mean L1 = 10, not < 10
        (BoxL1Reward(), '{"bbox": [110, 110, 209, 208]}', 1.0),  # 9.75
        (BoxL1Reward(threshold=9.5), '{"bbox": [110, 110, 209, 208]}', 0.0),
        # 60-80-100 triangles: both points at distance 100, mean exactly 100 -> not < 100
        (PointMatchReward(), '{"bbox": [0, 0, 400, 400], "points_1": [190, 220], "points_2": [230, 240]}', 0.0),
        (PointMatchReward(), '{"bbox": [0, 0, 400, 400], "points_1": [190, 219], "points_2": [230, 239]}', 1.0),
        (
            PointMatchReward(threshold=150),
            '{"bbox": [0, 0, 400, 400], "points_1": [190, 220], "points_2": [230, 240]}',
            1.0,
        ),
        # a point on the box edge is inside; one pixel out is not
        (PointMatchReward(), '{"bbox": [130, 140, 170, 160], "points_1": [130, 140], "points_2": [170, 160]}', 1.0),
        (PointMatchReward(), '{"bbox": [131, 140, 170, 160], "points_1": [130, 140], "points_2": [170, 160]}', 0.0),
        (SegmentationFormatReward(), '{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3]}', 0.0),
        (SegmentationFormatReward(), '{"bbox": ["?", 2, 3, 4], "points_1": [1, 2], "points_2": [3, {}]}', 0.0),
        (SegmentationFormatReward(), '{"bbox": ["?", 2, 3, 4], "points_1": [1, 2], "points_2": [3, []]}', 1.0),
    ],
)
def test_terms_on_thresholds(reward: SegmentationAccuracy, answer: str, expected: float) -> None:
    assert reward(completions=[answer], ground_truth=[GT]).tolist() == [expected]


def test_accuracy_reports_the_five_terms_and_diagnostics() -> None:
    answers = [GOOD, '{"bbox": [100, 100, 199, 150]}', "I cannot tell."]
    out = SegmentationAccuracy().evaluate(completions=answers, ground_truth=[GT] * 3)
    assert out.rewards.tolist() == [5.0, 1.0, 0.0]
    assert list(out.components) == ["thinking_format", "segmentation_format", "box_iou", "point_match", "box_l1"]
    assert out.components["box_iou"].tolist() == [1.0, 1.0, 0.0]
    assert out.components["box_l1"].tolist() == [1.0, 0.0, 0.0]  # mean L1 of the second box: 49 / 4
    np.testing.assert_allclose(out.columns["iou"], [1.0, 5100 / 10000, np.nan])
    np.testing.assert_allclose(out.columns["l1_distance"], [0.0, 12.25, np.nan])
    assert out.columns["json_found"].tolist() == [True, True, False]


def test_terms_sum_in_a_weighted_sum_matches_the_accuracy() -> None:
    terms = [ThinkingFormatReward(), SegmentationFormatReward(), BoxIoUReward(), PointMatchReward(), BoxL1Reward()]
    cases = generate_cases(400, seed=5)
    batch = RewardBatch(tuple(c[0] for c in cases), ground_truth=tuple(c[1] for c in cases))
    np.testing.assert_array_equal(WeightedSum(terms)(batch), SegmentationAccuracy()(batch))
    assert [t.name for t in terms] == ["thinking_format", "segmentation_format", "box_iou", "point_match", "box_l1"]


def test_huge_integers_are_scored_exactly_like_python() -> None:
    # 2**53 + 1 is not a float64: naive float arithmetic would see a mean L1 of 10 (fail) where the exact
    # integers give 9.75 (pass), as the official code computes with Python ints.
    big = 2**53
    truth = f"<box>({big + 1},0),({big + 100},100)</box><points>({big + 2},5),({big + 3},6)</points>"
    answer = json.dumps(
        {"bbox": [big + 10, 10, big + 110, 110], "points_1": [big + 12, 15], "points_2": [big + 13, 16]}
    )
    naive = box_mean_l1(
        np.array([[big + 10, 10, big + 110, 110]], dtype=float), np.array([[big + 1, 0, big + 100, 100]], dtype=float)
    )
    assert naive.tolist() == [10.0]
    assert ref_box_l1(answer, truth) == 1.0
    out = SegmentationAccuracy().evaluate(completions=[answer], ground_truth=[truth])
    assert out.components["box_l1"].tolist() == [1.0]
    assert out.rewards.tolist() == [ref_accuracy(answer, truth)]
    assert EXACT_INTEGER_LIMIT == 2**24


# ------------------------------------------------------------------------------------------------------------
# Reward contract: names, bounds, requirements, config, pickling

ALL_REWARDS = [
    ThinkingFormatReward(),
    SegmentationFormatReward(),
    BoxIoUReward(threshold=0.4),
    BoxL1Reward(threshold=12.0),
    PointMatchReward(threshold=80.0),
    SegmentationAccuracy(iou_threshold=0.6, column="solution", name="seg_acc"),
]


@pytest.mark.parametrize("reward", ALL_REWARDS, ids=lambda r: type(r).__name__)
def test_reward_contract(reward: SegmentationAccuracy) -> None:
    cases = generate_cases(64, seed=11)
    batch = RewardBatch.from_completions(
        [c[0] for c in cases],
        ground_truth=[c[1] for c in cases],
        solution=[c[1] for c in cases],
        unknown_column=list(range(64)),
    )
    out = reward(batch)
    low, high = reward.bounds
    assert out.dtype == np.float64 and out.shape == (64,) and ((out >= low) & (out <= high)).all()
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == reward.__name__ and clone == reward
    np.testing.assert_array_equal(clone(batch), out)
    rebuilt = build(json.loads(reward.to_config().model_dump_json()))
    assert rebuilt.to_config() == reward.to_config()
    np.testing.assert_array_equal(rebuilt(batch), out)
    for column in reward.requires:
        with pytest.raises(MissingContextError, match=f"'{column}'"):
            reward(completions=batch.completions)


def test_names_bounds_and_requirements() -> None:
    assert [r.name for r in ALL_REWARDS] == [
        "thinking_format",
        "segmentation_format",
        "box_iou",
        "box_l1",
        "point_match",
        "seg_acc",
    ]
    assert [r.kind for r in ALL_REWARDS] == [
        "seg_thinking_format",
        "seg_segmentation_format",
        "seg_box_iou",
        "seg_box_l1",
        "seg_point_match",
        "seg_accuracy",
    ]
    assert SegmentationAccuracy().bounds == (0.0, 5.0) and BoxIoUReward().bounds == (0.0, 1.0)
    assert ThinkingFormatReward().requires == frozenset() == SegmentationFormatReward().requires
    assert BoxIoUReward().requires == frozenset({"ground_truth"})
    assert ALL_REWARDS[-1].requires == frozenset({"solution"})
    assert BoxIoUReward(name="iou_gate").__name__ == "iou_gate"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BoxIoUReward(threshold=-0.1), r"BoxIoUReward: threshold: expected >= 0, got -0.1"),
        (lambda: BoxL1Reward(threshold=math.inf), r"BoxL1Reward: threshold: expected"),
        (lambda: PointMatchReward(threshold="far"), r"PointMatchReward: threshold: expected"),  # type: ignore[arg-type]
        (lambda: SegmentationAccuracy(column=""), r"SegmentationAccuracy: column: expected"),
        (lambda: SegmentationAccuracy(unknown=1), r"unexpected (keyword )?argument 'unknown'"),  # type: ignore[call-arg]
        (
            lambda: build({"kind": "seg_accuracy", "iou_threshold": 0.5, "typo": 1}),
            r"SegmentationAccuracy: typo: unknown",
        ),
    ],
)
def test_bad_configuration_is_named(make: object, message: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=message):
        make()  # type: ignore[operator]


def test_batch_input_errors() -> None:
    with pytest.raises(ValueError, match=r"ground_truth: expected 2 values \(one per completion\), got 1 values"):
        segmentation_terms([GOOD, GOOD], [GT])
    with pytest.raises(TypeError, match="expected a sequence of strings, got a single str"):
        segmentation_terms(GOOD, [GT])  # type: ignore[arg-type]
    assert segmentation_terms([GOOD]).total.tolist() == [2.0]  # no ground truth: format terms only
    assert SegmentationAccuracy()(completions=[], ground_truth=[]).tolist() == []


# ------------------------------------------------------------------------------------------------------------
# Robustness: anything a policy emits gives a finite score in range, equal to the official reference

NUMBER = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.integers(-2000, 2000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: json.dumps(x)),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-0",
            "true",
            "false",
            "null",
            '"12"',
            '"x"',
            "[]",
            "{}",
            "9" * 400,
            "0.5",
            "-1e-320",
            str(EXACT_INTEGER_LIMIT + 1),
        ]
    ),
)


@st.composite
def json_like(draw: st.DrawFn) -> str:
    """Answers near the official shape, broken in every way the strategy can find."""
    keys = draw(st.lists(st.sampled_from(["bbox", "points_1", "points_2", "box", "points"]), max_size=4))
    items = []
    for key in keys:
        values = draw(st.lists(NUMBER, max_size=5))
        items.append(f'"{key}": [{", ".join(values)}]' if draw(st.booleans()) else f'"{key}": {draw(NUMBER)}')
    body = "{" + ", ".join(items) + "}"
    damage = draw(st.sampled_from(["none", "cut", "nest", "open", "close", "noise"]))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "nest":
        body = "{" + body + "}"
    elif damage == "open":
        body = "{" * draw(st.integers(1, 3)) + body
    elif damage == "close":
        body = body + "}" * draw(st.integers(1, 3))
    elif damage == "noise":
        body = draw(st.text(max_size=20)) + body + draw(st.text(max_size=20))
    if draw(st.booleans()):
        gap = draw(st.sampled_from(["", " ", "\n"]))
        return f"<think>{draw(st.text(max_size=30))}</think>{gap}<answer>{body}</answer>"
    return body


ANY_COMPLETION = st.one_of(json_like(), st.text(max_size=200), TAGGY, BRACY)
TRUTHS = st.sampled_from(
    [
        GT,
        GT_CORNER,
        "<box>(0,0),(0,0)</box><points>(0,0),(0,0)</points>",
        "<box>(5,5),(1,1)</box><points>(3,3),(9,9)</points>",
    ]
)


@given(st.lists(st.tuples(ANY_COMPLETION, TRUTHS), min_size=1, max_size=8))
def test_any_output_scores_finite_in_range_and_like_the_official_code(pairs: list[tuple[str, str]]) -> None:
    texts, truths = [p[0] for p in pairs], [p[1] for p in pairs]
    out = SegmentationAccuracy().evaluate(completions=texts, ground_truth=truths)
    assert np.isfinite(out.rewards).all() and ((out.rewards >= 0) & (out.rewards <= 5)).all()
    expected = {
        "thinking_format": [ref_thinking_format(t) for t in texts],
        "segmentation_format": [ref_segmentation_format(t) for t in texts],
        "box_iou": [ref_box_iou(t, g) for t, g in pairs],
        "point_match": [ref_point_match(t, g) for t, g in pairs],
        "box_l1": [ref_box_l1(t, g) for t, g in pairs],
    }
    for name, values in expected.items():
        assert out.components[name].tolist() == values, name


@st.composite
def canonical_like(draw: st.DrawFn) -> str:
    """The common answer shape with random spacing and numbers, usually inside the think/answer tags: exercises
    the batch fast path and its edges (8-digit numbers, leading zeros, '-0', extra spaces, Unicode whitespace
    between the tags, a brace in the reasoning, text around the tags) against json.loads and the official regexes.
    """
    gap = st.sampled_from(["", " ", "  ", "\n", "\t"])
    number = st.one_of(st.integers(-(10**8), 10**8).map(str), st.sampled_from(["-0", "00", "01", "1.0", "1e2"]))

    def values(k: int) -> str:
        return "[" + draw(gap) + ",".join(draw(gap) + draw(number) + draw(gap) for _ in range(k)) + "]"

    keys = ("bbox", "points_1", "points_2")
    body = ",".join(f'{draw(gap)}"{key}"{draw(gap)}:{draw(gap)}{values(4 if key == "bbox" else 2)}' for key in keys)
    answer = "{" + body + draw(gap) + "}"
    if draw(st.booleans()):
        return answer
    reasoning = draw(st.sampled_from(["", "look", "a {b} c", "x</think>y", "{", "}"]))
    between = draw(st.sampled_from(["", "\n", " \t ", "\u00a0", "\u2003\n", "\x1c", "\u200b", "x", "</think>"]))
    before, after = draw(st.sampled_from(["<think>", " <think>", ""])), draw(st.sampled_from(["", "\n", "</answer>"]))
    return f"{before}{reasoning}</think>{between}<answer>{answer}</answer>{after}"


@given(st.lists(canonical_like(), min_size=1, max_size=6))
def test_batch_fast_path_reads_like_json_loads(answers: list[str]) -> None:
    truths = [GT] * len(answers)
    terms = segmentation_terms(answers, truths)
    for i, text in enumerate(answers):
        single = parse_answer(text)  # one json.loads per answer
        assert terms.thinking_format[i] == float(single.thinking_format) == ref_thinking_format(text)
        assert terms.segmentation_format[i] == float(single.segmentation_format) == ref_segmentation_format(text)
        assert terms.json_found[i] == single.json_found
        assert terms.box_iou[i] == ref_box_iou(text, GT) and terms.box_l1[i] == ref_box_l1(text, GT)
        assert terms.point_match[i] == ref_point_match(text, GT)


# ------------------------------------------------------------------------------------------------------------
# One parse per evaluation


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of the parse of the completions, the ground-truth reader and the geometry."""
    counts = dict.fromkeys(("_read_answers", "_read_targets", "_measure"), 0)
    for name in counts:
        original = getattr(segmentation, name)

        def wrapper(*args: object, _name: str = name, _original: Any = original, **kwargs: object) -> Any:
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(segmentation, name, wrapper)
    return counts


def test_the_terms_and_the_accuracy_share_one_parse_per_evaluate(counted: dict[str, int]) -> None:
    cases = generate_cases(64, seed=2)
    batch = RewardBatch(tuple(c[0] for c in cases), ground_truth=tuple(c[1] for c in cases))
    terms = [ThinkingFormatReward(), SegmentationFormatReward(), BoxIoUReward(), PointMatchReward(), BoxL1Reward()]
    reward = WeightedSum([*terms, SegmentationAccuracy(), SegmentationAccuracy(name="again")])
    out = reward.evaluate(batch)
    # box terms share one ground-truth reading (they need the box), the point term and the accuracy one each
    assert counted == {"_read_answers": 1, "_read_targets": 3, "_measure": 3}
    reward.evaluate(batch)  # the memo lives for one evaluate
    assert counted == {"_read_answers": 2, "_read_targets": 6, "_measure": 6}
    np.testing.assert_array_equal(out.components["again"], SegmentationAccuracy()(batch))
    np.testing.assert_array_equal(out.rewards, sum(t(batch) for t in terms) + 2 * out.components["again"])


def test_batches_with_the_same_completions_and_truths_share_the_parse(counted: dict[str, int]) -> None:
    batch = RewardBatch((GOOD, "no answer"), ground_truth=(GT, GT))
    with scope():
        first = SegmentationAccuracy().evaluate(batch)
        second = SegmentationAccuracy().evaluate(batch.replace(difficulty=[1.0, 2.0]))  # WithContext makes these
    assert counted == {"_read_answers": 1, "_read_targets": 1, "_measure": 1}
    np.testing.assert_array_equal(first.rewards, second.rewards)
    assert first.rewards.tolist() == [5.0, 0.0]


@pytest.mark.parametrize("depth", [1, 499, 500])
def test_a_span_nested_up_to_the_bound_is_read(depth: int) -> None:
    from adaptive_length_reward.segmentation import MAX_JSON_DEPTH, load_json_span

    assert depth <= MAX_JSON_DEPTH == 500
    text = '<think>x</think><answer>{"bbox": [0, 0, 9, 9], "points_1": ' + "[" * depth + "1" + "]" * depth
    answer = parse_answer(text + ', "points_2": [1, 2]}</answer>')
    assert answer.json_found and answer.bbox == (0, 0, 9, 9)
    value = load_json_span('{"a": ' + "[" * depth + "]" * depth + "}")["a"]
    for _ in range(depth - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


@pytest.mark.parametrize("depth", [501, 3000, 20000])
def test_a_span_nested_beyond_the_bound_is_no_json_on_every_python(depth: int) -> None:
    """json.loads gives up at a depth that depends on the Python version (about 1,000 on 3.10/3.11, far more on
    3.12+): past MAX_JSON_DEPTH the answer is 'no JSON' everywhere, so rewards are the same on every version."""
    text = '<think>x</think><answer>{"bbox": [0, 0, 9, 9], "points_1": ' + "[" * depth + "1" + "]" * depth
    answer = parse_answer(text + ', "points_2": [1, 2]}</answer>')
    assert (answer.json_found, answer.segmentation_format, answer.bbox) == (False, False, None)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    from adaptive_length_reward.segmentation import load_json_span

    deep_string = '"' + "[" * 2000 + '\\"' + "[" * 10 + '"'
    assert load_json_span('{"bbox": ' + deep_string + "}") == {"bbox": "[" * 2000 + '"' + "[" * 10}
