"""A free baseline: difficulty from the target's mask area ratio and the referring expression's length.

Small targets are harder to segment and long expressions are harder to ground; this module turns those two
observations into a score on the 1..10 scale. It is a *baseline* for comparison with the judge and the online
pass rate, not a claim from a paper: the weights and anchors below are this library's choices, uncalibrated.
Use it when no judge is affordable, or to check how much a 72B judge adds over two numbers.

With ``a`` the area ratio (mask pixels / image pixels) and ``n`` the expression's whitespace word count::

    h_area = clip( ln(large_area / a) / ln(large_area / small_area), 0, 1 )    (a = 0 -> 1)
    h_text = clip( (n - short_words) / (long_words - short_words), 0, 1 )
    D = 1 + 9 * (area_weight * h_area + (1 - area_weight) * h_text)

Defaults: ``small_area = 0.005`` (0.5 % of the image, about a 30x30 box at 420x420: hardest),
``large_area = 0.25`` (a quarter of the image: easiest), ``short_words = 3``, ``long_words = 20``
(RefCOCOg expressions average about 8 words, ReasonSeg queries are longer), ``area_weight = 0.6``.

    >>> heuristic_difficulty([0.25, 0.005], [3, 20]).tolist()
    [1.0, 10.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ..batch import RewardBatch
from ..config import register, validated
from .precomputed import _TieredMissing
from .scale import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, SCALE_MAX, SCALE_MIN, MissingPolicy, resolve_missing
from .scorer import DifficultyScorer, numeric_column

__all__ = ["HeuristicDifficulty", "expression_text", "heuristic_difficulty", "mask_area_ratio"]

FloatArray = npt.NDArray[np.float64]


def mask_area_ratio(mask: Any) -> float:
    """Share of the image a binary mask covers: ``mean(mask > 0)`` over a 2-D array (or a PIL image).

    Raises:
        ValueError: the mask is not 2-D or is empty.
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):  # an image-like H x W x C mask: any channel set
        array = array.max(axis=-1)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"mask_area_ratio: mask: expected a non-empty 2-D array, got shape {array.shape}")
    return float((array > 0).mean())


