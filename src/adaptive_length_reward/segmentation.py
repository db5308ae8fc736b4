"""Reasoning-segmentation task rewards of Seg-Zero and PixelThink, exact to the official code, for a whole batch.

The policy answers ``<think>REASONING</think><answer>{"bbox": [x1,y1,x2,y2], "points_1": [x,y],
"points_2": [x,y]}</answer>``; the ground truth is ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>``
(or the same values as a mapping or lists, see [`parse_ground_truth`][]). [`SegmentationAccuracy`][], in
``[0, 5]``, is the sum of five binary terms, one reward class each below (PixelThink, arXiv 2505.23727, Sec. 3.3
and official ``verl/utils/reward_score/seg_pixelthink.py``; identical in Seg-Zero, arXiv 2503.06520, official
``verl/utils/reward_score/seg_restrict.py``).

A malformed completion is never an error: the terms it fails are 0. A malformed ground truth raises
``ValueError`` naming the sample. docs/segmentation.md lists the official code's quirks reproduced here
(first-object regex, ``json.loads``, ``int()`` of points, strict overlap, exact huge integers).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Any, ClassVar, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from .batch import RewardBatch
from .config import class_name, param
from .evaluation import once
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

#: Up to this magnitude every area and sum of squares stays below 2**53: float64 gives Python's exact results.
EXACT_INTEGER_LIMIT = 2**24

TERM_NAMES = ("thinking_format", "segmentation_format", "box_iou", "point_match", "box_l1")
"""The five terms, in the order the official code adds them."""

_OPEN_THINK, _CLOSE_ANSWER = "<think>", "</answer>"  # 7 and 9 characters
_CLOSE_THEN_ANSWER = re.compile(r"</think>\s*<answer>")
_GT_BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
_GT_POINTS = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")
_NUMBER_TYPES = (int, float, bool)  # what json.loads produces for numbers and true/false
_NO_SPAN: tuple[bool, bool, Box | None, Points | None] = (False, False, None, None)  # no JSON object


# -- Parsing one completion, one ground truth ----------------------------------------------------------------


def has_thinking_format(text: str) -> bool:
    """Whether ``text`` fullmatches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL), the official
    thinking-format test: it starts with ``<think>``, ends with ``</answer>`` and holds ``</think>``, optional
    whitespace and ``<answer>`` in between, checked without the backtracking regex.

    >>> has_thinking_format("<think>a</think>\\n<answer>b</answer>")
    True
    >>> has_thinking_format("<think>a</think><answer>b</answer>\\n")
    False
    """
    tags = text.startswith(_OPEN_THINK) and text.endswith(_CLOSE_ANSWER)
    return tags and _CLOSE_THEN_ANSWER.search(text, 7, len(text) - 9) is not None


def first_json_object(text: str) -> str | None:
    """The span the official regex ``{[^}]+}`` finds first (``re.search``): from the first ``{`` not immediately
    followed by ``}`` to the next ``}``; ``None`` if there is none.

    >>> first_json_object('x {} {"a": [1, {"b": 2}]} y')
    '{"a": [1, {"b": 2}'
    """
    start = text.find("{")
    while start >= 0:
        end = text.find("}", start + 1)
        if end != start + 1:  # -1: no '}' after this '{', hence none after any later '{' either
            return text[start : end + 1] if end >= 0 else None
        start = text.find("{", end + 1)
    return None


#: Deepest ``[`` nesting a first-object span may have and still be read as JSON. ``json.loads`` itself gives up at a
#: depth that depends on the Python version and the caller's stack (about 1,000 minus the stack depth on 3.10 and
#: 3.11, many thousands on 3.12+, where the C recursion limit is separate); a fixed bound gives the same answer on
#: every version. 500 is far beyond any answer a policy writes and well inside what 3.10/3.11 parse from any call
#: site, so on those versions nothing changes.
MAX_JSON_DEPTH = 500
_BRACKETS_OR_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]]')


def _nesting_depth(span: str) -> int:
    """The deepest ``[`` nesting of ``span`` outside JSON strings (a span holds no ``}`` but its last character)."""
    depth = deepest = 0
    for match in _BRACKETS_OR_STRINGS.finditer(span):
        token = match.group()
        if token == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif token == "]":
            depth -= 1
    return deepest


def load_json_span(span: str) -> Any:
    """``json.loads(span)``, with ``RecursionError`` for a span nested deeper than ``MAX_JSON_DEPTH`` on every
    Python version (the official code's ``json.loads`` raises it at a depth that varies with the version)."""
    if span.count("[") > MAX_JSON_DEPTH and _nesting_depth(span) > MAX_JSON_DEPTH:  # the count is a cheap pre-check
        raise RecursionError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(span)


def _int_point(value: Any) -> tuple[int, int] | None:
    """``[int(value[0]), int(value[1])]`` as the official code computes it, or ``None`` where it raises."""
    try:
        return (int(value[0]), int(value[1]))
    except (TypeError, ValueError, OverflowError, IndexError, KeyError):
        return None


class SegmentationAnswer(NamedTuple):
    """What the official reward reads from one completion: whether the think/answer fullmatch holds, whether a
    first ``{...}`` span parses as JSON, the segmentation format (``bbox`` a list of 4, ``points_1``/``points_2``
    lists of 2, any contents), the box if ``bbox`` holds four numbers (``true``/``false`` read as 1/0), and the
    points after the official ``int()`` of their first two elements if both convert (``None`` otherwise)."""

    thinking_format: bool
    json_found: bool
    segmentation_format: bool
    bbox: Box | None
    points: Points | None


def _read_span(span: str) -> tuple[bool, bool, Box | None, Points | None]:
    """(json_found, segmentation_format, numeric box, int points) of a first-object span, the official way."""
    try:
        data = load_json_span(span)  # a JSON text that starts with '{' is an object
    except (ValueError, RecursionError):  # not JSON (JSONDecodeError, too many digits) or nested too deep
        return _NO_SPAN
    box, first, second = data.get("bbox"), data.get("points_1"), data.get("points_2")
    segmentation, numeric_box = False, cast("Box | None", None)
    if type(box) is list and len(box) == 4:
        segmentation = all(type(p) is list and len(p) == 2 for p in (first, second))
        if all(type(v) in _NUMBER_TYPES for v in box):
            x1, y1, x2, y2 = (int(v) if type(v) is bool else v for v in box)  # true/false are 1/0
            numeric_box = (x1, y1, x2, y2)
    p, q = _int_point(first), _int_point(second)  # an absent point (None) fails like any unconvertible one
    return (True, segmentation, numeric_box, (p, q) if p is not None and q is not None else None)


def parse_answer(text: str) -> SegmentationAnswer:
    """Read one completion the way the official reward does; never raises for any string.

    >>> answer = parse_answer('<think>x</think><answer>{"bbox": [1, 2, 30, 40], "points_1": [5.9, 6], '
    ...                       '"points_2": "78"}</answer>')
    >>> answer.thinking_format, answer.segmentation_format, answer.bbox, answer.points
    (True, False, (1, 2, 30, 40), ((5, 6), (7, 8)))
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_answer: text: expected str, got {type(text).__name__}")
    span = first_json_object(text)
    return SegmentationAnswer(has_thinking_format(text), *(_NO_SPAN if span is None else _read_span(span)))


class SegmentationTarget(NamedTuple):
    """A ground truth: a box ``(x1, y1, x2, y2)`` and two points ``((x, y), (x, y))``; either may be absent."""

    bbox: Box | None
    points: Points | None


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_sequence(value: Any) -> bool:  # strings, bytes and mappings are not
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes, Mapping))


def _numbers(value: Any, count: int, where: str, what: str) -> tuple[Number, ...]:
    if not _is_sequence(value) or len(value) != count or not all(_is_real(v) for v in value):
        raise ValueError(f"{where}: {what}: expected {count} numbers, got {value!r:.80}")
    numbers = tuple(int(v) if isinstance(v, (int, np.integer)) else float(v) for v in value)
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{where}: {what}: expected finite numbers, got {value!r:.80}")
    return numbers


def _box(value: Any, where: str) -> Box:
    x1, y1, x2, y2 = _numbers(value, 4, where, "bbox")
    return (x1, y1, x2, y2)


def _point_pair(value: Any, where: str, what: str) -> Points:
    if not _is_sequence(value) or len(value) != 2:
        raise ValueError(f"{where}: {what}: expected two (x, y) points, got {value!r:.80}")
    (a, b), (c, d) = (_numbers(v, 2, where, f"{what}[{i}]") for i, v in enumerate(value))
    return ((a, b), (c, d))


def parse_ground_truth(value: Any, *, index: int | None = None) -> SegmentationTarget:
    """Read a ground truth; raise ``ValueError`` naming the sample (``index``, its position) if malformed.

    Accepted: the official string ``"<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>"``, searched
    with the official regexes (non-negative integers; either part may be missing, not both; a ``<box>`` or
    ``<points>`` tag in another form, e.g. a negative coordinate, raises naming it); a mapping with
    ``"bbox": [x1, y1, x2, y2]`` and the points as ``"points_1"``/``"points_2"`` or ``"points": [[x, y], [x, y]]``
    (other keys ignored); a sequence ``[x1, y1, x2, y2]`` (box only) or ``(box, points)``.

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
    if not isinstance(value, (Sequence, np.ndarray)) or isinstance(value, bytes):
        raise TypeError(f"{where}: expected the official string, a mapping or a sequence, got {type(value).__name__}")
    if len(value) == 4 and all(_is_real(v) for v in value):
        return SegmentationTarget(_box(value, where), None)
    if len(value) == 2:
        return SegmentationTarget(_box(value[0], where), _point_pair(value[1], where, "points"))
    raise ValueError(f"{where}: expected [x1, y1, x2, y2] or (box, points), got {value!r:.80}")


def _target_from_text(value: str, where: str) -> SegmentationTarget:
    box_match, points_match = _GT_BOX.search(value), _GT_POINTS.search(value)
    for tag, match, form in (("box", box_match, "bbox"), ("points", points_match, "points")):
        start = value.find(f"<{tag}>") if match is None else -1
        if start >= 0:  # the part is there but not in the official form (a negative or fractional coordinate...)
            stop = value.find(f"</{tag}>", start)
            got = value[start : stop + len(tag) + 3] if 0 <= stop - start <= 200 else value[start : start + 80] + "..."
            raise ValueError(
                f"{where}: {form}: expected '<{tag}>(x1,y1),(x2,y2)</{tag}>' with non-negative integer "
                f"coordinates, got {got!r}"
            )
    if box_match is None and points_match is None:
        raise ValueError(
            f"{where}: expected '<box>(x1,y1),(x2,y2)</box>' and/or '<points>(x1,y1),(x2,y2)</points>' "
            f"with non-negative integers, got {value!r:.120}"
        )
    try:  # integers of any size, as the official code reads them
        b, n = (None if m is None else list(map(int, m.groups())) for m in (box_match, points_match))
    except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits())
        raise ValueError(f"{where}: expected coordinates of at most 4300 digits, got {value!r:.120}") from None
    box: Box | None = None if b is None else (b[0], b[1], b[2], b[3])
    return SegmentationTarget(box, None if n is None else ((n[0], n[1]), (n[2], n[3])))


