"""Evaluation metrics for reasoning segmentation and reasoning length, in NumPy (masks are ``bool`` arrays).

gIoU ``= mean_i (I_i / U_i)`` and cIoU ``= sum_i I_i / sum_i U_i`` follow the ReasonSeg conventions (LISA,
arXiv 2308.00692; Seg-Zero ``evaluation_scripts/evaluation.py``): an empty union counts ``empty_union``, a failed
parse counts ``I = 0, U = |GT|``. SAT, RST and URSS are PixelThink's efficiency scores (arXiv 2505.23727,
Table 1) in forms *fitted* to its tables, not an official definition. See docs/metrics.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .budgets import TieredBudget
from .functional import checked_lengths
from .tiers import TierLayout

__all__ = [
    "URSS_REFERENCE_TOKENS",
    "URSS_RST_WEIGHT",
    "URSS_SAT_WEIGHT",
    "LengthStats",
    "MaskIoU",
    "SegmentationReport",
    "TierReport",
    "budget_adherence",
    "difficulty_tiers",
    "intersection_and_union",
    "mask_iou",
    "reasoning_length_by_tier",
    "rst",
    "sat",
    "urss",
]

FloatArray = npt.NDArray[np.float64]

#: ``T0`` in ``sqrt(T0 / T)``: the token count at which SAT equals gIoU (*fitted*, see docs/metrics.md).
URSS_REFERENCE_TOKENS = 200.0
#: Weight of SAT in URSS (*fitted*).
URSS_SAT_WEIGHT = 0.7
#: Weight of RST in URSS (*fitted*).
URSS_RST_WEIGHT = 0.3


def _mask(value: Any, name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(value)
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise TypeError(f"{name}: expected a boolean mask (or 0/1 integers), got dtype {array.dtype}")
        array = array.astype(np.bool_)
    return array


def intersection_and_union(pred: npt.ArrayLike, target: npt.ArrayLike) -> tuple[int, int]:
    """``(|pred & target|, |pred | target|)`` of two boolean masks of the same shape.

    >>> intersection_and_union([[True, True], [False, False]], [[True, False], [True, False]])
    (1, 3)
    """
    p, t = _mask(pred, "pred"), _mask(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred: expected the target's shape {t.shape}, got {p.shape}")
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p | t))


def mask_iou(pred: npt.ArrayLike, target: npt.ArrayLike, *, empty_union: float = 1.0) -> float:
    """IoU of two boolean masks; ``empty_union`` (default 1.0) where both are empty.

    >>> mask_iou([True, True, False], [True, False, False])
    0.5
    >>> mask_iou([False], [False])
    1.0
    """
    intersection, union = intersection_and_union(pred, target)
    return float(empty_union) if union == 0 else intersection / union


class MaskIoU:
    """Accumulates per-sample intersection and union; gives gIoU and cIoU with the ReasonSeg conventions.

    >>> metric = MaskIoU()
    >>> metric.update([True, True, False, False], [True, False, False, False])   # I = 1, U = 2
    >>> metric.update(None, [True, True, True, False])                            # failed parse: I = 0, U = 3
    >>> metric.update([False, False], [False, False])                             # empty union: IoU 1
    >>> metric.giou, metric.ciou                                                  # (0.5 + 0 + 1) / 3, 1 / 5
    (0.5, 0.2)

    Args:
        empty_union: the IoU of a sample whose union is empty (default 1.0, LISA; Seg-Zero's
            ``calculate_iou.py`` counts 0); also cIoU's value when every union is empty.
    """

    def __init__(self, *, empty_union: float = 1.0) -> None:
        if not (isinstance(empty_union, (int, float)) and 0.0 <= empty_union <= 1.0):
            raise ValueError(f"MaskIoU: empty_union: expected a number in [0, 1], got {empty_union!r}")
        self.empty_union = float(empty_union)
        self.reset()

    def reset(self) -> None:
        """Forget every sample."""
        self._intersections: list[int] = []
        self._unions: list[int] = []
        self._failed: list[bool] = []

    def update(self, pred: npt.ArrayLike | None, target: npt.ArrayLike) -> None:
        """Add one sample; ``pred=None`` marks an answer that could not be parsed (``I = 0, U = |GT|``)."""
        if pred is None:
            self.update_counts(0, int(np.count_nonzero(_mask(target, "target"))), failed=True)
        else:
            self.update_counts(*intersection_and_union(pred, target))

    def update_counts(self, intersection: int, union: int, *, failed: bool = False) -> None:
        """Add one sample from its counts (e.g. computed on a GPU)."""
        for name, value in (("intersection", intersection), ("union", union)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"MaskIoU: {name}: expected a non-negative integer, got {value!r}")
        if intersection > union:
            raise ValueError(f"MaskIoU: intersection: expected <= union ({union}), got {intersection}")
        self._intersections.append(int(intersection))
        self._unions.append(int(union))
        self._failed.append(bool(failed))

    def merge(self, other: MaskIoU) -> None:
        """Add another accumulator's samples (e.g. from another evaluation shard)."""
        if not isinstance(other, MaskIoU):
            raise TypeError(f"MaskIoU.merge: other: expected a MaskIoU, got {type(other).__name__}")
        if other.empty_union != self.empty_union:
            raise ValueError(f"MaskIoU.merge: other.empty_union: expected {self.empty_union}, got {other.empty_union}")
        self._intersections += other._intersections
        self._unions += other._unions
        self._failed += other._failed

    def __len__(self) -> int:
        return len(self._unions)

    @property
    def intersections(self) -> npt.NDArray[np.int64]:
        """Per-sample intersections."""
        return np.asarray(self._intersections, dtype=np.int64)

    @property
    def unions(self) -> npt.NDArray[np.int64]:
        """Per-sample unions."""
        return np.asarray(self._unions, dtype=np.int64)

    @property
    def failed(self) -> npt.NDArray[np.bool_]:
        """Per-sample failed-parse flags."""
        return np.asarray(self._failed, dtype=np.bool_)

    @property
    def ious(self) -> FloatArray:
        """Per-sample IoU (``empty_union`` where the union is empty)."""
        unions = self.unions
        return np.where(unions == 0, self.empty_union, self.intersections / np.where(unions == 0, 1, unions))

    @property
    def giou(self) -> float:
        """Mean per-sample IoU; NaN before any sample."""
        return float(np.mean(self.ious)) if len(self) else math.nan

    @property
    def ciou(self) -> float:
        """Cumulative IoU ``sum I / sum U`` (``empty_union`` if every union is empty); NaN before any sample."""
        if not len(self):
            return math.nan
        total = int(self.unions.sum())
        return self.empty_union if total == 0 else int(self.intersections.sum()) / total

    def _subset(self, rows: npt.NDArray[np.bool_]) -> MaskIoU:
        """The samples where ``rows`` is True, in a new accumulator."""
        part = MaskIoU(empty_union=self.empty_union)
        part._intersections = self.intersections[rows].tolist()
        part._unions = self.unions[rows].tolist()
        part._failed = self.failed[rows].tolist()
        return part


