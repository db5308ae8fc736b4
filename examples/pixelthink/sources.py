"""Loaders for local copies of the public reasoning-segmentation datasets, all returning :class:`SegSample`.

Nothing is downloaded: each loader takes a path to data you already have. :func:`load_source` detects the kind
from the path (:func:`detect_source`) and calls the loader below that reads it; docs/data.md lists every
layout, column and manifest field.

* :func:`load_saved_dataset`: a Hugging Face dataset written with ``save_to_disk`` in Seg-Zero's layouts:

  - RefCOCOg-9k (``Ricky06662/refCOCOg_9k_840``, the PixelThink/Seg-Zero training set): columns ``id``,
    ``problem``, ``solution`` (``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`` in the 840 x 840
    frame), ``image``, ``img_height``, ``img_width``. It has no masks (box-and-points supervision only), so it
    trains but cannot be scored with gIoU.
  - ReasonSeg val/test (``Ricky06662/ReasonSeg_val``, ``..._test``): columns ``image``, ``text``, ``mask``
    (nested booleans), ``image_id``, ``ann_id``, ``img_height``, ``img_width``. Any table with ``image``, a
    query column and a mask column (the manifest's fields, below) reads the same way.

* :func:`load_hf_dataset`: the same layouts read with ``datasets.load_dataset`` from a local hub cache folder
  (``HF_HOME/hub/datasets--Owner--Name``, resolved to its snapshot), a ``.parquet`` / ``.arrow`` file, or a
  folder of them. Only local files are read.

* :func:`load_reasonseg`: ReasonSeg as LISA released it (a folder of ``NAME.jpg`` + ``NAME.json`` with ``text``
  (a list of queries), ``is_sentence`` and ``shapes``: polygons labelled ``target``, ``ignore`` or ``flag``), or a
  ReasonSeg-Diff manifest: a JSON file holding a list of records, or a JSONL file with one record a line.
  ReasonSeg-Diff's own file schema is not public; the manifest fields are this project's (docs/data.md): image
  path, query, mask (image file, COCO RLE, COCO polygons, a polygon or LISA shapes), difficulty, short/long
  reference reasoning, split and tier.

Masks from LISA's labelled polygons (:func:`polygon_mask`) follow LISA's ``utils/data_processing.py::
get_mask_from_json``: ``flag`` shapes are skipped, shapes are painted largest first (so smaller ones win where
they overlap), ``ignore`` shapes mark pixels left out of IoU, every other label is target; boundary pixels are
included, as LISA's ``cv2.fillPoly`` + ``cv2.polylines`` include them. COCO masks (:func:`coco_mask`: RLE with
string or list counts, or polygons as flat coordinate lists) are decoded by pycocotools, COCO's own API, whose
polygon rasterisation keeps a pixel when its centre is inside (an integer-cornered rectangle ``x1..x2`` covers
columns ``x1 .. x2 - 1``). The two conventions differ by the boundary pixels; each is its source's.

Difficulty comes, in this order, from ``difficulty_table`` (the official ``refcoco_train_labeled_merged.json``,
``image_id`` -> ``difficulty_score_model``, read with :func:`adaptive_length_reward.difficulty.load_difficulty_table`),
a ``difficulty`` field/column, or stays NaN (the example's ``--difficulty`` flag then decides what fills it).
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.segmentation import parse_ground_truth

from .scenes import BoolArray, SegSample, inscribed_circle_points, mask_box

__all__ = [
    "SOURCE_KINDS",
    "DatasetFormatError",
    "coco_mask",
    "detect_source",
    "frame_target",
    "load_hf_dataset",
    "load_reasonseg",
    "load_saved_dataset",
    "load_source",
    "polygon_mask",
    "resolve_hub_cache",
]

REFCOCOG_COLUMNS = ("id", "problem", "solution", "image")
_QUERY_KEYS = ("query", "text", "question", "problem", "expression", "sentence")
_TARGET_KEYS = ("shapes", "segmentation", "polygon", "mask")
_DIFFICULTY_KEYS = ("difficulty", "difficulty_score", "difficulty_score_model")
_SHORT_KEYS = ("reasoning_short", "short_reasoning", "reasoning", "reference_reasoning")
_LONG_KEYS = ("reasoning_long", "long_reasoning")
_TIERS = ("easy", "medium", "hard")
#: What :func:`detect_source` returns, one per loader path.
SOURCE_KINDS = ("saved", "hub_cache", "parquet", "arrow", "lisa", "manifest")
_TABLE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}
_MANIFEST_SUFFIXES = (".json", ".jsonl")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_EXPECTED_PATH = (
    "a save_to_disk folder, a hub cache folder (datasets--Owner--Name or one of its snapshots), "
    "a .parquet/.arrow file or a folder of them, a LISA ReasonSeg folder, or a .json/.jsonl manifest"
)


class DatasetFormatError(ValueError):
    """A dataset on disk does not have the layout the loader expects; the message names what is missing."""


def polygon_mask(
    shapes: Sequence[Mapping[str, Any]], size: tuple[int, int], *, where: str = "shapes"
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
            raise DatasetFormatError(
                f"{where}[{i}].points: expected [[x, y], ...], got {shape['points']!r:.100}"
            ) from None
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


def _rle_string_counts(text: str, where: str) -> list[int]:
    """Run lengths of COCO's compressed RLE string (maskApi.c ``rleFrString``: 5 bits a character, offset 48,
    bit 0x20 = more, bit 0x10 of the last = negative, counts after the third stored as the difference to the one
    two before)."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            code = ord(text[position]) - 48 if position < len(text) else -1
            if not 0 <= code < 64:
                raise DatasetFormatError(
                    f"{where}.counts: expected a COCO RLE string, got {text!r:.60} (malformed at character {position})"
                )
            value |= (code & 0x1F) << shift
            more, position, shift = bool(code & 0x20), position + 1, shift + 5
            if not more and code & 0x10:
                value |= -1 << shift
        counts.append(value + counts[-2] if len(counts) > 2 else value)
    return counts