def expression_text(value: Any, *, owner: str, column: str, index: int) -> str:
    """The expression text from a string or a conversational prompt (the last user message's text parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        users = [m for m in value if m.get("role", "user") == "user"]
        if users:
            content = users[-1].get("content", "")
            if isinstance(content, str):
                return content
            if isinstance(content, Sequence):
                texts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
                return " ".join(texts)
    raise TypeError(f"{owner}: column {column!r}[{index}]: expected a string or chat messages, got {value!r:.80}")


def heuristic_difficulty(
    area_ratio: npt.ArrayLike | None,
    n_words: npt.ArrayLike | None,
    *,
    small_area: float = 0.005,
    large_area: float = 0.25,
    short_words: float = 3,
    long_words: float = 20,
    area_weight: float = 0.6,
) -> FloatArray:
    """The formula of the module docstring. Either input may be ``None`` (then the other carries all weight).

    NaN inputs give NaN. Raises ``ValueError`` for an area ratio outside ``[0, 1]`` or a negative word count.
    """
    if area_ratio is None and n_words is None:
        raise ValueError("heuristic_difficulty: expected area_ratio, n_words or both, got neither")
    if not 0 < small_area < large_area <= 1:
        raise ValueError(f"heuristic_difficulty: expected 0 < small_area < large_area <= 1, got {small_area}, "
                         f"{large_area}")
    if not 0 <= short_words < long_words:
        raise ValueError(f"heuristic_difficulty: expected 0 <= short_words < long_words, got {short_words}, "
                         f"{long_words}")
    if not 0 <= area_weight <= 1:
        raise ValueError(f"heuristic_difficulty: area_weight: expected a number in [0, 1], got {area_weight}")
    parts: list[tuple[float, FloatArray]] = []
    if area_ratio is not None:
        a = np.asarray(area_ratio, dtype=np.float64).reshape(-1)
        finite = a[~np.isnan(a)]
        if ((finite < 0) | (finite > 1)).any():
            raise ValueError(f"heuristic_difficulty: area_ratio: expected values in [0, 1], got "
                             f"{finite[(finite < 0) | (finite > 1)][:5].tolist()}")
        with np.errstate(divide="ignore", over="ignore"):  # a -> 0: the ratio -> inf, h_area clipped to 1
            h_area = np.log(large_area / a) / math.log(large_area / small_area)
        parts.append((area_weight if n_words is not None else 1.0, np.clip(h_area, 0.0, 1.0)))
    if n_words is not None:
        n = np.asarray(n_words, dtype=np.float64).reshape(-1)
        if (n[~np.isnan(n)] < 0).any():
            raise ValueError("heuristic_difficulty: n_words: expected non-negative counts")
        h_text = np.clip((n - short_words) / (long_words - short_words), 0.0, 1.0)
        parts.append((1.0 - area_weight if area_ratio is not None else 1.0, h_text))
    if len(parts) == 2 and parts[0][1].shape != parts[1][1].shape:
        raise ValueError(f"heuristic_difficulty: expected as many area ratios as word counts, got "
                         f"{parts[0][1].size} and {parts[1][1].size}")
    hardness = sum(weight * values for weight, values in parts)
    return SCALE_MIN + (SCALE_MAX - SCALE_MIN) * np.asarray(hardness, dtype=np.float64)


class HeuristicDifficultyConfig(_TieredMissing):
    kind: Literal["heuristic_difficulty"] = "heuristic_difficulty"
    area_column: str | None = "mask_area_ratio"
    mask_column: str | None = None
    expression_column: str | None = "problem"
    small_area: float = Field(0.005, gt=0, le=1)
    large_area: float = Field(0.25, gt=0, le=1)
    short_words: float = Field(3.0, ge=0, allow_inf_nan=False)
    long_words: float = Field(20.0, gt=0, allow_inf_nan=False)
    area_weight: float = Field(0.6, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> HeuristicDifficultyConfig:
        if self.area_column is not None and self.mask_column is not None:
            raise ValueError(f"mask_column: expected None when area_column is set (one area source), got "
                             f"{self.mask_column!r}")
        if self.area_column is None and self.mask_column is None and self.expression_column is None:
            raise ValueError("expression_column: expected a column (or an area_column / mask_column), got no "
                             "source at all")
        if self.small_area >= self.large_area:
            raise ValueError(f"large_area: expected > small_area ({self.small_area}), got {self.large_area}")
        if self.short_words >= self.long_words:
            raise ValueError(f"long_words: expected > short_words ({self.short_words}), got {self.long_words}")
        return self


@register("heuristic_difficulty", HeuristicDifficultyConfig)
class HeuristicDifficulty(DifficultyScorer):
    """The mask-area and expression-length baseline of :func:`heuristic_difficulty` as a scorer.

    Args:
        area_column: column with the target's mask area ratio in ``[0, 1]``; or ``None``.
        mask_column: column with the target mask (2-D array or PIL image), used instead of ``area_column``
            (naming it drops the default ``area_column``; naming both raises).
        expression_column: column with the referring expression (Seg-Zero's datasets call it ``problem``);
            a conversational prompt works too (its last user text). ``None`` to ignore text.
        small_area, large_area, short_words, long_words, area_weight: the formula's anchors.
        missing: what a sample without an area (``None``/NaN) gets: ``"error"`` (default), ``"nan"``, a tier
            name, or a value.
        thresholds, tier_names: the tier layout that gives tier names in ``missing`` their value.
    """

    def __init__(
        self,
        *,
        area_column: str | None = "mask_area_ratio",
        mask_column: str | None = None,
        expression_column: str | None = "problem",
        small_area: float = 0.005,
        large_area: float = 0.25,
        short_words: float = 3.0,
        long_words: float = 20.0,
        area_weight: float = 0.6,
        missing: MissingPolicy = "error",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        tier_names: Sequence[str] = DEFAULT_TIER_NAMES,
    ) -> None:
        if mask_column is not None and area_column == "mask_area_ratio":
            area_column = None  # naming a mask column replaces the default area column
        self._config = validated(
            "HeuristicDifficulty", HeuristicDifficultyConfig, area_column=area_column, mask_column=mask_column,
            expression_column=expression_column, small_area=small_area, large_area=large_area,
            short_words=short_words, long_words=long_words, area_weight=area_weight, missing=missing,
            thresholds=tuple(thresholds), tier_names=tuple(tier_names),
        )

    @property
    def requires(self) -> frozenset[str]:
        c = self._config
        return frozenset(name for name in (c.area_column, c.mask_column, c.expression_column) if name is not None)

    def _score(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        area: FloatArray | None = None
        if c.area_column is not None:
            area = numeric_column(batch.column(c.area_column, by="HeuristicDifficulty"), owner="HeuristicDifficulty",
                                  column=c.area_column)
        elif c.mask_column is not None:
            masks = batch.column(c.mask_column, by="HeuristicDifficulty")
            area = np.array([np.nan if m is None else mask_area_ratio(m) for m in masks], dtype=np.float64)
        words: FloatArray | None = None
        if c.expression_column is not None:
            texts = batch.column(c.expression_column, by="HeuristicDifficulty")
            words = np.array([
                len(expression_text(t, owner="HeuristicDifficulty", column=c.expression_column, index=i).split())
                for i, t in enumerate(texts)
            ], dtype=np.float64)
        values = heuristic_difficulty(area, words, small_area=c.small_area, large_area=c.large_area,
                                      short_words=c.short_words, long_words=c.long_words, area_weight=c.area_weight)
        values, fell_back = resolve_missing(values, c.missing, owner="HeuristicDifficulty", thresholds=c.thresholds,
                                            names=c.tier_names)
        self._count(len(batch), int(fell_back.sum()))
        return values

    def to_config(self) -> HeuristicDifficultyConfig:
        return self._config
