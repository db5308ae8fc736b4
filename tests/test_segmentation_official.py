"""An independent, per-sample implementation of the official Seg-Zero / PixelThink reward, generated cases
(valid, on every threshold, malformed), and checks of the reference itself.

It mirrors the structure of the official files (``songw-zju/PixelThink`` ``verl/utils/reward_score/
seg_pixelthink.py``; ``dvlab-research/Seg-Zero`` ``verl/utils/reward_score/seg_restrict.py``) in our own
words: one function per term, each re-running its regexes and ``json.loads`` on the raw strings, plain Python
arithmetic on whatever the JSON holds, and every failure of a term turned into 0.0 by a ``try``/``except``
around it (the official code uses ``except Exception``; so does this reference, on purpose: it is the
behaviour being reproduced, not library code). The library's vectorised implementation is checked against
it in ``test_presets_parity.py`` and timed against it in ``benchmarks/rewards.py``.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

# Pattern strings handed to re.fullmatch / re.search on every call, as the official functions do.
THINK_ANSWER = r"<think>.*?</think>\s*<answer>.*?</answer>"
FIRST_OBJECT = r"{[^}]+}"
GT_BOX = r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>"
GT_POINTS = r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>"


def ref_thinking_format(response: str) -> float:
    return 1.0 if re.fullmatch(THINK_ANSWER, response, re.DOTALL) else 0.0


def ref_segmentation_format(response: str) -> float:
    try:
        found = re.search(FIRST_OBJECT, response)
        if found is None:
            return 0.0
        obj = json.loads(found.group(0))
        if any(key not in obj for key in ("bbox", "points_1", "points_2")):
            return 0.0
        box, first, second = obj["bbox"], obj["points_1"], obj["points_2"]
        ok = isinstance(box, list) and len(box) == 4
        ok = ok and isinstance(first, list) and len(first) == 2
        ok = ok and isinstance(second, list) and len(second) == 2
        return 1.0 if ok else 0.0
    except Exception:
        return 0.0


def _gt_box(ground_truth: str) -> list[int]:
    found = re.search(GT_BOX, ground_truth.strip())
    return [int(found.group(k)) for k in range(1, 5)]  # AttributeError on a malformed truth -> caught by caller


def _overlap_ratio(a: list, b: list) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    shared = (right - left + 1) * (bottom - top + 1) if (left < right and top < bottom) else 0
    size_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    size_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(shared) / (size_a + size_b - shared)


def ref_box_iou(response: str, ground_truth: str, threshold: float = 0.5) -> float:
    try:
        target = _gt_box(ground_truth)
        found = re.search(FIRST_OBJECT, response)
        if found:
            obj = json.loads(found.group(0))
            if len(obj["bbox"]) == 4 and _overlap_ratio(obj["bbox"], target) > threshold:
                return 1.0
    except Exception:
        pass
    return 0.0


def ref_box_l1(response: str, ground_truth: str, threshold: float = 10.0) -> float:
    try:
        target = _gt_box(ground_truth)
        found = re.search(FIRST_OBJECT, response)
        if found:
            obj = json.loads(found.group(0))
            box = obj["bbox"]
            if len(box) == 4:
                gap = (
                    abs(box[0] - target[0])
                    + abs(box[1] - target[1])
                    + abs(box[2] - target[2])
                    + abs(box[3] - target[3])
                ) / 4
                if gap < threshold:
                    return 1.0
    except Exception:
        pass
    return 0.0


def ref_point_match(response: str, ground_truth: str, threshold: float = 100.0) -> float:
    try:
        found_gt = re.search(GT_POINTS, ground_truth)
        targets = [[int(found_gt.group(1)), int(found_gt.group(2))], [int(found_gt.group(3)), int(found_gt.group(4))]]
        found = re.search(FIRST_OBJECT, response)
        if found:
            obj = json.loads(found.group(0))
            if len(obj["bbox"]) == 4:
                box = obj["bbox"]
            p, q = obj["points_1"], obj["points_2"]
            p, q = [int(p[0]), int(p[1])], [int(q[0]), int(q[1])]

            def inside(pt: list) -> bool:
                return box[0] <= pt[0] <= box[2] and box[1] <= pt[1] <= box[3]

            if inside(p) and inside(q):
                straight = math.sqrt((p[0] - targets[0][0]) ** 2 + (p[1] - targets[0][1]) ** 2) + math.sqrt(
                    (q[0] - targets[1][0]) ** 2 + (q[1] - targets[1][1]) ** 2
                )
                crossed = math.sqrt((p[0] - targets[1][0]) ** 2 + (p[1] - targets[1][1]) ** 2) + math.sqrt(
                    (q[0] - targets[0][0]) ** 2 + (q[1] - targets[0][1]) ** 2
                )
                if min(straight, crossed) / 2 < threshold:
                    return 1.0
    except Exception:
        pass
    return 0.0


def ref_accuracy(response: str, ground_truth: str, iou: float = 0.5, l1: float = 10.0, point: float = 100.0) -> float:
    """The official sum, in the official order of addition (format, format, IoU, points, L1)."""
    return (
        ref_thinking_format(response)
        + ref_segmentation_format(response)
        + ref_box_iou(response, ground_truth, iou)
        + ref_point_match(response, ground_truth, point)
        + ref_box_l1(response, ground_truth, l1)
    )


def ref_budget(difficulty: float, uncertainty: float) -> float | None:
    if difficulty >= 5.0:
        return 256.0 + 25.0 * uncertainty
    if difficulty >= 3.5:
        return None
    return 96.0


def ref_length_score(length: int, budget: float | None, beta: float = 1 / 500.0) -> float:
    if budget is None:
        return 1.0
    over = length - budget
    change = -beta * over if over > 0 else beta * abs(over)
    return max(0.0, min(1.0, 1 + change))


def ref_pixelthink(
    response: str, ground_truth: str, uncertainty: float = 0.0, difficulty: float = 2.0, length: int | None = None
) -> float:
    """The official ``seg_pixelthink_compute_score`` in word-count mode (length = whole-response words)."""
    used = len(response.split()) if length is None else length
    return ref_accuracy(response, ground_truth) * ref_length_score(used, ref_budget(difficulty, uncertainty))


# ------------------------------------------------------------------------------------------------------------
# Generated cases: deterministic for a given seed; each is (completion, ground truth string, difficulty, uncertainty).

WORDS = (
    "the red cup is on the left of the table near a small person holding a large blue umbrella while "
    "another object behind it looks similar but is smaller so the target must be the front one"
).split()


def gt_string(box: tuple[int, int, int, int], p1: tuple[int, int], p2: tuple[int, int]) -> str:
    return f"<box>({box[0]},{box[1]}),({box[2]},{box[3]})</box><points>({p1[0]},{p1[1]}),({p2[0]},{p2[1]})</points>"


def answer_json(box: object, p1: object, p2: object, *, spaces: bool = True) -> str:
    text = json.dumps({"bbox": box, "points_1": p1, "points_2": p2})
    return text if spaces else text.replace(" ", "")


def wrap(rng: np.random.Generator, answer: str, words: int) -> str:
    think = " ".join([WORDS[i] for i in rng.integers(len(WORDS), size=words).tolist()])
    gap = ["", " ", "\n", "\n\n", " \t "][rng.integers(5)]
    return f"<think>{think}</think>{gap}<answer>{answer}</answer>"


def random_truth(rng: np.random.Generator) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple[int, int]]:
    x1, y1 = (int(v) for v in rng.integers(0, 700, size=2))
    w, h = (int(v) for v in rng.integers(4, 140, size=2))
    box = (x1, y1, x1 + w, y1 + h)
    p1 = (x1 + int(rng.integers(0, w + 1)), y1 + int(rng.integers(0, h + 1)))
    p2 = (x1 + int(rng.integers(0, w + 1)), y1 + int(rng.integers(0, h + 1)))
    return box, p1, p2


def _near(rng: np.random.Generator, box: tuple[int, ...], spread: int) -> list[int]:
    return [int(v) + int(rng.integers(-spread, spread + 1)) for v in box]


def boundary_answers(box: tuple[int, int, int, int], p1: tuple[int, int], p2: tuple[int, int]) -> list[str]:
    """Answers sitting exactly on (and one step either side of) every threshold for this ground truth."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    out = []
    # IoU: a box of the same width and a cut height: inter/union = k/h; exactly 0.5 when k = h/2.
    for k in (h // 2 - 1, h // 2, (h + 1) // 2, h // 2 + 1):
        out.append(answer_json([x1, y1, x2, y1 + k - 1], list(p1), list(p2)))
    # L1: all four coordinates shifted so the mean is 10 - 0.25, exactly 10, 10.25; floats around 10.
    for shift in ([10, 10, 10, 9], [10, 10, 10, 10], [10, 10, 10, 11], [9.999, 10, 10, 10], [10.0, 10.0, 10.0, 10.0]):
        out.append(answer_json([b + s for b, s in zip(box, shift)], list(p1), list(p2)))
    # Distance: both points moved by a 60-80-100 triangle (distance exactly 100) and just under.
    big = [x1 - 200, y1 - 200, x2 + 200, y2 + 200]
    for dx, dy in ((60, 80), (60, 79), (60, 81), (0, 100), (0, 99)):
        out.append(answer_json(big, [p1[0] + dx, p1[1] + dy], [p2[0] + dx, p2[1] + dy]))
    # Points exactly on each edge of the predicted box, and one pixel outside.
    out.append(answer_json(list(box), [x1, y1], [x2, y2]))
    out.append(answer_json(list(box), [x1 - 1, y1], [x2, y2]))
    out.append(answer_json(list(box), [x1, y1], [x2, y2 + 1]))
    # Boxes touching the ground truth on a line (strict overlap test), inverted boxes, zero union.
    out.append(answer_json([x2, y1, x2 + w - 1, y2], list(p1), list(p2)))
    out.append(answer_json([x2, y2, x1, y1], list(p1), list(p2)))
    out.append(answer_json([x1 + w, y1, x1 - 1, y1 + h - 1], list(p1), list(p2)))  # area -w*h... union may be 0
    out.append(answer_json([x1 + 1, y1, x1 - w, y2], list(p1), list(p2)))
    # Points swapped (best pairing), float points truncated toward zero, points as strings.
    out.append(answer_json(list(box), list(p2), list(p1)))
    out.append(answer_json(list(box), [p1[0] + 0.99, p1[1] - 0.5], [p2[0] - 0.01, p2[1] + 0.999]))
    out.append(answer_json(list(box), [str(p1[0]), str(p1[1])], [f" {p2[0]} ", str(p2[1])]))
    return out


MALFORMED = [
    "",
    " ",
    "{}",
    "{ }",
    "{}{}",
    "}{",
    "{",
    "}",
    "<think></think><answer></answer>",
    "<think>no answer</think>",
    '{"bbox": [1, 2, 3, 4], "points_1": [1, 2]}',
    '{"bbox": [1, 2, 3], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": "1234", "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [1, 2, 3, 4], "points_1": "12", "points_2": "34"}',
    '{"bbox": [1, 2, 300, 400], "points_1": "12", "points_2": "3456"}',
    '{"bbox": [1, 2, 300, 400], "points_1": [1], "points_2": [3, 4]}',
    '{"bbox": [1, 2, 300, 400], "points_1": [1, 2, 3], "points_2": [3, 4, 5]}',
    '{"bbox": [null, 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [true, false, 300, 400], "points_1": [true, 2], "points_2": [3, false]}',
    '{"bbox": [NaN, 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [-Infinity, -Infinity, Infinity, Infinity], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [0, 0, 900, 900], "points_1": [NaN, 2], "points_2": [3, 4]}',
    '{"bbox": [0, 0, 900, 900], "points_1": [Infinity, 2], "points_2": [3, 4]}',
    '{"bbox": [1e400, 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [-5, -5, 300, 400], "points_1": [-1, -2], "points_2": [3, 4]}',
    '{"bbox": [100000000000000000000000000000, 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [0, 0, 100000000000000000000000000000, 1e300], "points_1": [1e300, 2], "points_2": [3, 4]}',
    '{"bbox": [' + "9" * 400 + ', 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [' + "9" * 5000 + ', 2, 300, 400], "points_1": [1, 2], "points_2": [3, 4]}',
    '{"bbox": [16777217, 16777216, 16777218, 16777219], "points_1": [16777217, 16777217], '
    '"points_2": [16777218, 16777218]}',
    '{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4], "bbox": [5, 6, 7, 8]}',
    '{"bbox": [1, 2, 3, 4] "points_1": [1, 2], "points_2": [3, 4]}',
    "{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': [3, 4]}",
    '{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4],}',
    '{"a": {"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4]}}',
    '{"bbox": [[1], 2, 3, 4], "points_1": [[1], 2], "points_2": [3, 4]}',
    '{"bbox": [1, 2, 3, 4], "points_1": ["1.5", 2], "points_2": ["1_0", "\u0663"]}',
    '{"bbox": ' + "[" * 3000 + "]" * 3000 + ', "points_1": [1, 2], "points_2": [3, 4]}',
    "<think>{nested {braces}} here</think><answer>{no json}</answer>",
    '<answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4]}</answer><think>late</think>',
    '<think>x</think><answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4]}</answer>\n',
    ' <think>x</think><answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
    "<think>x</think>\u00a0\u2003<answer>ok</answer>",
    "<think>x</think>\u200b<answer>ok</answer>",
    "<think>a</think>b</think> <answer>c</answer>",
    "<think></think><answer>x</answer></answer>",
    "\u00bd \u0663\u0664 \U0001f600 {\u00e9} \x00 \ud800",
    '{"bbox": [-0, -0.0, 1e-320, 5e-324], "points_1": [-0.9, 0.9], "points_2": [0, 0]}',
]


def generate_cases(count: int, *, seed: int = 0, group: int = 8) -> list[tuple[str, str, float, float]]:
    """``count`` cases in GRPO groups of ``group`` completions sharing a ground truth and a difficulty.

    About half are valid (near or far from the truth), a quarter sit on thresholds, the rest are malformed
    or truncated; about one in twelve has a long reasoning (hundreds of words).
    """
    rng = np.random.default_rng(seed)
    difficulties = [1.0, 2.0, 3.0, 3.4999, 3.5, 4.0, 4.9999, 5.0, 6.0, 9.0]
    cases: list[tuple[str, str, float, float]] = []
    while len(cases) < count:
        box, p1, p2 = random_truth(rng)
        truth = gt_string(box, p1, p2)
        difficulty = (
            difficulties[int(rng.integers(len(difficulties)))]
            if rng.random() < 0.5
            else round(float(rng.uniform(1, 10)), 2)
        )
        boundary = boundary_answers(box, p1, p2)
        for _ in range(group):
            uncertainty = [0.0, 1.0, round(float(rng.random()), 3), float(rng.random())][int(rng.integers(4))]
            kind = rng.random()
            words = int(rng.integers(300, 900)) if rng.random() < 0.08 else int(rng.integers(5, 110))
            if kind < 0.45:
                spread = (0, 3, 8, 20, 60, 400)[int(rng.integers(6))]
                answer = answer_json(
                    _near(rng, box, spread),
                    _near(rng, p1, spread),
                    _near(rng, p2, spread),
                    spaces=bool(rng.random() < 0.8),
                )
                text = wrap(rng, answer, words)
            elif kind < 0.70:
                text = wrap(rng, boundary[rng.integers(len(boundary))], words)
            elif kind < 0.85:
                answer = MALFORMED[rng.integers(len(MALFORMED))]
                text = wrap(rng, answer, words) if rng.random() < 0.5 else answer
            else:
                full = wrap(rng, answer_json(_near(rng, box, 5), list(p1), list(p2)), words)
                text = full[: int(rng.integers(0, len(full) + 1))]  # truncated anywhere
            cases.append((text, truth, difficulty, uncertainty))
    return cases[:count]


# ------------------------------------------------------------------------------------------------------------
# The reference itself, on cases whose official outcome is worked out by hand.

GT = "<box>(100,100),(199,199)</box><points>(130,140),(170,160)</points>"
GOOD = (
    '<think>the cup</think><answer>{"bbox": [100, 100, 199, 199], "points_1": [130, 140], '
    '"points_2": [170, 160]}</answer>'
)


GT_CORNER = "<box>(0,0),(199,199)</box><points>(2,4),(6,8)</points>"


@pytest.mark.parametrize(
    ("response", "ground_truth", "expected"),
    [
        (GOOD, GT, (1, 1, 1, 1, 1)),
        # Boxes touching on one line: the official overlap test is strict, so the shared line counts 0.
        ('{"bbox": [199, 100, 298, 199], "points_1": [200, 150], "points_2": [250, 150]}', GT, (0, 1, 0, 1, 0)),
        # Points swapped: the best pairing is used.
        (
            '<think></think><answer>{"bbox": [100,100,199,199], "points_1": [170,160], "points_2": [130,140]}</answer>',
            GT,
            (1, 1, 1, 1, 1),
        ),
        # String points are indexed character by character and int()-converted ("13" -> (1, 3)).
        ('{"bbox": [0, 0, 199, 199], "points_1": "13", "points_2": "57"}', GT_CORNER, (0, 0, 1, 1, 1)),
        # Box only: IoU and L1 do not need the points.
        ('{"bbox": [100, 100, 199, 199]}', GT, (0, 0, 1, 0, 1)),
        # NaN in the box: no term can pass except the format.
        ('{"bbox": [NaN, 100, 199, 199], "points_1": [130, 140], "points_2": [170, 160]}', GT, (0, 1, 0, 0, 0)),
        # Nested braces: the first {...} ends at the first }, which is not JSON.
        ('{"a": {"bbox": [100, 100, 199, 199]}}', GT, (0, 0, 0, 0, 0)),
        # true/false are Python ints 1/0 to the official arithmetic.
        ('{"bbox": [true, false, 199, 199], "points_1": [130, 140], "points_2": [170, 160]}', GT, (0, 1, 0, 1, 0)),
    ],
)
def test_reference_terms_on_worked_cases(response: str, ground_truth: str, expected: tuple[int, ...]) -> None:
    got = (
        ref_thinking_format(response),
        ref_segmentation_format(response),
        ref_box_iou(response, ground_truth),
        ref_point_match(response, ground_truth),
        ref_box_l1(response, ground_truth),
    )
    assert got == tuple(float(x) for x in expected)


def test_reference_length_score_matches_the_tiers() -> None:
    # easy: budget 96, score 1 - (L - 96)/500; medium: no penalty; hard: 256 + 25 U.
    assert ref_pixelthink(GOOD, GT, difficulty=2.0, length=346) == 5 * 0.5
    assert ref_pixelthink(GOOD, GT, difficulty=4.0, length=5000) == 5.0
    assert ref_pixelthink(GOOD, GT, difficulty=5.0, uncertainty=1.0, length=281) == 5.0
    assert ref_pixelthink(GOOD, GT, difficulty=5.0, uncertainty=1.0, length=531) == 5 * 0.5