def _target_from_mapping(value: Mapping[Any, Any], where: str) -> SegmentationTarget:
    keys = sorted(map(str, value))
    if "bbox" not in value and "points" not in value and "points_1" not in value:
        raise ValueError(f"{where}: expected a mapping with 'bbox' and/or the points, got keys {keys}")
    box = _box(value["bbox"], where) if "bbox" in value else None
    points: Points | None = None
    if "points" in value:
        points = _point_pair(value["points"], where, "points")
    elif "points_1" in value or "points_2" in value:
        if "points_1" not in value or "points_2" not in value:
            raise ValueError(f"{where}: expected both 'points_1' and 'points_2', got keys {keys}")
        points = _point_pair([value["points_1"], value["points_2"]], where, "points_1/points_2")
    return SegmentationTarget(box, points)


# -- The geometry, vectorised (float64, in the official order of operations) ---------------------------------


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
        inter = np.where((ix1 < ix2) & (iy1 < iy2), (ix2 - ix1 + 1) * (iy2 - iy1 + 1), 0.0)
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


def _exact_measures(box: Box, points: Points | None, target: SegmentationTarget) -> tuple[float, float, float, bool]:
    """(IoU, mean L1, matched point distance, both points inside the box) of one sample with Python numbers, as
    the official code computes them (integers of any size); what raises there (overflow, zero union) is NaN."""
    g, iou, l1, distance, inside = target.bbox, math.nan, math.nan, math.nan, False
    if g is not None:
        with suppress(OverflowError, ZeroDivisionError):
            ix1, iy1, ix2, iy2 = max(box[0], g[0]), max(box[1], g[1]), min(box[2], g[2]), min(box[3], g[3])
            inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if (ix1 < ix2 and iy1 < iy2) else 0
            union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
            iou = float(inter) / union
        with suppress(OverflowError):
            l1 = (abs(box[0] - g[0]) + abs(box[1] - g[1]) + abs(box[2] - g[2]) + abs(box[3] - g[3])) / 4
    if points is not None and target.points is not None:
        (p, q), (a, b) = points, target.points
        inside = all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in points)
        with suppress(OverflowError):
            distance = min(_hypot(p, a) + _hypot(q, b), _hypot(p, b) + _hypot(q, a)) / 2
    return iou, l1, distance, inside


