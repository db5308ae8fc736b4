"""Loaders for local copies of the public reasoning-segmentation datasets, all returning :class:`SegSample`.

Nothing is downloaded: each loader takes a path to data you already have.

* :func:`load_saved_dataset`: a Hugging Face dataset written with ``save_to_disk`` in Seg-Zero's layouts:

  - RefCOCOg-9k (``Ricky06662/refCOCOg_9k_840``, the PixelThink/Seg-Zero training set): columns ``id``,
    ``problem``, ``solution`` (``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`` in the 840 x 840
    frame), ``image``, ``img_height``, ``img_width``. It has no masks (box-and-points supervision only), so it
    trains but cannot be scored with gIoU.
  - ReasonSeg val/test (``Ricky06662/ReasonSeg_val``, ``..._test``): columns ``image``, ``text``, ``mask``
    (nested booleans), ``image_id``, ``ann_id``, ``img_height``, ``img_width``.

* :func:`load_reasonseg`: ReasonSeg as LISA released it (a folder of ``NAME.jpg`` + ``NAME.json`` with ``text``
  (a list of queries), ``is_sentence`` and ``shapes``: polygons labelled ``target``, ``ignore`` or ``flag``), or a
  ReasonSeg-Diff style manifest: one JSON file holding a list of records. ReasonSeg-Diff's exact file schema is
  not public; the manifest reader accepts the keys listed in :func:`load_reasonseg` (image path, query, mask as
  polygons or a mask image, difficulty, short/long reference reasoning).

Masks from polygons follow LISA's ``utils/data_processing.py::get_mask_from_json``: ``flag`` shapes are skipped,
shapes are painted largest first (so smaller ones win where they overlap), ``ignore`` shapes mark pixels left
out of IoU, every other label is target.

Difficulty comes, in this order, from ``difficulty_table`` (the official ``refcoco_train_labeled_merged.json``,
``image_id`` -> ``difficulty_score_model``, read with :func:`adaptive_length_reward.difficulty.load_difficulty_table`),
a ``difficulty`` field/column, or stays NaN (the example's ``--difficulty`` flag then decides what fills it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.segmentation import parse_ground_truth

from .scenes import BoolArray, SegSample, inscribed_circle_points, mask_box

__all__ = ["DatasetFormatError", "frame_target", "load_reasonseg", "load_saved_dataset", "polygon_mask"]

REFCOCOG_COLUMNS = ("id", "problem", "solution", "image")
REASONSEG_COLUMNS = ("image", "text", "mask", "image_id")
_QUERY_KEYS = ("query", "text", "question", "problem", "expression", "sentence")
_DIFFICULTY_KEYS = ("difficulty", "difficulty_score", "difficulty_score_model")
_SHORT_KEYS = ("reasoning_short", "short_reasoning", "reasoning", "reference_reasoning")
_LONG_KEYS = ("reasoning_long", "long_reasoning")


class DatasetFormatError(ValueError):
    """A dataset on disk does not have the layout the loader expects; the message names what is missing."""


def polygon_mask(shapes: Sequence[Mapping[str, Any]], size: tuple[int, int], *, where: str = "shapes"
                 ) -> tuple[BoolArray, BoolArray]:
    """``(target, ignore)`` masks of ``size = (width, height)`` from LISA-style labelled polygons.

    >>> target, ignore = polygon_mask([{"label": "target", "points": [[1, 1], [6, 1], [6, 4], [1, 4]]}], (8, 6))
    >>> int(target.sum()), int(ignore.sum())
    (24, 0)

    Raises:
        DatasetFormatError: a shape without ``label`` or with fewer than 3 ``points``.
    """
    width, height = size
    painted: list[tuple[int, list[tuple[float, float]], bool]] = []
    for i, shape in enumerate(shapes):
        if not isinstance(shape, Mapping) or "label" not in shape or "points" not in shape:
            raise DatasetFormatError(f"{where}[{i}]: expected an object with 'label' and 'points', got {shape!r:.100}")
        label = str(shape["label"]).lower()
        if label == "flag":  # deprecated, meaningless annotations in LISA's release
            continue
        try:
            points = [(float(x), float(y)) for x, y in shape["points"]]
        except (TypeError, ValueError):
            raise DatasetFormatError(f"{where}[{i}].points: expected [[x, y], ...], "
                                     f"got {shape['points']!r:.100}") from None
        if len(points) < 3:
            raise DatasetFormatError(f"{where}[{i}].points: expected at least 3 points, got {len(points)}")
        layer = Image.new("1", (width, height), 0)
        ImageDraw.Draw(layer).polygon(points, fill=1, outline=1)
        painted.append((int(np.asarray(layer).sum()), points, "ignore" in label))
    labels = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(labels)
    for _, points, ignore in sorted(painted, key=lambda item: -item[0]):  # largest first, as LISA
        value = 255 if ignore else 1
        pen.polygon(points, fill=value, outline=value)
    array = np.asarray(labels)
    return array == 1, array == 255


def frame_target(mask: BoolArray, frame: int) -> tuple[tuple[int, int, int, int], tuple[tuple[int, int], ...]]:
    """Box and two inscribed-circle points of ``mask`` after resizing it to ``frame`` x ``frame`` (nearest).

    This is the ground truth in the coordinates the policy answers in (Seg-Zero resizes every image to 840 x 840).

    Raises:
        ValueError: the mask is empty at that size.
    """
    if mask.shape != (frame, frame):
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((frame, frame), Image.Resampling.NEAREST)
        mask = np.asarray(resized) > 127
    return mask_box(mask), inscribed_circle_points(mask)


def _difficulty_lookup(table: str | Path | Mapping[str, Any] | None) -> dict[str, float | None]:
    if table is None:
        return {}
    from adaptive_length_reward.difficulty import load_difficulty_table

    return load_difficulty_table(table, on_duplicate="last")


def _first(record: Mapping[str, Any], keys: Sequence[str], default: Any = None) -> Any:
    return next((record[k] for k in keys if k in record and record[k] is not None), default)


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{where}: expected a number, got {value!r:.60}") from None
    if math.isfinite(number) and not 1.0 <= number <= 10.0:
        raise DatasetFormatError(f"{where}: expected a difficulty in [1, 10], got {number}")
    return number


def load_saved_dataset(path: str | Path, *, split: str | None = None, limit: int | None = None, frame: int = 840,
                       difficulty_table: str | Path | Mapping[str, Any] | None = None) -> list[SegSample]:
    """Samples from a ``save_to_disk`` copy of RefCOCOg-9k or Seg-Zero's ReasonSeg (layout detected by columns).

    Args:
        path: the directory ``save_to_disk`` wrote (a ``Dataset`` or a ``DatasetDict``).
        split: which split of a ``DatasetDict``; default its only split, or ``train``/``test`` when several.
        limit: read at most this many rows (the first ones).
        frame: side of the square frame the policy's coordinates live in (Seg-Zero: 840).
        difficulty_table: the official difficulty table (or any table :func:`load_difficulty_table` reads),
            matched on ``id`` / ``image_id``.

    Raises:
        DatasetFormatError: neither layout's columns are present, or the split does not exist.
    """
    datasets = import_optional("datasets", extra="data", purpose="Loading a saved Hugging Face dataset")
    path = Path(path)
    if not path.is_dir():
        raise DatasetFormatError(f"load_saved_dataset: path: expected a directory written by save_to_disk, "
                                 f"got {str(path)!r}")
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is None:
            split = names[0] if len(names) == 1 else next((n for n in ("train", "test") if n in names), None)
        if split not in loaded:
            raise DatasetFormatError(f"load_saved_dataset: split: expected one of {names}, got {split!r}")
        loaded = loaded[split]
    columns = set(loaded.column_names)
    if limit is not None:
        loaded = loaded.select(range(min(limit, len(loaded))))
    table = _difficulty_lookup(difficulty_table)
    if set(REFCOCOG_COLUMNS) <= columns:
        return [_refcocog_row(row, i, frame, table) for i, row in enumerate(loaded)]
    if set(REASONSEG_COLUMNS) <= columns:
        return [_reasonseg_row(row, i, frame, table) for i, row in enumerate(loaded)]
    raise DatasetFormatError(
        f"load_saved_dataset: {str(path)!r}: expected RefCOCOg-9k columns {list(REFCOCOG_COLUMNS)} or ReasonSeg "
        f"columns {list(REASONSEG_COLUMNS)}, got {sorted(columns)}"
    )


def _refcocog_row(row: Mapping[str, Any], index: int, frame: int, table: Mapping[str, float | None]) -> SegSample:
    where = f"row {index}"
    target = parse_ground_truth(row["solution"], index=index)
    if target.bbox is None or target.points is None:
        raise DatasetFormatError(f"{where}: solution: expected a box and two points, got {row['solution']!r:.120}")
    sample_id = str(row["id"])
    difficulty = table.get(sample_id) if sample_id in table else row.get("difficulty")
    return SegSample(
        id=sample_id,
        image=row["image"].convert("RGB"),
        query=str(row["problem"]),
        bbox=tuple(int(v) for v in target.bbox),  # type: ignore[arg-type]
        points=tuple((int(x), int(y)) for x, y in target.points),  # type: ignore[arg-type]
        frame=frame,
        difficulty=_as_float(difficulty, f"{where}: difficulty"),
        meta={"source": "refcocog_9k"},
    )


def _reasonseg_row(row: Mapping[str, Any], index: int, frame: int, table: Mapping[str, float | None]) -> SegSample:
    where = f"row {index}"
    mask = np.asarray(row["mask"], dtype=bool)
    image = row["image"].convert("RGB")
    if mask.shape != (image.height, image.width):
        raise DatasetFormatError(f"{where}: mask: expected shape {(image.height, image.width)} (the image's), "
                                 f"got {mask.shape}")
    if not mask.any():
        raise DatasetFormatError(f"{where}: mask: expected at least one target pixel, got an empty mask")
    bbox, points = frame_target(mask, frame)
    image_id = str(row["image_id"])
    sample_id = f"{image_id}-{row['ann_id']}" if "ann_id" in row else image_id
    difficulty = table.get(image_id) if image_id in table else row.get("difficulty")
    return SegSample(
        id=sample_id, image=image, query=str(row["text"]), bbox=bbox, points=points, frame=frame,  # type: ignore[arg-type]
        mask=mask, difficulty=_as_float(difficulty, f"{where}: difficulty"), meta={"source": "reasonseg_hf"},
    )


def load_reasonseg(path: str | Path, *, limit: int | None = None, frame: int = 840,
                   difficulty_table: str | Path | Mapping[str, Any] | None = None,
                   all_queries: bool = False) -> list[SegSample]:
    """Samples from ReasonSeg in LISA's folder layout, or from a ReasonSeg-Diff style JSON manifest.

    Folder (``path`` is a directory): every ``NAME.json`` next to an image ``NAME.jpg``/``.png``/``.jpeg``;
    the JSON holds ``text`` (a string or a list of queries), ``shapes`` (labelled polygons) and optionally a
    difficulty (``difficulty``, ``difficulty_score``, ``difficulty_score_model``). One sample per image with its
    first query, or one per query with ``all_queries``.

    Manifest (``path`` is a ``.json`` file holding a list, or an object with a ``samples``/``data`` list): each
    record has ``image`` (a path relative to the manifest), a query (``query``/``text``/``question``/``problem``),
    a mask as ``shapes`` (polygons) or ``mask`` (a mask image path, non-zero = target) or ``polygon`` (one
    target polygon), and optionally ``id``, a difficulty, ``reasoning_short``/``reasoning`` and
    ``reasoning_long``.

    Raises:
        FileNotFoundError: the path, an image or a mask file does not exist.
        DatasetFormatError: a record misses what is listed above (the message names the file and the key).
    """
    path = Path(path)
    table = _difficulty_lookup(difficulty_table)
    if path.is_dir():
        samples = _reasonseg_folder(path, frame, table, all_queries, limit)
    elif path.is_file():
        samples = _reasonseg_manifest(path, frame, table, limit)
    else:
        raise FileNotFoundError(f"load_reasonseg: path: expected a ReasonSeg folder or a JSON manifest, "
                                f"got {str(path)!r}")
    return samples


def _image_next_to(json_path: Path) -> Path:
    for suffix in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        candidate = json_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{json_path.name}: expected an image {json_path.stem}.jpg/.png next to it, found none")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:  # a few of LISA's files are cp1252, as its own reader allows
        return json.loads(path.read_text(encoding="cp1252"))
    except json.JSONDecodeError as error:
        raise DatasetFormatError(f"{path.name}: expected JSON, got a parse error: {error}") from None


def _queries(value: Any, where: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(q, str) and q.strip() for q in value):
        return list(value)
    raise DatasetFormatError(f"{where}: expected a non-empty query string or list of strings, got {value!r:.80}")


def _sample_from_mask(sample_id: str, image: Image.Image, query: str, mask: BoolArray, ignore: BoolArray | None,
                      frame: int, difficulty: float, record: Mapping[str, Any], source: str, where: str) -> SegSample:
    if not mask.any():
        raise DatasetFormatError(f"{where}: expected a non-empty target mask, got no target pixels")
    bbox, points = frame_target(mask, frame)
    return SegSample(
        id=sample_id, image=image, query=query, bbox=bbox, points=points, frame=frame,  # type: ignore[arg-type]
        mask=mask, ignore=ignore if ignore is not None and ignore.any() else None, difficulty=difficulty,
        reasoning=str(_first(record, _SHORT_KEYS, "")), reasoning_long=str(_first(record, _LONG_KEYS, "")),
        meta={"source": source},
    )


def _reasonseg_folder(folder: Path, frame: int, table: Mapping[str, float | None], all_queries: bool,
                      limit: int | None) -> list[SegSample]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DatasetFormatError(f"load_reasonseg: {str(folder)!r}: expected NAME.json + NAME.jpg pairs, found no JSON")
    samples: list[SegSample] = []
    for json_path in files:
        record = _read_json(json_path)
        where = json_path.name
        if not isinstance(record, Mapping) or "shapes" not in record or "text" not in record:
            raise DatasetFormatError(f"{where}: expected an object with 'text' and 'shapes' (LISA's ReasonSeg format)")
        image = Image.open(_image_next_to(json_path)).convert("RGB")
        target, ignore = polygon_mask(record["shapes"], image.size, where=f"{where}: shapes")
        name = json_path.stem
        score = table.get(name) if name in table else _first(record, _DIFFICULTY_KEYS)
        difficulty = _as_float(score, f"{where}: difficulty")
        queries = _queries(record["text"], f"{where}: text")
        for q, query in enumerate(queries if all_queries else queries[:1]):
            samples.append(_sample_from_mask(f"{name}-{q}" if all_queries else name, image, query, target, ignore,
                                             frame, difficulty, record, "reasonseg", where))
            if limit is not None and len(samples) >= limit:
                return samples
    return samples


def _reasonseg_manifest(manifest: Path, frame: int, table: Mapping[str, float | None],
                        limit: int | None) -> list[SegSample]:
    data = _read_json(manifest)
    if isinstance(data, Mapping):
        data = _first(data, ("samples", "data"))
    if not isinstance(data, list):
        raise DatasetFormatError(f"{manifest.name}: expected a list of records (or an object with 'samples'/'data')")
    samples: list[SegSample] = []
    for i, record in enumerate(data[:limit] if limit is not None else data):
        where = f"{manifest.name}[{i}]"
        if not isinstance(record, Mapping) or "image" not in record:
            raise DatasetFormatError(f"{where}: expected an object with 'image', got {record!r:.100}")
        image_path = manifest.parent / str(record["image"])
        if not image_path.is_file():
            raise FileNotFoundError(f"{where}: image: expected a file, got {str(image_path)!r} (not found)")
        image = Image.open(image_path).convert("RGB")
        query = _queries(_first(record, _QUERY_KEYS), f"{where}: query")[0]
        ignore = None
        if "shapes" in record:
            target, ignore = polygon_mask(record["shapes"], image.size, where=f"{where}: shapes")
        elif "polygon" in record:
            target, _ = polygon_mask([{"label": "target", "points": record["polygon"]}], image.size,
                                     where=f"{where}: polygon")
        elif "mask" in record:
            mask_path = manifest.parent / str(record["mask"])
            if not mask_path.is_file():
                raise FileNotFoundError(f"{where}: mask: expected a mask image, got {str(mask_path)!r} (not found)")
            target = np.asarray(Image.open(mask_path).convert("L")) > 0
            if target.shape != (image.height, image.width):
                raise DatasetFormatError(f"{where}: mask: expected shape {(image.height, image.width)} (the image's), "
                                         f"got {target.shape}")
        else:
            raise DatasetFormatError(f"{where}: expected the target as 'shapes', 'polygon' or 'mask', got keys "
                                     f"{sorted(record)}")
        sample_id = str(record.get("id", image_path.stem))
        score = table.get(sample_id) if sample_id in table else _first(record, _DIFFICULTY_KEYS)
        samples.append(_sample_from_mask(sample_id, image, query, target, ignore, frame,
                                         _as_float(score, f"{where}: difficulty"), record, "reasonseg_diff", where))
    return samples
