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
from pydantic import Field, field_validator, model_validator

from ..batch import RewardBatch
from ..config import ComponentConfig, register, validated
from .scale import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TIER_NAMES,
    SCALE_MAX,
    SCALE_MIN,
    MissingPolicy,
    check_missing_policy,
    check_tiers,
    resolve_missing,
)
from .scorer import DifficultyScorer, numeric_column

__all__ = ["ColumnDifficulty", "LookupDifficulty", "load_difficulty_table"]

FloatArray = npt.NDArray[np.float64]

#: Field names of the official table (``refcoco_train_labeled_merged.json``).
OFFICIAL_ID_FIELD = "image_id"
OFFICIAL_SCORE_FIELD = "difficulty_score_model"


class _TieredMissing(ComponentConfig):
    """Shared fields: the missing-value policy and the tier layout that gives tier names a value."""

    missing: float | str = "error"
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    tier_names: tuple[str, ...] = DEFAULT_TIER_NAMES

    @model_validator(mode="after")
    def _check_missing(self) -> _TieredMissing:
        try:
            check_tiers(self.thresholds, self.tier_names, owner="config")
        except ValueError as error:
            raise ValueError(str(error).removeprefix("config: ")) from None
        check_missing_policy(self.missing, owner="config", thresholds=self.thresholds, names=self.tier_names)
        return self


# ------------------------------------------------------------------------------------------------------------


