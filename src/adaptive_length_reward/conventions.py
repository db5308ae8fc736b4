"""Evaluation conventions for reasoning segmentation: ``"lisa"`` (the library's default) or ``"seg_zero"``.

Both score gIoU ``= mean_i I_i / U_i`` and cIoU ``= sum_i I_i / sum_i U_i`` ([`MaskIoU`][]); they
differ in how an answer is read, how its coordinates reach the image, which pixels count and which samples count:

- answer keys: ``lisa`` exactly ``bbox``, ``points_1``, ``points_2`` ([`parse_answer`][]);
  ``seg_zero`` the first key containing ``'bbox'`` and the first two containing ``'points'`` (case-insensitive).
- coordinates: ``lisa`` the box as written, the points after ``int()``; ``seg_zero`` ``int()`` on every one.
- ``<think>`` block: ``lisa`` not needed; ``seg_zero`` ``<think>([^<]+)</think>`` must match.
- rescale to the image ``(W, H)``: ``lisa`` ``round(v * (W / frame))``; ``seg_zero`` ``round(int(v) * (W / 840))``.
- ignore pixels (label 255): ``lisa`` excluded from prediction and target; ``seg_zero`` counted as target.
- empty union: ``lisa`` IoU 1 (counted); ``seg_zero`` the sample is skipped (not counted).
- failed parse: both ``I = 0, U = |GT|`` (``seg_zero``: IoU 0 if ``|GT| = 0``; ``lisa``: IoU 1).

Sources: LISA (arXiv 2308.00692; dvlab-research/LISA ``utils/utils.py`` ``intersectionAndUnionGPU`` with
``ignore_index=255``, ``train_ds.py`` ``validate``: ``acc_iou[union_i == 0] += 1.0``); Seg-Zero
(dvlab-research/Seg-Zero at 42a3345, ``evaluation_scripts/evaluation.py`` ``extract_bbox_points_think`` and
``compute_iou``, ``evaluation_scripts/calculate_iou.py`` (cIoU as of c45d603),
``evaluation_scripts/create_reasonseg_hf.py`` ``mask.astype(bool)``), the evaluation PixelThink (arXiv 2505.23727)
reports with. See docs/metrics.md, "Evaluation conventions".

Malformed model output never raises: it is a failed parse (``None``). Malformed ground truth or arguments raise.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple, cast, get_args

import numpy as np
import numpy.typing as npt

from .metrics import MaskIoU, _mask, intersection_and_union
from .segmentation import first_json_object, load_json_span, parse_answer

__all__ = [
    "CONVENTIONS",
    "SEG_ZERO_FRAME",
    "Convention",
    "ConventionIoU",
    "GroundTruthMask",
    "SegmentationPrompt",
    "check_convention",
    "convention_note",
    "parse_prompt",
    "prepare_ground_truth",
    "rescale_prompt",
    "sample_counts",
]

BoolArray = npt.NDArray[np.bool_]
Number = int | float

#: The name of an evaluation convention.
Convention = Literal["lisa", "seg_zero"]
#: Every convention, the default first.
CONVENTIONS: tuple[Convention, ...] = cast("tuple[Convention, ...]", get_args(Convention))
#: Side of the square frame Seg-Zero's policy answers in (``resize_size = 840``, ``evaluation.py``).
SEG_ZERO_FRAME = 840

#: IoU of a counted sample whose union is empty: LISA 1; Seg-Zero only counts such a sample after a failed
#: parse on an empty truth, and ``calculate_iou.py`` gives it 0.
_EMPTY_UNION: dict[Convention, float] = {"lisa": 1.0, "seg_zero": 0.0}
_SEG_ZERO_THINK = re.compile(r"<think>([^<]+)</think>")  # evaluation.py's think_pattern
_MODEL_OUTPUT_ERRORS = (ValueError, TypeError, OverflowError, IndexError, KeyError, RecursionError)
_IGNORE_LABEL = 255


def check_convention(value: object, *, where: str = "convention") -> Convention:
    """``value`` as a ``Convention``, or ``ValueError`` naming ``where``.

    >>> check_convention("seg_zero")
    'seg_zero'
    """
    if not isinstance(value, str) or value not in CONVENTIONS:
        raise ValueError(f"{where}: expected one of {', '.join(map(repr, CONVENTIONS))}, got {value!r}")
    return value


def convention_note(convention: Convention) -> str:
    """One line stating the rules of ``convention`` (for reports)."""
    if check_convention(convention) == "lisa":
        return (
            "evaluation convention 'lisa': exact keys bbox/points_1/points_2, ignore pixels (255) excluded, "
            "an empty union counts IoU 1, a failed parse counts I = 0, U = |GT|"
        )
    return (
        "evaluation convention 'seg_zero' (Seg-Zero evaluation_scripts/evaluation.py): keys matched by "
        "substring, int() on coordinates, rescale round(int(v) * W / 840), ignore pixels (255) counted as "
        "target, samples with an empty union skipped, a failed parse counts I = 0, U = |GT|"
    )


class SegmentationPrompt(NamedTuple):
    """A box ``(x1, y1, x2, y2)`` and two points ``((x, y), (x, y))``: the segmenter's prompt."""

    bbox: tuple[Number, Number, Number, Number]
    points: tuple[tuple[Number, Number], tuple[Number, Number]]


