"""Reasoning-segmentation task rewards of Seg-Zero and PixelThink, exact to the official code, for a whole batch.

The policy answers ``<think>REASONING</think><answer>{"bbox": [x1,y1,x2,y2], "points_1": [x,y],
"points_2": [x,y]}</answer>``; the ground truth is ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>``
(or the same values as a mapping or lists, see :func:`parse_ground_truth`). The accuracy reward is the sum of
five binary terms (PixelThink, arXiv 2505.23727, Sec. 3.3 and official ``verl/utils/reward_score/
seg_pixelthink.py``; identical in Seg-Zero, arXiv 2503.06520, official ``verl/utils/reward_score/seg_restrict.py``):

1. :class:`ThinkingFormatReward`: the whole response fullmatches ``<think>.*?</think>\\s*<answer>.*?</answer>``
   (DOTALL).
2. :class:`SegmentationFormatReward`: the answer's first JSON object holds a 4-element list ``bbox`` and
   2-element lists ``points_1``, ``points_2``.
3. :class:`BoxIoUReward`: ``IoU(pred, gt) > 0.5`` with inclusive-pixel areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``.
4. :class:`BoxL1Reward`: mean absolute coordinate difference ``< 10`` pixels.
5. :class:`PointMatchReward`: both predicted points inside the predicted box and the best-matched mean
   distance ``min(d(p1,g1) + d(p2,g2), d(p1,g2) + d(p2,g1)) / 2 < 100`` pixels.

:class:`SegmentationAccuracy` is their sum, in ``[0, 5]``, computed with one parse per completion.

What the official code does, and therefore what this module does (each point is covered by a test):

- "The first JSON object" is the leftmost match of the regex ``{[^}]+}``: from the first ``{`` that is not
  immediately followed by ``}`` up to the next ``}``. Nested objects therefore never parse (the span ends at
  the inner ``}``), and neither does an answer without a closing brace.
- The span is read with :func:`json.loads`, which accepts ``NaN``, ``Infinity`` and integers of any size;
  duplicate keys keep the last value. ``true``/``false`` are the integers 1/0 to Python, so they count as
  numbers in a box.
- The segmentation format term checks only the types and lengths of the three values, not their contents.
- Box IoU and box L1 need only ``bbox`` (a list of four numbers); they do not need the points or the tags.
- The overlap of two boxes counts only where ``x1 < x2`` and ``y1 < y2`` strictly hold for the intersection,
  so boxes touching on a line share 0 pixels although inclusive areas would give them one row.
- A union of 0 (possible only with inverted boxes) makes the official division raise, so that term is 0.
- Points are converted with :class:`int` element by element: floats are truncated toward zero, numeric
  strings are parsed (``"12"``), and a string value is indexed character by character (``"points_1": "37"``
  is the point (3, 7)). Only the first two elements are read.
- NaN compares false, so a NaN anywhere in the box fails the geometric terms; infinite boxes give IoU 0.
- The geometry runs vectorised in float64, in the official order of operations, which reproduces Python's
  arithmetic exactly while every coordinate is within :data:`EXACT_INTEGER_LIMIT` (``2**24``) in magnitude.
  A sample with a larger or infinite coordinate is scored on its own with Python numbers (exact integers,
  as in the official code).

A malformed completion is never an error: the terms it fails are 0. A malformed ground truth raises
:class:`ValueError` naming the sample.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import Field

from .batch import RewardBatch
from .config import ComponentConfig, register, validated
from .reward import Reward, RewardOutput

__all__ = [
    "EXACT_INTEGER_LIMIT",
    "TERM_NAMES",
    "BoxIoUReward",
    "BoxL1Reward",
    "PointMatchReward",
    "SegmentationAccuracy",
    "SegmentationAnswer",
    "SegmentationFormatReward",
    "SegmentationTarget",
    "SegmentationTerms",
    "ThinkingFormatReward",
    "box_iou_inclusive",
    "box_mean_l1",
    "first_json_object",
    "has_thinking_format",
    "matched_point_distance",
    "parse_answer",
    "parse_ground_truth",
    "segmentation_terms",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Number = int | float
Box = tuple[Number, Number, Number, Number]
Points = tuple[tuple[Number, Number], tuple[Number, Number]]

#: Below this magnitude every intermediate value of the geometry (areas, sums of squares) stays under 2**53, so
#: float64 gives exactly Python's results; a sample with a larger coordinate is scored with Python numbers.
EXACT_INTEGER_LIMIT = 2**24

TERM_NAMES = ("thinking_format", "segmentation_format", "box_iou", "point_match", "box_l1")
"""The five terms, in the order the official code adds them."""

_OPEN_THINK, _CLOSE_ANSWER = "<think>", "</answer>"  # 7 and 9 characters
_CLOSE_THEN_ANSWER = re.compile(r"</think>\s*<answer>")
_GT_BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
_GT_POINTS = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")
_NUMBER_TYPES = (int, float, bool)  # what json.loads produces for numbers and true/false


# ------------------------------------------------------------------------------------------------------------
# Parsing model output
# ------------------------------------------------------------------------------------------------------------


def has_thinking_format(text: str) -> bool:
    """Whether ``text`` fullmatches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL), the official
    thinking-format test, without running the backtracking regex over the whole text.

    The pattern holds iff the text starts with ``<think>``, ends with ``</answer>``, and ``</think>``, optional
    whitespace (``\\s``, Unicode) and ``<answer>`` occur in that order between the two, without overlapping them.

    >>> has_thinking_format("<think>a</think>\\n<answer>b</answer>")
    True
    >>> has_thinking_format("<think>a</think><answer>b</answer>\\n")
    False
    """
    return (
        text.startswith(_OPEN_THINK)
        and text.endswith(_CLOSE_ANSWER)
        and _CLOSE_THEN_ANSWER.search(text, 7, len(text) - 9) is not None
    )


def _thinking_flags(texts: Sequence[str]) -> list[bool]:
    """:func:`has_thinking_format` of each text, without a Python call per text."""
    opening, ending, search = _OPEN_THINK, _CLOSE_ANSWER, _CLOSE_THEN_ANSWER.search
    return [t.startswith(opening) and t.endswith(ending) and search(t, 7, len(t) - 9) is not None for t in texts]


def first_json_object(text: str) -> str | None:
    """The span the official regex ``{[^}]+}`` finds first (``re.search``), or ``None``.

    That is the text from the first ``{`` not immediately followed by ``}`` to the next ``}``.

    >>> first_json_object('x {} {"a": [1, {"b": 2}]} y')
    '{"a": [1, {"b": 2}'
    """
    start = text.find("{")
    while start >= 0:
        end = text.find("}", start + 1)
        if end < 0:
            return None
        if end > start + 1:
            return text[start : end + 1]
        start = text.find("{", end + 1)
    return None


def _int_point(value: Any) -> tuple[int, int] | None:
    """``[int(value[0]), int(value[1])]`` as the official code computes it, or ``None`` where it raises."""
    try:
        return (int(value[0]), int(value[1]))
    except (TypeError, ValueError, OverflowError, IndexError, KeyError):
        return None


class SegmentationAnswer(NamedTuple):
    """What the official reward reads from one completion.

    Attributes:
        thinking_format: the think/answer fullmatch holds.
        json_found: a first ``{...}`` span exists and parses as JSON.
        segmentation_format: ``bbox`` is a list of 4 and ``points_1``/``points_2`` lists of 2 (any contents).
        bbox: the box when ``bbox`` is a list of four numbers (``true``/``false`` read as 1/0), else ``None``.
        points: ``points_1`` and ``points_2`` after the official ``int()`` conversion of their first two
            elements, when both convert, else ``None``.
    """

    thinking_format: bool
    json_found: bool
    segmentation_format: bool
    bbox: Box | None
    points: Points | None


def _read_span(span: str | None) -> tuple[bool, bool, Box | None, Points | None]:
    """(json_found, segmentation_format, numeric box, int points) of a first-object span, the official way."""
    if span is None:
        return (False, False, None, None)
    try:
        data = json.loads(span)
    except (ValueError, RecursionError):  # not JSON (JSONDecodeError, too many digits) or nested too deep
        return (False, False, None, None)
    if not isinstance(data, dict):  # pragma: no cover - a JSON text that starts with '{' is an object
        return (False, False, None, None)
    box, first, second = data.get("bbox"), data.get("points_1"), data.get("points_2")
    segmentation = (
        type(box) is list
        and len(box) == 4
        and type(first) is list
        and len(first) == 2
        and type(second) is list
        and len(second) == 2
    )
    numeric_box: Box | None = None
    if type(box) is list and len(box) == 4 and all(type(v) in _NUMBER_TYPES for v in box):
        numeric_box = tuple(int(v) if type(v) is bool else v for v in box)  # type: ignore[assignment]
    points: Points | None = None
    if first is not None and second is not None:
        p, q = _int_point(first), _int_point(second)
        if p is not None and q is not None:
            points = (p, q)
    return (True, segmentation, numeric_box, points)


def parse_answer(text: str) -> SegmentationAnswer:
    """Read one completion the way the official reward does; never raises for any string.

    >>> answer = parse_answer('<think>x</think><answer>{"bbox": [1, 2, 30, 40], "points_1": [5.9, 6], '
    ...                       '"points_2": "78"}</answer>')
    >>> answer.thinking_format, answer.segmentation_format, answer.bbox, answer.points
    (True, False, (1, 2, 30, 40), ((5, 6), (7, 8)))
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_answer: text: expected str, got {type(text).__name__}")
    return SegmentationAnswer(has_thinking_format(text), *_read_span(first_json_object(text)))