class ColumnDifficultyConfig(_TieredMissing):
    kind: Literal["column_difficulty"] = "column_difficulty"
    column: str = Field("difficulty_score", min_length=1)
    source_range: tuple[float, float] = (SCALE_MIN, SCALE_MAX)
    invert: bool = False

    @field_validator("source_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"expected (low, high) with finite low < high, got {value}")
        return value


@register("column_difficulty", ColumnDifficultyConfig)
class ColumnDifficulty(DifficultyScorer):
    """Difficulty read from a dataset column (TRL passes every dataset column to rewards).

    A value ``v`` in ``source_range = (lo, hi)`` maps linearly onto the scale:
    ``D = 1 + 9 x`` with ``x = (v - lo) / (hi - lo)``, or ``x = 1 - (v - lo) / (hi - lo)`` with ``invert=True``
    (e.g. an offline pass rate in ``[0, 1]``: ``source_range=(0, 1), invert=True``). The default range is the
    scale itself, so 1..10 scores pass through unchanged.

    Args:
        column: the batch column (dataset column) holding the scores.
        source_range: the range the column's values live in; a value outside it raises.
        invert: whether larger values mean easier.
        missing: what a ``None``/NaN entry gets: ``"error"`` (default), ``"nan"``, a tier name, or a value.
        thresholds, tier_names: the tier layout that gives tier names in ``missing`` their value.
    """

    def __init__(
        self,
        column: str = "difficulty_score",
        *,
        source_range: tuple[float, float] = (SCALE_MIN, SCALE_MAX),
        invert: bool = False,
        missing: MissingPolicy = "error",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        tier_names: Sequence[str] = DEFAULT_TIER_NAMES,
    ) -> None:
        self._config = validated(
            "ColumnDifficulty", ColumnDifficultyConfig, column=column, source_range=tuple(source_range),
            invert=invert, missing=missing, thresholds=tuple(thresholds), tier_names=tuple(tier_names),
        )

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self._config.column})

    def _score(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        raw = numeric_column(batch.column(c.column, by="ColumnDifficulty"), owner="ColumnDifficulty", column=c.column)
        low, high = c.source_range
        outside = ~np.isnan(raw) & ((raw < low) | (raw > high))
        if outside.any():
            index = np.flatnonzero(outside)[:5]
            raise ValueError(
                f"ColumnDifficulty: column {c.column!r}: expected values in source_range [{low:g}, {high:g}], got "
                f"{raw[index].tolist()} for samples {index.tolist()}"
            )
        unit = (raw - low) / (high - low)
        if c.invert:
            unit = 1.0 - unit
        values = SCALE_MIN + (SCALE_MAX - SCALE_MIN) * unit
        values, fell_back = resolve_missing(values, c.missing, owner="ColumnDifficulty", thresholds=c.thresholds,
                                            names=c.tier_names)
        self._count(len(batch), int(fell_back.sum()))
        return values

    def to_config(self) -> ColumnDifficultyConfig:
        return self._config


# ------------------------------------------------------------------------------------------------------------


def _score_value(value: Any, *, where: str) -> float | None:
    """A table entry's score: a number in [1, 10], ``None`` (no score), or a mapping of aspect scores (mean)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        from .judge import ASPECTS

        aspects = [value.get(name) for name in ASPECTS]
        if any(a is None for a in aspects):
            raise ValueError(f"{where}: expected aspect scores with keys {list(ASPECTS)}, got {dict(value)!r:.120}")
        scores = [_score_value(a, where=where) for a in aspects]
        return float(np.mean([s for s in scores if s is not None])) if all(s is not None for s in scores) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number in [1, 10] or null, got {value!r:.80}")
    score = float(value)
    if not SCALE_MIN <= score <= SCALE_MAX:  # also rejects NaN
        raise ValueError(f"{where}: expected a number in [1, 10] or null, got {value!r}")
    return score


def load_difficulty_table(
    source: str | Path | Iterable[Mapping[str, Any]] | Mapping[Any, Any],
    *,
    id_field: str = OFFICIAL_ID_FIELD,
    score_field: str = OFFICIAL_SCORE_FIELD,
    on_duplicate: Literal["error", "first", "last"] = "error",
    on_invalid: Literal["error", "missing"] = "error",
) -> dict[str, float | None]:
    """Read a difficulty lookup table into ``{str(id): score or None}``.

    Accepted shapes:

    * the official one: a JSON list of records ``{"image_id": ..., "difficulty_score_model": 6.33, ...}``
      (other fields are ignored; a ``.jsonl`` file holds one record per line);
    * a plain JSON object ``{"id": score}``;
    * the same as Python objects (a list of records or a mapping).

    A score is a number in ``[1, 10]``, ``null`` (the sample has no score: the scorer's missing policy decides),
    or an object with the judge's aspect scores ``scene``, ``seg``, ``language`` (combined by their mean).
    Keys are compared by their string form, so ``42`` and ``"42"`` name the same sample.

    Args:
        source: a path to a ``.json``/``.jsonl`` file, a list of records, or a mapping.
        id_field, score_field: the record fields holding the sample id and the score.
        on_duplicate: an id listed twice with different scores: ``"error"`` (default), keep the ``"first"``,
            or keep the ``"last"`` (what the official loader's dict assignment does).
        on_invalid: a score that is not a number in ``[1, 10]``: ``"error"`` (default) or treat it as
            ``"missing"`` (what the official Qwen3-VL converter does, silently; here it is your choice).

    Raises:
        ValueError: a malformed table, naming the record and what was expected.
    """
    where_file = ""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"load_difficulty_table: source: expected a JSON or JSONL file, got "
                                    f"{str(path)!r} (not found)")
        where_file = f"{path.name}: "
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    else:
        data = source
    if isinstance(data, Mapping):
        records: list[tuple[Any, Any]] = list(data.items())
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        records = []
        for i, record in enumerate(data):
            if not isinstance(record, Mapping) or id_field not in record:
                raise ValueError(
                    f"load_difficulty_table: {where_file}record {i}: expected an object with {id_field!r} and "
                    f"{score_field!r}, got {record!r:.120}"
                )
            records.append((record[id_field], record.get(score_field)))
    else:
        raise ValueError(
            f"load_difficulty_table: {where_file}expected a list of records or an object of id -> score, "
            f"got {type(data).__name__}"
        )
    table: dict[str, float | None] = {}
    for key, raw in records:
        name = str(key)
        try:
            score = _score_value(raw, where=f"load_difficulty_table: {where_file}{id_field}={key!r}: {score_field}")
        except ValueError:
            if on_invalid == "error":
                raise
            score = None
        if name in table and table[name] != score and on_duplicate != "last":
            if on_duplicate == "error":
                raise ValueError(
                    f"load_difficulty_table: {where_file}{id_field}={key!r} is listed twice with different scores "
                    f"({table[name]} and {score}); pass on_duplicate='first' or 'last' to choose"
                )
            continue
        table[name] = score
    return table


class LookupDifficultyConfig(_TieredMissing):
    kind: Literal["lookup_difficulty"] = "lookup_difficulty"
    table: str | dict[str, float | None]
    key_column: str = Field("id", min_length=1)
    id_field: str = Field(OFFICIAL_ID_FIELD, min_length=1)
    score_field: str = Field(OFFICIAL_SCORE_FIELD, min_length=1)
    on_duplicate: Literal["error", "first", "last"] = "error"
    on_invalid: Literal["error", "missing"] = "error"


@register("lookup_difficulty", LookupDifficultyConfig)
class LookupDifficulty(DifficultyScorer):
    """Difficulty looked up by sample id in a table (the official ``image_id`` -> ``difficulty_score_model``).

    Args:
        table: a path to the table file (see :func:`load_difficulty_table`) or an in-memory ``{id: score}``.
        key_column: the batch (dataset) column holding each sample's id; the official loader uses ``id``.
        id_field, score_field: the record fields of the table file.
        on_duplicate, on_invalid: see :func:`load_difficulty_table`.
        missing: what an id absent from the table (or with a ``null`` score) gets: ``"error"`` (default; the
            message lists the ids), ``"nan"``, a tier name (e.g. ``"easy"``), or a value (the official code
            uses 3.0). Every fallback is counted in :attr:`stats`.
        thresholds, tier_names: the tier layout that gives tier names in ``missing`` their value.
    """

    def __init__(
        self,
        table: str | Path | Mapping[Any, float | None],
        *,
        key_column: str = "id",
        id_field: str = OFFICIAL_ID_FIELD,
        score_field: str = OFFICIAL_SCORE_FIELD,
        on_duplicate: Literal["error", "first", "last"] = "error",
        on_invalid: Literal["error", "missing"] = "error",
        missing: MissingPolicy = "error",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        tier_names: Sequence[str] = DEFAULT_TIER_NAMES,
    ) -> None:
        if isinstance(table, Path):
            table = str(table)
        elif isinstance(table, Mapping):
            table = {str(k): v for k, v in table.items()}
        self._config = validated(
            "LookupDifficulty", LookupDifficultyConfig, table=table, key_column=key_column, id_field=id_field,
            score_field=score_field, on_duplicate=on_duplicate, on_invalid=on_invalid, missing=missing,
            thresholds=tuple(thresholds), tier_names=tuple(tier_names),
        )
        c = self._config
        self._table = load_difficulty_table(c.table, id_field=c.id_field, score_field=c.score_field,
                                            on_duplicate=c.on_duplicate, on_invalid=c.on_invalid)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self._config.key_column})

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, keys: Sequence[Any]) -> FloatArray:
        """Scores for ``keys`` without the missing policy: NaN where the table has no score."""
        out = np.full(len(keys), np.nan)
        for i, key in enumerate(keys):
            score = None if key is None else self._table.get(str(key))
            if score is not None:
                out[i] = score
        return out

    def _score(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        keys = batch.column(c.key_column, by="LookupDifficulty")
        values, fell_back = resolve_missing(self.lookup(keys), c.missing, owner="LookupDifficulty",
                                            thresholds=c.thresholds, names=c.tier_names, labels=list(keys))
        self._count(len(batch), int(fell_back.sum()))
        return values

    def to_config(self) -> LookupDifficultyConfig:
        return self._config
