"""The run folder's plots (matplotlib, Agg backend, PNG) and its short markdown report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_length_reward.adapters.scoring import LOGGED_COLUMNS
from adaptive_length_reward.errors import import_optional

__all__ = [
    "DEMO_TARGETS",
    "demo_targets",
    "plot_length_by_tier",
    "plot_training_curves",
    "record_iou",
    "summary_table",
    "tiers_marking",
    "write_report",
]

TIERS = ("easy", "medium", "hard")
#: Logged per-sample diagnostics (not reward components): the adapters' context columns and the accuracy's columns.
DIAGNOSTICS = frozenset(LOGGED_COLUMNS) | {"over_budget", "iou", "l1_distance", "point_distance", "json_found"}
BEFORE, AFTER = "#9aa5b1", "#d1495b"


def _pyplot() -> Any:
    matplotlib = import_optional("matplotlib", extra="example", purpose="The run's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def record_iou(record: Mapping[str, Any]) -> float:
    """An evaluation record's IoU: the one its pass counted (``"iou"``, under the pass's convention), else from
    its intersection and union (a failed parse has intersection 0; an empty union counts 1, as the library's
    gIoU does)."""
    if "iou" in record and record["iou"] is not None:
        return float(record["iou"])
    return 1.0 if record["union"] == 0 else record["intersection"] / record["union"]


def _by_tier(records: Sequence[Mapping[str, Any]], key: str) -> dict[str, list[float]]:
    counted = [r for r in records if r.get("counted", True)]  # seg_zero skips samples with an empty union
    if key == "iou":
        return {tier: [100 * record_iou(r) for r in counted if r["tier"] == tier] for tier in TIERS}
    return {tier: [float(r[key]) for r in counted if r["tier"] == tier] for tier in TIERS}


def _boxes(
    ax: Any, before: Mapping[str, list[float]], after: Mapping[str, list[float]], rng: np.random.Generator
) -> None:
    for t, tier in enumerate(TIERS):
        for offset, values, colour in ((-0.18, before[tier], BEFORE), (0.18, after[tier], AFTER)):
            if not values:
                continue
            x = t + offset
            ax.boxplot(
                [values],
                positions=[x],
                widths=0.3,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": colour, "alpha": 0.45, "edgecolor": colour},
                medianprops={"color": "black"},
                whiskerprops={"color": colour},
                capprops={"color": colour},
            )
            ax.scatter(x + rng.uniform(-0.08, 0.08, len(values)), values, s=12, color=colour, alpha=0.9, zorder=3)
    ax.set_xticks(range(len(TIERS)))
    counts = [f"{tier}\n(n={len(after[tier]) or len(before[tier])})" for tier in TIERS]
    ax.set_xticklabels(counts)
    ax.set_xlim(-0.6, len(TIERS) - 0.4)
    ax.grid(axis="y", alpha=0.3)


def plot_length_by_tier(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    length_unit: str,
    budgets: Mapping[str, tuple[float, float] | None],
    title: str,
) -> Path:
    """Three panels per difficulty tier, before (grey) vs after training (red): the reasoning tokens (the paper's
    ``#Token``), the length the reward penalises with each tier's budget as a dashed line, and the per-sample IoU
    with each tier's gIoU (their mean) as a diamond.

    Args:
        budgets: per tier ``(base, uncertainty_scale)`` (the line is drawn at the base), or ``None``: no budget.
    """
    plt = _pyplot()
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _boxes(axes[0], _by_tier(before, "reasoning_tokens"), _by_tier(after, "reasoning_tokens"), rng)
    axes[0].set_ylabel("reasoning tokens (<think> content)")
    axes[0].set_title("Reasoning length per tier")
    _boxes(axes[1], _by_tier(before, "length"), _by_tier(after, "length"), rng)
    unit = "whitespace words of the response" if length_unit == "words" else "reasoning tokens"
    axes[1].set_ylabel(f"reward length ({unit})")
    axes[1].set_title("Length the reward sees, and the budgets")
    for t, tier in enumerate(TIERS):
        budget = budgets.get(tier)
        if budget is None:
            axes[1].annotate("no budget", (t, 0.02), xycoords=("data", "axes fraction"), ha="center", fontsize=8)
            continue
        base, scale = budget
        label = f"B = {base:g}" + (f" + {scale:g} U" if scale else "")
        axes[1].hlines(base, t - 0.45, t + 0.45, colors="black", linestyles="dashed", linewidth=1.2)
        axes[1].annotate(label, (t + 0.45, base), fontsize=8, ha="right", va="bottom")
    ious_before, ious_after = _by_tier(before, "iou"), _by_tier(after, "iou")
    _boxes(axes[2], ious_before, ious_after, rng)
    for t, tier in enumerate(TIERS):
        for offset, values, colour in ((-0.18, ious_before[tier], BEFORE), (0.18, ious_after[tier], AFTER)):
            if values:
                axes[2].scatter(
                    [t + offset], [float(np.mean(values))], marker="D", s=45, color=colour, edgecolors="black", zorder=4
                )
                axes[2].annotate(
                    f"{np.mean(values):.1f}",
                    (t + offset, float(np.mean(values))),
                    fontsize=7,
                    ha="center",
                    va="bottom",
                    xytext=(0, 5),
                    textcoords="offset points",
                )
    axes[2].set_ylim(-3, 103)
    axes[2].set_ylabel("IoU % per sample (diamond: the tier's gIoU)")
    axes[2].set_title("Accuracy per tier (segmenter on the policy's prompts)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in (BEFORE, AFTER)]
    axes[0].legend(handles, ["before GRPO (after any warm start)", "after GRPO"], loc="upper left", fontsize=8)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r["step"], r[key]) for r in history if key in r]
    if not rows:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*rows)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if values.size < window or window <= 1:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: Path, *, reward_name: str, title: str) -> Path:
    """Reward, completion length and the reward's components per GRPO step (thin: raw; thick: running mean)."""
    plt = _pyplot()
    panels: list[tuple[str, list[tuple[str, str]]]] = [
        ("reward (group mean)", [("reward", "total reward")]),
        ("completion length (tokens)", [("completions/mean_length", "mean"), ("completions/max_length", "max")]),
        (
            "reward components",
            [
                (k, k.split("/", 1)[1])
                for k in sorted({key for row in history for key in row})
                if k.startswith(f"{reward_name}/") and k.split("/", 1)[1] not in DIAGNOSTICS and k.count("/") == 1
            ],
        ),
        (
            "context",
            [
                (f"{reward_name}/length", "reward length"),
                (f"{reward_name}/budget", "budget"),
                ("uncertainty/mean", "uncertainty x 100"),
            ],
        ),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    window = max(1, len(history) // 10)
    for ax, (label, keys) in zip(axes, panels):
        drawn = False
        for key, name in keys:
            steps, values = _series(history, key)
            if steps.size == 0:
                continue
            if key == "uncertainty/mean":
                values = 100 * values
            marker = "o" if steps.size < 15 else None
            line = ax.plot(steps, values, linewidth=0.8, alpha=0.45, marker=marker, markersize=3)[0]
            ax.plot(
                steps,
                _smooth(values, window),
                color=line.get_color(),
                linewidth=2.0,
                label=name,
                marker=marker,
                markersize=4,
            )
            drawn = True
        if label.startswith("reward ("):
            steps, std = _series(history, "reward_std")
            _, mean = _series(history, "reward")
            if steps.size:
                ax.fill_between(steps, mean - std, mean + std, alpha=0.12, color="C0", label="± std")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", color="grey")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(value: Any, percent: bool = False, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.{digits}f}" if percent else f"{value:.{digits}f}"


def _versions_line(versions: Mapping[str, Any] | None) -> list[str]:
    """``Versions: python 3.11.7, torch 2.13.0, ...`` (the numbers of a seeded run hold for these versions)."""
    if not versions:
        return []
    listed = ", ".join(f"{name} {version}" for name, version in versions.items() if version is not None)
    return ["", f"Versions: {listed}."]


def tiers_marking(metrics: Mapping[str, Any]) -> str | None:
    """``None`` when the evaluation tiers are valid; otherwise the note that marks the per-tier rows.

    Valid means every evaluated sample had a difficulty of its own from the training's source
    (``tiers_valid`` in ``metrics.json``, from the evaluation after GRPO and, where it ran, before).
    """
    runs = [run for run in (metrics.get("after"), metrics.get("before")) if run]
    valid = metrics.get("tiers_valid")
    if valid is None:  # a metrics dict from before tiers_valid existed: read the passes
        valid = all(run.get("tiers_valid", True) for run in runs)
    if valid:
        return None
    note = next((run["tiers_note"] for run in runs if run.get("tiers_note")), None)
    source = metrics.get("difficulty_source") or next((r.get("difficulty_source") for r in runs), None)
    return note or f"per-tier rows use a fallback difficulty for some samples (difficulty source {source!r})"


def summary_table(metrics: Mapping[str, Any]) -> str:
    """A fixed-width before/after table per tier for the terminal (percentages for gIoU and adherence); tier
    rows are starred and followed by a note when the tiers are not valid (:func:`tiers_marking`)."""
    before, after = metrics.get("before") or {}, metrics["after"]
    marking = tiers_marking(metrics)
    lines = [
        f"{'tier':<7}{'n':>4}{'gIoU % before':>15}{'gIoU % after':>14}{'#Token before':>15}{'#Token after':>14}"
        f"{'in budget % before':>20}{'in budget % after':>19}"
    ]
    for tier in ("all", *TIERS):
        n = after["samples"] if tier == "all" else after["tier_counts"].get(tier, 0)
        if not n:
            continue

        def pick(run: Mapping[str, Any], key: str, by_tier: str, tier: str = tier) -> Any:
            return run.get(key) if tier == "all" else (run.get(by_tier) or {}).get(tier)

        label = f"{tier}*" if marking and tier != "all" else tier
        lines.append(
            f"{label:<7}{n:>4}{_fmt(pick(before, 'giou', 'giou_by_tier'), True):>15}"
            f"{_fmt(pick(after, 'giou', 'giou_by_tier'), True):>14}"
            f"{_fmt((before.get('mean_reasoning_tokens') or {}).get(tier)):>15}"
            f"{_fmt(after['mean_reasoning_tokens'].get(tier)):>14}"
            f"{_fmt(pick(before, 'budget_adherence', 'budget_adherence_by_tier'), True):>20}"
            f"{_fmt(pick(after, 'budget_adherence', 'budget_adherence_by_tier'), True):>19}"
        )
    if marking:
        lines.append(f"* tiers not valid: {marking}")
    return "\n".join(lines)


#: What the CPU demo (``make demo``) is meant to show, checked on every run by :func:`demo_targets`.
DEMO_TARGETS = {
    "parse_rate_after": 0.8,
    "giou_after": 0.30,
    "giou_drop_points": 2.0,
    "easy_tokens_ratio": 0.6,
    "total_s": 300.0,
}


def _ratio(after: float | None, before: float | None) -> float | None:
    return None if after is None or not before else after / before


def demo_targets(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The demo's targets, each ``{"target", "measured", "met"}`` (``met`` is ``None`` where it cannot be told,
    e.g. without an evaluation before GRPO): parse rate after >= 80 %; gIoU after >= 30 %; gIoU after not more
    than 2 points below the GRPO start (the paired 95 % bootstrap interval is reported beside it); every parsed
    answer segmented once (``segmenter_calls == parsed_answers``); easy-tier reasoning tokens after <= 60 % of the
    GRPO start, the hard tier reduced less than the easy tier; the whole run under 5 minutes."""
    before, after, t = metrics.get("before") or {}, metrics["after"], DEMO_TARGETS
    tokens_b, tokens_a = before.get("mean_reasoning_tokens") or {}, after.get("mean_reasoning_tokens") or {}
    easy = _ratio(tokens_a.get("easy"), tokens_b.get("easy"))
    hard = _ratio(tokens_a.get("hard"), tokens_b.get("hard"))
    change = metrics.get("giou_change")
    interval = metrics.get("giou_change_ci95")
    calls = [(run.get("segmenter_calls"), run.get("parsed_answers")) for run in (before, after) if run]
    total = (metrics.get("timings") or {}).get("total_s")

    def row(target: str, measured: str, met: bool | None) -> dict[str, Any]:
        return {"target": target, "measured": measured, "met": met}

    return [
        row(
            f"parse rate after >= {t['parse_rate_after']:.0%}",
            f"{_fmt(after.get('parse_rate'), True)} %",
            None if after.get("parse_rate") is None else after["parse_rate"] >= t["parse_rate_after"],
        ),
        row(
            f"gIoU after >= {t['giou_after']:.0%}",
            f"{_fmt(after.get('giou'), True)} %",
            None if after.get("giou") is None else after["giou"] >= t["giou_after"],
        ),
        row(
            f"gIoU after >= GRPO start - {t['giou_drop_points']:g} points",
            f"{_fmt(change, True)} points (95 % CI {_fmt((interval or [None])[0], True)} .. "
            f"{_fmt((interval or [None, None])[1], True)})",
            None if change is None else 100 * change >= -t["giou_drop_points"],
        ),
        row(
            "segmenter calls == parsed answers",
            "; ".join(f"{c} calls / {p} parsed" for c, p in calls),
            all(c == p for c, p in calls) if calls else None,
        ),
        row(
            f"easy-tier tokens after <= {t['easy_tokens_ratio']:.0%} of the GRPO start",
            f"{_fmt(easy, True)} %",
            None if easy is None else easy <= t["easy_tokens_ratio"],
        ),
        row(
            "hard tier reduced less than the easy tier",
            f"hard kept {_fmt(hard, True)} %, easy {_fmt(easy, True)} %",
            None if easy is None or hard is None else hard > easy,
        ),
        row(
            f"whole run under {t['total_s'] / 60:g} minutes",
            f"{_fmt(total)} s",
            None if total is None else total < t["total_s"],
        ),
    ]


def _targets_section(metrics: Mapping[str, Any]) -> list[str]:
    targets = metrics.get("targets")
    if not targets:
        return []
    missed = [t["target"] for t in targets if t["met"] is False]
    lines = [
        "## Targets",
        "",
        f"> **Missed:** {'; '.join(missed)}." if missed else "> Every target with a measurement was met.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [
        f"| {t['target']} | {t['measured']} | {({True: 'yes', False: '**NO**'}).get(t['met'], '-')} |" for t in targets
    ]
    return [*lines, ""]


def write_report(path: Path, metrics: Mapping[str, Any], *, plots: Sequence[Path], notes: Sequence[str]) -> Path:
    """A short markdown summary of ``metrics.json``: before/after per tier, timings, plots, caveats."""
    before, after = metrics.get("before") or {}, metrics["after"]
    marking = tiers_marking(metrics)
    lines = [
        f"# PixelThink GRPO run: {metrics['run']['name']}",
        "",
        f"Policy `{metrics['run']['policy']}`, segmenter `{metrics['run']['segmenter']}`, data "
        f"`{metrics['run']['data']}`; length reward `{metrics['config']['reward']['length_reward']}`, difficulty "
        f"`{metrics['config']['reward']['difficulty']}`, uncertainty `{metrics['config']['reward']['uncertainty']}`; "
        f"GRPO steps: {metrics['train_steps']}, on {metrics['run']['device']}.",
        *_versions_line(metrics["run"].get("versions")),
        "",
        *_targets_section(metrics),
        "## Accuracy and efficiency (evaluation set, greedy decoding)",
        "",
        *([f"> **Tiers not valid** (rows marked *): {marking}.", ""] if marking else []),
        "| tier | n | gIoU % before | gIoU % after | cIoU % after | #Token before | #Token after | "
        "in budget % before | in budget % after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tier in ("all", *TIERS):
        count = after["samples"] if tier == "all" else after["tier_counts"].get(tier, 0)
        if not count:
            continue
        g_b = before.get("giou") if tier == "all" else (before.get("giou_by_tier") or {}).get(tier)
        g_a = after["giou"] if tier == "all" else after["giou_by_tier"].get(tier)
        c_a = after["ciou"] if tier == "all" else after["ciou_by_tier"].get(tier)
        t_b = (before.get("mean_reasoning_tokens") or {}).get(tier)
        t_a = after["mean_reasoning_tokens"].get(tier)
        b_b = (
            before.get("budget_adherence")
            if tier == "all"
            else (before.get("budget_adherence_by_tier") or {}).get(tier)
        )
        b_a = after["budget_adherence"] if tier == "all" else after["budget_adherence_by_tier"].get(tier)
        label = f"{tier}*" if marking and tier != "all" else tier
        lines.append(
            f"| {label} | {count} | {_fmt(g_b, True)} | {_fmt(g_a, True)} | {_fmt(c_a, True)} | "
            f"{_fmt(t_b)} | {_fmt(t_a)} | {_fmt(b_b, True)} | {_fmt(b_a, True)} |"
        )
    t = metrics["timings"]
    ev = after["timings"]
    lines += [
        "",
        "## Where the time went (wall clock)",
        "",
        "| stage | seconds | per unit |",
        "|---|---|---|",
        f"| supervised warm start (tiny policy only) | {_fmt(t.get('warmup_s'), digits=2)} | - |",
        f"| GRPO training | {_fmt(t.get('train_s'), digits=2)} | median step "
        f"{_fmt(t.get('train_step_s_median'), digits=3)} s |",
        f"| of which generation | {_fmt(t.get('generation_s'), digits=2)} | - |",
        f"| of which uncertainty (after sampling) | {_fmt(t.get('uncertainty_s'), digits=2)} | "
        f"{_fmt(t.get('uncertainty_share'), True)} % of training |",
        f"| of which reward computation | {_fmt(t.get('reward_s'), digits=3)} | "
        f"{_fmt(t.get('reward_share'), True, 2)} % of training |",
        f"| evaluation prefill | {_fmt(ev['prefill_s'], digits=2)} | {_fmt(ev['prefill_ms_per_sample'])} ms / sample |",
        f"| evaluation decode | {_fmt(ev['decode_s'], digits=2)} | {_fmt(ev['decode_ms_per_sample'])} ms / sample, "
        f"{_fmt(ev['decode_tokens_per_s'])} tokens/s |",
        f"| evaluation SAM (policy prompts) | {_fmt(ev['sam_s'], digits=2)} | "
        f"{_fmt(ev['sam_ms_per_call'])} ms / call |",
        f"| evaluation SAM (ground-truth prompts) | {_fmt(ev['sam_oracle_s'], digits=2)} | gIoU "
        f"{_fmt(after.get('sam_oracle_giou'), True)} % (ceiling) |",
        f"| whole run | {_fmt(t.get('total_s'), digits=1)} | - |",
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.relative_to(path.parent).as_posix()})" for p in plots],
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