# ------------------------------------------------------------------------------------------------------------
# Parsing ground truth
# ------------------------------------------------------------------------------------------------------------


class SegmentationTarget(NamedTuple):
    """A ground truth: a box ``(x1, y1, x2, y2)`` and two points ``((x, y), (x, y))``; either may be absent."""

    bbox: Box | None
    points: Points | None


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _numbers(value: Any, count: int, where: str, what: str) -> tuple[Number, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{where}: {what}: expected {count} numbers, got {value!r:.80}")
    items = list(value)
    if len(items) != count or not all(_is_real(v) for v in items):
        raise ValueError(f"{where}: {what}: expected {count} numbers, got {value!r:.80}")
    numbers = tuple(int(v) if isinstance(v, (int, np.integer)) else float(v) for v in items)
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{where}: {what}: expected finite numbers, got {value!r:.80}")
    return numbers


def _point_pair(value: Any, where: str, what: str) -> Points:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise ValueError(f"{where}: {what}: expected two (x, y) points, got {value!r:.80}")
    first, second = (_numbers(v, 2, where, f"{what}[{i}]") for i, v in enumerate(value))
    return ((first[0], first[1]), (second[0], second[1]))


def parse_ground_truth(value: Any, *, index: int | None = None) -> SegmentationTarget:
    """Read a ground truth in any accepted form; raise :class:`ValueError` naming the sample if malformed.

    Accepted forms:

    - the official string, searched with the official regexes (non-negative integers):
      ``"<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>"``; either part may be missing, but
      not both;
    - a mapping with ``"bbox": [x1, y1, x2, y2]`` and the points as ``"points_1"``/``"points_2"`` or as
      ``"points": [[x, y], [x, y]]`` (other keys are ignored);
    - a sequence: ``[x1, y1, x2, y2]`` (box only) or ``(box, points)``.

    Args:
        value: the ground truth.
        index: the sample's position in the batch, used in error messages.

    >>> parse_ground_truth("<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>")
    SegmentationTarget(bbox=(1, 2, 30, 40), points=((5, 6), (7, 8)))
    >>> parse_ground_truth({"bbox": [1, 2, 30, 40], "points": [[5, 6], [7, 8]]}).points
    ((5, 6), (7, 8))
    """
    where = "ground_truth" if index is None else f"ground_truth[{index}]"
    if isinstance(value, str):
        return _target_from_text(value, where)
    if isinstance(value, Mapping):
        return _target_from_mapping(value, where)
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, bytes):
        if len(value) == 4 and all(_is_real(v) for v in value):
            return SegmentationTarget(_box(_numbers(value, 4, where, "bbox")), None)
        if len(value) == 2:
            return SegmentationTarget(
                _box(_numbers(value[0], 4, where, "bbox")), _point_pair(value[1], where, "points")
            )
        raise ValueError(f"{where}: expected [x1, y1, x2, y2] or (box, points), got {value!r:.80}")
    raise TypeError(f"{where}: expected the official string, a mapping or a sequence, got {type(value).__name__}")


