"""The judge as a difficulty scorer for [`WithContext`][]."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...batch import RewardBatch
from ...config import param
from ..scale import MissingPolicy
from ..scorer import TieredScorer
from .backends import JudgeBackend
from .cache import JudgmentCache
from .prompt import PROMPT_VERSION, PROMPTS
from .reply import Aggregate, check_weights
from .runner import DifficultyJudge, JudgeSample

__all__ = ["JudgedDifficulty"]


class JudgedDifficulty(TieredScorer, kind="judge_difficulty"):
    """Difficulty rated by a VLM judge ([`DifficultyJudge`][]), as a scorer.

    Each distinct sample id in a batch is looked up in the cache; with ``ask_missing=True`` the ones not there
    are rated now, inside the training loop (prefer annotating beforehand with ``alr-difficulty``).
    """

    backend: JudgeBackend = param(kw_only=False, doc="the judge's backend")
    cache: str | Path | None = param(
        default=None,
        doc="the verdict cache's file (None: nothing is remembered); "
        "read-only, and it must exist, with ask_missing=False",
    )
    prompt_version: str = param(default=PROMPT_VERSION, doc="the judge prompt, one of PROMPTS")
    parse_retries: int = param(default=2, ge=0, doc="re-asks after an unreadable reply before it counts as failed")
    aggregate: Aggregate = param(default="mean", doc="how the three aspect scores combine")
    weights: Mapping[str, float] | None = param(
        default=None, doc="aspect weights for a weighted mean instead, e.g. scene=1,seg=2,language=1"
    )
    id_column: str = param(default="id", min_length=1, doc="sample id column")
    image_column: str = param(default="image", min_length=1, doc="image column: paths, bytes or images")
    expression_column: str = param(default="problem", min_length=1, doc="referring expression column")
    mask_column: str | None = param(default=None, doc="target mask column (gives area and position)")
    box_column: str | None = param(
        default=None, doc="target box column: [x1,y1,x2,y2] pixels or '<box>(x1,y1),(x2,y2)</box>'"
    )
    area_column: str | None = param(default=None, doc="target mask area ratio column")
    ask_missing: bool = param(default=True, doc="rate samples the cache does not know, or leave them missing")
    retry_failed: bool = param(default=False, doc="re-ask samples cached as unparseable")
    missing: MissingPolicy = param(
        default="nan",
        doc="what a sample without a verdict gets: 'nan' (the budget's "
        "missing_difficulty decides), 'error', a tier name, or a value in [1, 10]",
    )

    @staticmethod
    def _check(config: Any) -> None:
        if config.prompt_version not in PROMPTS:
            raise ValueError(f"prompt_version: expected one of {sorted(PROMPTS)}, got {config.prompt_version!r}")
        check_weights(config.weights)

    def __post_init__(self) -> None:
        # cache-only mode opens the cache read-only: a mistyped path fails instead of reading an empty new file
        store = None if self.cache is None else JudgmentCache(self.cache, readonly=not self.ask_missing)
        self.judge = DifficultyJudge(
            self.backend,
            cache=store,
            prompt=PROMPTS[self.prompt_version],
            parse_retries=self.parse_retries,
            aggregate=self.aggregate,
            weights=self.weights,
        )

    @property
    def columns(self) -> list[str]:
        """The dataset columns a sample is made from (id, image, expression, and the geometry ones named)."""
        optional = (self.mask_column, self.box_column, self.area_column)
        return [self.id_column, self.image_column, self.expression_column, *(c for c in optional if c is not None)]

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(self.columns if self.ask_missing else [self.id_column])

    def sample(self, row: Mapping[str, Any], *, base_dir: str | None = None) -> JudgeSample:
        """The [`JudgeSample`][] of one dataset row (a mapping holding [`columns`][])."""
        geometry = {"mask": self.mask_column, "box": self.box_column, "area_ratio": self.area_column}
        return JudgeSample(
            sample_id=row[self.id_column],
            image=row[self.image_column],
            expression=row[self.expression_column],
            base_dir=base_dir,
            **{key: row[column] for key, column in geometry.items() if column is not None},
        )

    def samples(self, batch: RewardBatch) -> list[JudgeSample]:
        """One [`JudgeSample`][] per distinct id in the batch (first row of each id)."""
        columns = {name: batch.column(name, by="JudgedDifficulty") for name in self.columns}
        first: dict[str, int] = {}
        for i, sample_id in enumerate(columns[self.id_column]):
            first.setdefault(str(sample_id), i)
        return [self.sample({name: values[i] for name, values in columns.items()}) for i in first.values()]

    def _score(self, batch: RewardBatch) -> npt.NDArray[np.float64]:
        ids = [str(s) for s in batch.column(self.id_column, by="JudgedDifficulty")]
        if self.ask_missing:
            judged = self.judge.judge_many(self.samples(batch), retry_failed=self.retry_failed)
            verdicts = {j.sample_id: j for j in judged}
        else:
            verdicts = self.judge.cached(ids)
        values = np.array([self.judge.difficulty(verdicts[i]) if i in verdicts else np.nan for i in ids])
        return self._resolve(values, self.missing, labels=ids)