def _seg_zero_prompt(text: str) -> SegmentationPrompt | None:
    """Seg-Zero's ``extract_bbox_points_think`` before its rescale: the first ``{[^}]+}`` span as JSON, the first
    key containing ``'bbox'`` (a value of length 4), the first two keys containing ``'points'`` (their first two
    elements), ``int()`` of each coordinate, and a ``<think>([^<]+)</think>`` match (the script returns
    ``think_text``, unbound without one). Any step that raises there is a failed parse here."""
    span = first_json_object(text)  # re.search(r'{[^}]+}', output_text)
    if span is None or _SEG_ZERO_THINK.search(text) is None:
        return None
    try:
        data = load_json_span(span)  # json.loads, nested too deep the same on every Python version
        bbox_key = next((key for key in data if "bbox" in key.lower()), None)
        if bbox_key is None or len(data[bbox_key]) != 4:
            return None
        value = data[bbox_key]
        x1, y1, x2, y2 = int(value[0]), int(value[1]), int(value[2]), int(value[3])
        points_keys = [key for key in data if "points" in key.lower()][:2]
        if len(points_keys) != 2:
            return None
        first, second = data[points_keys[0]], data[points_keys[1]]
        points = ((int(first[0]), int(first[1])), (int(second[0]), int(second[1])))
    except _MODEL_OUTPUT_ERRORS:
        return None
    return SegmentationPrompt((x1, y1, x2, y2), points)