def _box(numbers: tuple[Number, ...]) -> Box:
    return (numbers[0], numbers[1], numbers[2], numbers[3])


def _target_from_text(value: str, where: str) -> SegmentationTarget:
    box_match, points_match = _GT_BOX.search(value), _GT_POINTS.search(value)
    if box_match is None and points_match is None:
        raise ValueError(
            f"{where}: expected '<box>(x1,y1),(x2,y2)</box>' and/or '<points>(x1,y1),(x2,y2)</points>' "
            f"with non-negative integers, got {value!r:.120}"
        )
    try:
        box = None if box_match is None else _box(tuple(map(int, box_match.groups())))
        n = None if points_match is None else list(map(int, points_match.groups()))
    except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits())
        raise ValueError(f"{where}: expected coordinates of at most 4300 digits, got {value!r:.120}") from None
    return SegmentationTarget(box, None if n is None else ((n[0], n[1]), (n[2], n[3])))


def _target_from_mapping(value: Mapping[Any, Any], where: str) -> SegmentationTarget:
    if "bbox" not in value and "points" not in value and "points_1" not in value:
        raise ValueError(
            f"{where}: expected a mapping with 'bbox' and/or the points, got keys {sorted(map(str, value))}"
        )
    box = _box(_numbers(value["bbox"], 4, where, "bbox")) if "bbox" in value else None
    points: Points | None = None
    if "points" in value:
        points = _point_pair(value["points"], where, "points")
    elif "points_1" in value or "points_2" in value:
        if "points_1" not in value or "points_2" not in value:
            raise ValueError(f"{where}: expected both 'points_1' and 'points_2', got keys {sorted(map(str, value))}")
        points = _point_pair([value["points_1"], value["points_2"]], where, "points_1/points_2")
    return SegmentationTarget(box, points)


# ------------------------------------------------------------------------------------------------------------
# The geometry, vectorised (float64, in the official order of operations)
# ------------------------------------------------------------------------------------------------------------


