"""The :class:`DifficultyScorer` interface: a context provider that fills the batch's ``difficulty`` column.

Every scorer (precomputed, judged by a VLM, online pass rate, heuristic) writes the same 1..10 scale of
:mod:`~adaptive_length_reward.difficulty.scale`, so a budget such as
:class:`~adaptive_length_reward.budgets.TieredBudget` never knows where a score came from::

    reward = WithContext(Product([accuracy, SoftLengthPenalty(budget=TieredBudget())]), [scorer])
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..reward import ContextProvider
from .scale import check_on_scale

__all__ = ["DifficultyScorer", "numeric_column"]

FloatArray = npt.NDArray[np.float64]


class DifficultyScorer(ContextProvider):
    """Base of every difficulty scorer: one score per completion on the 1..10 scale, NaN where none.

    Subclasses implement :meth:`_score`. Calling the scorer checks the shape and that every value is NaN or
    in ``[1, 10]`` (a value off the scale is a bug in the scorer, not bad data, and raises). Scorers count how
    many samples they scored and how many fell back to a missing-value policy (:attr:`stats`).
    """

    provides: ClassVar[str] = "difficulty"

    def __call__(self, batch: RewardBatch) -> FloatArray:
        """Difficulty per completion (float64, NaN = none)."""
        if not isinstance(batch, RewardBatch):
            raise TypeError(f"{type(self).__name__}: expected a RewardBatch, got {type(batch).__name__}")
        batch.require(sorted(self.requires), by=type(self).__name__)
        values = np.asarray(self._score(batch), dtype=np.float64)
        if values.shape != (len(batch),):
            raise RuntimeError(f"{type(self).__name__} returned shape {values.shape} for {len(batch)} completions")
        return check_on_scale(values, owner=type(self).__name__)

    @abc.abstractmethod
    def _score(self, batch: RewardBatch) -> FloatArray:
        """Scores for the batch; the batch holds every column in :attr:`requires`."""

    # -- counters -------------------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """``{"scored": samples scored so far, "fell_back": of which took the missing-value policy}``."""
        counts: dict[str, int] = self.__dict__.setdefault("_counts", {"scored": 0, "fell_back": 0})
        return dict(counts)

    @property
    def fallback_count(self) -> int:
        """How many samples so far had no score of their own and took the missing-value policy."""
        return self.stats["fell_back"]

    def reset_stats(self) -> None:
        """Set the counters of :attr:`stats` back to zero."""
        self.__dict__["_counts"] = {"scored": 0, "fell_back": 0}

    def _count(self, scored: int, fell_back: int) -> None:
        counts = self.__dict__.setdefault("_counts", {"scored": 0, "fell_back": 0})
        counts["scored"] += int(scored)
        counts["fell_back"] += int(fell_back)


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
        raise ValueError(f"{owner}: column {column!r}: expected finite numbers, got inf at "
                         f"{np.flatnonzero(np.isinf(out))[:5].tolist()}")
    return out
