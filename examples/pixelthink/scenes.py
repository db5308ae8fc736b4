"""A procedural reasoning-segmentation dataset: scenes of shapes, referring expressions, exact masks.

Every sample is deterministic from ``(seed, index)``, so the worked example runs anywhere, offline, and two runs
see the same data. A scene holds 2..``max_objects`` non-overlapping shapes (circle, square, triangle, diamond)
in six colours and three sizes on a plain background. One shape is the target; its referring expression is the
*shortest* description that identifies it uniquely, tried in this order (the incremental strategy of referring
expression generation, Dale & Reiter 1995):

=====  ====================================  ===========================================================
level  form                                  needed when
=====  ====================================  ===========================================================
1      one attribute: "the triangle"         no other shape shares that attribute
2      two attributes: "the red triangle"    several triangles, several red shapes
3      three: "the small red triangle"       several red triangles of other sizes
4      superlative: "the leftmost red tri."  red triangles of one size, the target extreme on one axis
5      relation: "the red triangle to the    only a relation to another, uniquely named shape separates
       left of the blue circle"              the target from its look-alikes
=====  ====================================  ===========================================================

Difficulty on PixelThink's 1..10 scale (this example's own formula, not a paper's; 1 = very easy)::

    D = clip(1 + (level - 1) + 0.2 * (n_objects - 2) + 1.0 * [target is small] , 1, 10)

so attribute expressions (levels 1-3) land in PixelThink's easy tier (D < 3.5) unless the target is small,
superlatives (level 4) in the medium tier, and relations (level 5) in the hard tier (D >= 5).

Ground truth follows Seg-Zero's training data (``Ricky06662/refCOCOg_9k_840``: a box and two points in the
840 x 840 frame the policy sees): the box is the mask's inclusive pixel extent ``(x1, y1, x2, y2)``; the two
points are the centres of the two largest inscribed circles (:func:`inscribed_circle_points`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

__all__ = [
    "COLOURS",
    "SHAPES",
    "SIZES",
    "SceneGenerator",
    "SceneObject",
    "SegSample",
    "distance_to_background",
    "inscribed_circle_points",
    "mask_box",
    "official_solution",
    "scene_difficulty",
]

BoolArray = npt.NDArray[np.bool_]
Box = tuple[int, int, int, int]
Point = tuple[int, int]

#: Colour names and their RGB values (distinct under any resampling the processors apply).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 119, 180),
    "yellow": (240, 200, 20),
    "purple": (148, 103, 189),
    "orange": (255, 127, 14),
}
SHAPES = ("circle", "square", "triangle", "diamond")
#: Size name -> half-extent as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.045, "medium": 0.075, "large": 0.11}
BACKGROUND = (235, 235, 230)
_AXES = {
    "leftmost": (0, -1),
    "rightmost": (0, 1),
    "topmost": (1, -1),
    "bottommost": (1, 1),
}
_RELATIONS = ("to the left of", "to the right of", "above", "below")


@dataclass(frozen=True)
class SceneObject:
    """One shape: kind, colour, size name, centre ``(cx, cy)`` and half-extent ``r`` in pixels."""

    kind: str
    colour: str
    size: str
    cx: float
    cy: float
    r: float

    def extent(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)`` of the shape's bounding square."""
        return (self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r)

    def polygon(self) -> list[tuple[float, float]] | None:
        """Vertices for the polygonal kinds; ``None`` for a circle."""
        cx, cy, r = self.cx, self.cy, self.r
        if self.kind == "square":
            return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
        if self.kind == "triangle":
            return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
        if self.kind == "diamond":
            return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
        return None

    def phrase(self, *attributes: str) -> str:
        """ "the small red triangle" style noun phrase with the given attributes (of size, colour, kind)."""
        words = [getattr(self, a) for a in ("size", "colour") if a in attributes]
        words.append(self.kind if "kind" in attributes else "shape")
        return "the " + " ".join(words)