def box_iou_inclusive(pred: npt.ArrayLike, target: npt.ArrayLike) -> FloatArray:
    """IoU of ``(x1, y1, x2, y2)`` boxes with inclusive-pixel areas, as the official ``iou`` helper computes it.

    ``inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1)`` if ``ix1 < ix2 and iy1 < iy2`` (strict) else 0;
    ``area = (x2 - x1 + 1) * (y2 - y1 + 1)``; ``IoU = inter / (area_pred + area_gt - inter)``
    (Seg-Zero ``seg_restrict.py``, PixelThink ``seg_pixelthink.py``). NaN where the union is 0 (the official
    division raises there) or any coordinate is NaN.

    >>> box_iou_inclusive([[0, 0, 9, 9], [0, 0, 9, 9]], [[0, 0, 9, 9], [5, 0, 14, 9]]).tolist()
    [1.0, 0.3333333333333333]
    """
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ix1, iy1 = np.maximum(p[..., 0], g[..., 0]), np.maximum(p[..., 1], g[..., 1])
        ix2, iy2 = np.minimum(p[..., 2], g[..., 2]), np.minimum(p[..., 3], g[..., 3])
        overlap = (ix1 < ix2) & (iy1 < iy2)
        inter = np.where(overlap, (ix2 - ix1 + 1) * (iy2 - iy1 + 1), 0.0)
        area_p = (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
        area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
        union = area_p + area_g - inter
        iou = inter / union
    return np.where(union == 0, np.nan, iou)


def box_mean_l1(pred: npt.ArrayLike, target: npt.ArrayLike) -> FloatArray:
    """Mean absolute coordinate difference of two boxes, ``sum_k |p_k - g_k| / 4`` (official ``l1_distance``)."""
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(p - g)
        return (d[..., 0] + d[..., 1] + d[..., 2] + d[..., 3]) / 4


def matched_point_distance(pred: npt.ArrayLike, target: npt.ArrayLike) -> FloatArray:
    """Best-matched mean Euclidean distance of two point pairs (official ``points_distance``):
    ``min(|p1 - g1| + |p2 - g2|, |p1 - g2| + |p2 - g1|) / 2``. Arrays of shape ``(..., 2, 2)``.

    >>> matched_point_distance([[[0, 0], [10, 0]]], [[[10, 0], [0, 0]]]).tolist()
    [0.0]
    """
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        straight = _distance(p[..., 0, :], g[..., 0, :]) + _distance(p[..., 1, :], g[..., 1, :])
        crossed = _distance(p[..., 0, :], g[..., 1, :]) + _distance(p[..., 1, :], g[..., 0, :])
        best: FloatArray = np.minimum(straight, crossed) / 2
    return best


def _distance(a: FloatArray, b: FloatArray) -> FloatArray:
    """``sqrt((ax - bx)**2 + (ay - by)**2)``, in the official order of operations."""
    out: FloatArray = np.sqrt(np.square(a[..., 0] - b[..., 0]) + np.square(a[..., 1] - b[..., 1]))
    return out


def _points_in_box(points: FloatArray, box: FloatArray) -> BoolArray:
    """``x1 <= x <= x2 and y1 <= y <= y2`` for both points (inclusive; NaN compares false)."""
    x, y = points[..., 0], points[..., 1]
    inside = (box[:, None, 0] <= x) & (x <= box[:, None, 2]) & (box[:, None, 1] <= y) & (y <= box[:, None, 3])
    return np.asarray(inside.all(axis=-1))


# ------------------------------------------------------------------------------------------------------------
# Exact integer path for huge coordinates (rare; a policy emitting 10**30)
# ------------------------------------------------------------------------------------------------------------


def _exact_terms(
    box: Box | None, points: Points | None, target: SegmentationTarget, thresholds: tuple[float, float, float]
) -> tuple[float, float, float, float, float, float]:
    """(iou term, l1 term, point term, iou, l1, distance) with Python numbers, as the official code computes
    them; an overflow or a zero union, which raise there, fail the term (value NaN)."""
    iou_threshold, l1_threshold, point_threshold = thresholds
    iou = l1 = distance = math.nan
    if box is not None and target.bbox is not None:
        g = target.bbox
        try:
            ix1, iy1, ix2, iy2 = max(box[0], g[0]), max(box[1], g[1]), min(box[2], g[2]), min(box[3], g[3])
            inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if (ix1 < ix2 and iy1 < iy2) else 0
            union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
            iou = float(inter) / union
        except (OverflowError, ZeroDivisionError):
            iou = math.nan
        try:
            l1 = (abs(box[0] - g[0]) + abs(box[1] - g[1]) + abs(box[2] - g[2]) + abs(box[3] - g[3])) / 4
        except OverflowError:
            l1 = math.nan
    match = False
    if box is not None and points is not None and target.points is not None:
        inside = all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in points)
        (p, q), (a, b) = points, target.points
        try:
            straight = math.sqrt((p[0] - a[0]) ** 2 + (p[1] - a[1]) ** 2) + math.sqrt(
                (q[0] - b[0]) ** 2 + (q[1] - b[1]) ** 2
            )
            crossed = math.sqrt((p[0] - b[0]) ** 2 + (p[1] - b[1]) ** 2) + math.sqrt(
                (q[0] - a[0]) ** 2 + (q[1] - a[1]) ** 2
            )
            distance = min(straight, crossed) / 2
        except OverflowError:
            distance = math.nan
        match = inside and distance < point_threshold
    return (float(iou > iou_threshold), float(l1 < l1_threshold), float(match), iou, l1, distance)


# ------------------------------------------------------------------------------------------------------------
# Batch scoring
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentationTerms:
    """The five terms (0.0/1.0 per completion) and the measured values behind them.

    Attributes:
        thinking_format, segmentation_format, box_iou, point_match, box_l1: the terms.
        iou: box IoU (NaN where the answer has no numeric box or the union is 0).
        l1: mean box L1 distance (NaN where there is no numeric box).
        distance: matched mean point distance (NaN where the box or the points are unusable).
        json_found: a first ``{...}`` span parsed as JSON.
    """

    thinking_format: FloatArray
    segmentation_format: FloatArray
    box_iou: FloatArray
    point_match: FloatArray
    box_l1: FloatArray
    iou: FloatArray
    l1: FloatArray
    distance: FloatArray
    json_found: BoolArray

    @property
    def total(self) -> FloatArray:
        """The accuracy reward: the sum of the five terms, in ``[0, 5]``."""
        return self.thinking_format + self.segmentation_format + self.box_iou + self.point_match + self.box_l1

    def terms(self) -> dict[str, FloatArray]:
        """The five terms by name, in the official order of addition."""
        return {name: getattr(self, name) for name in TERM_NAMES}


# The answer almost every policy writes: {"bbox": [4 ints], "points_1": [2 ints], "points_2": [2 ints]}, with an
# optional space after each ':' and ',' (json.dumps' style or the compact one) and integers of at most 7 digits.
# For such a span json.loads gives exactly these integers, so one regex pass over all spans replaces one json.loads
# per completion. Every other span (other spacing, floats, other keys...) is matched by the second alternative
# (up to its only '}') and read with json.loads.
_INT = r"(-?(?:0|[1-9][0-9]{0,6}))"


def _json_list(count: int) -> str:
    return r"\[" + ", ?".join([_INT] * count) + r"\]"


_CANONICAL_OR_ANY = re.compile(
    r'\{"bbox": ?'
    + _json_list(4)
    + r', ?"points_1": ?'
    + _json_list(2)
    + r', ?"points_2": ?'
    + _json_list(2)
    + r"\}|[^}]*\}"
)


