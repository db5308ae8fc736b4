"""The worked example's data sources beyond ``save_to_disk`` (examples/pixelthink/sources.py, docs/data.md).

Everything is real and local: pycocotools decodes the masks, ``datasets`` / ``pyarrow`` write and read the
parquet and arrow files, and the hub cache is the folder layout ``huggingface_hub`` writes (refs, snapshots with
links into blobs), built here; sockets are closed while it loads, so nothing can be downloaded. Expected masks are
written out by hand from COCO's conventions (run lengths column-major, starting with zeros; a polygon keeps the
pixels whose centre is inside), not computed with the code under test.
"""

from __future__ import annotations

import io
import json
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from doc_blocks import run_page  # noqa: E402
from pixelthink import sources  # noqa: E402

from adaptive_length_reward.errors import MissingExtraError  # noqa: E402

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ipc = pytest.importorskip("pyarrow.ipc")
pytest.importorskip("pycocotools")


def _expected(shape: tuple[int, int], *cells: tuple[slice | int, slice | int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for rows, cols in cells:
        mask[rows, cols] = True
    return mask


#: 4 x 5 pixels; runs down the columns: 5 zeros (column 0, then row 0 of column 1), 3 ones, 1 zero, 3 ones, 8 zeros.
BLOCK = _expected((4, 5), (slice(1, 4), slice(1, 3)))
#: 4 x 5; runs 10 zeros, 5 ones, 2 zeros, 3 ones (the fourth count is smaller than the second: a negative delta).
STEPS = _expected((4, 5), (slice(2, 4), 2), (slice(0, 3), 3), (slice(1, 4), 4))
#: 10 x 10; runs 45 zeros, 10 ones, 45 zeros (45 needs two characters in the compressed string).
SEAM = _expected((10, 10), (slice(5, 10), 4), (slice(0, 5), 5))

RLE_CASES = [
    # (size, compressed counts encoded by hand with maskApi.c's rleToString, uncompressed counts, expected)
    ((4, 5), "53107", [5, 3, 1, 3, 8], BLOCK),
    ((4, 5), ":52N", [10, 5, 2, 3], STEPS),
    ((10, 10), "]1:]1", [45, 10, 45], SEAM),
]


# ------------------------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "string", "counts", "expected"), RLE_CASES, ids=["block", "negative-delta", "seam"])
def test_coco_rle_decodes_to_the_hand_written_pixels(
    size: tuple[int, int], string: str, counts: list[int], expected: np.ndarray
) -> None:
    height, width = size
    for encoded in (string, string.encode("ascii"), counts):
        mask = sources.coco_mask({"size": [height, width], "counts": encoded}, height=height, width=width)
        assert mask.dtype == bool and np.array_equal(mask, expected), encoded


def test_coco_polygons_decode_to_the_hand_written_pixels() -> None:
    # a rectangle with corners (1, 1)-(4, 3) keeps columns 1..3 and rows 1..2; a second one (0, 4)-(2, 5): row 4
    polygons = [[1, 1, 4, 1, 4, 3, 1, 3], [0, 4, 2, 4, 2, 5, 0, 5]]
    expected = _expected((5, 6), (slice(1, 3), slice(1, 4)), (4, slice(0, 2)))
    assert np.array_equal(sources.coco_mask(polygons, height=5, width=6), expected)
    # a right triangle (0, 0), (4, 0), (0, 4): the pixel centres (x + .5, y + .5) with x + y + 1 < 4
    triangle = _expected((4, 4), (0, slice(0, 3)), (1, slice(0, 2)), (2, 0))
    assert np.array_equal(sources.coco_mask([[0, 0, 4, 0, 0, 4]], height=4, width=4), triangle)


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        (
            {"size": [4, 6], "counts": "53107"},
            r"segmentation.size: expected \[4, 5\] \(the image's \[height, width\]\), "
            r"got \[4, 6\]",
        ),
        ({"size": "4x5", "counts": "53107"}, r"segmentation.size: expected \[4, 5\] .*, got '4x5'"),
        (
            {"size": [4, 5], "counts": "5310"},
            r"segmentation.counts: expected non-negative run lengths summing to 20 "
            r"\(4 x 5 pixels\), got 4 runs summing to 12",
        ),
        ({"size": [4, 5], "counts": [5, 3, 1, 3, 9]}, "summing to 20 .* got 5 runs summing to 21"),
        ({"size": [4, 5], "counts": "5\x7f"}, r"expected a COCO RLE string, got .* \(malformed at character 1\)"),
        ({"size": [4, 5], "counts": [5.5, 14.5]}, "expected a COCO RLE string or a list of run lengths, got"),
        ([[1, 1, 4, 1, 4]], r"expected COCO polygons \[\[x1, y1, x2, y2, x3, y3, ...\], ...\]"),
        ([[1, 1, 4, 1]], "each an even number >= 6"),
        ([1, 1, 4, 1, 4, 3], "expected COCO polygons"),
        ("53107", r"expected a COCO RLE \{'size': \[h, w\], 'counts': ...\} or polygons"),
    ],
)
def test_malformed_coco_masks_are_one_clear_line(segmentation: Any, message: str) -> None:
    with pytest.raises(sources.DatasetFormatError, match=message) as caught:
        sources.coco_mask(segmentation, height=4, width=5)
    assert "\n" not in str(caught.value)