def difficulty_tiers(
    difficulty: npt.ArrayLike, *, policy: TieredBudget | None = None, missing: str = "unknown"
) -> npt.NDArray[np.str_]:
    """Tier name per sample under a [`TieredBudget`][]'s tier layout
    (default PixelThink's: easy < 3.5 <= medium < 5.0 <= hard); NaN difficulty gets ``missing``.

    >>> difficulty_tiers([1.0, 3.5, 4.9, 5.0, float("nan")]).tolist()
    ['easy', 'medium', 'medium', 'hard', 'unknown']
    """
    return (TierLayout() if policy is None else policy.layout).labels(difficulty, missing=missing)


@dataclass(frozen=True)
class LengthStats:
    """Summary of reasoning lengths (tokens or words) of a group of samples."""

    count: int
    mean: float
    median: float
    p90: float
    max: float


def _stats(lengths: FloatArray) -> LengthStats:
    if lengths.size == 0:
        return LengthStats(0, math.nan, math.nan, math.nan, math.nan)
    values = (lengths.mean(), np.median(lengths), np.percentile(lengths, 90), lengths.max())
    return LengthStats(int(lengths.size), *(float(v) for v in values))


def reasoning_length_by_tier(lengths: npt.ArrayLike, tiers: Sequence[str] | npt.NDArray[Any]) -> dict[str, LengthStats]:
    """Length statistics per tier (in first-seen order), plus ``"all"``.

    >>> stats = reasoning_length_by_tier([10, 20, 30, 100], ["easy", "easy", "hard", "hard"])
    >>> stats["easy"].mean, stats["hard"].max, stats["all"].count
    (15.0, 100.0, 4)
    """
    values = checked_lengths(lengths).reshape(-1)
    labels = np.asarray(tiers).reshape(-1)
    if labels.shape != values.shape:
        raise ValueError(f"tiers: expected {values.size} labels (one per length), got {labels.size}")
    out = {"all": _stats(values)}
    for name in dict.fromkeys(labels.tolist()):
        out[str(name)] = _stats(values[labels == name])
    return out