def _rle_counts(rle: Mapping[str, Any], height: int, width: int, where: str) -> None:
    """Check an RLE's size is the image's and its counts cover it exactly (pycocotools decodes a short count list
    into uninitialised memory: measured, counts ``'5310'`` for 4 x 5 pixels gave values summing to 38)."""
    size = rle.get("size")
    if not isinstance(size, Sequence) or isinstance(size, str) or list(size) != [height, width]:
        raise DatasetFormatError(
            f"{where}.size: expected [{height}, {width}] (the image's [height, width]), got {size!r:.40}"
        )
    raw = rle["counts"]
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if isinstance(raw, str):
        counts = _rle_string_counts(raw, where)
    elif isinstance(raw, Sequence) and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in raw):
        counts = [int(c) for c in raw]
    else:
        raise DatasetFormatError(
            f"{where}.counts: expected a COCO RLE string or a list of run lengths, got {raw!r:.60}"
        )
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise DatasetFormatError(
            f"{where}.counts: expected non-negative run lengths summing to {height * width} "
            f"({height} x {width} pixels), got {len(counts)} runs summing to {sum(counts)}"
        )


def _polygons(value: Any, where: str) -> list[list[float]]:
    try:
        polygons = [[float(v) for v in polygon] for polygon in value]
    except (TypeError, ValueError):
        polygons = []
    if not polygons or any(len(p) < 6 or len(p) % 2 or not all(map(math.isfinite, p)) for p in polygons):
        raise DatasetFormatError(
            f"{where}: expected COCO polygons [[x1, y1, x2, y2, x3, y3, ...], ...] (each an "
            f"even number >= 6 of finite coordinates), got {value!r:.100}"
        )
    return polygons