def test_lisa_polygons_and_coco_polygons_keep_their_own_boundary_convention(tmp_path: Path) -> None:
    Image.new("RGB", (6, 5)).save(tmp_path / "img.png")
    corners = [[1, 1], [4, 1], [4, 3], [1, 3]]
    records = [
        {"id": "lisa", "image": "img.png", "query": "q", "polygon": corners},
        {"id": "coco", "image": "img.png", "query": "q", "segmentation": [[v for xy in corners for v in xy]]},
    ]
    (tmp_path / "m.json").write_text(json.dumps(records))
    lisa, coco = sources.load_source(tmp_path / "m.json", frame=60)
    assert np.array_equal(lisa.mask, _expected((5, 6), (slice(1, 4), slice(1, 5))))  # cv2/PIL: boundary included
    assert np.array_equal(coco.mask, _expected((5, 6), (slice(1, 3), slice(1, 4))))  # COCO: pixel centres inside


def test_missing_pycocotools_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)  # `import pycocotools.mask` now raises ImportError
    with pytest.raises(
        MissingExtraError,
        match=r"COCO RLE / polygon masks needs the optional package 'pycocotools'.*"
        r"pip install 'adaptive-length-reward\[example\]'",
    ):
        sources.coco_mask({"size": [4, 5], "counts": "53107"}, height=4, width=5)


# ------------------------------------------------------------------------------------------------------------
# The manifest (docs/data.md)
# ------------------------------------------------------------------------------------------------------------


def test_the_documented_manifest_example_runs(tmp_path: Path) -> None:
    counts = run_page(ROOT / "docs" / "data.md", tmp_path, {"PYTHONPATH": str(EXAMPLES)})
    assert counts["ran"] >= 2 and counts["output"] >= 1 and counts["file"] >= 1
    assert (tmp_path / "reasonseg_diff.jsonl").is_file()


