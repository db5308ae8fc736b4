"""Reading and writing the datasets the ``alr-difficulty`` CLI annotates: JSONL, Parquet, or a Hugging Face
dataset saved with ``save_to_disk``. Parquet needs ``pyarrow`` and saved datasets ``datasets`` (extra ``data``),
imported only when such a file is opened. Writes are atomic, so the output may be the input.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import import_optional

__all__ = ["DatasetError", "DatasetFile", "detect_format", "open_dataset"]

Format = Literal["jsonl", "parquet", "hf"]

_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class DatasetError(ValueError):
    """A dataset file cannot be used as asked: unknown format, malformed line, missing column, wrong length."""


def detect_format(path: str | Path) -> Format:
    """``"hf"`` for a ``save_to_disk`` directory, else by suffix: ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``.

    Raises:
        DatasetError: anything else.
    """
    p = Path(path)
    if p.is_dir():
        if any((p / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return "hf"
        raise DatasetError(
            f"dataset: expected a directory written by datasets' save_to_disk, got {str(p)!r} "
            "(no dataset_info.json / state.json / dataset_dict.json)"
        )
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"dataset: expected a .jsonl, .parquet file or a saved Hugging Face dataset directory, got {str(p)!r}"
        )
    return fmt


class DatasetFile:
    """An opened dataset: its rows (or the needed columns of them) and an atomic [`write`][] with new columns.

    Attributes:
        path: where it was read from.
        format: ``"jsonl"``, ``"parquet"`` or ``"hf"``.
        base_dir: the directory that relative image paths in it are relative to.
    """

    def __init__(self, path: Path, fmt: Format, data: Any) -> None:
        self.path, self.format, self._data = path, fmt, data
        self.base_dir = str(path if fmt == "hf" else path.parent)

    def __len__(self) -> int:
        return len(self._data) if self.format == "jsonl" else int(self._data.num_rows)

    @property
    def column_names(self) -> list[str]:
        """The columns present (for JSONL: the keys of any row)."""
        if self.format == "jsonl":
            return list(dict.fromkeys(key for row in self._data for key in row))
        return list(self._data.column_names)

    def require(self, columns: Sequence[str]) -> None:
        """Raise [`DatasetError`][] naming the first of ``columns`` the dataset lacks, and the ones it has."""
        present = set(self.column_names)
        absent = [name for name in columns if name not in present]
        if absent:
            raise DatasetError(
                f"dataset {str(self.path)!r}: expected a column {absent[0]!r}, got columns {sorted(present)}"
            )

    def rows(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Each row as ``{column: value}`` for the named columns only (a row lacking one gets ``None``)."""
        self.require(columns)
        if self.format == "jsonl":
            for row in self._data:
                yield {name: row.get(name) for name in columns}
        elif self.format == "parquet":
            for batch in self._data.select(list(columns)).to_batches():
                yield from batch.to_pylist()
        else:
            yield from self._data.select_columns(list(columns))

    def column(self, name: str) -> list[Any]:
        """One column's values."""
        return [row[name] for row in self.rows([name])]

    def write(self, output: str | Path, new_columns: Mapping[str, Sequence[Any]]) -> None:
        """Write the dataset with ``new_columns`` added (replacing same-named ones) to ``output``, atomically.

        NaN values become nulls. The output has the input's format.

        Raises:
            DatasetError: a column of the wrong length, or an output path whose suffix names another format.
        """
        out = Path(output)
        if self.format != "hf" and out.suffix.lower() in _SUFFIXES and _SUFFIXES[out.suffix.lower()] != self.format:
            raise DatasetError(f"output: expected a {self.format} path like the input, got {str(out)!r}")
        columns = {}
        for name, values in new_columns.items():
            values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
            if len(values) != len(self):
                raise DatasetError(f"column {name!r}: expected {len(self)} values (one per row), got {len(values)}")
            columns[name] = values
        if self.format == "jsonl":
            with _replacing(out) as temp, temp.open("w", encoding="utf-8") as stream:
                for i, row in enumerate(self._data):
                    merged = {**row, **{name: values[i] for name, values in columns.items()}}
                    stream.write(json.dumps(merged, ensure_ascii=False) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
        elif self.format == "parquet":
            pa = import_optional("pyarrow", extra="data", purpose="Writing Parquet")
            pq = import_optional("pyarrow.parquet", extra="data", purpose="Writing Parquet")
            table = self._data.drop_columns([name for name in columns if name in self._data.column_names])
            for name, values in columns.items():
                table = table.append_column(name, pa.array(values))
            with _replacing(out) as temp:
                pq.write_table(table, temp)
        else:
            dataset = self._data.remove_columns([name for name in columns if name in self._data.column_names])
            for name, values in columns.items():
                dataset = dataset.add_column(name, values)
            with _replacing(out, directory=True) as temp:
                dataset.save_to_disk(str(temp))


@contextlib.contextmanager
def _replacing(out: Path, *, directory: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``out`` to write; it replaces ``out`` when the block ends, and is removed when the
    block fails (so an interrupted write never leaves a half-written output)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(handle)
        temp = Path(name)
    try:
        yield temp
        if directory and out.exists():  # a directory cannot be replaced in one step: move the old one aside
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old.rmdir()
            os.replace(out, old)
            os.replace(temp, out)
            shutil.rmtree(old)
        else:
            os.replace(temp, out)
    except BaseException:
        if directory:
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        raise


def open_dataset(path: str | Path) -> DatasetFile:
    """Open a JSONL file, a Parquet file, or a directory written by ``Dataset.save_to_disk``.

    Raises:
        FileNotFoundError: no such path. DatasetError: an unknown format or a malformed JSONL line.
        ~adaptive_length_reward.errors.MissingExtraError: pyarrow / datasets missing for those formats.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset: expected an existing file or directory, got {str(p)!r}")
    fmt = detect_format(p)
    if fmt == "jsonl":
        rows = []
        with p.open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(
                        f"dataset {str(p)!r}: line {number}: expected a JSON object, got invalid JSON ({error})"
                    ) from None
                if not isinstance(row, dict):
                    raise DatasetError(
                        f"dataset {str(p)!r}: line {number}: expected a JSON object, got {type(row).__name__}"
                    )
                rows.append(row)
        return DatasetFile(p, fmt, rows)
    if fmt == "parquet":
        pq = import_optional("pyarrow.parquet", extra="data", purpose="Reading Parquet")
        return DatasetFile(p, fmt, pq.read_table(p))
    datasets = import_optional("datasets", extra="data", purpose="Reading a saved Hugging Face dataset")
    data = datasets.load_from_disk(str(p))
    if isinstance(data, datasets.DatasetDict):
        raise DatasetError(
            f"dataset {str(p)!r}: expected one saved Dataset, got a DatasetDict with splits "
            f"{sorted(data)}; save the split to annotate on its own (ds['train'].save_to_disk(...))"
        )
    return DatasetFile(p, fmt, data)