def _hypot(p: tuple[Number, Number], q: tuple[Number, Number]) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


# -- Batch scoring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentationTerms:
    """The five terms (0.0/1.0 per completion, see [`TERM_NAMES`][]) and what they measured: ``iou`` (NaN where
    the answer has no numeric box or the union is 0), ``l1`` (mean box L1, NaN without a numeric box),
    ``distance`` (matched mean point distance, NaN where box or points are unusable) and ``json_found``."""

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


# The canonical answer almost every policy writes (integers of at most 7 digits, which json.loads reads exactly);
# docs/segmentation.md#throughput explains the batch reader. With a leading '<think>', a match of _CANONICAL_ANSWER
# also proves the thinking format.
_NUMBER = r"-?(?:0|[1-9][0-9]{0,6})"
_LIST_4, _LIST_2 = (r"\[" + ", ?".join([_NUMBER] * count) + r"\]" for count in (4, 2))
_CANONICAL = re.compile(rf'\{{"bbox": ?{_LIST_4}, ?"points_1": ?{_LIST_2}, ?"points_2": ?{_LIST_2}\}}')
_CANONICAL_ANSWER = re.compile(rf"</think>\s*<answer>{_CANONICAL.pattern}</answer>\Z")
# Matched texts read as integers: digits and '-' stay, '[' ']' '(' ')' ',' '_' become spaces, every other byte is
# dropped. An answer reads as the box, 1 (of "points_1"), a point, 2, a point; a ground truth as its eight numbers.
_KEEP, _SPACE = b"0123456789-", b"[](),_"
_AS_NUMBERS = bytes(b if b in _KEEP else 32 for b in range(256))
_NOT_NUMBERS = bytes(b for b in range(256) if b not in _KEEP + _SPACE)
_BOX_COLUMNS, _POINT_COLUMNS = [0, 1, 2, 3], [5, 6, 8, 9]