def _png(path: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> None:
    image = Image.new("L" if box else "RGB", size, 0)
    if box:
        ImageDraw.Draw(image).rectangle(box, fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_jsonl_manifest_with_every_field(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png", (5, 4))
    _png(tmp_path / "img" / "b.png", (8, 6))
    _png(tmp_path / "img" / "b_mask.png", (8, 6), box=(2, 1, 5, 3))
    records = [
        {
            "id": "a",
            "image": "img/a.png",
            "question": "the block",
            "mask": {"size": [4, 5], "counts": "53107"},
            "ignore": {"size": [4, 5], "counts": [9, 1, 10]},
            "difficulty": 2.5,
            "tier": "Easy",
            "split": "val",
            "reasoning_short": "It is small.",
            "reasoning_long": "Looking at the image, the block is small.",
        },
        {
            "id": "b",
            "image": "img/b.png",
            "query": ["first", "second"],
            "mask": "img/b_mask.png",
            "difficulty_score_model": 7,
            "split": "test",
        },
        {"image": "img/a.png", "text": "no id", "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]], "split": "val"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    a, b, c = sources.load_source(manifest, frame=100)
    assert (a.id, a.query, a.difficulty, a.meta) == (
        "a",
        "the block",
        2.5,
        {"source": "reasonseg_diff", "split": "val", "tier": "easy"},
    )
    assert a.reasoning == "It is small." and a.reasoning_long.startswith("Looking")
    # the ignore RLE marks row 1 of column 2 (9 zeros: columns 0 and 1, then row 0 of column 2; then a one)
    assert a.ignore is not None and np.argwhere(a.ignore).tolist() == [[1, 2]]
    assert np.array_equal(a.mask, BLOCK & ~a.ignore)
    assert b.query == "first" and b.difficulty == 7.0 and b.reasoning == "" and "tier" not in b.meta
    assert np.array_equal(b.mask, _expected((6, 8), (slice(1, 4), slice(2, 6))))
    assert c.id == "a" and c.query == "no id" and int(c.mask.sum()) == 4  # id defaults to the image's stem
    assert [s.id for s in sources.load_source(manifest, split="test")] == ["b"]
    assert len(sources.load_reasonseg(manifest, split="val", limit=1)) == 1
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"m.jsonl: split: expected one of the records' splits "
        r"\['test', 'val'\], got 'train'",
    ):
        sources.load_source(manifest, split="train")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"tier": "extreme"}, r"m.jsonl\[0\]: tier: expected one of \['easy', 'medium', 'hard'\], got 'extreme'"),
        ({"mask": {"size": [5, 5], "counts": "53107"}}, r"m.jsonl\[0\]: mask.size: expected \[4, 5\]"),
        ({"mask": [[1, 0], [0, 1]]}, r"m.jsonl\[0\]: mask: expected shape \(4, 5\) \(the image's\), got \(2, 2\)"),
        ({"mask": [[0, 0, 2, 0, 2, 2, 0]]}, r"mask: expected shape \(4, 5\) \(the image's\), got \(1, 7\)"),
        (
            {"mask": [[0, 0, 2], [0, 2]]},
            r"mask: expected a mask image, a COCO RLE or a 2-D array \(COCO polygons go "
            r"under 'segmentation'\)",
        ),
        ({"mask": {"size": [4, 5], "counts": [20]}}, r"m.jsonl\[0\]: expected a non-empty target mask"),
        ({"mask": "missing.png"}, r"m.jsonl\[0\]: mask: expected a file, got .*missing.png' \(not found\)"),
    ],
)
def test_bad_manifest_records_are_one_clear_line(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    _png(tmp_path / "a.png", (5, 4))
    base = {"image": "a.png", "query": "q", "mask": {"size": [4, 5], "counts": "53107"}}
    (tmp_path / "m.jsonl").write_text(json.dumps({**base, **record}))
    with pytest.raises((sources.DatasetFormatError, FileNotFoundError), match=message) as caught:
        sources.load_source(tmp_path / "m.jsonl")
    assert "\n" not in str(caught.value)
    (tmp_path / "bad.jsonl").write_text(json.dumps(base) + "\n{not json\n")
    with pytest.raises(sources.DatasetFormatError, match=r"bad.jsonl:2: expected one JSON record a line"):
        sources.load_source(tmp_path / "bad.jsonl")


# ------------------------------------------------------------------------------------------------------------
# Parquet, arrow and the hub cache, read with datasets.load_dataset
# ------------------------------------------------------------------------------------------------------------

RLE = {"size": datasets.Sequence(datasets.Value("int32")), "counts": datasets.Value("string")}
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "mask": RLE,
        "image_id": datasets.Value("string"),
        "ann_id": datasets.Value("string"),
        "difficulty": datasets.Value("float32"),
    }
)


def _rows(names: list[str], difficulty: float = 3.0) -> dict[str, list[Any]]:
    return {
        "image": [Image.new("RGB", (5, 4), (9, 9, 9)) for _ in names],
        "text": [f"find {n}" for n in names],
        "mask": [{"size": [4, 5], "counts": "53107"} for _ in names],
        "image_id": names,
        "ann_id": ["0" for _ in names],
        "difficulty": [difficulty for _ in names],
    }