@dataclass
class SegSample:
    """One reasoning-segmentation sample, whatever its source.

    Attributes:
        id: a stable identifier (``image_id`` for the official difficulty table).
        image: the image the policy sees (RGB), at its original size.
        query: the referring expression or reasoning question.
        bbox: ground-truth box ``(x1, y1, x2, y2)`` in the policy's frame (``frame`` x ``frame`` pixels).
        points: the two ground-truth points in the same frame.
        frame: side of the square frame the policy's coordinates live in (Seg-Zero: 840).
        mask: the ground-truth mask at the image's original size (``None`` for box-only data such as
            RefCOCOg-9k); with ``ignore``, pixels excluded from IoU (LISA's label 255).
        difficulty: 1..10 (NaN where the source has none).
        reasoning: reference reasoning (short), when the source has one (ReasonSeg-Diff, generated scenes).
        reasoning_long: a longer reference reasoning, when the source has one.
        meta: anything else (for generated scenes: ``level``, ``n_objects``, ``objects`` as dicts, ``target`` index).
    """

    id: str
    image: Image.Image
    query: str
    bbox: Box
    points: tuple[Point, Point]
    frame: int
    mask: BoolArray | None = None
    ignore: BoolArray | None = None
    difficulty: float = math.nan
    reasoning: str = ""
    reasoning_long: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def solution(self) -> str:
        """The ground truth in the official string form, ``<box>(x1,y1),(x2,y2)</box><points>...</points>``."""
        return official_solution(self.bbox, self.points)


def official_solution(bbox: Sequence[int], points: Sequence[Sequence[int]]) -> str:
    """Seg-Zero's ground-truth string (``solution`` column of ``refCOCOg_9k_840``).

    >>> official_solution((1, 2, 30, 40), ((5, 6), (7, 8)))
    '<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>'
    """
    x1, y1, x2, y2 = (int(v) for v in bbox)
    (a, b), (c, d) = ((int(p[0]), int(p[1])) for p in points)
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({a},{b}),({c},{d})</points>"


# ------------------------------------------------------------------------------------------------------------
# Mask geometry
# ------------------------------------------------------------------------------------------------------------


def mask_box(mask: npt.ArrayLike) -> Box:
    """Inclusive pixel extent ``(x1, y1, x2, y2)`` of a non-empty boolean mask.

    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> mask_box(m)
    (2, 1, 4, 2)

    Raises:
        ValueError: the mask is not 2-D or is empty.
    """
    array = np.asarray(mask, dtype=bool)
    if array.ndim != 2 or not array.any():
        raise ValueError(
            f"mask_box: mask: expected a non-empty 2-D mask, got shape {array.shape} with {int(array.sum())} pixels set"
        )
    rows, cols = np.flatnonzero(array.any(axis=1)), np.flatnonzero(array.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))


def _column_distance(mask: BoolArray) -> npt.NDArray[np.float64]:
    """Per pixel, the distance (in rows) to the nearest background pixel in the same column (inf if none)."""
    h = mask.shape[0]
    big = float(2 * (h + mask.shape[1]))
    down = np.empty(mask.shape)
    run = np.full(mask.shape[1], big)
    for y in range(h):
        run = np.where(mask[y], run + 1.0, 0.0)
        down[y] = run
    up = np.empty(mask.shape)
    run = np.full(mask.shape[1], big)
    for y in range(h - 1, -1, -1):
        run = np.where(mask[y], run + 1.0, 0.0)
        up[y] = run
    return np.minimum(down, up)