class _Answers(NamedTuple):
    """Column-wise parse of a batch of completions (the batch form of [`SegmentationAnswer`][])."""

    thinking: BoolArray
    json_found: BoolArray
    segmentation: BoolArray
    has_box: BoolArray
    has_points: BoolArray  # numeric box and both points convert
    box: FloatArray  # (n, 4), NaN where no numeric box
    points: FloatArray  # (n, 2, 2)
    overflow: BoolArray  # a value beyond float64's range: only the exact path can score it
    raw: dict[int, tuple[Box, Points | None]]  # Python values of the rows with a box read by json.loads


def _read_answers(completions: Sequence[str]) -> _Answers:
    """Parse a batch of completions as [`parse_answer`][] parses each: canonical answers by a few C calls each
    and one pass over their integers, the others with one ``json.loads`` per distinct first ``{...}`` span."""
    n = len(completions)
    braces = map(str.find, completions, repeat("{"))
    closes = map(str.rfind, completions, repeat("</think>"), repeat(0), braces)
    # A close of -1 (none before the brace) cannot match: the pattern would need '</think>' at 0, found by rfind.
    matches = list(map(_CANONICAL_ANSWER.match, completions, closes))
    fast = np.fromiter(map(bool, matches), dtype=np.bool_, count=n)
    thinking = fast & np.fromiter(map(str.startswith, completions, repeat(_OPEN_THINK)), dtype=np.bool_, count=n)
    slow = np.flatnonzero(~fast)
    slow_texts = [completions[i] for i in slow.tolist()]
    thinking[slow] = list(map(has_thinking_format, slow_texts))
    spans = list(map(first_json_object, slow_texts))
    canonical = np.array([s is not None and _CANONICAL.fullmatch(s) is not None for s in spans], dtype=np.bool_)
    rows = np.concatenate([np.flatnonzero(fast), slow[canonical]])
    json_found = np.bincount(rows, minlength=n) > 0
    segmentation, has_box, has_points = json_found.copy(), json_found.copy(), json_found.copy()
    box, points, overflow = np.full((n, 4), np.nan), np.full((n, 2, 2), np.nan), np.zeros(n, dtype=np.bool_)
    if rows.size:
        texts = [*map(re.Match.group, filter(None, matches)), *cast("Iterator[str]", compress(spans, canonical))]
        values = _integers(texts)
        box[rows], points[rows] = values[:, _BOX_COLUMNS], values[:, _POINT_COLUMNS].reshape(-1, 2, 2)
    raw: dict[int, tuple[Box, Points | None]] = {}
    parsed: dict[str, tuple[bool, bool, Box | None, Points | None]] = {}  # GRPO groups repeat bad answers
    for i, span in zip(slow[~canonical].tolist(), compress(spans, ~canonical)):
        if span is None:
            continue
        read = parsed.get(span) or parsed.setdefault(span, _read_span(span))
        json_found[i], segmentation[i], numeric_box, int_points = read
        if numeric_box is None:
            continue
        raw[i] = (numeric_box, int_points)
        has_box[i], has_points[i] = True, int_points is not None
        try:
            box[i] = numeric_box
            if int_points is not None:
                points[i] = int_points
        except OverflowError:  # an integer beyond float64's range
            overflow[i] = True
    return _Answers(thinking, json_found, segmentation, has_box, has_points, box, points, overflow, raw)