def _parquet(path: Path, names: list[str], difficulty: float = 3.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(_rows(names, difficulty), features=FEATURES).to_parquet(str(path))
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket connection fails while the test runs, with datasets' and huggingface_hub's offline switches
    off (conftest turns them on for the suite): the loaders must not need them to stay local."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_a_parquet_file_loads(tmp_path: Path, no_network: None) -> None:
    path = _parquet(tmp_path / "reasonseg_val.parquet", ["x", "y"], difficulty=6.0)
    assert sources.detect_source(path) == "parquet"
    samples = sources.load_source(path, frame=20, cache_dir=tmp_path / "cache")
    assert [s.id for s in samples] == ["x-0", "y-0"] and samples[0].query == "find x"
    assert all(np.array_equal(s.mask, BLOCK) and s.difficulty == 6.0 for s in samples)
    assert samples[0].bbox == (4, 5, 11, 19) and samples[0].meta == {"source": "reasonseg_hf"}
    table = {"x": 9.0}
    assert sources.load_source(path, difficulty_table=table, limit=1, cache_dir=tmp_path / "cache")[0].difficulty == 9


def test_a_parquet_file_written_without_datasets(tmp_path: Path, no_network: None) -> None:
    """pyarrow alone: the image as datasets' undecoded {bytes, path} struct, COCO polygons, no feature metadata."""
    png = io.BytesIO()
    Image.new("RGB", (6, 5)).save(png, format="PNG")
    table = pa.table(
        {
            "id": ["p"],
            "image": [{"bytes": png.getvalue(), "path": None}],
            "query": ["the rectangle"],
            "segmentation": [[[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]]],
            "reasoning_long": ["long"],
        }
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    (sample,) = sources.load_source(tmp_path / "plain.parquet", cache_dir=tmp_path / "cache")
    assert sample.id == "p" and sample.reasoning_long == "long" and sample.image.size == (6, 5)
    assert np.array_equal(sample.mask, _expected((5, 6), (slice(1, 3), slice(1, 4))))


def test_a_folder_of_parquet_files_loads_with_split_names_from_file_names(tmp_path: Path, no_network: None) -> None:
    folder = tmp_path / "reasonseg"
    _parquet(folder / "data" / "train-00000-of-00002.parquet", ["a", "b"])
    _parquet(folder / "data" / "train-00001-of-00002.parquet", ["c"])
    _parquet(folder / "data" / "test-00000-of-00001.parquet", ["t"])
    (folder / "notes.json").write_text("{}")  # other files are not data
    assert sources.detect_source(folder) == "parquet"
    train = sources.load_source(folder, cache_dir=tmp_path / "cache")  # several splits: train by default
    assert sorted(s.id for s in train) == ["a-0", "b-0", "c-0"]
    assert [s.id for s in sources.load_source(folder, split="test", cache_dir=tmp_path / "cache")] == ["t-0"]
    with pytest.raises(sources.DatasetFormatError, match=r"config: expected None for parquet files"):
        sources.load_source(folder, config="default")
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"load_hf_dataset: split: expected one of \[.*'test'.*\], "
        r"got 'val'",
    ):
        sources.load_source(folder, split="val", cache_dir=tmp_path / "cache")


def test_arrow_files_load(tmp_path: Path, no_network: None) -> None:
    dataset = datasets.Dataset.from_dict(_rows(["s", "t"]), features=FEATURES)
    with ipc.new_file(tmp_path / "file_format.arrow", dataset.data.table.schema) as writer:  # IPC file format
        writer.write_table(dataset.data.table)
    assert [s.id for s in sources.load_source(tmp_path / "file_format.arrow", cache_dir=tmp_path / "c")] == [
        "s-0",
        "t-0",
    ]
    dataset.save_to_disk(str(tmp_path / "saved"))  # datasets' own stream-format files, without state.json: arrow
    folder = tmp_path / "arrows"
    folder.mkdir()
    for i, shard in enumerate(sorted((tmp_path / "saved").glob("*.arrow"))):
        (folder / f"reasonseg-test-{i}.arrow").write_bytes(shard.read_bytes())
    assert sources.detect_source(folder) == "arrow" and sources.detect_source(tmp_path / "saved") == "saved"
    samples = sources.load_source(folder, split="test", cache_dir=tmp_path / "c")
    assert [s.id for s in samples] == ["s-0", "t-0"] and np.array_equal(samples[1].mask, BLOCK)


def _hub_cache(hub: Path, repo: str, commits: dict[str, list[str]], main: str) -> Path:
    """``huggingface_hub``'s cache layout: blobs by hash, snapshots/<commit>/ linking to them, refs/main."""
    folder = hub / f"datasets--{repo.replace('/', '--')}"
    readme = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: validation\n"
        "    path: rows/reasonseg_rows.parquet\n---\n# a cached dataset\n"
    )
    for commit, names in commits.items():
        blob = _parquet(folder / "blobs" / f"{commit}-rows", names)
        snapshot = folder / "snapshots" / commit
        (snapshot / "rows").mkdir(parents=True)
        (snapshot / "rows" / "reasonseg_rows.parquet").symlink_to(blob)
        (folder / "blobs" / f"{commit}-readme").write_text(readme)
        (snapshot / "README.md").symlink_to(folder / "blobs" / f"{commit}-readme")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(main)
    return folder