def distance_to_background(mask: npt.ArrayLike, *, max_side: int = 384) -> npt.NDArray[np.float64]:
    """Exact Euclidean distance from each mask pixel to the nearest pixel outside the mask (0 outside).

    The image border counts as background. Computed on the mask's bounding box padded by one background pixel,
    which is exact (the nearest background pixel of any inside pixel lies within that padded box): a column
    pass (distance along the column), then a row pass ``D(x, y)^2 = min_j g(j, y)^2 + (x - j)^2`` evaluated in
    row chunks. Masks whose box side exceeds ``max_side`` are first reduced by an integer stride (distances are
    then in original pixels, to within that stride).
    """
    full = np.asarray(mask, dtype=bool)
    out = np.zeros(full.shape)
    if not full.any():
        return out
    x1, y1, x2, y2 = mask_box(full)
    crop = np.pad(full[y1 : y2 + 1, x1 : x2 + 1], 1)
    stride = max(1, math.ceil(max(crop.shape) / max_side))
    small = crop[::stride, ::stride]
    g = _column_distance(small)
    h, w = small.shape
    columns = np.arange(w, dtype=np.float64)
    squared_x = (columns[:, None] - columns[None, :]) ** 2  # [x, j]
    dist = np.empty((h, w))
    chunk = max(1, 2_000_000 // max(1, w * w))
    for start in range(0, h, chunk):
        rows = g[start : start + chunk] ** 2  # [r, j]
        dist[start : start + chunk] = np.sqrt((rows[:, None, :] + squared_x[None, :, :]).min(axis=2))
    dist = np.where(small, dist, 0.0) * stride
    if stride > 1:
        dist = np.repeat(np.repeat(dist, stride, axis=0), stride, axis=1)[: crop.shape[0], : crop.shape[1]]
        dist = np.where(crop, dist, 0.0)
    out[y1 : y2 + 1, x1 : x2 + 1] = dist[1:-1, 1:-1]
    return out


def inscribed_circle_points(mask: npt.ArrayLike) -> tuple[Point, Point]:
    """Centres ``(x, y)`` of the two largest inscribed circles of a mask, as Seg-Zero's prompt asks for.

    Reading (Seg-Zero, arXiv 2503.06520, Sec. 3: "points of two largest inscribed circles"; the data-preparation
    code is not public, so this definition is this example's): the first point maximises the distance to the
    background ``d`` (the centre of the largest inscribed circle, radius ``r1 = d(p1)``); the second maximises
    ``d`` among mask pixels whose circle does not overlap the first, ``|p - p1| >= r1 + d(p)``. Where the largest
    such circle is smaller than ``r1 / 2`` (a disc, a triangle, a compact blob: only slivers at the rim are
    disjoint), the second circle need only leave the first centre uncovered, ``|p - p1| >= d(p)`` (for a disc of
    radius R: the circle of radius R/2 half-way to the rim). A one-pixel mask gives the same point twice. Ties
    go to the first pixel in row-major order.

    >>> m = np.zeros((20, 40), bool); m[5:15, 2:38] = True
    >>> inscribed_circle_points(m)
    ((6, 9), (16, 9))

    Raises:
        ValueError: the mask is empty.
    """
    array = np.asarray(mask, dtype=bool)
    if array.ndim != 2 or not array.any():
        raise ValueError(f"inscribed_circle_points: mask: expected a non-empty 2-D mask, got shape {array.shape}")
    d = distance_to_background(array)
    first = int(np.argmax(d))
    y1, x1 = divmod(first, array.shape[1])
    r1 = d[y1, x1]
    ys, xs = np.nonzero(array)
    radii = d[ys, xs]
    separation = np.hypot(xs - x1, ys - y1)
    disjoint = separation >= r1 + radii
    allowed = disjoint
    if not disjoint.any() or radii[disjoint].max() < r1 / 2:
        allowed = (separation >= radii) & (separation > 0)  # the second circle leaves the first centre uncovered
    if not allowed.any():
        return (int(x1), int(y1)), (int(x1), int(y1))
    pick = int(np.flatnonzero(allowed)[np.argmax(radii[allowed])])
    return (int(x1), int(y1)), (int(xs[pick]), int(ys[pick]))


# ------------------------------------------------------------------------------------------------------------
# Scenes and referring expressions
# ------------------------------------------------------------------------------------------------------------


def scene_difficulty(level: int, n_objects: int, target_small: bool) -> float:
    """``clip(1 + (level - 1) + 0.2 (n_objects - 2) + [small], 1, 10)`` (this example's formula, see module doc).

    >>> scene_difficulty(1, 2, False), scene_difficulty(5, 6, True)
    (1.0, 6.8)
    """
    value = 1.0 + (level - 1) + 0.2 * (n_objects - 2) + (1.0 if target_small else 0.0)
    return float(round(min(10.0, max(1.0, value)), 4))


def _separated(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether ``a`` is ``relation`` ``b``, with non-overlapping extents on that axis (no borderline cases)."""
    al, at, ar, ab = a.extent()
    bl, bt, br, bb = b.extent()
    return {
        "to the left of": ar < bl,
        "to the right of": al > br,
        "above": ab < bt,
        "below": at > bb,
    }[relation]


_ATTRIBUTE_SETS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("kind",), ("colour",)),
    (("colour", "kind"), ("size", "kind"), ("size", "colour")),
    (("size", "colour", "kind"),),
)


def _matches(obj: SceneObject, target: SceneObject, attributes: Sequence[str]) -> bool:
    return all(getattr(obj, a) == getattr(target, a) for a in attributes)


def describe(
    objects: Sequence[SceneObject], t: int, *, prefer_relation: bool = False
) -> tuple[str, int, list[str]] | None:
    """The shortest unique expression for ``objects[t]``: ``(expression, level, reasoning steps)``, or ``None``.

    Where attributes cannot single the target out, a superlative and a relation are both tried, the relation
    first when ``prefer_relation``. The reasoning steps are the facts a careful reader would check, in order;
    they become the reference reasoning (short: the last steps; long: all of them).
    """
    target = objects[t]
    others = [o for i, o in enumerate(objects) if i != t]
    n = len(objects)
    for level, attribute_sets in enumerate(_ATTRIBUTE_SETS, start=1):
        for attributes in attribute_sets:
            twins = [o for o in others if _matches(o, target, attributes)]
            if not twins:
                noun = target.phrase(*attributes)
                steps = [f"The image shows {n} shapes."]
                for a in attributes:
                    same = sum(1 for o in objects if getattr(o, a) == getattr(target, a))
                    value = getattr(target, a)
                    if a == "kind":
                        value = f"{value}s" if same > 1 else f"a {value}"
                    steps.append(f"{same} of them {'are' if same > 1 else 'is'} {value}.")
                steps.append(f"So the target is {noun}.")
                return noun, level, steps
    full = ("colour", "kind")
    group = [o for o in objects if _matches(o, target, full)]
    return _relational(objects, target, group, n, prefer_relation)


def _relational(
    objects: Sequence[SceneObject], target: SceneObject, group: list[SceneObject], n: int, prefer_relation: bool
) -> tuple[str, int, list[str]] | None:
    """A superlative (level 4) or a relation to a uniquely named anchor (level 5), whichever is preferred first."""
    found = [_relation(objects, target, group, n), _superlative(target, group, n)]
    if not prefer_relation:
        found.reverse()
    return next((f for f in found if f is not None), None)


def _superlative(target: SceneObject, group: list[SceneObject], n: int) -> tuple[str, int, list[str]] | None:
    for word, (axis, sign) in _AXES.items():
        coordinate = [(o.cx, o.cy)[axis] * sign for o in group]
        mine = (target.cx, target.cy)[axis] * sign
        rivals = [c for o, c in zip(group, coordinate) if o is not target]
        if rivals and all(mine > c + target.r + 2 for c in rivals):  # extreme by more than its own radius
            steps = [
                f"The image shows {n} shapes.",
                f"There are {len(group)} {target.colour} {target.kind}s.",
                f"I compare their positions and pick the {word} one.",
            ]
            return f"the {word} {target.colour} {target.kind}", 4, steps
    return None


def _relation(
    objects: Sequence[SceneObject], target: SceneObject, group: list[SceneObject], n: int
) -> tuple[str, int, list[str]] | None:
    full = ("colour", "kind")
    for anchor in objects:
        if anchor is target:
            continue
        anchor_name = next(
            (
                anchor.phrase(*a)
                for sets in _ATTRIBUTE_SETS[:2]
                for a in sets
                if not [o for o in objects if o is not anchor and _matches(o, anchor, a)]
            ),
            None,
        )
        if anchor_name is None or _matches(anchor, target, full):
            continue
        for relation in _RELATIONS:
            if not _separated(target, anchor, relation):
                continue
            if any(_separated(o, anchor, relation) for o in group if o is not target):
                continue
            noun = target.phrase(*full)
            steps = [
                f"The image shows {n} shapes.",
                f"There are {len(group)} {target.colour} {target.kind}s, so colour and shape are not enough.",
                f"I find {anchor_name} first.",
                f"Only one {target.colour} {target.kind} is {relation} it.",
            ]
            return f"{noun} {relation} {anchor_name}", 5, steps
    return None


class SceneGenerator:
    """Deterministic scenes of shapes with one target each (see the module docstring).

    Args:
        seed: the dataset seed; sample ``i`` depends only on ``(seed, i)``.
        image_size: side of the square image in pixels (Seg-Zero's frame is 840).
        max_objects: most shapes per scene (at least 2).
        duplicate_rate: chance that a new shape copies the colour and kind of an earlier one (look-alikes
            make relational, harder expressions necessary).
        expression_mix: probabilities of the three expression families, (attributes, superlative, relation);
            a scene is redrawn until it offers the family drawn (after 20 tries any family is taken).

    >>> gen = SceneGenerator(seed=0, image_size=128)
    >>> sample = gen.sample(3)
    >>> sample.query == SceneGenerator(seed=0, image_size=128).sample(3).query
    True
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        image_size: int = 840,
        max_objects: int = 6,
        duplicate_rate: float = 0.5,
        expression_mix: Sequence[float] = (0.45, 0.3, 0.25),
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"SceneGenerator: seed: expected a non-negative int, got {seed!r}")
        if not isinstance(image_size, int) or image_size < 64:
            raise ValueError(f"SceneGenerator: image_size: expected an int >= 64, got {image_size!r}")
        if not isinstance(max_objects, int) or not 2 <= max_objects <= 12:
            raise ValueError(f"SceneGenerator: max_objects: expected an int in [2, 12], got {max_objects!r}")
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError(f"SceneGenerator: duplicate_rate: expected a number in [0, 1], got {duplicate_rate!r}")
        mix = np.asarray(expression_mix, dtype=np.float64)
        if mix.shape != (3,) or (mix < 0).any() or not math.isclose(float(mix.sum()), 1.0):
            raise ValueError(
                "SceneGenerator: expression_mix: expected 3 non-negative probabilities summing to 1, "
                f"got {tuple(expression_mix)!r}"
            )
        self.seed, self.image_size, self.max_objects = seed, image_size, max_objects
        self.duplicate_rate, self.expression_mix = duplicate_rate, mix

    def _place(self, rng: np.random.Generator) -> list[SceneObject]:
        side = self.image_size
        count = int(rng.integers(2, self.max_objects + 1))
        objects: list[SceneObject] = []
        attempts = 0
        while len(objects) < count and attempts < 400:
            attempts += 1
            if objects and rng.random() < self.duplicate_rate:
                source = objects[int(rng.integers(len(objects)))]
                kind, colour = source.kind, source.colour
            else:
                kind, colour = SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]
            size = list(SIZES)[int(rng.integers(len(SIZES)))]
            r = SIZES[size] * side
            margin = r + 2
            cx, cy = (float(v) for v in rng.uniform(margin, side - margin, size=2))
            candidate = SceneObject(kind, colour, size, round(cx, 1), round(cy, 1), round(r, 1))
            gap = 0.02 * side
            if all(max(abs(o.cx - cx), abs(o.cy - cy)) > o.r + r + gap for o in objects):
                objects.append(candidate)
        return objects

    def _draw(self, objects: Sequence[SceneObject]) -> tuple[Image.Image, list[BoolArray]]:
        side = self.image_size
        image = Image.new("RGB", (side, side), BACKGROUND)
        painter = ImageDraw.Draw(image)
        masks = []
        for obj in objects:
            layer = Image.new("1", (side, side), 0)
            pen = ImageDraw.Draw(layer)
            polygon = obj.polygon()
            if polygon is None:
                box = [obj.cx - obj.r, obj.cy - obj.r, obj.cx + obj.r, obj.cy + obj.r]
                pen.ellipse(box, fill=1)
                painter.ellipse(box, fill=COLOURS[obj.colour])
            else:
                pen.polygon(polygon, fill=1)
                painter.polygon(polygon, fill=COLOURS[obj.colour])
            masks.append(np.asarray(layer, dtype=bool))
        return image, masks

    def sample(self, index: int) -> SegSample:
        """Sample ``index`` of this dataset (deterministic)."""
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"SceneGenerator.sample: index: expected a non-negative int, got {index!r}")
        rng = np.random.default_rng([self.seed, index])
        want = ("attributes", "superlative", "relation")[int(rng.choice(3, p=self.expression_mix))]
        found = None
        for attempt in range(50):
            objects = self._place(rng)
            if len(objects) < 2:
                continue
            options: dict[str, list[tuple[int, tuple[str, int, list[str]]]]] = {
                "attributes": [],
                "superlative": [],
                "relation": [],
            }
            for t in range(len(objects)):
                for prefer_relation in (False, True):
                    described = describe(objects, t, prefer_relation=prefer_relation)
                    if described is not None:
                        kind = {4: "superlative", 5: "relation"}.get(described[1], "attributes")
                        options[kind].append((t, described))
            pool = options[want] or (
                [o for k in ("attributes", "superlative", "relation") for o in options[k]] if attempt >= 20 else []
            )
            if pool:
                found = pool[int(rng.integers(len(pool)))]
                break
        if found is None:  # pragma: no cover - 50 scenes without a describable shape do not occur in practice
            raise RuntimeError(
                f"SceneGenerator: no describable target after 50 scenes (seed {self.seed}, index {index})"
            )
        t, (query, level, steps) = found
        target = objects[t]
        image, masks = self._draw(objects)
        mask = masks[t]
        bbox = mask_box(mask)
        points = inscribed_circle_points(mask)
        x1, y1, x2, y2 = bbox
        where = (
            f"It lies at about x {round((x1 + x2) / 2)}, y {round((y1 + y2) / 2)}, "
            f"spanning {x2 - x1 + 1} by {y2 - y1 + 1} pixels."
        )
        listing = [
            f"I see {o.phrase('size', 'colour', 'kind')[4:]} at x {round(o.cx)}, y {round(o.cy)}." for o in objects
        ]
        short = " ".join([*steps[-2:], where])
        long = " ".join([steps[0], *listing, *steps[1:], where])
        return SegSample(
            id=f"scene-{self.seed}-{index}",
            image=image,
            query=query,
            bbox=bbox,
            points=points,
            frame=self.image_size,
            mask=mask,
            difficulty=scene_difficulty(level, len(objects), target.size == "small"),
            reasoning=short,
            reasoning_long=long,
            meta={
                "level": level,
                "n_objects": len(objects),
                "source": "scenes",
                "target": t,
                "objects": [dataclasses.asdict(o) for o in objects],
            },
        )

    def samples(self, count: int, *, start: int = 0) -> list[SegSample]:
        """Samples ``start .. start + count - 1``."""
        return [self.sample(i) for i in range(start, start + count)]

    def __iter__(self) -> Iterator[SegSample]:
        index = 0
        while True:
            yield self.sample(index)
            index += 1