def coco_mask(segmentation: Any, *, height: int, width: int, where: str = "segmentation") -> BoolArray:
    """Boolean ``(height, width)`` mask from a COCO ``segmentation``, decoded by pycocotools.

    ``segmentation`` is an RLE ``{"size": [height, width], "counts": ...}`` with compressed counts (a string or
    bytes, as ``pycocotools.mask.encode`` writes) or uncompressed counts (a list of run lengths, column-major,
    starting with a run of zeros: COCO's ``iscrowd`` form), or polygons: a list of flat coordinate lists
    ``[[x1, y1, x2, y2, ...], ...]`` in pixels (their union). Source: COCO's ``PythonAPI/pycocotools/coco.py::
    annToRLE`` (``frPyObjects``, ``merge``) and ``mask.decode``.

    Raises:
        DatasetFormatError: not one of these forms, an RLE whose size is not ``[height, width]`` or whose counts
            do not cover it, a polygon with fewer than 3 points or an odd number of coordinates.
        MissingExtraError: pycocotools is not installed (the message gives the install command).
    """
    masks = import_optional("pycocotools.mask", extra="example", purpose="Decoding COCO RLE / polygon masks")
    if isinstance(segmentation, Mapping) and "counts" in segmentation:
        _rle_counts(segmentation, height, width, where)
        counts = segmentation["counts"]
        rle = (
            {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
            if isinstance(counts, (str, bytes))
            else masks.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
        )
    elif isinstance(segmentation, Sequence) and not isinstance(segmentation, (str, bytes)):
        rle = masks.merge(masks.frPyObjects(_polygons(segmentation, where), height, width))
    else:
        raise DatasetFormatError(
            f"{where}: expected a COCO RLE {{'size': [h, w], 'counts': ...}} or polygons "
            f"[[x1, y1, x2, y2, ...], ...], got {segmentation!r:.100}"
        )
    with warnings.catch_warnings():  # pycocotools 2.0.11's Cython under numpy 2: harmless, not ours to fix
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        return np.asarray(masks.decode(rle), dtype=bool)


def _open_image(value: Any, base: Path, where: str, mode: str = "RGB") -> Image.Image:
    """An image given as a PIL image, a path (relative to ``base``), encoded bytes, or datasets' undecoded
    ``{"bytes", "path"}`` struct (a parquet file written without datasets' feature metadata)."""
    if isinstance(value, Mapping) and ("bytes" in value or "path" in value):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, Image.Image):
        return value.convert(mode)
    if isinstance(value, (bytes, bytearray)):
        return Image.open(io.BytesIO(value)).convert(mode)
    if isinstance(value, (str, Path)):
        path = base / str(value)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: expected a file, got {str(path)!r} (not found)")
        return Image.open(path).convert(mode)
    raise DatasetFormatError(f"{where}: expected an image, a path or image bytes, got {type(value).__name__}")


def _mask_value(value: Any, key: str, image: Image.Image, base: Path, where: str) -> BoolArray:
    """One mask field decoded at the image's size: ``segmentation`` is COCO's (RLE or polygons); ``mask`` is an
    RLE, a mask image (a path, bytes or an image; non-zero = target) or a 2-D array (non-zero = target)."""
    where = f"{where}: {key}"
    if key == "segmentation" or (isinstance(value, Mapping) and "counts" in value):
        return coco_mask(value, height=image.height, width=image.width, where=where)
    if isinstance(value, (str, Path, bytes, bytearray, Image.Image, Mapping)):
        mask = np.asarray(_open_image(value, base, where, mode="L")) > 0
    else:
        try:
            mask = np.asarray(value, dtype=float) != 0
        except (TypeError, ValueError):
            mask = np.zeros(0, dtype=bool)
        if mask.ndim != 2:
            raise DatasetFormatError(
                f"{where}: expected a mask image, a COCO RLE or a 2-D array (COCO polygons go "
                f"under 'segmentation'), got {value!r:.80}"
            )
    if mask.shape != (image.height, image.width):
        raise DatasetFormatError(
            f"{where}: expected shape {(image.height, image.width)} (the image's), got {mask.shape}"
        )
    return mask