def budget_adherence(lengths: npt.ArrayLike, budgets: npt.ArrayLike) -> float:
    """Share of samples with ``length <= budget`` (an infinite budget always holds; NaN if no samples).

    Within budget is exactly where PixelThink's soft length score is 1.

    >>> budget_adherence([50, 96, 97, 300], [96, 96, 96, float("inf")])
    0.75
    """
    values = checked_lengths(lengths).reshape(-1)
    limits = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if limits.shape != values.shape or np.isnan(limits).any() or (limits < 0).any():
        raise ValueError(
            f"budgets: expected {values.size} non-negative numbers or inf, got "
            f"{np.asarray(budgets).ravel()[:8].tolist()}"
        )
    return float(np.mean(values <= limits)) if values.size else math.nan


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check(name: str, value: float, low: float, high: float) -> float:
    if not (_number(value) and low <= value <= high):
        raise ValueError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)


def _token_factor(mean_tokens: float) -> float:
    if not (_number(mean_tokens) and math.isfinite(mean_tokens) and mean_tokens > 0):
        raise ValueError(f"mean_tokens: expected a finite number > 0, got {mean_tokens!r}")
    return math.sqrt(URSS_REFERENCE_TOKENS / float(mean_tokens))


def sat(giou: float, mean_tokens: float) -> float:
    """Segmentation accuracy per token, ``gIoU * sqrt(200 / T)`` (*fitted*; gIoU as a fraction in [0, 1]).

    >>> round(sat(0.6381, 46.98), 4)
    1.3166
    """
    return _check("giou", giou, 0.0, 1.0) * _token_factor(mean_tokens)


def rst(rscore: float, mean_tokens: float) -> float:
    """Reasoning score per token, ``(RScore / 10) * sqrt(200 / T)`` (*fitted*; RScore on 0..10)."""
    return _check("rscore", rscore, 0.0, 10.0) / 10.0 * _token_factor(mean_tokens)


def urss(giou: float, rscore: float, mean_tokens: float) -> float:
    """Unified reasoning-segmentation score ``0.7 * SAT + 0.3 * RST`` (*fitted*, see docs/metrics.md)."""
    return URSS_SAT_WEIGHT * sat(giou, mean_tokens) + URSS_RST_WEIGHT * rst(rscore, mean_tokens)


@dataclass(frozen=True)
class TierReport:
    """Metrics of one difficulty tier (or of all samples, ``name == "all"``)."""

    name: str
    count: int
    giou: float
    ciou: float
    failed_parses: int
    tokens: LengthStats
    within_budget: float | None