@dataclass(frozen=True)
class _Answers:
    """Column-wise parse of a batch of completions (the batch form of :class:`SegmentationAnswer`)."""

    thinking: BoolArray
    json_found: BoolArray
    segmentation: BoolArray
    has_box: BoolArray
    has_points: BoolArray  # numeric box and both points convert
    box: FloatArray  # (n, 4), NaN where no numeric box
    points: FloatArray  # (n, 2, 2)
    overflow: BoolArray  # a value beyond float64's range: only the exact path can score it
    raw: dict[int, tuple[Box | None, Points | None]]  # Python values of rows read with json.loads


def _read_answers(completions: Sequence[str]) -> _Answers:
    n = len(completions)
    thinking = np.fromiter(_thinking_flags(completions), dtype=np.bool_, count=n)
    spans = list(map(first_json_object, completions))
    present = [i for i, span in enumerate(spans) if span is not None]
    matches = _CANONICAL_OR_ANY.findall("".join([spans[i] for i in present]))  # type: ignore[misc]
    if len(matches) != len(present):  # pragma: no cover - each span holds exactly one '}', at its end
        raise AssertionError("segmentation: span reader lost alignment; please report this input")
    json_found = np.zeros(n, dtype=np.bool_)
    segmentation = np.zeros(n, dtype=np.bool_)
    has_box = np.zeros(n, dtype=np.bool_)
    has_points = np.zeros(n, dtype=np.bool_)
    overflow = np.zeros(n, dtype=np.bool_)
    box = np.full((n, 4), np.nan)
    points = np.full((n, 2, 2), np.nan)
    canonical = [k for k, groups in enumerate(matches) if groups[0]]
    if canonical:
        rows = np.asarray([present[k] for k in canonical], dtype=np.intp)
        groups = [matches[k] for k in canonical]
        # The regex admitted only '-?digits' here, so NumPy's text parser reads them exactly, in C.
        values = np.fromstring(" ".join(itertools.chain.from_iterable(groups)), dtype=np.int64, sep=" ")
        if values.size != 8 * len(groups):  # pragma: no cover - defensive; the regex guarantees 8 per span
            values = np.array(groups, dtype=np.int64)
        values = values.reshape(-1, 8).astype(np.float64)
        json_found[rows] = segmentation[rows] = has_box[rows] = has_points[rows] = True
        box[rows] = values[:, :4]
        points[rows] = values[:, 4:].reshape(-1, 2, 2)
    raw: dict[int, tuple[Box | None, Points | None]] = {}
    for k, groups in enumerate(matches):
        if groups[0]:
            continue
        i = present[k]
        found, segmentation_ok, numeric_box, int_points = _read_span(spans[i])
        json_found[i], segmentation[i] = found, segmentation_ok
        if numeric_box is None:
            continue
        raw[i] = (numeric_box, int_points)
        has_box[i] = True
        has_points[i] = int_points is not None
        try:
            box[i] = numeric_box
            if int_points is not None:
                points[i] = int_points
        except OverflowError:  # an integer beyond float64's range
            overflow[i] = True
    return _Answers(thinking, json_found, segmentation, has_box, has_points, box, points, overflow, raw)