def _integers(texts: list[str], per_answer: int = 10) -> npt.NDArray[np.int64]:
    """The integers of canonical texts (see ``_AS_NUMBERS``), one row per text (at most 7 digits: exact in float64)."""
    data = " ".join(texts).encode("utf-8").translate(_AS_NUMBERS, _NOT_NUMBERS)
    values = np.fromstring(data, dtype=np.int64, sep=" ")  # NumPy's C text parser, on integers as JSON writes them
    assert values.size == per_answer * len(texts), "segmentation: canonical reader lost alignment"  # by the regexes
    return values.reshape(-1, per_answer)


# Official ground-truth strings with integers of at most 7 digits, one per line: one regex call checks them all.
_GT_LINE = r"<box>\(N,N\),\(N,N\)</box><points>\(N,N\),\(N,N\)</points>".replace("N", "[0-9]{1,7}")
_GT_CANONICAL = re.compile(rf"{_GT_LINE}(?:\n{_GT_LINE})*")


class _Targets(NamedTuple):
    """Distinct ground truths as arrays, and each sample's index into them."""

    box: FloatArray  # (m, 4), NaN where absent
    points: FloatArray  # (m, 2, 2)
    overflow: BoolArray  # (m,) a value beyond float64's range
    which: npt.NDArray[np.intp]  # (n,) each sample's row
    parsed: list[SegmentationTarget] | None  # None when every target was read by the canonical regex

    def target(self, j: int) -> SegmentationTarget:
        return SegmentationTarget(*_python_ints(self.box[j], self.points[j])) if self.parsed is None else self.parsed[j]


def _python_ints(box: FloatArray, points: FloatArray) -> tuple[Box, Points]:
    """Python ints of a row read by a canonical regex (at most 7 digits, so exact in float64)."""
    (x1, y1, x2, y2), ((a, b), (c, d)) = box.astype(int).tolist(), points.astype(int).tolist()
    return (x1, y1, x2, y2), ((a, b), (c, d))


