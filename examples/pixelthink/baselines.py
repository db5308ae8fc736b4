"""The baselines run's outputs: RScore per variant, the Table-1-shaped report and the accuracy-vs-tokens plot.

Used by ``examples/pixelthink_baselines.py``; see its docstring for the variants.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.spans import extract_reasoning

__all__ = ["LABELS", "TIERS", "pareto_front", "plot_pareto", "report_markdown", "rscores", "write_outputs"]

log = logging.getLogger("pixelthink.baselines")

LABELS = {
    "seg_zero": "Seg-Zero",
    "prompt": "+Prompt",
    "l1_exact": "+L1-Exact",
    "l1_max": "+L1-Max",
    "pixelthink": "PixelThink",
}
TIERS = ("easy", "medium", "hard")


def _read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rscores(runs: Mapping[str, Mapping[str, Any]], out: Path, args: Any) -> dict[str, dict[str, Any]]:
    """Mean RScore (0..10) of each variant's evaluated reasoning, uncapped (``after``) and capped (``capped``),
    and ``method`` (which scorer gave it).

    ``args.rscore``: ``"overlap"`` (the reference-overlap stand-in, not an LLM judge), ``"judge"`` (an LLM judge
    at ``args.rscore_url``, cached in ``out/rscore_cache.sqlite`` so a rerun asks nothing twice) or ``"none"``
    (no RScore: URSS is not reported).
    """
    if args.rscore == "none":
        return {}
    from adaptive_length_reward.rscore import ReferenceOverlapRScore, RScoreJudge, rscore_summary

    references = _references(args)
    if args.rscore == "judge":
        from adaptive_length_reward.difficulty import OpenAICompatibleBackend

        scorer: Any = RScoreJudge(
            OpenAICompatibleBackend(base_url=args.rscore_url, model=args.rscore_model or ""),
            cache=out / "rscore_cache.sqlite",
        )
    else:
        scorer = ReferenceOverlapRScore()
    result: dict[str, dict[str, Any]] = {}
    for name in runs:
        result[name] = {}
        for key, file in (("after", "eval_after.jsonl"), ("capped", "eval_capped.jsonl")):
            path = out / name / file
            if not path.is_file():
                continue
            records = _read_records(path)
            items = [(extract_reasoning(r["completion"]), *references[r["id"]]) for r in records]
            summary = rscore_summary(scorer.score_many(items))
            result[name][key] = None if math.isnan(summary["mean"]) else float(summary["mean"])
            result[name]["method"] = scorer.method
            log.info("RScore %s/%s: %s (%s)", name, key, summary, scorer.method)
    return result


def _references(args: Any) -> dict[str, tuple[str, str]]:
    """Sample id -> (short, long) reference reasoning of the evaluation data (the example's own loader)."""
    import pixelthink_grpo

    resolved = pixelthink_grpo.parse_args([*args.example_flags, "--output-dir", str(Path(args.output_dir) / "check")])
    samples, _ = pixelthink_grpo.load_samples(
        resolved.eval_data, count=resolved.eval_samples, seed=resolved.seed + 1, start=0, args=resolved
    )
    missing = [s.id for s in samples if not (s.reasoning or s.reasoning_long)]
    if missing:
        raise ValueError(
            f"RScore: the evaluation data has no reference reasoning for {len(missing)} of "
            f"{len(samples)} samples (first: {missing[0]!r}); use --rscore none or data with "
            "reasoning / reasoning_long"
        )
    return {s.id: (s.reasoning or s.reasoning_long, s.reasoning_long or s.reasoning) for s in samples}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal tokens and higher or equal gIoU, one strictly),
    ordered by tokens."""
    front = []
    for i, (t, g) in enumerate(points):
        dominated = any((t2 <= t and g2 >= g) and (t2 < t or g2 > g) for j, (t2, g2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(result: Mapping[str, Any], path: Path) -> Path:
    """gIoU (%) against mean reasoning tokens, every variant and its capped evaluation; the Pareto front drawn."""
    plt = import_optional("matplotlib.pyplot", extra="example", purpose="The baselines plot")
    points: list[tuple[float, float]] = []
    labels: list[str] = []
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colours = {name: f"C{i}" for i, name in enumerate(LABELS)}  # one colour per variant, capped or not
    for key, marker, suffix, offset in (("variants", "o", "", (6, 4)), ("thinking_cap", "^", " + cap", (6, -11))):
        # variants that end on the same point (e.g. a length term too weak to move anything) share one label
        at: dict[tuple[float, float], list[str]] = {}
        for name, row in result.get(key, {}).items():
            tokens, giou = row["mean_reasoning_tokens"]["all"], row["giou"]
            if tokens is None or giou is None:
                continue
            points.append((tokens, 100 * giou))
            labels.append(LABELS[name] + suffix)
            ax.scatter([tokens], [100 * giou], marker=marker, s=60, zorder=3, color=colours[name])
            at.setdefault((round(tokens, 2), round(100 * giou, 2)), []).append(name)
        for (tokens, giou), names in at.items():
            ax.annotate(
                " = ".join(LABELS[name] for name in names) + suffix,
                (tokens, giou),
                textcoords="offset points",
                xytext=offset,
                fontsize=8,
                color=colours[names[0]] if len(names) == 1 else "black",
            )
    sweep = sorted(result.get("thinking_cap_sweep", []), key=lambda r: r["scale"])
    if sweep:
        xs = [r["mean_reasoning_tokens"]["all"] for r in sweep]
        ys = [100 * r["giou"] for r in sweep]
        name = sweep[0]["variant"]
        ax.plot(
            xs,
            ys,
            ":",
            marker="x",
            color=colours[name],
            zorder=2,
            label=f"{LABELS[name]}, cap x " + ", ".join(f"{r['scale']:g}" for r in sweep),
        )
        for r, x, y in zip(sweep, xs, ys):
            points.append((x, y))
            labels.append(f"{LABELS[name]} cap x{r['scale']:g}")
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot(
            [points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, zorder=2, label="Pareto front"
        )
    if len(front) > 1 or sweep:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("mean reasoning tokens (evaluation)")
    ax.set_ylabel("gIoU (%)")
    ax.set_title("Accuracy vs reasoning length: baselines (o) and the thinking cap (^)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: Any, digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
    return "n/a" if value is None else f"{scale * value:.{digits}f}{unit}"


def _table(rows: Mapping[str, Mapping[str, Any]], suffix: str = "") -> list[str]:
    lines = [
        "| variant | #Token | gIoU | cIoU | URSS | RScore | parse | latency s/sample | end-to-end s/sample | "
        "tokens/s | token red. | latency red. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {LABELS[name]}{suffix} | {_fmt(row['mean_reasoning_tokens']['all'])} | {_fmt(row['giou'], 2, 100)} | "
            f"{_fmt(row['ciou'], 2, 100)} | {_fmt(row['urss'])} | {_fmt(row['rscore'])} | "
            f"{_fmt(row['parse_rate'], 1, 100, ' %')} | {_fmt(row['latency_s_per_sample'], 3)} | "
            f"{_fmt(row['end_to_end_s_per_sample'], 3)} | {_fmt(row['tokens_per_s'], 1)} | "
            f"{_fmt(row.get('token_reduction'), 1, 100, ' %')} | {_fmt(row.get('latency_reduction'), 1, 100, ' %')} |"
        )
    return lines


def _tier_table(rows: Mapping[str, Mapping[str, Any]], suffix: str = "") -> list[str]:
    head = " | ".join(f"{t} #Token | {t} gIoU" for t in TIERS)
    lines = [f"| variant | {head} |", "|---|" + "---|" * (2 * len(TIERS))]
    for name, row in rows.items():
        cells = " | ".join(
            f"{_fmt(row['mean_reasoning_tokens'].get(t))} | {_fmt(row['giou_by_tier'].get(t), 2, 100)}" for t in TIERS
        )
        lines.append(f"| {LABELS[name]}{suffix} | {cells} |")
    return lines


def report_markdown(result: Mapping[str, Any]) -> str:
    """report.md: PixelThink's Table 1 shape (#Token / gIoU / cIoU / URSS), per tier, latency, the cap."""
    run = result["run"]
    lines = [
        f"# Baselines: {run['policy']} on {run['eval_data']}",
        "",
        f"{len(result['variants'])} variants, each {run['train_steps']} GRPO steps from the same start, the same "
        f"data and seed; evaluation on {run['eval_samples']} held-out samples, segmenter {run['segmenter']}, "
        f"{run['device']}. Total {result['timings']['total_s']:.0f} s.",
        "",
        "## Table (PixelThink Table 1 shape)",
        "",
        *_table(result["variants"]),
        "",
        "## Per difficulty tier",
        "",
        *_tier_table(result["variants"]),
        "",
    ]
    if result.get("thinking_cap"):
        lines += [
            "## Inference-time thinking cap (PixelThink's budget applied at generation)",
            "",
            *_table(result["thinking_cap"], " + cap"),
            "",
            *_tier_table(result["thinking_cap"], " + cap"),
            "",
        ]
    if result.get("thinking_cap_sweep"):
        lines += [
            "## Thinking-cap sweep (budgets x factor)",
            "",
            "| variant | factor | #Token | gIoU | cIoU | parse | capped | latency s/sample |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(result["thinking_cap_sweep"], key=lambda r: r["scale"]):
            lines.append(
                f"| {LABELS[r['variant']]} | {r['scale']:g} | {_fmt(r['mean_reasoning_tokens']['all'])} | "
                f"{_fmt(r['giou'], 2, 100)} | {_fmt(r['ciou'], 2, 100)} | "
                f"{_fmt(r['parse_rate'], 1, 100, ' %')} | {_fmt(r['capped_share'], 1, 100, ' %')} | "
                f"{_fmt(r['latency_s_per_sample'], 3)} |"
            )
        lines.append("")
    lines += ["![accuracy vs tokens](pareto.png)", "", "## Notes", ""]
    lines += [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """baselines.json, report.md and pareto.png in ``out``."""
    plot_pareto(result, out / "pareto.png")
    (out / "baselines.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(result), encoding="utf-8")