@dataclass(frozen=True)
class SegmentationReport:
    """One evaluation run: gIoU/cIoU, reasoning length and budget adherence per tier, and the fitted
    efficiency scores. ``str(report)`` is a table; [`to_json`][] serialises it (NaN as ``null``).

    Build it with [`build`][]. gIoU, cIoU and adherence are fractions (the table prints percent).
    """

    tiers: tuple[TierReport, ...]
    rscore: float | None = None
    sat: float | None = None
    rst: float | None = None
    urss: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def overall(self) -> TierReport:
        """The ``"all"`` row."""
        return self.tiers[0]

    @classmethod
    def build(
        cls,
        metric: MaskIoU,
        *,
        reasoning_tokens: npt.ArrayLike,
        difficulty: npt.ArrayLike | None = None,
        tiers: Sequence[str] | None = None,
        budgets: npt.ArrayLike | None = None,
        lengths: npt.ArrayLike | None = None,
        rscores: npt.ArrayLike | None = None,
        tier_policy: TieredBudget | None = None,
    ) -> SegmentationReport:
        """Assemble a report from a filled [`MaskIoU`][] and per-sample context, all in the same order.

        Tiers come from ``difficulty`` under ``tier_policy``'s layout (default PixelThink's) or are given as
        ``tiers``. Budget adherence compares ``lengths`` (default ``reasoning_tokens``, the paper's ``#Token``) with
        ``budgets``, which must share a unit: the default preset's budgets count whitespace words of the whole
        response. ``rscores`` (judge scores, 0..10) add RST and URSS. See docs/metrics.md.
        """
        if not isinstance(metric, MaskIoU):
            raise TypeError(f"SegmentationReport.build: metric: expected a MaskIoU, got {type(metric).__name__}")
        n = len(metric)
        tokens = _per_sample("reasoning_tokens", checked_lengths(reasoning_tokens, "reasoning_tokens").reshape(-1), n)
        labels = _tier_labels(n, difficulty, tiers, tier_policy)
        within = _within_budget(n, tokens, budgets, lengths)
        rows = [_tier_row(metric, tokens, within, "all", np.ones(n, dtype=np.bool_))]
        if labels is not None:
            names = _ordered_tiers(labels, tier_policy)
            rows += [_tier_row(metric, tokens, within, str(name), labels == name) for name in names]
        overall = rows[0]
        score = sat_value = rst_value = urss_value = None
        if n and overall.tokens.mean > 0:
            sat_value = sat(overall.giou, overall.tokens.mean)
            if rscores is not None:
                score = float(_per_sample("rscores", np.asarray(rscores, dtype=np.float64).reshape(-1), n).mean())
                rst_value = rst(score, overall.tokens.mean)
                urss_value = urss(overall.giou, score, overall.tokens.mean)
        notes = (
            f"gIoU/cIoU: ReasonSeg conventions (empty union counts {metric.empty_union:g}; failed parse counts "
            "I = 0, U = |GT|)",
            "SAT/RST/URSS: forms and constants fitted to PixelThink's tables (arXiv 2505.23727), not official",
        )
        return cls(tuple(rows), score, sat_value, rst_value, urss_value, notes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN kept as float NaN)."""
        return asdict(self)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """JSON text (NaN written as ``null``); also written to ``path`` when given."""
        plain = json.loads(json.dumps(self.to_dict()), parse_constant=lambda _: None)  # NaN -> None
        text = json.dumps(plain, indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def table(self) -> str:
        """A fixed-width table: one row per tier, percentages for gIoU/cIoU/adherence."""
        header = (
            f"{'tier':<8} {'n':>6} {'gIoU %':>7} {'cIoU %':>7} {'failed':>6} {'tokens mean':>11} "
            f"{'median':>7} {'p90':>7} {'max':>7} {'in budget %':>11}"
        )
        lines = [header, "-" * len(header)]
        for r in self.tiers:
            budget = "-" if r.within_budget is None else _num(100 * r.within_budget)
            lines.append(
                f"{r.name:<8} {r.count:>6} {_num(100 * r.giou):>7} {_num(100 * r.ciou):>7} {r.failed_parses:>6} "
                f"{_num(r.tokens.mean):>11} {_num(r.tokens.median):>7} {_num(r.tokens.p90):>7} "
                f"{_num(r.tokens.max):>7} {budget:>11}"
            )
        scores = [f"SAT {_num(self.sat, 3)}"]
        if self.urss is not None:
            scores += [f"RScore {_num(self.rscore)}", f"RST {_num(self.rst, 3)}", f"URSS {_num(self.urss, 3)}"]
        lines += ["", "  ".join(scores), *(f"note: {note}" for note in self.notes)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _per_sample(name: str, values: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
    if values.size != n:
        raise ValueError(f"{name}: expected {n} values (one per sample in metric), got {values.size}")
    return values


def _tier_labels(
    n: int, difficulty: npt.ArrayLike | None, tiers: Sequence[str] | None, policy: TieredBudget | None
) -> npt.NDArray[Any] | None:
    if difficulty is not None and tiers is not None:
        raise ValueError("SegmentationReport.build: expected difficulty or tiers, got both")
    if difficulty is None and tiers is None:
        return None
    labels = difficulty_tiers(difficulty, policy=policy) if difficulty is not None else np.asarray(tiers).astype(str)
    return _per_sample("difficulty/tiers", labels.reshape(-1), n)


def _within_budget(
    n: int, tokens: FloatArray, budgets: npt.ArrayLike | None, lengths: npt.ArrayLike | None
) -> npt.NDArray[np.bool_] | None:
    if lengths is not None and budgets is None:
        raise ValueError("SegmentationReport.build: lengths: expected only together with budgets, got no budgets")
    if budgets is None:
        return None
    limits = np.asarray(budgets, dtype=np.float64).reshape(-1)
    measured = tokens if lengths is None else _per_sample("lengths", checked_lengths(lengths).reshape(-1), n)
    budget_adherence(measured, limits)  # validates
    within: npt.NDArray[np.bool_] = measured <= limits
    return within


def _tier_row(
    metric: MaskIoU, tokens: FloatArray, within: npt.NDArray[np.bool_] | None, name: str, rows: npt.NDArray[np.bool_]
) -> TierReport:
    part = metric._subset(rows)
    share = None if within is None else (float(within[rows].mean()) if rows.any() else math.nan)
    return TierReport(name, len(part), part.giou, part.ciou, int(part.failed.sum()), _stats(tokens[rows]), share)


def _ordered_tiers(labels: npt.NDArray[Any], policy: TieredBudget | None) -> list[str]:
    present = list(dict.fromkeys(labels.tolist()))
    known = (TierLayout() if policy is None else policy.layout).names
    return [t for t in known if t in present] + [t for t in present if t not in known]


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"