def _read_targets(values: Sequence[Any], need_box: bool, need_points: bool, by: str) -> _Targets:
    """Parse each distinct ground truth once (GRPO repeats each prompt's truth n times), in order of first
    appearance; a repeated mapping object counts once. Official strings are read by one regex pass."""
    strings = set(map(type, values)) <= {str}
    keys = values if strings else [v if isinstance(v, str) else (id(v),) for v in values]
    distinct = list(dict.fromkeys(keys))
    position = dict(zip(distinct, range(len(distinct))))
    index = np.fromiter(map(position.__getitem__, keys), dtype=np.intp, count=len(values))
    text = "\n".join(distinct) if strings else ""
    if text.count("\n") == len(distinct) - 1 and _GT_CANONICAL.fullmatch(text):  # one truth per line, all canonical
        read = _integers(text.split("\n"), per_answer=8)
        box, points = read[:, :4].astype(np.float64), read[:, 4:].reshape(-1, 2, 2).astype(np.float64)
        return _Targets(box, points, np.zeros(len(read), np.bool_), index, None)
    firsts = np.unique(index, return_index=True)[1].tolist()  # the first sample holding each distinct truth
    parsed = [_check_target(values[i], i, need_box, need_points, by) for i in firsts]
    return _Targets(*_target_arrays(parsed), index, parsed)


def _check_target(value: Any, i: int, need_box: bool, need_points: bool, by: str) -> SegmentationTarget:
    target = parse_ground_truth(value, index=i)
    if need_box and target.bbox is None:
        needed = "a box ('<box>(x1,y1),(x2,y2)</box>' or 'bbox')"
    elif need_points and target.points is None:
        needed = "two points ('<points>(x1,y1),(x2,y2)</points>' or 'points')"
    else:
        return target
    raise ValueError(f"ground_truth[{i}]: {by} needs {needed}, got {value!r:.120}")


def _target_arrays(targets: Sequence[SegmentationTarget]) -> tuple[FloatArray, FloatArray, BoolArray]:
    """(boxes (m, 4), points (m, 2, 2), overflow (m,)) of distinct targets; NaN where a part is absent."""
    m = len(targets)
    box, points, overflow = np.full((m, 4), np.nan), np.full((m, 2, 2), np.nan), np.zeros(m, dtype=np.bool_)
    for j, (target_box, target_points) in enumerate(targets):
        try:
            box[j] = target_box or np.nan
            points[j] = target_points or np.nan
        except OverflowError:  # an integer beyond float64's range: only the exact path can score it
            overflow[j] = True
    return box, points, overflow


class _Measures(NamedTuple):
    """What the three geometric terms compare with their thresholds, per completion."""

    iou: FloatArray  # NaN where the answer has no numeric box or the union is 0
    l1: FloatArray
    distance: FloatArray  # NaN where the box or the points are unusable
    points_inside: BoolArray  # both points convert and lie inside the predicted box

    def term(self, name: str, threshold: float) -> FloatArray:
        """The 0/1 term ``"box_iou"`` (IoU > threshold), ``"box_l1"`` or ``"point_match"`` (< threshold)."""
        if name == "box_iou":
            return (self.iou > threshold).astype(np.float64)
        passed = self.l1 < threshold if name == "box_l1" else self.points_inside & (self.distance < threshold)
        return passed.astype(np.float64)


def _measure(answers: _Answers, targets: _Targets) -> _Measures:
    """The geometry, vectorised; samples with a coordinate beyond ``EXACT_INTEGER_LIMIT`` (or beyond
    float64) are measured again one by one with Python numbers."""
    a, which = answers, targets.which
    gt_box, gt_points = targets.box[which], targets.points[which]
    iou = np.where(a.has_box, box_iou_inclusive(a.box, gt_box), np.nan)
    l1 = np.where(a.has_box, box_mean_l1(a.box, gt_box), np.nan)
    distance = np.where(a.has_points, matched_point_distance(a.points, gt_points), np.nan)
    inside = a.has_points & _points_in_box(a.points, a.box)
    large = a.overflow | (targets.overflow | _beyond_exact(targets.box, targets.points))[which]
    raw = np.fromiter(a.raw, dtype=np.intp, count=len(a.raw))  # a canonical answer has at most 7 digits
    large[raw] |= _beyond_exact(a.box[raw], a.points[raw])
    for i in np.flatnonzero(a.has_box & large).tolist():
        box, points = a.raw.get(i) or _python_ints(a.box[i], a.points[i])
        iou[i], l1[i], distance[i], inside[i] = _exact_measures(box, points, targets.target(int(which[i])))
    return _Measures(iou, l1, distance, inside)