def _record_masks(
    record: Mapping[str, Any], image: Image.Image, base: Path, where: str
) -> tuple[BoolArray, BoolArray | None]:
    """``(target, ignore)`` from the first target field present: ``shapes`` (LISA's labelled polygons),
    ``segmentation`` (COCO), ``polygon`` (one target polygon ``[[x, y], ...]``, LISA's rasterisation) or ``mask``;
    an ``ignore`` field (any ``mask`` form) adds pixels left out of IoU."""
    key = next((k for k in _TARGET_KEYS if record.get(k) is not None), None)
    if key is None:
        raise DatasetFormatError(
            f"{where}: expected the target as 'shapes', 'segmentation', 'polygon' or 'mask', got keys {sorted(record)}"
        )
    ignore = None
    if key == "shapes":
        target, ignore = polygon_mask(record["shapes"], image.size, where=f"{where}: shapes")
    elif key == "polygon":
        target, _ = polygon_mask(
            [{"label": "target", "points": record["polygon"]}], image.size, where=f"{where}: polygon"
        )
    else:
        target = _mask_value(record[key], key, image, base, where)
    if record.get("ignore") is not None:
        extra = _mask_value(record["ignore"], "ignore", image, base, where)
        ignore = extra if ignore is None else ignore | extra
        target = target & ~extra
    return target, ignore


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


def _pick_split(loaded: Any, split: str | None, caller: str) -> Any:
    """The ``split`` of a ``DatasetDict`` (default its only split, or ``train``/``test`` when several)."""
    if isinstance(loaded, dict):  # a DatasetDict
        names = list(loaded)
        if split is None:
            split = names[0] if len(names) == 1 else next((n for n in ("train", "test") if n in names), None)
        if split not in loaded:
            raise DatasetFormatError(f"{caller}: split: expected one of {names}, got {split!r}")
        loaded = loaded[split]
    return loaded


def _table_samples(
    loaded: Any, *, where: str, base: Path, limit: int | None, frame: int, table: Mapping[str, float | None]
) -> list[SegSample]:
    """Rows of a ``datasets.Dataset`` in the RefCOCOg-9k layout, or with ``image``, a query and a mask column."""
    columns = set(loaded.column_names)
    if limit is not None:
        loaded = loaded.select(range(min(limit, len(loaded))))
    if set(REFCOCOG_COLUMNS) <= columns:
        return [_refcocog_row(row, i, frame, table) for i, row in enumerate(loaded)]
    if "image" in columns and columns & set(_QUERY_KEYS) and columns & set(_TARGET_KEYS):
        return [
            _record_sample(
                row,
                _open_image(row["image"], base, f"row {i}: image"),
                base,
                frame,
                table,
                where=f"row {i}",
                default_id=f"row{i}",
                source="reasonseg_hf",
            )
            for i, row in enumerate(loaded)
        ]
    raise DatasetFormatError(
        f"{where}: expected RefCOCOg-9k columns {list(REFCOCOG_COLUMNS)} or ReasonSeg columns ['image', a query "
        f"({'|'.join(_QUERY_KEYS)}), a mask ({'|'.join(_TARGET_KEYS)})], got {sorted(columns)}"
    )


