"""Precomputed difficulty: from a dataset column, or from a lookup table in the official PixelThink shape.

The official table ``refcoco_train_labeled_merged.json`` is a JSON list of records, each with an ``image_id`` and
a ``difficulty_score_model`` (the judge's 1..10 score); the training loader matches a dataset row's ``id``
against ``image_id`` and, for a row not in the table, falls back to 3.0 with a printed warning (official
``verl/utils/rl_dataset.py``; ``training_scripts/qwen3vl/convert_refcocog_to_verl.py`` keeps only scores in
``[1, 10]`` and prints how many rows fell back). Here the fallback is an explicit policy and is counted:

    >>> scorer = LookupDifficulty({"a": 2.0, "b": 7.0}, missing="medium")
    >>> scorer(RewardBatch.from_completions(["x", "y", "z"], id=["a", "b", "c"])).tolist()
    [2.0, 7.0, 4.25]
    >>> scorer.fallback_count
    1
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..config import param
from ..tiers import SCALE_MAX, SCALE_MIN
from .judge.reply import ASPECTS
from .scale import unit_to_scale
from .scorer import TieredScorer, numeric_column

__all__ = ["ColumnDifficulty", "LookupDifficulty", "load_difficulty_table"]

FloatArray = npt.NDArray[np.float64]

#: Field names of the official table (``refcoco_train_labeled_merged.json``).
OFFICIAL_ID_FIELD = "image_id"
OFFICIAL_SCORE_FIELD = "difficulty_score_model"

OnDuplicate = Literal["error", "first", "last"]
OnInvalid = Literal["error", "missing"]


class ColumnDifficulty(TieredScorer, kind="column_difficulty"):
    """Difficulty read from a dataset column (TRL passes every dataset column to rewards).

    A value ``v`` in ``source_range = (lo, hi)`` maps linearly: ``D = 1 + 9 x`` with ``x = (v - lo) / (hi - lo)``,
    or ``1 -`` that with ``invert=True``. The default range is the scale itself (1..10 passes through unchanged).
    """

    column: str = param(default="difficulty_score", kw_only=False, min_length=1, doc="the column holding the scores")
    source_range: tuple[float, float] = param(
        default=(SCALE_MIN, SCALE_MAX), doc="the range the column's values live in; a value outside it raises"
    )
    invert: bool = param(default=False, doc="whether larger values mean easier")

    @staticmethod
    def _check(config: Any) -> None:
        low, high = config.source_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"source_range: expected (low, high) with finite low < high, got {config.source_range}")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.column})

    def _score(self, batch: RewardBatch) -> FloatArray:
        raw = numeric_column(
            batch.column(self.column, by="ColumnDifficulty"), owner="ColumnDifficulty", column=self.column
        )
        low, high = self.source_range
        outside = ~np.isnan(raw) & ((raw < low) | (raw > high))
        if outside.any():
            index = np.flatnonzero(outside)[:5]
            raise ValueError(
                f"ColumnDifficulty: column {self.column!r}: expected values in source_range [{low:g}, {high:g}], "
                f"got {raw[index].tolist()} for samples {index.tolist()}"
            )
        unit = (raw - low) / (high - low)
        return self._resolve(unit_to_scale(1.0 - unit if self.invert else unit), self.missing)


def _score_value(value: Any, *, where: str) -> float | None:
    """A table entry's score: a number in [1, 10], ``None`` (no score), or a mapping of aspect scores (mean)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        aspects = [value.get(name) for name in ASPECTS]
        if any(a is None for a in aspects):
            raise ValueError(f"{where}: expected aspect scores with keys {list(ASPECTS)}, got {dict(value)!r:.120}")
        return float(np.mean([_score_value(a, where=where) for a in aspects]))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not SCALE_MIN <= float(value) <= SCALE_MAX:  # also rejects NaN
        raise ValueError(f"{where}: expected a number in [1, 10] or null, got {value!r:.80}")
    return float(value)