def _beyond_exact(box: FloatArray, points: FloatArray) -> BoolArray:
    """Rows with a coordinate beyond ``EXACT_INTEGER_LIMIT`` (or infinite), scored with Python numbers."""
    return np.asarray((np.abs(box) > EXACT_INTEGER_LIMIT).any(1) | (np.abs(points) > EXACT_INTEGER_LIMIT).any((1, 2)))


def _terms(answers: _Answers, measures: _Measures | None, thresholds: tuple[float, float, float]) -> SegmentationTerms:
    """The five terms from a parse and its measures (``None``: no ground truth, so only the format terms)."""
    nan = np.full(len(answers.thinking), np.nan)
    m = measures or _Measures(nan, nan.copy(), nan.copy(), np.zeros(len(nan), np.bool_))
    iou, l1, point = (m.term(name, t) for name, t in zip(("box_iou", "box_l1", "point_match"), thresholds))
    thinking, segmentation = answers.thinking.astype(np.float64), answers.segmentation.astype(np.float64)
    return SegmentationTerms(thinking, segmentation, iou, point, l1, m.iou, m.l1, m.distance, answers.json_found)


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

    ``ground_truth`` holds one value per completion (see [`parse_ground_truth`][]); ``None`` computes the two
    format terms only. The thresholds are those of [`SegmentationAccuracy`][]; ``need_box``/``need_points``
    say which parts every ground truth must have (a missing one raises); ``by`` names the caller in errors.

    >>> answer = '<think>.</think><answer>{"bbox": [0, 0, 9, 9], "points_1": [2, 2], "points_2": [7, 7]}</answer>'
    >>> truth = "<box>(0,0),(9,9)</box><points>(2,2),(7,7)</points>"
    >>> segmentation_terms([answer, "I cannot see it."], [truth, truth]).total.tolist()
    [5.0, 0.0]
    """
    if isinstance(completions, str):
        raise TypeError(f"{by}: completions: expected a sequence of strings, got a single str")
    if ground_truth is not None and (isinstance(ground_truth, str) or len(ground_truth) != len(completions)):
        got = "a single str" if isinstance(ground_truth, str) else f"{len(ground_truth)} values"
        raise ValueError(f"{by}: ground_truth: expected {len(completions)} values (one per completion), got {got}")
    answers = _read_answers(completions)
    measures = None
    if ground_truth is not None:
        measures = _measure(answers, _read_targets(ground_truth, need_box, need_points, by))
    return _terms(answers, measures, (iou_threshold, box_l1_threshold, point_threshold))


# -- Rewards -------------------------------------------------------------------------------------------------


class _SegmentationReward(Reward):
    """A term of the accuracy reward: its official short name, its range, and the batch's one shared parse."""

    default_name: ClassVar[str]
    bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)

    @property
    def name(self) -> str:
        """The given name, else the term's official short name (e.g. ``"box_iou"``)."""
        return self._name or self.default_name

    @property
    def reads(self) -> frozenset[str]:
        return frozenset({"completions"})

    @staticmethod
    def _answers(batch: RewardBatch) -> _Answers:
        """The parse of the completions, once per evaluation (keyed on them: batches made by replace() share it)."""
        return once(("seg_answers",), batch.completions, lambda: _read_answers(batch.completions))


class ThinkingFormatReward(_SegmentationReward, kind="seg_thinking_format"):
    """1 where the whole response fullmatches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL), else 0
    (official ``seg_thinking_format_reward``; see [`has_thinking_format`][])."""

    default_name = "thinking_format"

    def _evaluate(self, batch: RewardBatch) -> FloatArray:
        return self._answers(batch).thinking.astype(np.float64)


class SegmentationFormatReward(_SegmentationReward, kind="seg_segmentation_format"):
    """1 where the first ``{...}`` span is JSON with a 4-element list ``bbox`` and 2-element lists ``points_1``
    and ``points_2`` (any contents), else 0 (official ``seg_segmentation_format_reward``); column ``json_found``."""

    default_name = "segmentation_format"

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        answers = self._answers(batch)
        return RewardOutput(answers.segmentation.astype(np.float64), columns={"json_found": answers.json_found})


