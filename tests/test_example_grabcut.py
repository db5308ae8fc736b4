"""The GrabCut segmenter of the worked example (``--segmenter grabcut``): a promptable segmenter without weights.

Prompted with the ground-truth box and the two ground-truth points of procedural scenes, it recovers the
ground-truth masks (mean IoU measured at 0.99 on 840-pixel scenes and 1.00 on 256-pixel ones), where the tiny
random-weight SAM, a wiring test only, reaches 0.015. Degenerate prompts give a defined mask.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from pixelthink.models import GrabCutSegmenter  # noqa: E402
from pixelthink.scenes import SceneGenerator, SegSample  # noqa: E402

#: Measured mean IoU with ground-truth prompts: 1.00 (24 scenes of 256 pixels, seed 1), 0.99 (840 pixels); the
#: threshold leaves room for OpenCV versions.
MIN_MEAN_IOU = 0.9


def _prompts(sample: SegSample) -> tuple[tuple[float, ...], tuple[tuple[float, float], ...]]:
    """The ground-truth box and points in the image's pixels (they are given in the policy's frame)."""
    w, h = sample.image.size
    sx, sy = w / sample.frame, h / sample.frame
    x1, y1, x2, y2 = sample.bbox
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy), tuple((x * sx, y * sy) for x, y in sample.points)


def _iou(prediction: np.ndarray, target: np.ndarray) -> float:
    union = int((prediction | target).sum())
    return int((prediction & target).sum()) / union if union else 1.0


@pytest.fixture(scope="module")
def scenes() -> list[SegSample]:
    return SceneGenerator(seed=1, image_size=256).samples(24)


def test_grabcut_with_ground_truth_prompts_recovers_the_masks(scenes: list[SegSample]) -> None:
    segmenter = GrabCutSegmenter()
    ious = []
    for sample in scenes:
        box, points = _prompts(sample)
        mask = segmenter.predict(sample.image, box, points)
        assert mask.shape == (sample.image.size[1], sample.image.size[0]) and mask.dtype == np.bool_
        ious.append(_iou(mask, np.asarray(sample.mask, dtype=bool)))
    assert float(np.mean(ious)) >= MIN_MEAN_IOU, ious


def test_grabcut_is_far_above_the_tiny_random_sam(scenes: list[SegSample]) -> None:
    pytest.importorskip("transformers")
    from pixelthink.models import build_tiny_segmenter

    grabcut, sam = GrabCutSegmenter(), build_tiny_segmenter("sam")
    ours, random_sam = [], []
    for sample in scenes[:8]:
        box, points = _prompts(sample)
        target = np.asarray(sample.mask, dtype=bool)
        ours.append(_iou(grabcut.predict(sample.image, box, points), target))
        random_sam.append(_iou(np.asarray(sam.predict(sample.image, box, points), dtype=bool), target))
    assert np.mean(ours) >= MIN_MEAN_IOU and np.mean(ours) > np.mean(random_sam) + 0.5, (ours, random_sam)


def test_grabcut_is_deterministic(scenes: list[SegSample]) -> None:
    for sample in scenes[:4]:
        box, points = _prompts(sample)
        first = GrabCutSegmenter(seed=3).predict(sample.image, box, points)
        again = GrabCutSegmenter(seed=3).predict(sample.image, box, points)
        assert np.array_equal(first, again)


def _noise(size: tuple[int, int] = (90, 70)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "box, expected",
    [
        ((10, 10, 10, 40), "box"),  # zero width: the clipped box (one column)
        ((30, 20, 30, 20), "box"),  # a point
        ((200, 200, 300, 300), "empty"),  # outside the image
        ((-50, -50, -10, -10), "empty"),
        ((float("nan"), 0, 10, 10), "empty"),
        ((-20, -20, 200, 200), "any"),  # covers the whole image: no background to model
        ((50, 40, 10, 10), "any"),  # corners swapped
        ((5, 5, 60, 50), "any"),  # a box with both points outside it
    ],
)
def test_degenerate_boxes_give_a_defined_mask(box: tuple[float, float, float, float], expected: str) -> None:
    image = _noise()
    mask = GrabCutSegmenter().predict(
        image, box, ((80.0, 65.0), (85.0, 66.0)) if box == (5, 5, 60, 50) else ((30.0, 20.0), (20.0, 25.0))
    )
    assert mask.shape == (70, 90) and mask.dtype == np.bool_
    if expected == "empty":
        assert not mask.any()
    elif expected == "box":
        x1, y1, x2, y2 = (int(v) for v in box)
        reference = np.zeros_like(mask)
        reference[y1 : y2 + 1, x1 : x2 + 1] = True
        assert np.array_equal(mask, reference)


def test_grabcut_mask_stays_inside_the_box() -> None:
    sample = SceneGenerator(seed=2, image_size=256).sample(0)
    box, points = _prompts(sample)
    mask = GrabCutSegmenter().predict(sample.image, box, points)
    x1, y1, x2, y2 = (round(v) for v in box)
    outside = mask.copy()
    outside[y1 : y2 + 1, x1 : x2 + 1] = False
    assert mask.any() and not outside.any()


def test_grabcut_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="iterations: expected an int >= 1"):
        GrabCutSegmenter(iterations=0)
    with pytest.raises(ValueError, match="max_side: expected an int >= 16"):
        GrabCutSegmenter(max_side=4)


def test_cli_accepts_grabcut_with_and_without_tiny(tmp_path: Path) -> None:
    import pixelthink_grpo

    assert pixelthink_grpo.TINY_SEGMENTER == "grabcut"
    assert pixelthink_grpo.parse_args(["--tiny", "--segmenter", "grabcut"]).segmenter == "grabcut"
    policy = tmp_path / "qwen"
    policy.mkdir()
    args = pixelthink_grpo.parse_args(["--policy", str(policy), "--segmenter", "grabcut"])
    assert args.segmenter == "grabcut" and not args.tiny
    with pytest.raises(SystemExit) as raised:
        pixelthink_grpo.parse_args(["--tiny", "--segmenter", "grabcut", "--segmenter-kind", "sam2"])
    assert raised.value.code == 2