def parse_prompt(text: str, convention: Convention = "lisa") -> SegmentationPrompt | None:
    """The box and two points of a completion under ``convention``, in the model's frame; ``None`` for a failed
    parse. Never raises for any string.

    ``lisa``: [`parse_answer`][] (exact keys; the box as written, the points after ``int()``).
    ``seg_zero``: Seg-Zero ``evaluation_scripts/evaluation.py`` ``extract_bbox_points_think`` (substring keys,
    ``int()`` on every coordinate, a ``<think>`` block required).

    >>> text = '<think>a</think><answer>{"bbox_2d": [1, 2, 30.7, 40], "points_a": [5, 6], "points_b": [7, 8]}</answer>'
    >>> parse_prompt(text, "seg_zero")
    SegmentationPrompt(bbox=(1, 2, 30, 40), points=((5, 6), (7, 8)))
    >>> parse_prompt(text, "lisa") is None
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_prompt: text: expected str, got {type(text).__name__}")
    if check_convention(convention, where="parse_prompt: convention") == "seg_zero":
        return _seg_zero_prompt(text)
    answer = parse_answer(text)
    if answer.bbox is None or answer.points is None:
        return None
    return SegmentationPrompt(answer.bbox, answer.points)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"rescale_prompt: {name}: expected a positive integer, got {value!r}")
    return int(value)


def rescale_prompt(
    prompt: SegmentationPrompt,
    size: tuple[int, int],
    *,
    frame: int = SEG_ZERO_FRAME,
    convention: Convention = "lisa",
) -> SegmentationPrompt | None:
    """Map a prompt from the model's ``frame`` x ``frame`` image to the original ``size = (W, H)`` (PIL order).

    x coordinates are multiplied by ``x_factor = W / frame``, y by ``y_factor = H / frame``, then rounded with
    Python's ``round`` (half to even). ``seg_zero`` applies ``int()`` first: ``round(int(v) * x_factor)``, as
    Seg-Zero ``evaluation_scripts/evaluation.py`` (``x_factor = img_width / resize_size``); ``lisa`` rounds the
    value as parsed: ``round(v * x_factor)``. A coordinate that cannot be rounded (NaN, infinite, or an integer
    beyond float range) makes the prompt ``None``: a failed parse, as the script's ``except`` counts it.

    >>> prompt = SegmentationPrompt((5, 7, 9.99, 0), ((1.9, 3), (840, 0)))
    >>> rescale_prompt(prompt, (420, 1680), convention="seg_zero")
    SegmentationPrompt(bbox=(2, 14, 4, 0), points=((0, 6), (420, 0)))
    >>> rescale_prompt(prompt, (420, 1680), convention="lisa")
    SegmentationPrompt(bbox=(2, 14, 5, 0), points=((1, 6), (420, 0)))
    """
    truncate = check_convention(convention, where="rescale_prompt: convention") == "seg_zero"
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise ValueError(f"rescale_prompt: size: expected (width, height), got {size!r}")
    width, height = _positive_int(size[0], "size[0] (width)"), _positive_int(size[1], "size[1] (height)")
    side = _positive_int(frame, "frame")
    x_factor, y_factor = width / side, height / side

    def scale(value: Number, factor: float) -> int:
        return round((int(value) if truncate else value) * factor)

    try:
        x1, y1, x2, y2 = prompt.bbox
        (a, b), (c, d) = prompt.points
        bbox = (scale(x1, x_factor), scale(y1, y_factor), scale(x2, x_factor), scale(y2, y_factor))
        points = ((scale(a, x_factor), scale(b, y_factor)), (scale(c, x_factor), scale(d, y_factor)))
    except (ValueError, OverflowError):  # NaN, inf, or an int too large for a float
        return None
    return SegmentationPrompt(bbox, points)


class GroundTruthMask(NamedTuple):
    """A ground truth prepared under a convention.

    Attributes:
        target: pixels of the object.
        valid: pixels that count at all (a prediction is cut to them); ``None`` where every pixel counts.
    """

    target: BoolArray
    valid: BoolArray | None


def _labels(mask: npt.ArrayLike) -> tuple[BoolArray, BoolArray | None]:
    """(target, ignore) of a boolean mask or a LISA label map of 0 / 1 / 255."""
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        return array, None
    if np.issubdtype(array.dtype, np.integer) and np.isin(array, (0, 1, _IGNORE_LABEL)).all():
        return array == 1, array == _IGNORE_LABEL
    got = f"dtype {array.dtype}" if not np.issubdtype(array.dtype, np.integer) else f"values {np.unique(array)[:8]}"
    raise ValueError(f"prepare_ground_truth: mask: expected a boolean mask or labels 0/1/255, got {got}")


def prepare_ground_truth(
    mask: npt.ArrayLike, ignore: npt.ArrayLike | None = None, *, convention: Convention = "lisa"
) -> GroundTruthMask:
    """The ground truth under ``convention``, from a boolean mask or a label map (0 background, 1 target,
    255 ignore, as LISA's ``get_mask_from_json``), with optional extra ``ignore`` pixels (a boolean mask).

    ``lisa``: ignore pixels are excluded (``target & ~ignore``, ``valid = ~ignore``), as LISA's
    ``intersectionAndUnionGPU(..., ignore_index=255)``. ``seg_zero``: ignore pixels are target
    (``target | ignore``), as Seg-Zero's ReasonSeg copy stores ``mask.astype(bool)``
    (``evaluation_scripts/create_reasonseg_hf.py``).

    >>> labels = np.array([[0, 1, 255]], dtype=np.uint8)
    >>> prepare_ground_truth(labels, convention="lisa").target.tolist()
    [[False, True, False]]
    >>> prepare_ground_truth(labels, convention="seg_zero").target.tolist()
    [[False, True, True]]
    """
    chosen = check_convention(convention, where="prepare_ground_truth: convention")
    target, ignored = _labels(mask)
    if ignore is not None:
        extra = _mask(ignore, "prepare_ground_truth: ignore")
        if extra.shape != target.shape:
            raise ValueError(
                f"prepare_ground_truth: ignore: expected the mask's shape {target.shape}, got {extra.shape}"
            )
        ignored = extra if ignored is None else ignored | extra
    if ignored is None or not ignored.any():
        return GroundTruthMask(target.copy(), None)
    if chosen == "seg_zero":
        return GroundTruthMask(target | ignored, None)
    return GroundTruthMask(target & ~ignored, ~ignored)


def sample_counts(
    prediction: npt.ArrayLike | None, truth: GroundTruthMask, *, convention: Convention = "lisa"
) -> tuple[int, int] | None:
    """``(I, U)`` of one sample under ``convention``; ``None`` where ``seg_zero`` skips it.

    ``prediction=None`` is a failed parse: ``(0, |target|)`` in both conventions (Seg-Zero ``evaluation.py``:
    ``intersection = 0; union = mask.sum()``). A prediction is cut to ``truth.valid``. An empty union: ``lisa``
    counts it (IoU 1 in [`ConventionIoU`][]); ``seg_zero`` skips it (``compute_iou`` returns 0, unpacking it
    raises and the script moves on). Seg-Zero also skips a sample whose masks differ in shape; here that
    raises (it is a data or segmenter error, not model output).

    >>> truth = prepare_ground_truth(np.zeros((2, 2), dtype=bool))
    >>> sample_counts(np.zeros((2, 2), dtype=bool), truth), sample_counts(None, truth, convention="seg_zero")
    ((0, 0), (0, 0))
    >>> sample_counts(np.zeros((2, 2), dtype=bool), truth, convention="seg_zero") is None
    True
    """
    chosen = check_convention(convention, where="sample_counts: convention")
    if prediction is None:
        return 0, int(np.count_nonzero(truth.target))
    predicted = _mask(prediction, "prediction")
    if predicted.shape != truth.target.shape:
        raise ValueError(
            f"sample_counts: prediction: expected the target's shape {truth.target.shape}, got {predicted.shape}"
        )
    if truth.valid is not None:
        predicted = predicted & truth.valid
    intersection, union = intersection_and_union(predicted, truth.target)
    if union == 0 and chosen == "seg_zero":
        return None
    return intersection, union


class ConventionIoU:
    """gIoU and cIoU under a convention: [`sample_counts`][] per sample into a [`MaskIoU`][].

    ``metric`` holds the counted samples only (Seg-Zero writes no record for a skipped one); its ``empty_union``
    is 1 for ``lisa`` and 0 for ``seg_zero`` (a failed parse on an empty truth: ``calculate_iou.py`` counts
    ``iou = 0 if union == 0``; cIoU is 0 when every union is empty, as its c45d603 version).

    >>> metric = ConventionIoU("seg_zero")
    >>> empty = np.zeros((1, 2), dtype=bool)
    >>> metric.update(np.array([[True, False]]), np.array([[True, True]]))   # I = 1, U = 2
    True
    >>> metric.update(empty, empty)                                            # empty union: skipped
    False
    >>> metric.giou, metric.ciou, metric.skipped, len(metric)
    (0.5, 0.5, 1, 2)

    Args:
        convention: ``"lisa"`` (default) or ``"seg_zero"``.
    """

    def __init__(self, convention: Convention = "lisa") -> None:
        self.convention: Convention = check_convention(convention, where="ConventionIoU: convention")
        self.metric = MaskIoU(empty_union=_EMPTY_UNION[self.convention])
        self._counted: list[bool] = []

    def update(self, prediction: npt.ArrayLike | None, truth: GroundTruthMask | npt.ArrayLike) -> bool:
        """Add one sample (``prediction=None``: a failed parse); ``truth`` a [`GroundTruthMask`][] or a mask
        prepared here with [`prepare_ground_truth`][]. Returns whether the sample counts."""
        if not isinstance(truth, GroundTruthMask):
            truth = prepare_ground_truth(truth, convention=self.convention)
        counts = sample_counts(prediction, truth, convention=self.convention)
        self._counted.append(counts is not None)
        if counts is not None:
            self.metric.update_counts(*counts, failed=prediction is None)
        return counts is not None

    def __len__(self) -> int:
        """Samples seen, counted or skipped."""
        return len(self._counted)

    @property
    def counted(self) -> BoolArray:
        """Per sample seen, whether it counts."""
        return np.asarray(self._counted, dtype=np.bool_)

    @property
    def skipped(self) -> int:
        """Samples left out (``seg_zero``: empty union)."""
        return len(self._counted) - len(self.metric)

    @property
    def giou(self) -> float:
        """gIoU of the counted samples (NaN before any)."""
        return self.metric.giou

    @property
    def ciou(self) -> float:
        """cIoU of the counted samples (NaN before any)."""
        return self.metric.ciou