class _TruthTerm(_SegmentationReward):
    """A reward that compares the answer with the ground truth in ``column``."""

    column: str = param(default="ground_truth", min_length=1, doc="the batch column holding the ground truth")
    needs: ClassVar[tuple[bool, bool]] = (True, True)  # every ground truth must have (a box, the points)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.column})

    @property
    def reads(self) -> frozenset[str]:
        return frozenset({"completions", self.column})

    def _measured(self, batch: RewardBatch) -> tuple[_Answers, _Measures]:
        """The parse and the geometry, once per evaluation for these completions and ground-truth values."""
        answers, (need_box, need_points), by = self._answers(batch), self.needs, class_name(self)
        values = batch.column(self.column, by=f"{by} {self.name!r}")
        key = ("seg_measures", id(batch.completions), need_box, need_points)
        return answers, once(key, values, lambda: _measure(answers, _read_targets(values, need_box, need_points, by)))


class _GeometricTerm(_TruthTerm):
    """One of the three geometric terms at its threshold, reporting the value it compares as a column."""

    threshold: float  # declared with its official default by each term
    diagnostic: ClassVar[tuple[str, str]]  # the diagnostic column's name, and the _Measures field it shows

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        m, (column, value) = self._measured(batch)[1], self.diagnostic
        return RewardOutput(m.term(self.default_name, self.threshold), columns={column: getattr(m, value)})


class BoxIoUReward(_GeometricTerm, kind="seg_box_iou"):
    """1 where ``IoU(pred box, gt box) > threshold`` (official ``seg_iou_reward``; see [`box_iou_inclusive`][]),
    else 0. Needs only the boxes; column ``iou`` (NaN where the answer has no numeric box)."""

    threshold: float = param(default=0.5, ge=0, doc="strict lower bound on the IoU (official 0.5)")
    default_name, diagnostic, needs = "box_iou", ("iou", "iou"), (True, False)


class BoxL1Reward(_GeometricTerm, kind="seg_box_l1"):
    """1 where the boxes' mean absolute coordinate difference ``< threshold`` (official ``seg_box_l1_reward``; see
    [`box_mean_l1`][]), else 0. Needs only the boxes; column ``l1_distance`` (NaN where no numeric box)."""

    threshold: float = param(default=10.0, ge=0, doc="strict upper bound on the mean L1, pixels (official 10)")
    default_name, diagnostic, needs = "box_l1", ("l1_distance", "l1"), (True, False)


class PointMatchReward(_GeometricTerm, kind="seg_point_match"):
    """1 where both predicted points lie inside the predicted box and [`matched_point_distance`][] ``< threshold``
    (official ``seg_point_l1_reward``), else 0; column ``point_distance`` (NaN where box or points are unusable)."""

    threshold: float = param(default=100.0, ge=0, doc="strict upper bound on the matched distance (official 100)")
    default_name, diagnostic, needs = "point_match", ("point_distance", "distance"), (False, True)


class SegmentationAccuracy(_TruthTerm, kind="seg_accuracy"):
    """``R_acc = thinking_format + segmentation_format + box_iou + point_match + box_l1``, in ``[0, 5]`` (PixelThink,
    arXiv 2505.23727, Sec. 3.3; official ``pixelthink_accuracy_reward``, Seg-Zero ``seg_strict_compute_score``).
    The terms are its components; ``iou``, ``l1_distance``, ``point_distance`` and ``json_found`` its columns.

    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = ('<think>big</think><answer>{"bbox": [2, 1, 98, 99], "points_1": [25, 25], '
    ...           '"points_2": [60, 75]}</answer>')
    >>> SegmentationAccuracy()(completions=[answer, answer[:40]], ground_truth=[gt, gt]).tolist()
    [5.0, 0.0]
    """

    iou_threshold: float = param(default=0.5, ge=0, doc="box IoU term: IoU > this passes (official 0.5)")
    box_l1_threshold: float = param(default=10.0, ge=0, doc="box L1 term: mean L1 < this passes (official 10)")
    point_threshold: float = param(default=100.0, ge=0, doc="point term: matched distance < this passes (official 100)")
    default_name, bounds = "segmentation_accuracy", (0.0, 5.0)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        t = _terms(*self._measured(batch), (self.iou_threshold, self.box_l1_threshold, self.point_threshold))
        columns = {"iou": t.iou, "l1_distance": t.l1, "point_distance": t.distance, "json_found": t.json_found}
        return RewardOutput(t.total, components=t.terms(), columns=columns)