def test_a_hub_cache_folder_loads_offline(tmp_path: Path, no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hf_home" / "hub"
    folder = _hub_cache(hub, "Owner/ReasonSeg_tiny", {"c0ffee": ["new"], "0ld": ["old1", "old2"]}, main="c0ffee")
    cache = {"cache_dir": tmp_path / "cache"}
    assert sources.detect_source(folder) == "hub_cache" == sources.detect_source(folder / "snapshots" / "0ld")
    assert sources.resolve_hub_cache(folder) == folder / "snapshots" / "c0ffee"
    (sample,) = sources.load_source(folder, split="validation", **cache)  # the README's configs name the split
    assert sample.id == "new-0" and np.array_equal(sample.mask, BLOCK)
    assert len(sources.load_source(folder, revision="0ld", **cache)) == 2
    assert len(sources.load_source(folder / "snapshots" / "0ld", **cache)) == 2
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert [s.id for s in sources.load_source("Owner/ReasonSeg_tiny", **cache)] == ["new-0"]  # a cached id
    with pytest.raises(
        FileNotFoundError,
        match=r"load_source: path: expected .* or a dataset id in the local hub "
        r"cache .*, got 'Owner/Absent' \(neither; nothing is downloaded\)",
    ):
        sources.load_source("Owner/Absent")
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"revision: expected a ref under refs/ or a cached "
        r"snapshot \['0ld', 'c0ffee'\], got 'v2'",
    ):
        sources.load_source(folder, revision="v2")
    (folder / "refs" / "main").write_text("deadbeef")
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"refs/main names 'deadbeef', expected one of the cached "
        r"snapshots",
    ):
        sources.load_source(folder)


def test_a_hub_repository_with_several_configurations(tmp_path: Path, no_network: None) -> None:
    snapshot = tmp_path / "datasets--Owner--Two" / "snapshots" / "abc"
    _parquet(snapshot / "one" / "rows.parquet", ["a"])
    _parquet(snapshot / "two" / "rows.parquet", ["b", "c"])
    (snapshot / "README.md").write_text(
        "---\nconfigs:\n- config_name: one\n  data_files: one/*.parquet\n"
        "- config_name: two\n  data_files: two/*.parquet\n---\n"
    )
    folder, cache = snapshot.parents[1], tmp_path / "cache"
    assert [s.id for s in sources.load_source(folder, config="two", cache_dir=cache)] == ["b-0", "c-0"]
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"^load_hf_dataset: config: expected one of the "
        r"repository's configurations \['one', 'two'\], got None$",
    ):
        sources.load_source(folder, cache_dir=cache)


# ------------------------------------------------------------------------------------------------------------
# Detection and its errors
# ------------------------------------------------------------------------------------------------------------


def test_every_kind_is_detected_and_unknown_paths_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "lisa").mkdir()
    (tmp_path / "lisa" / "x.json").write_text("{}")
    (tmp_path / "m.json").write_text("[]")
    (tmp_path / "rows.csv").write_text("a,b\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    assert sources.detect_source(tmp_path / "lisa") == "lisa"
    assert sources.detect_source(tmp_path / "m.json") == "manifest"
    assert set(sources.SOURCE_KINDS) == {"saved", "hub_cache", "parquet", "arrow", "lisa", "manifest"}
    cases: list[tuple[Path, type[Exception], str]] = [
        (
            tmp_path / "rows.csv",
            sources.DatasetFormatError,
            r"load_source: path: expected a save_to_disk folder, .*"
            r"a \.json/\.jsonl manifest, got the file '.*rows.csv'",
        ),
        (tmp_path / "empty", sources.DatasetFormatError, r"got the folder '.*empty' \(none of these\)"),
        (
            tmp_path / "nowhere" / "x",
            FileNotFoundError,
            r"load_source: path: expected .*, got '.*nowhere/x' "
            r"\(not found\)",
        ),
        (
            tmp_path / "broken.parquet",
            sources.DatasetFormatError,
            r"load_hf_dataset: path: expected a dataset "
            r"datasets can read, got '.*broken.parquet' \(",
        ),
    ]
    for path, kind, message in cases:
        with pytest.raises(kind, match=message) as caught:
            sources.load_source(path, cache_dir=tmp_path / "cache")
        assert "\n" not in str(caught.value), path
    with pytest.raises(
        sources.DatasetFormatError,
        match=r"load_hf_dataset: path: .*got '.*m.json' \(a manifest "
        r"source: use load_source\)",
    ):
        sources.load_hf_dataset(tmp_path / "m.json")
    with pytest.raises(sources.DatasetFormatError, match=r"load_reasonseg: split: expected None for a LISA folder"):
        sources.load_source(tmp_path / "lisa", split="val")
    (tmp_path / "cols").mkdir()
    pq.write_table(pa.table({"a": [1]}), tmp_path / "cols" / "x.parquet")
    with pytest.raises(sources.DatasetFormatError, match=r"expected RefCOCOg-9k columns .* got \['a'\]"):
        sources.load_source(tmp_path / "cols" / "x.parquet", cache_dir=tmp_path / "cache")