# Ground truths in the exact official form with ASCII integers of at most 7 digits: one regex pass reads them all.
_GT_CANONICAL = re.compile(
    r"^<box>\(([0-9]{1,7}),([0-9]{1,7})\),\(([0-9]{1,7}),([0-9]{1,7})\)</box>"
    r"<points>\(([0-9]{1,7}),([0-9]{1,7})\),\(([0-9]{1,7}),([0-9]{1,7})\)</points>$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class _Targets:
    """Distinct ground truths as arrays, and each sample's index into them."""

    box: FloatArray  # (m, 4), NaN where absent
    points: FloatArray  # (m, 2, 2)
    overflow: BoolArray  # (m,) a value beyond float64's range
    index: npt.NDArray[np.intp]  # (n,)
    parsed: list[SegmentationTarget] | None  # None when every target was read by the canonical regex

    def target(self, j: int) -> SegmentationTarget:
        if self.parsed is not None:
            return self.parsed[j]
        b, p = self.box[j], self.points[j]  # canonical: at most 7 digits, exact in float64
        return SegmentationTarget(
            (int(b[0]), int(b[1]), int(b[2]), int(b[3])), ((int(p[0, 0]), int(p[0, 1])), (int(p[1, 0]), int(p[1, 1])))
        )


def _read_targets(values: Sequence[Any], *, need_box: bool, need_points: bool, by: str) -> _Targets:
    """Parse each distinct ground truth once (GRPO repeats each prompt's truth n times)."""
    n = len(values)
    if all(type(v) is str for v in values):
        first_index = {v: i for i, v in reversed(list(enumerate(values)))}  # value -> first sample holding it
        position = {v: k for k, v in enumerate(first_index)}
        index = np.fromiter(map(position.__getitem__, values), dtype=np.intp, count=n)
        texts = list(first_index)
        if not any("\n" in text for text in texts):  # one line per truth, so matches align with truths
            rows = _GT_CANONICAL.findall("\n".join(texts))
            if len(rows) == len(texts):
                values_ = np.array(rows, dtype=np.int64).astype(np.float64).reshape(len(texts), 8)
                return _Targets(
                    values_[:, :4].copy(),
                    values_[:, 4:].reshape(-1, 2, 2),
                    np.zeros(len(texts), dtype=np.bool_),
                    index,
                    None,
                )
        parsed = [
            _check_target(parse_ground_truth(v, index=i), v, i, need_box, need_points, by)
            for v, i in first_index.items()
        ]
        return _Targets(*_target_arrays(parsed), index, parsed)
    parsed = []
    seen: dict[Any, int] = {}
    index = np.empty(n, dtype=np.intp)
    for i, value in enumerate(values):
        key = value if isinstance(value, str) else id(value)  # a repeated mapping object is parsed once
        j = seen.get(key)
        if j is None:
            parsed.append(_check_target(parse_ground_truth(value, index=i), value, i, need_box, need_points, by))
            j = seen[key] = len(parsed) - 1
        index[i] = j
    return _Targets(*_target_arrays(parsed), index, parsed)


def _check_target(
    target: SegmentationTarget, value: Any, i: int, need_box: bool, need_points: bool, by: str
) -> SegmentationTarget:
    if need_box and target.bbox is None:
        raise ValueError(
            f"ground_truth[{i}]: {by} needs a box ('<box>(x1,y1),(x2,y2)</box>' or 'bbox'), got {value!r:.120}"
        )
    if need_points and target.points is None:
        raise ValueError(
            f"ground_truth[{i}]: {by} needs two points ('<points>(x1,y1),(x2,y2)</points>' "
            f"or 'points'), got {value!r:.120}"
        )
    return target


_NO_BOX = (math.nan,) * 4
_NO_POINTS = ((math.nan, math.nan), (math.nan, math.nan))


def _target_arrays(targets: Sequence[SegmentationTarget]) -> tuple[FloatArray, FloatArray, BoolArray]:
    """(boxes (m, 4), points (m, 2, 2), overflow (m,)) of distinct targets; NaN where a part is absent."""
    m = len(targets)
    try:
        box = np.array([t.bbox or _NO_BOX for t in targets], dtype=np.float64).reshape(m, 4)
        points = np.array([t.points or _NO_POINTS for t in targets], dtype=np.float64).reshape(m, 2, 2)
        return box, points, np.zeros(m, dtype=np.bool_)
    except OverflowError:  # an integer beyond float64's range somewhere: fill row by row
        pass
    box, points = np.full((m, 4), np.nan), np.full((m, 2, 2), np.nan)
    overflow = np.zeros(m, dtype=np.bool_)
    for j, target in enumerate(targets):
        try:
            box[j] = target.bbox or _NO_BOX
            points[j] = target.points or _NO_POINTS
        except OverflowError:
            overflow[j] = True
    return box, points, overflow


def segmentation_terms(
    completions: Sequence[str],
    ground_truth: Sequence[Any] | None = None,
    *,
    iou_threshold: float = 0.5,
    box_l1_threshold: float = 10.0,
    point_threshold: float = 100.0,
    need_box: bool = True,
    need_points: bool = True,
    by: str = "segmentation_terms",
) -> SegmentationTerms:
    """Score a batch: one parse per completion and per distinct ground truth, then vectorised geometry.

    Args:
        completions: response texts.
        ground_truth: one ground truth per completion (see :func:`parse_ground_truth`); ``None`` computes the
            two format terms only (the other three are 0).
        iou_threshold: the box term passes where ``IoU > iou_threshold`` (official 0.5).
        box_l1_threshold: passes where the mean box L1 ``< box_l1_threshold`` (official 10).
        point_threshold: passes where the matched point distance ``< point_threshold`` (official 100).
        need_box, need_points: which parts every ground truth must have (a missing one raises).
        by: who asks, for error messages.

    >>> terms = segmentation_terms(
    ...     ['<think>.</think><answer>{"bbox": [0, 0, 9, 9], "points_1": [2, 2], "points_2": [7, 7]}</answer>',
    ...      "I cannot see it."],
    ...     ["<box>(0,0),(9,9)</box><points>(2,2),(7,7)</points>"] * 2)
    >>> terms.total.tolist()
    [5.0, 0.0]
    """
    if isinstance(completions, str):
        raise TypeError(f"{by}: completions: expected a sequence of strings, got a single str")
    n = len(completions)
    answers = _read_answers(completions)
    thinking = answers.thinking.astype(np.float64)
    segmentation = answers.segmentation.astype(np.float64)
    nan = np.full(n, np.nan)
    if ground_truth is None:
        return SegmentationTerms(
            thinking,
            segmentation,
            np.zeros(n),
            np.zeros(n),
            np.zeros(n),
            nan,
            nan.copy(),
            nan.copy(),
            answers.json_found,
        )
    if isinstance(ground_truth, str) or len(ground_truth) != n:
        got = "a single str" if isinstance(ground_truth, str) else f"{len(ground_truth)} values"
        raise ValueError(f"{by}: ground_truth: expected {n} values (one per completion), got {got}")
    targets = _read_targets(ground_truth, need_box=need_box, need_points=need_points, by=by)
    which = targets.index
    gt_box, gt_points = targets.box[which], targets.points[which]

    box, points, has_box, has_points = answers.box, answers.points, answers.has_box, answers.has_points
    iou = np.where(has_box, box_iou_inclusive(box, gt_box), np.nan)
    l1 = np.where(has_box, box_mean_l1(box, gt_box), np.nan)
    distance = np.where(has_points, matched_point_distance(points, gt_points), np.nan)
    with np.errstate(invalid="ignore"):
        iou_term = (iou > iou_threshold).astype(np.float64)
        l1_term = (l1 < box_l1_threshold).astype(np.float64)
        point_term = (has_points & _points_in_box(points, box) & (distance < point_threshold)).astype(np.float64)
        large = (np.abs(box) > EXACT_INTEGER_LIMIT).any(axis=1) | (np.abs(points) > EXACT_INTEGER_LIMIT).any(
            axis=(1, 2)
        )
        large |= (np.abs(gt_box) > EXACT_INTEGER_LIMIT).any(axis=1)
        large |= (np.abs(gt_points) > EXACT_INTEGER_LIMIT).any(axis=(1, 2))
    exact = np.flatnonzero(has_box & (large | answers.overflow | targets.overflow[which]))
    thresholds = (iou_threshold, box_l1_threshold, point_threshold)
    for i in exact.tolist():
        answer_box, answer_points = answers.raw.get(i) or _ints_of_row(box[i], points[i], has_points[i])
        iou_term[i], l1_term[i], point_term[i], iou[i], l1[i], distance[i] = _exact_terms(
            answer_box, answer_points, targets.target(int(which[i])), thresholds
        )
    return SegmentationTerms(
        thinking, segmentation, iou_term, point_term, l1_term, iou, l1, distance, answers.json_found
    )


def _ints_of_row(box: FloatArray, points: FloatArray, has_points: bool) -> tuple[Box, Points | None]:
    """Python ints of a row read by the canonical-span regex (at most 7 digits, so exact in float64)."""
    b = tuple(int(v) for v in box)
    p = ((int(points[0, 0]), int(points[0, 1])), (int(points[1, 0]), int(points[1, 1]))) if has_points else None
    return b, p  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------
# Rewards
# ------------------------------------------------------------------------------------------------------------


class _TermConfig(ComponentConfig):
    name: str | None = None


class _TruthTermConfig(_TermConfig):
    column: str = Field("ground_truth", min_length=1, description="batch column holding the ground truth")


class ThinkingFormatRewardConfig(_TermConfig):
    kind: Literal["seg_thinking_format"] = "seg_thinking_format"


class SegmentationFormatRewardConfig(_TermConfig):
    kind: Literal["seg_segmentation_format"] = "seg_segmentation_format"


class BoxIoURewardConfig(_TruthTermConfig):
    kind: Literal["seg_box_iou"] = "seg_box_iou"
    threshold: float = Field(0.5, ge=0, allow_inf_nan=False)


class BoxL1RewardConfig(_TruthTermConfig):
    kind: Literal["seg_box_l1"] = "seg_box_l1"
    threshold: float = Field(10.0, ge=0, allow_inf_nan=False)


class PointMatchRewardConfig(_TruthTermConfig):
    kind: Literal["seg_point_match"] = "seg_point_match"
    threshold: float = Field(100.0, ge=0, allow_inf_nan=False)


class SegmentationAccuracyConfig(_TruthTermConfig):
    kind: Literal["seg_accuracy"] = "seg_accuracy"
    iou_threshold: float = Field(0.5, ge=0, allow_inf_nan=False)
    box_l1_threshold: float = Field(10.0, ge=0, allow_inf_nan=False)
    point_threshold: float = Field(100.0, ge=0, allow_inf_nan=False)


class _SegmentationReward(Reward):
    """Shared plumbing: a validated config, a fixed default name, the 0/1 range of one term."""

    default_name: ClassVar[str]

    def __init__(self, config: _TermConfig) -> None:
        self._config = config
        super().__init__(name=config.name)

    @property
    def name(self) -> str:
        """The given name, else the term's official short name (e.g. ``"box_iou"``)."""
        return self._name or self.default_name

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def requires(self) -> frozenset[str]:
        """The ground-truth column, for the terms that compare with one (the format terms need none)."""
        column: str | None = getattr(self._config, "column", None)
        return frozenset({column}) if column else frozenset()

    def to_config(self) -> ComponentConfig:
        return self._config

    def _truth(self, batch: RewardBatch) -> Sequence[Any]:
        column: str = self._config.column  # type: ignore[attr-defined]
        values: Sequence[Any] = batch.column(column, by=f"{type(self).__name__} {self.name!r}")
        return values


@register("seg_thinking_format", ThinkingFormatRewardConfig)
class ThinkingFormatReward(_SegmentationReward):
    """1 where the whole response fullmatches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL), else 0.

    Official ``seg_thinking_format_reward`` (Seg-Zero ``seg_restrict.py``; PixelThink ``seg_pixelthink.py``).
    Nothing may precede ``<think>`` or follow ``</answer>``, not even whitespace. Needs no context.

    >>> ThinkingFormatReward()(completions=["<think>a</think> <answer>b</answer>", "<answer>b</answer>"]).tolist()
    [1.0, 0.0]
    """

    default_name = "thinking_format"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(validated("ThinkingFormatReward", ThinkingFormatRewardConfig, name=name))

    def _evaluate(self, batch: RewardBatch) -> FloatArray:
        return np.fromiter(_thinking_flags(batch.completions), dtype=np.float64, count=len(batch))


@register("seg_segmentation_format", SegmentationFormatRewardConfig)
class SegmentationFormatReward(_SegmentationReward):
    """1 where the first ``{...}`` span is JSON with a 4-element list ``bbox`` and 2-element lists ``points_1``
    and ``points_2``, else 0 (official ``seg_segmentation_format_reward``; contents are not checked).

    Reports ``json_found`` (the span parsed as JSON) as a diagnostic column. Needs no context.
    """

    default_name = "segmentation_format"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(validated("SegmentationFormatReward", SegmentationFormatRewardConfig, name=name))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        answers = _read_answers(batch.completions)
        return RewardOutput(answers.segmentation.astype(np.float64), columns={"json_found": answers.json_found})


@register("seg_box_iou", BoxIoURewardConfig)
class BoxIoUReward(_SegmentationReward):
    """1 where ``IoU(pred box, gt box) > threshold`` with inclusive-pixel areas (official ``seg_iou_reward``,
    threshold 0.5; see :func:`box_iou_inclusive`), else 0. Needs only ``bbox`` in the answer.

    Args:
        threshold: strict lower bound on the IoU (official 0.5).
        column: the batch column with the ground truth (needs its box).

    Reports ``iou`` (NaN where the answer has no numeric box) as a diagnostic column.
    """

    default_name = "box_iou"

    def __init__(self, *, threshold: float = 0.5, column: str = "ground_truth", name: str | None = None) -> None:
        super().__init__(validated("BoxIoUReward", BoxIoURewardConfig, threshold=threshold, column=column, name=name))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        terms = segmentation_terms(
            batch.completions,
            self._truth(batch),
            iou_threshold=self._config.threshold,  # type: ignore[attr-defined]
            need_box=True,
            need_points=False,
            by="BoxIoUReward",
        )
        return RewardOutput(terms.box_iou, columns={"iou": terms.iou})


@register("seg_box_l1", BoxL1RewardConfig)
class BoxL1Reward(_SegmentationReward):
    """1 where the mean absolute coordinate difference of the boxes ``< threshold`` pixels (official
    ``seg_box_l1_reward``, threshold 10; see :func:`box_mean_l1`), else 0. Needs only ``bbox`` in the answer.

    Reports ``l1_distance`` (NaN where the answer has no numeric box) as a diagnostic column.
    """

    default_name = "box_l1"

    def __init__(self, *, threshold: float = 10.0, column: str = "ground_truth", name: str | None = None) -> None:
        super().__init__(validated("BoxL1Reward", BoxL1RewardConfig, threshold=threshold, column=column, name=name))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        terms = segmentation_terms(
            batch.completions,
            self._truth(batch),
            box_l1_threshold=self._config.threshold,  # type: ignore[attr-defined]
            need_box=True,
            need_points=False,
            by="BoxL1Reward",
        )
        return RewardOutput(terms.box_l1, columns={"l1_distance": terms.l1})


@register("seg_point_match", PointMatchRewardConfig)
class PointMatchReward(_SegmentationReward):
    """1 where both predicted points lie inside the predicted box (inclusive) and the best-matched mean distance
    to the ground-truth points is ``< threshold`` pixels (official ``seg_point_l1_reward``, threshold 100; see
    :func:`matched_point_distance`), else 0. Needs a numeric ``bbox`` and both points in the answer.

    Reports ``point_distance`` (NaN where box or points are unusable) as a diagnostic column.
    """

    default_name = "point_match"

    def __init__(self, *, threshold: float = 100.0, column: str = "ground_truth", name: str | None = None) -> None:
        super().__init__(
            validated("PointMatchReward", PointMatchRewardConfig, threshold=threshold, column=column, name=name)
        )

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        terms = segmentation_terms(
            batch.completions,
            self._truth(batch),
            point_threshold=self._config.threshold,  # type: ignore[attr-defined]
            need_box=False,
            need_points=True,
            by="PointMatchReward",
        )
        return RewardOutput(terms.point_match, columns={"point_distance": terms.distance})


@register("seg_accuracy", SegmentationAccuracyConfig)
class SegmentationAccuracy(_SegmentationReward):
    """Seg-Zero / PixelThink accuracy reward: the sum of the five terms, in ``[0, 5]``, with one parse per
    completion (official ``pixelthink_accuracy_reward``; Seg-Zero ``seg_strict_compute_score``).

    ``R_acc = thinking_format + segmentation_format + box_iou + point_match + box_l1``
    (PixelThink, arXiv 2505.23727, Sec. 3.3). Each term is reported as a component under its name, with
    ``iou``, ``l1_distance``, ``point_distance`` and ``json_found`` as diagnostic columns.

    Args:
        iou_threshold: box IoU term passes where ``IoU > iou_threshold`` (official 0.5).
        box_l1_threshold: box L1 term passes where the mean L1 ``< box_l1_threshold`` (official 10).
        point_threshold: point term passes where the matched mean distance ``< point_threshold`` (official 100).
        column: the batch column with the ground truth (box and points).

    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = ('<think>big</think><answer>{"bbox": [2, 1, 98, 99], "points_1": [25, 25], '
    ...           '"points_2": [60, 75]}</answer>')
    >>> SegmentationAccuracy()(completions=[answer, answer[:40]], ground_truth=[gt, gt]).tolist()
    [5.0, 0.0]
    """

    default_name = "segmentation_accuracy"

    def __init__(
        self,
        *,
        iou_threshold: float = 0.5,
        box_l1_threshold: float = 10.0,
        point_threshold: float = 100.0,
        column: str = "ground_truth",
        name: str | None = None,
    ) -> None:
        super().__init__(
            validated(
                "SegmentationAccuracy",
                SegmentationAccuracyConfig,
                iou_threshold=iou_threshold,
                box_l1_threshold=box_l1_threshold,
                point_threshold=point_threshold,
                column=column,
                name=name,
            )
        )

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 5.0)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        c: SegmentationAccuracyConfig = self._config  # type: ignore[assignment]
        terms = segmentation_terms(
            batch.completions,
            self._truth(batch),
            iou_threshold=c.iou_threshold,
            box_l1_threshold=c.box_l1_threshold,
            point_threshold=c.point_threshold,
            by="SegmentationAccuracy",
        )
        columns = {
            "iou": terms.iou,
            "l1_distance": terms.l1,
            "point_distance": terms.distance,
            "json_found": terms.json_found,
        }
        return RewardOutput(terms.total, components=terms.terms(), columns=columns)