def _records(source: Any, id_field: str, score_field: str) -> tuple[str, list[tuple[Any, Any]]]:
    """``(file label for messages, [(id, raw score)])`` from a table file or in-memory table."""
    where = ""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"load_difficulty_table: source: expected a JSON or JSONL file, got {str(path)!r} (not found)"
            )
        where = f"{path.name}: "
        text = path.read_text(encoding="utf-8")
        jsonl = path.suffix == ".jsonl"
        source = [json.loads(line) for line in text.splitlines() if line.strip()] if jsonl else json.loads(text)
    if isinstance(source, Mapping):
        return where, list(source.items())
    if not isinstance(source, Iterable) or isinstance(source, (str, bytes)):
        raise ValueError(
            f"load_difficulty_table: {where}expected a list of records or an object of id -> score, "
            f"got {type(source).__name__}"
        )
    records = []
    for i, record in enumerate(source):
        if not isinstance(record, Mapping) or id_field not in record:
            raise ValueError(
                f"load_difficulty_table: {where}record {i}: expected an object with {id_field!r} and "
                f"{score_field!r}, got {record!r:.120}"
            )
        records.append((record[id_field], record.get(score_field)))
    return where, records


def load_difficulty_table(
    source: str | Path | Iterable[Mapping[str, Any]] | Mapping[Any, Any],
    *,
    id_field: str = OFFICIAL_ID_FIELD,
    score_field: str = OFFICIAL_SCORE_FIELD,
    on_duplicate: OnDuplicate = "error",
    on_invalid: OnInvalid = "error",
) -> dict[str, float | None]:
    """Read a difficulty lookup table into ``{str(id): score or None}`` (keys by their string form).

    ``source`` is a ``.json``/``.jsonl`` file or the same as Python objects: the official list of records
    (``id_field``, ``score_field``; other fields ignored) or a plain ``{id: score}``. A score is a number in
    ``[1, 10]``, ``None`` (no score), or the judge's aspects ``{"scene", "seg", "language"}`` (their mean).
    ``on_duplicate`` and ``on_invalid`` are [`LookupDifficulty`][]'s parameters. See docs/difficulty.md.

    Raises:
        ValueError: a malformed table, naming the record and what was expected.
    """
    where, records = _records(source, id_field, score_field)
    table: dict[str, float | None] = {}
    for key, raw in records:
        name = str(key)
        try:
            score = _score_value(raw, where=f"load_difficulty_table: {where}{id_field}={key!r}: {score_field}")
        except ValueError:
            if on_invalid == "error":
                raise
            score = None
        if name in table and table[name] != score and on_duplicate != "last":
            if on_duplicate == "error":
                raise ValueError(
                    f"load_difficulty_table: {where}{id_field}={key!r} is listed twice with different scores "
                    f"({table[name]} and {score}); pass on_duplicate='first' or 'last' to choose"
                )
            continue
        table[name] = score
    return table


class LookupDifficulty(TieredScorer, kind="lookup_difficulty"):
    """Difficulty looked up by sample id in a table (the official ``image_id`` -> ``difficulty_score_model``).

    An id absent from the table (or with a ``null`` score) takes the ``missing`` policy (the official loader
    uses 3.0); every fallback is counted in ``stats``.
    """

    table: str | Path | Mapping[str, float | None] = param(
        kw_only=False, doc="a table file (see load_difficulty_table) or an in-memory {id: score}"
    )
    key_column: str = param(default="id", min_length=1, doc="the column holding each sample's id (official: id)")
    id_field: str = param(default=OFFICIAL_ID_FIELD, min_length=1, doc="the table records' id field")
    score_field: str = param(default=OFFICIAL_SCORE_FIELD, min_length=1, doc="the table records' score field")
    on_duplicate: OnDuplicate = param(
        default="error", doc="an id listed twice with different scores: error, or keep the first or the last"
    )
    on_invalid: OnInvalid = param(default="error", doc="a score that is not a number in [1, 10]: error, or missing")

    def __post_init__(self) -> None:
        self._table = load_difficulty_table(
            self.table,
            id_field=self.id_field,
            score_field=self.score_field,
            on_duplicate=self.on_duplicate,
            on_invalid=self.on_invalid,
        )

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.key_column})

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, keys: Sequence[Any]) -> FloatArray:
        """Scores for ``keys`` without the missing policy: NaN where the table has no score."""
        scores = (None if key is None else self._table.get(str(key)) for key in keys)
        return np.array([np.nan if score is None else score for score in scores], dtype=np.float64)

    def _score(self, batch: RewardBatch) -> FloatArray:
        keys = batch.column(self.key_column, by="LookupDifficulty")
        return self._resolve(self.lookup(keys), self.missing, labels=list(keys))