def load_saved_dataset(
    path: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    frame: int = 840,
    difficulty_table: str | Path | Mapping[str, Any] | None = None,
) -> list[SegSample]:
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
        raise DatasetFormatError(
            f"load_saved_dataset: path: expected a directory written by save_to_disk, got {str(path)!r}"
        )
    loaded = _pick_split(datasets.load_from_disk(str(path)), split, "load_saved_dataset")
    return _table_samples(
        loaded,
        where=f"load_saved_dataset: {str(path)!r}",
        base=path,
        limit=limit,
        frame=frame,
        table=_difficulty_lookup(difficulty_table),
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


def _record_meta(record: Mapping[str, Any], source: str, where: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": source}
    if record.get("split") is not None:
        meta["split"] = str(record["split"])
    if record.get("tier") is not None:
        tier = str(record["tier"]).lower()
        if tier not in _TIERS:
            raise DatasetFormatError(f"{where}: tier: expected one of {list(_TIERS)}, got {record['tier']!r:.40}")
        meta["tier"] = tier
    return meta


def _record_sample(
    record: Mapping[str, Any],
    image: Image.Image,
    base: Path,
    frame: int,
    table: Mapping[str, float | None],
    *,
    where: str,
    default_id: str,
    source: str,
) -> SegSample:
    """One sample from a manifest record or a table row (the fields of docs/data.md)."""
    query = _queries(_first(record, _QUERY_KEYS), f"{where}: query")[0]
    target, ignore = _record_masks(record, image, base, where)
    image_id = record.get("image_id")
    if record.get("id") is not None:
        sample_id = str(record["id"])
    elif image_id is not None:
        sample_id = f"{image_id}-{record['ann_id']}" if record.get("ann_id") is not None else str(image_id)
    else:
        sample_id = default_id
    key = next((k for k in (sample_id, None if image_id is None else str(image_id)) if k in table), None)
    score = table[key] if key is not None else _first(record, _DIFFICULTY_KEYS)
    return _sample_from_mask(
        sample_id,
        image,
        query,
        target,
        ignore,
        frame,
        _as_float(score, f"{where}: difficulty"),
        record,
        _record_meta(record, source, where),
        where,
    )


def resolve_hub_cache(path: str | Path, revision: str | None = None) -> Path:
    """The snapshot folder of a dataset in a local Hugging Face hub cache (``huggingface_hub``'s layout).

    ``path`` is ``HF_HOME/hub/datasets--Owner--Name`` (its ``refs/<revision>`` names the commit whose files are
    in ``snapshots/<commit>/``) or one of its snapshot folders. ``revision``: a ref (default ``main``) or a
    commit; without one and without ``refs/main``, the only snapshot.

    Raises:
        DatasetFormatError: not that layout, or the revision's snapshot is not in the cache.
    """
    path = Path(path)
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("datasets--") and path.is_dir():
        if revision not in (None, path.name):
            raise DatasetFormatError(
                f"resolve_hub_cache: revision: expected {path.name!r} (the snapshot given as "
                f"path) or None, got {revision!r}"
            )
        return path
    if not (path.name.startswith("datasets--") and (path / "snapshots").is_dir()):
        raise DatasetFormatError(
            f"resolve_hub_cache: path: expected a hub cache folder datasets--Owner--Name with "
            f"snapshots/, got {str(path)!r}"
        )
    snapshots = sorted(p.name for p in (path / "snapshots").iterdir() if p.is_dir())
    ref = path / "refs" / (revision or "main")
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if commit in snapshots:
            return path / "snapshots" / commit
        raise DatasetFormatError(
            f"resolve_hub_cache: revision: refs/{revision or 'main'} names {commit!r}, "
            f"expected one of the cached snapshots {snapshots}"
        )
    if revision in snapshots or (revision is None and len(snapshots) == 1):
        return path / "snapshots" / (revision or snapshots[0])
    raise DatasetFormatError(
        f"resolve_hub_cache: revision: expected a ref under refs/ or a cached snapshot "
        f"{snapshots}, got {revision or 'main'!r}"
    )


def _is_hub_folder(path: Path) -> bool:
    return (path.name.startswith("datasets--") and (path / "snapshots").is_dir()) or (
        path.parent.name == "snapshots" and path.parent.parent.name.startswith("datasets--")
    )


def _kind(path: Path, caller: str) -> str:
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _TABLE_SUFFIXES:
            return _TABLE_SUFFIXES[suffix]
        if suffix in _MANIFEST_SUFFIXES:
            return "manifest"
        raise DatasetFormatError(f"{caller}: path: expected {_EXPECTED_PATH}, got the file {str(path)!r}")
    if not path.is_dir():
        raise FileNotFoundError(f"{caller}: path: expected {_EXPECTED_PATH}, got {str(path)!r} (not found)")
    if (path / "dataset_dict.json").is_file() or all((path / n).is_file() for n in ("state.json", "dataset_info.json")):
        return "saved"
    if _is_hub_folder(path):
        return "hub_cache"
    for suffix, kind in _TABLE_SUFFIXES.items():
        if next(path.rglob(f"*{suffix}"), None) is not None:
            return kind
    if next(path.glob("*.json"), None) is not None:
        return "lisa"
    raise DatasetFormatError(f"{caller}: path: expected {_EXPECTED_PATH}, got the folder {str(path)!r} (none of these)")


def detect_source(path: str | Path) -> str:
    """Which loader reads ``path``: one of :data:`SOURCE_KINDS` (docs/data.md, "Sources").

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     (Path(folder) / "val.jsonl").write_text("{}")
    ...     detect_source(Path(folder) / "val.jsonl")
    2
    'manifest'

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: it exists but is none of the kinds (the message lists them).
    """
    return _kind(Path(path), "detect_source")


def _data_files(folder: Path, suffix: str) -> dict[str, list[str]]:
    """``suffix`` files under ``folder`` grouped by split, named as ``datasets`` names them for a hub repo
    (``train-00000-of-00001.parquet``, ``data/test/...``; everything else is ``train``)."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    files: dict[str, list[str]] = {}
    for name, patterns in get_data_patterns(str(folder)).items():
        try:
            found = DataFilesDict.from_patterns({name: patterns}, base_path=str(folder), allowed_extensions=[suffix])
        except FileNotFoundError:  # that split has files of other kinds only
            continue
        files[name] = list(found[name])
    return files


def load_hf_dataset(
    path: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    frame: int = 840,
    difficulty_table: str | Path | Mapping[str, Any] | None = None,
    revision: str | None = None,
    config: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[SegSample]:
    """Samples read with ``datasets.load_dataset`` from local files only (nothing is downloaded).

    Args:
        path: a hub cache folder ``datasets--Owner--Name`` or one of its snapshots (loaded as the hub would load
            that repository: its README's configs and split names apply), a ``.parquet`` / ``.arrow`` file
            (``load_dataset("parquet", data_files=...)``; one ``train`` split), or a folder of them (splits named
            from the file names as on the hub).
        split, limit, frame, difficulty_table: as :func:`load_saved_dataset`; the rows are read as there.
        revision: for a hub cache folder, a ref or commit (:func:`resolve_hub_cache`).
        config: the dataset configuration, where the repository's README declares several.
        cache_dir: where ``datasets`` writes its processed copy (default ``HF_DATASETS_CACHE``).

    Raises:
        DatasetFormatError: ``path`` is none of these, ``datasets`` cannot read it, or the rows lack the columns.
    """
    datasets = import_optional("datasets", extra="data", purpose="Loading a Hugging Face dataset")
    path = Path(path)
    kind = _kind(path, "load_hf_dataset")
    options: dict[str, Any] = {"cache_dir": None if cache_dir is None else str(cache_dir)}
    if kind == "hub_cache":
        base = resolve_hub_cache(path, revision)
        arguments: tuple[str, ...] = (str(base),)
        options["name"] = config
    elif kind in ("parquet", "arrow"):
        if config is not None:
            raise DatasetFormatError(
                f"load_hf_dataset: config: expected None for {kind} files (configurations "
                f"come from a hub repository's README), got {config!r}"
            )
        base = path.parent if path.is_file() else path
        arguments = (kind,)
        options["data_files"] = [str(path)] if path.is_file() else _data_files(path, f".{kind}")
    else:
        raise DatasetFormatError(
            f"load_hf_dataset: path: expected a hub cache folder or .parquet/.arrow files, "
            f"got {str(path)!r} (a {kind} source: use load_source)"
        )
    try:
        loaded = datasets.load_dataset(*arguments, **options)
    except (ValueError, OSError, datasets.exceptions.DatasetsError) as error:
        reason = " ".join(str(error).split())[:300]
        names = re.search(r"available configs: (\[[^\]]*\])", reason)
        if names is not None and config is None:
            raise DatasetFormatError(
                f"load_hf_dataset: config: expected one of the repository's configurations {names.group(1)}, got None"
            ) from None
        raise DatasetFormatError(
            f"load_hf_dataset: path: expected a dataset datasets can read, got {str(path)!r} "
            f"({type(error).__name__}: {reason})"
        ) from None
    return _table_samples(
        _pick_split(loaded, split, "load_hf_dataset"),
        where=f"load_hf_dataset: {str(path)!r}",
        base=base,
        limit=limit,
        frame=frame,
        table=_difficulty_lookup(difficulty_table),
    )


def _locate(path: str | Path, caller: str) -> Path:
    """``path``, or for a dataset id ``Owner/Name`` that is no path here, its folder in the local hub cache."""
    location = Path(path)
    if location.exists() or not _REPO_ID.match(str(path)):
        return location
    constants = import_optional("huggingface_hub.constants", extra="data", purpose="Finding the local hub cache")
    cached = Path(constants.HF_HUB_CACHE) / f"datasets--{str(path).replace('/', '--')}"
    if cached.is_dir():
        return cached
    raise FileNotFoundError(
        f"{caller}: path: expected {_EXPECTED_PATH}, or a dataset id in the local hub cache "
        f"{constants.HF_HUB_CACHE}, got {str(path)!r} (neither; nothing is downloaded)"
    )


def load_source(
    path: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    frame: int = 840,
    difficulty_table: str | Path | Mapping[str, Any] | None = None,
    all_queries: bool = False,
    revision: str | None = None,
    config: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[SegSample]:
    """Samples from any supported local source, its kind detected from the path (:func:`detect_source`).

    ``path`` may also be a dataset id ``Owner/Name`` already in the local hub cache (``HF_HUB_CACHE``, default
    ``HF_HOME/hub``). The keyword arguments go to the loader that applies: :func:`load_saved_dataset`,
    :func:`load_hf_dataset` or :func:`load_reasonseg` (``all_queries`` to LISA folders, ``revision``,
    ``config`` and ``cache_dir`` to the hub/parquet/arrow loader).

    Raises:
        FileNotFoundError: the path does not exist (and is not a cached dataset id).
        DatasetFormatError: the path is of no supported kind, or its contents do not have the expected layout.
    """
    location = _locate(path, "load_source")
    kind = _kind(location, "load_source")
    common: dict[str, Any] = {"split": split, "limit": limit, "frame": frame, "difficulty_table": difficulty_table}
    if kind == "saved":
        return load_saved_dataset(location, **common)
    if kind in ("lisa", "manifest"):
        return load_reasonseg(location, all_queries=all_queries, **common)
    return load_hf_dataset(location, revision=revision, config=config, cache_dir=cache_dir, **common)


def load_reasonseg(
    path: str | Path,
    *,
    limit: int | None = None,
    frame: int = 840,
    difficulty_table: str | Path | Mapping[str, Any] | None = None,
    all_queries: bool = False,
    split: str | None = None,
) -> list[SegSample]:
    """Samples from ReasonSeg in LISA's folder layout, or from a ReasonSeg-Diff manifest (JSON or JSONL).

    Folder (``path`` is a directory): every ``NAME.json`` next to an image ``NAME.jpg``/``.png``/``.jpeg``;
    the JSON holds ``text`` (a string or a list of queries), ``shapes`` (labelled polygons) and optionally a
    difficulty (``difficulty``, ``difficulty_score``, ``difficulty_score_model``). One sample per image with its
    first query, or one per query with ``all_queries``.

    Manifest (``path`` is a ``.json`` file holding a list, or an object with a ``samples``/``data`` list, or a
    ``.jsonl`` file with one record a line): each record has ``image`` (a path relative to the manifest), a query
    (``query``/``text``/``question``/``problem``), the target as ``shapes`` (LISA polygons), ``segmentation``
    (COCO RLE or polygons), ``polygon`` (one polygon ``[[x, y], ...]``) or ``mask`` (a mask image path, non-zero
    = target, or a COCO RLE), and optionally ``id``, ``ignore``, a difficulty, ``reasoning_short``/``reasoning``,
    ``reasoning_long``, ``split`` and ``tier`` (kept in ``meta``). docs/data.md has the full list and an example.

    Args:
        split: manifests only: keep the records whose ``split`` field equals it.

    Raises:
        FileNotFoundError: the path, an image or a mask file does not exist.
        DatasetFormatError: a record misses what is listed above (the message names the file and the key), or no
            record has the ``split`` asked for.
    """
    path = Path(path)
    table = _difficulty_lookup(difficulty_table)
    if path.is_dir():
        if split is not None:
            raise DatasetFormatError(
                f"load_reasonseg: split: expected None for a LISA folder (one folder per split), got {split!r}"
            )
        samples = _reasonseg_folder(path, frame, table, all_queries, limit)
    elif path.is_file():
        samples = _reasonseg_manifest(path, frame, table, limit, split)
    else:
        raise FileNotFoundError(
            f"load_reasonseg: path: expected a ReasonSeg folder or a JSON/JSONL manifest, got {str(path)!r}"
        )
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


def _read_jsonl(path: Path) -> list[Any]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DatasetFormatError(
                    f"{path.name}:{number}: expected one JSON record a line, got a parse error: {error}"
                ) from None
    return records


def _queries(value: Any, where: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(q, str) and q.strip() for q in value):
        return list(value)
    raise DatasetFormatError(f"{where}: expected a non-empty query string or list of strings, got {value!r:.80}")


def _sample_from_mask(
    sample_id: str,
    image: Image.Image,
    query: str,
    mask: BoolArray,
    ignore: BoolArray | None,
    frame: int,
    difficulty: float,
    record: Mapping[str, Any],
    meta: dict[str, Any],
    where: str,
) -> SegSample:
    if not mask.any():
        raise DatasetFormatError(f"{where}: expected a non-empty target mask, got no target pixels")
    bbox, points = frame_target(mask, frame)
    return SegSample(
        id=sample_id,
        image=image,
        query=query,
        bbox=bbox,
        points=points,
        frame=frame,  # type: ignore[arg-type]
        mask=mask,
        ignore=ignore if ignore is not None and ignore.any() else None,
        difficulty=difficulty,
        reasoning=str(_first(record, _SHORT_KEYS, "")),
        reasoning_long=str(_first(record, _LONG_KEYS, "")),
        meta=meta,
    )


def _reasonseg_folder(
    folder: Path, frame: int, table: Mapping[str, float | None], all_queries: bool, limit: int | None
) -> list[SegSample]:
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
            samples.append(
                _sample_from_mask(
                    f"{name}-{q}" if all_queries else name,
                    image,
                    query,
                    target,
                    ignore,
                    frame,
                    difficulty,
                    record,
                    {"source": "reasonseg"},
                    where,
                )
            )
            if limit is not None and len(samples) >= limit:
                return samples
    return samples


def _manifest_records(manifest: Path, split: str | None) -> list[Any]:
    if manifest.suffix.lower() == ".jsonl":
        data: Any = _read_jsonl(manifest)
    else:
        data = _read_json(manifest)
        if isinstance(data, Mapping):
            data = _first(data, ("samples", "data"))
    if not isinstance(data, list):
        raise DatasetFormatError(f"{manifest.name}: expected a list of records (or an object with 'samples'/'data')")
    if split is None:
        return data
    kept = [r for r in data if isinstance(r, Mapping) and r.get("split") is not None and str(r["split"]) == split]
    if not kept:
        found = sorted({str(r["split"]) for r in data if isinstance(r, Mapping) and r.get("split") is not None})
        raise DatasetFormatError(f"{manifest.name}: split: expected one of the records' splits {found}, got {split!r}")
    return kept


def _reasonseg_manifest(
    manifest: Path, frame: int, table: Mapping[str, float | None], limit: int | None, split: str | None
) -> list[SegSample]:
    records = _manifest_records(manifest, split)
    samples: list[SegSample] = []
    for i, record in enumerate(records[:limit] if limit is not None else records):
        where = f"{manifest.name}[{i}]"
        if not isinstance(record, Mapping) or "image" not in record:
            raise DatasetFormatError(f"{where}: expected an object with 'image', got {record!r:.100}")
        image = _open_image(record["image"], manifest.parent, f"{where}: image")
        samples.append(
            _record_sample(
                record,
                image,
                manifest.parent,
                frame,
                table,
                where=where,
                default_id=Path(str(record["image"])).stem,
                source="reasonseg_diff",
            )
        )
    return samples
