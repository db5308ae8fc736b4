"""A free baseline: difficulty from the target's mask area ratio and the referring expression's length.

Small targets are harder to segment and long expressions harder to ground. This is a *baseline* to compare with
the judge and the online pass rate, not a claim from a paper: the anchors and weights ([`HeuristicDifficulty`][]'s
parameters) are this library's choices, uncalibrated. With ``a`` the area ratio (mask pixels / image pixels) and
``n`` the expression's whitespace word count::

    h_area = clip( ln(large_area / a) / ln(large_area / small_area), 0, 1 )    (a = 0 -> 1)
    h_text = clip( (n - short_words) / (long_words - short_words), 0, 1 )
    D = 1 + 9 * (area_weight * h_area + (1 - area_weight) * h_text)

    >>> heuristic_difficulty([0.25, 0.005], [3, 20]).tolist()
    [1.0, 10.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..config import param
from ..geometry import mask_geometry
from ..tiers import SCALE_MAX, SCALE_MIN
from .scale import check_unit_interval
from .scorer import TieredScorer, numeric_column

__all__ = ["HeuristicDifficulty", "expression_text", "heuristic_difficulty", "mask_area_ratio"]

FloatArray = npt.NDArray[np.float64]

#: The area column read unless a mask column is named instead.
AREA_COLUMN = "mask_area_ratio"
#: The formula's parameters (keywords of [`heuristic_difficulty`][], fields of [`HeuristicDifficulty`][]).
ANCHORS = ("small_area", "large_area", "short_words", "long_words", "area_weight")


def mask_area_ratio(mask: Any) -> float:
    """Share of the image a binary mask covers ([`mask_geometry`][]).

    Raises:
        ValueError: the mask is not 2-D or is empty.
    """
    return mask_geometry(mask)[0]


def expression_text(value: Any, *, owner: str, column: str, index: int) -> str:
    """The expression text from a string or a conversational prompt (the last user message's text parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        users = [m for m in value if m.get("role", "user") == "user"]
        content = users[-1].get("content", "") if users else None
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return " ".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    raise TypeError(f"{owner}: column {column!r}[{index}]: expected a string or chat messages, got {value!r:.80}")


def _check_anchors(
    small_area: float, large_area: float, short_words: float, long_words: float, area_weight: float, owner: str = ""
) -> None:
    """The formula's anchors: ``0 < small_area < large_area <= 1``, ``0 <= short_words < long_words``, and
    ``area_weight`` in ``[0, 1]`` (ValueError naming the field, after ``owner``)."""
    if not 0 < small_area < large_area <= 1:
        raise ValueError(f"{owner}large_area: expected > small_area ({small_area} > 0) and <= 1, got {large_area}")
    if not 0 <= short_words < long_words:
        raise ValueError(f"{owner}long_words: expected > short_words ({short_words} >= 0), got {long_words}")
    if not 0 <= area_weight <= 1:
        raise ValueError(f"{owner}area_weight: expected a number in [0, 1], got {area_weight}")


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
    _check_anchors(small_area, large_area, short_words, long_words, area_weight, owner="heuristic_difficulty: ")
    parts: list[tuple[float, FloatArray]] = []
    if area_ratio is not None:
        a = check_unit_interval("heuristic_difficulty: area_ratio", area_ratio).reshape(-1)
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
        raise ValueError(
            f"heuristic_difficulty: expected as many area ratios as word counts, got "
            f"{parts[0][1].size} and {parts[1][1].size}"
        )
    hardness = sum(weight * values for weight, values in parts)
    return SCALE_MIN + (SCALE_MAX - SCALE_MIN) * np.asarray(hardness, dtype=np.float64)


class HeuristicDifficulty(TieredScorer, kind="heuristic_difficulty"):
    """The mask-area and expression-length baseline of [`heuristic_difficulty`][] as a scorer.

    A sample without an area (``None``/NaN) takes the ``missing`` policy.
    """

    area_column: str | None = param(default=AREA_COLUMN, doc="column of the target's mask area ratio in [0, 1]")
    mask_column: str | None = param(
        default=None, doc="column of the target mask (2-D array or PIL image), read instead of the default area_column"
    )
    expression_column: str | None = param(
        default="problem",
        doc="column of the referring expression (or a conversational prompt: its last user text); None ignores text",
    )
    small_area: float = param(default=0.005, gt=0, le=1, doc="area ratio at and below which h_area = 1 (hardest)")
    large_area: float = param(default=0.25, gt=0, le=1, doc="area ratio at and above which h_area = 0 (easiest)")
    short_words: float = param(default=3.0, ge=0, doc="word count at and below which h_text = 0")
    long_words: float = param(default=20.0, gt=0, doc="word count at and above which h_text = 1")
    area_weight: float = param(default=0.6, ge=0, le=1, doc="weight of h_area (the rest goes to h_text)")

    @staticmethod
    def _check(config: Any) -> None:
        if config.mask_column is not None and config.area_column not in (None, AREA_COLUMN):
            raise ValueError(
                f"mask_column: expected None when area_column is set (one area source), got {config.mask_column!r}"
            )
        if config.area_column is None and config.mask_column is None and config.expression_column is None:
            raise ValueError(
                "expression_column: expected a column (or an area_column / mask_column), got no source at all"
            )
        _check_anchors(*(getattr(config, name) for name in ANCHORS))

    @property
    def columns(self) -> tuple[str | None, str | None, str | None]:
        """``(area, mask, expression)`` columns read; a named mask column replaces the default area column."""
        area = None if self.mask_column is not None else self.area_column
        return area, self.mask_column, self.expression_column

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(name for name in self.columns if name is not None)

    def _score(self, batch: RewardBatch) -> FloatArray:
        area_column, mask_column, expression_column = self.columns
        owner = "HeuristicDifficulty"
        area: FloatArray | None = None
        words: FloatArray | None = None
        if area_column is not None:
            area = numeric_column(batch.column(area_column, by=owner), owner=owner, column=area_column)
        elif mask_column is not None:
            masks = batch.column(mask_column, by=owner)
            area = np.array([np.nan if m is None else mask_area_ratio(m) for m in masks], dtype=np.float64)
        if expression_column is not None:
            texts = batch.column(expression_column, by=owner)
            words = np.array(
                [
                    len(expression_text(t, owner=owner, column=expression_column, index=i).split())
                    for i, t in enumerate(texts)
                ],
                dtype=np.float64,
            )
        anchors = {name: getattr(self, name) for name in ANCHORS}
        return self._resolve(heuristic_difficulty(area, words, **anchors), self.missing)
