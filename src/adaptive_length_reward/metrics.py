"""Evaluation metrics for reasoning segmentation and reasoning length, in NumPy (masks are ``bool`` arrays).

- :func:`mask_iou`, :func:`intersection_and_union`: one sample.
- :class:`MaskIoU`: accumulates per-sample intersections and unions and gives the ReasonSeg metrics
  (LISA, arXiv 2308.00692; used by Seg-Zero and PixelThink)::

      gIoU = mean_i (I_i / U_i)            cIoU = sum_i I_i / sum_i U_i

  Conventions: a sample whose union is empty (empty prediction and empty ground truth) counts IoU
  ``empty_union`` (default 1, as LISA's ``acc_iou[union == 0] += 1``); a sample whose answer could not be
  parsed counts ``I = 0, U = |GT|`` (Seg-Zero ``evaluation_scripts/evaluation.py``). LISA divides by
  ``U + 1e-5`` and ``sum U + 1e-10``; this module divides exactly.
- :func:`reasoning_length_by_tier`, :func:`budget_adherence`: how long the reasoning is per difficulty tier and
  how often it stays within its budget.
- :func:`sat`, :func:`rst`, :func:`urss`: PixelThink's efficiency-aware scores (arXiv 2505.23727, Table 1).
  The paper does not print their formulas. The forms below and the constants :data:`URSS_REFERENCE_TOKENS`,
  :data:`URSS_SAT_WEIGHT` and :data:`URSS_RST_WEIGHT` are *fitted* to the 15 rows of its tables (``#Token``,
  gIoU, RScore, URSS), as recorded in the project's reference notes; treat them as a reconstruction, not an
  official definition::

      SAT  = gIoU * sqrt(200 / T)            (gIoU as a fraction; the paper prints percent)
      RST  = (RScore / 10) * sqrt(200 / T)   (RScore on the judge's 0..10 scale)
      URSS = 0.7 * SAT + 0.3 * RST           (T = mean reasoning tokens)

- :class:`SegmentationReport`: all of the above for one evaluation run; prints a table, serialises to JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .budgets import TieredBudget

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

#: ``T0`` in ``sqrt(T0 / T)``: the token count at which SAT equals gIoU (*fitted*, see the module docstring).
URSS_REFERENCE_TOKENS = 200.0
#: Weight of SAT in URSS (*fitted*).
URSS_SAT_WEIGHT = 0.7
#: Weight of RST in URSS (*fitted*).
URSS_RST_WEIGHT = 0.3


# ------------------------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------------------------


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
        return _ious(self.intersections, self.unions, self.empty_union)

    @property
    def giou(self) -> float:
        """Mean per-sample IoU; NaN before any sample."""
        return _giou(self.intersections, self.unions, self.empty_union)

    @property
    def ciou(self) -> float:
        """Cumulative IoU ``sum I / sum U`` (``empty_union`` if every union is empty); NaN before any sample."""
        return _ciou(self.intersections, self.unions, self.empty_union)


def _ious(intersections: npt.NDArray[np.int64], unions: npt.NDArray[np.int64], empty_union: float) -> FloatArray:
    safe = np.where(unions == 0, 1, unions)
    return np.where(unions == 0, empty_union, intersections / safe)


def _giou(intersections: npt.NDArray[np.int64], unions: npt.NDArray[np.int64], empty_union: float) -> float:
    return float(np.mean(_ious(intersections, unions, empty_union))) if unions.size else math.nan


def _ciou(intersections: npt.NDArray[np.int64], unions: npt.NDArray[np.int64], empty_union: float) -> float:
    if not unions.size:
        return math.nan
    total = int(unions.sum())
    return empty_union if total == 0 else int(intersections.sum()) / total


# ------------------------------------------------------------------------------------------------------------
# Reasoning length
# ------------------------------------------------------------------------------------------------------------


def _lengths(values: npt.ArrayLike, name: str = "lengths") -> FloatArray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name}: expected finite non-negative numbers, got {np.asarray(values).ravel()[:8].tolist()}")
    return array


def difficulty_tiers(
    difficulty: npt.ArrayLike, *, policy: TieredBudget | None = None, missing: str = "unknown"
) -> npt.NDArray[np.str_]:
    """Tier name per sample under a :class:`~adaptive_length_reward.budgets.TieredBudget`'s thresholds
    (default PixelThink's: easy < 3.5 <= medium < 5.0 <= hard); NaN difficulty gets ``missing``.

    >>> difficulty_tiers([1.0, 3.5, 4.9, 5.0, float("nan")]).tolist()
    ['easy', 'medium', 'medium', 'hard', 'unknown']
    """
    config = (policy or TieredBudget()).to_config()
    d = np.asarray(difficulty, dtype=np.float64).reshape(-1)
    names = np.array([*config.names, missing])
    index = np.searchsorted(np.asarray(config.thresholds), d, side="right")
    return np.asarray(names[np.where(np.isnan(d), len(config.names), index)])


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
    return LengthStats(
        int(lengths.size),
        float(lengths.mean()),
        float(np.median(lengths)),
        float(np.percentile(lengths, 90)),
        float(lengths.max()),
    )


def reasoning_length_by_tier(lengths: npt.ArrayLike, tiers: Sequence[str] | npt.NDArray[Any]) -> dict[str, LengthStats]:
    """Length statistics per tier (in first-seen order), plus ``"all"``.

    >>> stats = reasoning_length_by_tier([10, 20, 30, 100], ["easy", "easy", "hard", "hard"])
    >>> stats["easy"].mean, stats["hard"].max, stats["all"].count
    (15.0, 100.0, 4)
    """
    values = _lengths(lengths)
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
    values = _lengths(lengths)
    limits = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if limits.shape != values.shape or np.isnan(limits).any() or (limits < 0).any():
        raise ValueError(
            f"budgets: expected {values.size} non-negative numbers or inf, got "
            f"{np.asarray(budgets).ravel()[:8].tolist()}"
        )
    return float(np.mean(values <= limits)) if values.size else math.nan


# ------------------------------------------------------------------------------------------------------------
# Efficiency-aware scores (fitted)
# ------------------------------------------------------------------------------------------------------------


def _check(name: str, value: float, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not low <= value <= high
    ):
        raise ValueError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)


def _token_factor(mean_tokens: float) -> float:
    if (
        isinstance(mean_tokens, bool)
        or not isinstance(mean_tokens, (int, float, np.integer, np.floating))
        or not (math.isfinite(mean_tokens) and mean_tokens > 0)
    ):
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
    """Unified reasoning-segmentation score ``0.7 * SAT + 0.3 * RST`` (*fitted*, see the module docstring)."""
    return URSS_SAT_WEIGHT * sat(giou, mean_tokens) + URSS_RST_WEIGHT * rst(rscore, mean_tokens)


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


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
    efficiency scores. ``str(report)`` is a table; :meth:`to_json` serialises it (NaN as ``null``).

    Build it with :meth:`build`. gIoU, cIoU and adherence are fractions (the table prints percent).
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
        """Assemble a report from a filled :class:`MaskIoU` and per-sample context, all in the same order.

        Args:
            metric: the accumulated intersections and unions.
            reasoning_tokens: reasoning length per sample (the paper's ``#Token``).
            difficulty: difficulty per sample, mapped to tiers with ``tier_policy`` (default PixelThink's).
            tiers: tier labels per sample instead of ``difficulty``.
            budgets: length budget per sample (``inf`` = none), for budget adherence.
            lengths: the length each budget is compared with, per sample, in the budgets' unit (default
                ``reasoning_tokens``). PixelThink's budgets count whitespace words of the whole response
                (:class:`~adaptive_length_reward.length.WhitespaceWords`), not reasoning tokens: pass those
                word counts here when the budgets come from the default preset.
            rscores: judge reasoning scores (0..10) per sample, for RST and URSS.
            tier_policy: the :class:`~adaptive_length_reward.budgets.TieredBudget` whose thresholds define
                the tiers.
        """
        if not isinstance(metric, MaskIoU):
            raise TypeError(f"SegmentationReport.build: metric: expected a MaskIoU, got {type(metric).__name__}")
        n = len(metric)
        tokens = _lengths(reasoning_tokens, "reasoning_tokens")
        if tokens.size != n:
            raise ValueError(f"reasoning_tokens: expected {n} values (one per sample in metric), got {tokens.size}")
        if difficulty is not None and tiers is not None:
            raise ValueError("SegmentationReport.build: expected difficulty or tiers, got both")
        labels: npt.NDArray[Any] | None = None
        if difficulty is not None:
            labels = difficulty_tiers(difficulty, policy=tier_policy)
        elif tiers is not None:
            labels = np.asarray(tiers).reshape(-1).astype(str)
        if labels is not None and labels.size != n:
            raise ValueError(f"difficulty/tiers: expected {n} values (one per sample in metric), got {labels.size}")
        within: npt.NDArray[np.bool_] | None = None
        if lengths is not None and budgets is None:
            raise ValueError("SegmentationReport.build: lengths: expected only together with budgets, got lengths "
                             "without budgets")
        if budgets is not None:
            limits = np.asarray(budgets, dtype=np.float64).reshape(-1)
            measured = tokens if lengths is None else _lengths(lengths, "lengths")
            if measured.size != n:
                raise ValueError(f"lengths: expected {n} values (one per sample in metric), got {measured.size}")
            budget_adherence(measured, limits)  # validates
            within = measured <= limits
        inter, union, failed, empty = metric.intersections, metric.unions, metric.failed, metric.empty_union

        def row(name: str, mask: npt.NDArray[np.bool_]) -> TierReport:
            return TierReport(
                name=name,
                count=int(mask.sum()),
                giou=_giou(inter[mask], union[mask], empty),
                ciou=_ciou(inter[mask], union[mask], empty),
                failed_parses=int(failed[mask].sum()),
                tokens=_stats(tokens[mask]),
                within_budget=None if within is None else (float(within[mask].mean()) if mask.any() else math.nan),
            )

        rows = [row("all", np.ones(n, dtype=np.bool_))]
        if labels is not None:
            rows += [row(str(name), labels == name) for name in _ordered_tiers(labels, tier_policy)]
        overall = rows[0]
        score = sat_value = rst_value = urss_value = None
        if n and overall.tokens.mean > 0:
            sat_value = sat(overall.giou, overall.tokens.mean)
            if rscores is not None:
                values = np.asarray(rscores, dtype=np.float64).reshape(-1)
                if values.size != n:
                    raise ValueError(f"rscores: expected {n} values (one per sample in metric), got {values.size}")
                score = float(values.mean())
                rst_value = rst(score, overall.tokens.mean)
                urss_value = urss(overall.giou, score, overall.tokens.mean)
        notes = (
            f"gIoU/cIoU: ReasonSeg conventions (empty union counts {empty:g}; failed parse counts I = 0, U = |GT|)",
            "SAT/RST/URSS: forms and constants fitted to PixelThink's tables (arXiv 2505.23727), not official",
        )
        return cls(tuple(rows), score, sat_value, rst_value, urss_value, notes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN kept as float NaN)."""
        return asdict(self)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """JSON text (NaN written as ``null``); also written to ``path`` when given."""
        text = json.dumps(_nan_to_none(self.to_dict()), indent=indent, allow_nan=False)
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
            budget = "-" if r.within_budget is None else _pct(r.within_budget)
            lines.append(
                f"{r.name:<8} {r.count:>6} {_pct(r.giou):>7} {_pct(r.ciou):>7} {r.failed_parses:>6} "
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


def _ordered_tiers(labels: npt.NDArray[Any], policy: TieredBudget | None) -> list[str]:
    present = list(dict.fromkeys(labels.tolist()))
    known = list((policy or TieredBudget()).to_config().names)
    return [t for t in known if t in present] + [t for t in present if t not in known]


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value
