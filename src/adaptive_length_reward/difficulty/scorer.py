"""The [`DifficultyScorer`][] interface: a context provider that fills the batch's ``difficulty`` column.

Every scorer writes the same 1..10 scale ([`scale`][]), so a budget never knows where a score came from::

    reward = WithContext(Product([accuracy, SoftLengthPenalty(budget=TieredBudget())]), [scorer])
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..config import param
from ..evaluation import once
from ..reward import ContextProvider
from ..tiers import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, TierLayout
from .scale import MissingPolicy, check_missing_policy, check_on_scale, resolve_missing

__all__ = ["DifficultyScorer", "TieredScorer", "numeric_column"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class DifficultyScorer(ContextProvider):
    """Base of every difficulty scorer: one score per completion on the 1..10 scale, NaN where none.

    Subclasses implement ``_score``. Calling the scorer checks the shape and that every value is NaN or in
    ``[1, 10]`` (off the scale is a bug in the scorer, and raises), once per batch within one ``evaluate``.
    Scorers count the samples scored and those that took the missing-value policy ([`stats`][]).
    """

    provides: ClassVar[str] = "difficulty"

    def __call__(self, batch: RewardBatch) -> FloatArray:
        """Difficulty per completion (float64, NaN = none)."""
        if not isinstance(batch, RewardBatch):
            raise TypeError(f"{type(self).__name__}: expected a RewardBatch, got {type(batch).__name__}")
        return once(self, batch, self._checked, batch)

    def _checked(self, batch: RewardBatch) -> FloatArray:
        batch.require(sorted(self.requires), by=type(self).__name__)
        values = np.asarray(self._score(batch), dtype=np.float64)
        if values.shape != (len(batch),):
            raise RuntimeError(f"{type(self).__name__} returned shape {values.shape} for {len(batch)} completions")
        return check_on_scale(values, owner=type(self).__name__)

    @abc.abstractmethod
    def _score(self, batch: RewardBatch) -> FloatArray:
        """Scores for the batch; the batch holds every column in ``requires``."""

    @property
    def stats(self) -> dict[str, int]:
        """``{"scored": samples scored so far, "fell_back": of which took the missing-value policy}``."""
        return {"scored": 0, "fell_back": 0, **self.__dict__.get("_counts", {})}

    @property
    def fallback_count(self) -> int:
        """How many samples so far had no score of their own and took the missing-value policy."""
        return self.stats["fell_back"]

    def reset_stats(self) -> None:
        """Set the counters of [`stats`][] back to zero."""
        self.__dict__.pop("_counts", None)

    def _count(self, scored: int, fell_back: int) -> None:
        counts = self.stats
        self.__dict__["_counts"] = {"scored": counts["scored"] + scored, "fell_back": counts["fell_back"] + fell_back}

    @property
    def layout(self) -> TierLayout:
        """The tiers that give a missing policy's tier names their value (PixelThink's unless configured)."""
        return TierLayout()

    def _resolve(self, values: FloatArray, missing: MissingPolicy, labels: Sequence[Any] | None = None) -> FloatArray:
        """Apply a missing policy ([`resolve_missing`][]) and count the samples that took it."""
        values, fell_back = resolve_missing(
            values,
            missing,
            owner=type(self).__name__,
            thresholds=self.layout.thresholds,
            names=self.layout.names,
            labels=labels,
        )
        self._count(len(values), int(fell_back.sum()))
        if fell_back.any():
            logger.info(
                "%s: %d of %d samples without a difficulty of their own: missing=%r applies",
                type(self).__name__,
                int(fell_back.sum()),
                fell_back.size,
                missing,
            )
        return values


class TieredScorer(DifficultyScorer):
    """A scorer with a missing-value policy whose tier names take their value from a tier layout."""

    missing: MissingPolicy = param(
        default="error", doc="what a sample without a score gets: 'error', 'nan', a tier name, or a value in [1, 10]"
    )
    thresholds: tuple[float, ...] = param(default=DEFAULT_THRESHOLDS, doc="tier boundaries on the 1..10 scale")
    tier_names: tuple[str, ...] = param(default=DEFAULT_TIER_NAMES, doc="one name per tier")

    @staticmethod
    def _check(config: Any) -> None:
        try:
            TierLayout(config.thresholds, config.tier_names).check(owner="")
        except ValueError as error:
            raise ValueError(str(error).removeprefix(": ")) from None
        check_missing_policy(config.missing, names=config.tier_names)

    @property
    def layout(self) -> TierLayout:
        return TierLayout(self.thresholds, self.tier_names)


def numeric_column(values: Sequence[Any], *, owner: str, column: str) -> FloatArray:
    """Floats from a batch column of numbers; ``None`` and NaN become NaN (missing).

    Raises:
        TypeError: an entry that is neither a number nor ``None``, naming the column and sample.
    """
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            out[i] = np.nan
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            out[i] = float(value)
        else:
            raise TypeError(f"{owner}: column {column!r}[{i}]: expected a number or None, got {value!r:.80}")
    if np.isinf(out).any():
        raise ValueError(
            f"{owner}: column {column!r}: expected finite numbers, got inf at "
            f"{np.flatnonzero(np.isinf(out))[:5].tolist()}"
        )
    return out
