"""PixelThink's baselines in one command: Seg-Zero, +Prompt, L1-Exact, L1-Max and PixelThink, same data, same seeds.

Each variant is one run of the worked example (``examples/pixelthink_grpo.py``) with its reward; everything else is
shared: the data, the seed, the training settings, the evaluation (and, in tiny mode, the warm-started policy:
the first variant warm-starts it, the others start from its saved weights). Writes, under ``--output-dir``
(default ``runs/baselines``):

- ``baselines.json``: per variant (``variants``, keyed ``seg_zero``, ``prompt``, ``l1_exact``, ``l1_max``,
  ``pixelthink``) ``mean_reasoning_tokens`` (all and per tier), ``giou``, ``ciou``, ``rscore``, ``urss``,
  ``latency_s_per_sample`` (generation), ``end_to_end_s_per_sample`` (generation + segmenter), ``tokens_per_s``,
  and the reductions against Seg-Zero; with the thinking cap, the same numbers for each variant's capped evaluation;
- ``report.md``: the table in the shape of PixelThink's Table 1 (#Token / gIoU / cIoU / URSS, per tier);
- ``pareto.png``: gIoU against reasoning tokens, every variant (capped and not), the Pareto front drawn;
- ``<variant>/``: each variant's own run folder (metrics.json, report.md, plots).

CPU tiny mode (``make baselines``)::

    python examples/pixelthink_baselines.py --tiny

GPU, local checkpoints (the same command; every flag after ``--`` goes to each variant's run)::

    python examples/pixelthink_baselines.py -- --policy /ckpt/Qwen2.5-VL-7B-Instruct --segmenter /ckpt/sam2

The variants (PixelThink Table 1; the official code's reward terms for Seg-Zero):

=========  ==========================================================================================
seg_zero   Seg-Zero's reward: format + accuracy terms, no length term
prompt     Seg-Zero's reward, the question asks for concise reasoning (``prompts.CONCISE_INSTRUCTION``)
l1_exact   + L1-Exact (LCPO, arXiv 2503.04697): ``c - alpha |B - L|``, one target length for every sample
l1_max     + L1-Max: ``c * clip(alpha (B - L) + delta, 0, 1)``
pixelthink PixelThink: accuracy x the soft length penalty with a budget from difficulty and uncertainty
=========  ==========================================================================================
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pixelthink_grpo  # the worked example, beside this file

log = logging.getLogger("pixelthink.baselines")

#: Variant name -> the example's flags that make it (the rest of the command line is shared).
VARIANTS: dict[str, list[str]] = {
    "seg_zero": ["--length-reward", "none"],
    "prompt": ["--length-reward", "none", "--prompt", "concise"],
    "l1_exact": ["--length-reward", "l1-exact"],
    "l1_max": ["--length-reward", "l1-max"],
    "pixelthink": ["--length-reward", "pixelthink"],
}
#: Flags the driver sets itself for every variant.
_OWNED = ("--output-dir", "--length-reward", "--prompt", "--init-policy")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        usage="%(prog)s [--tiny] [--output-dir DIR] [--variants A,B,...] [options] [-- EXAMPLE FLAGS]",
    )
    p.add_argument("--tiny", action="store_true", help="CPU tiny mode (the example's --tiny)")
    p.add_argument("--output-dir", default="runs/baselines", help="where baselines.json, report.md, pareto.png go")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {', '.join(VARIANTS)} (seg_zero first: the reductions are against it)",
    )
    p.add_argument(
        "--thinking-cap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also evaluate every trained variant with the inference-time thinking cap "
        "(PixelThink's budget applied at generation)",
    )
    p.add_argument(
        "--cap-sweep",
        default="0.5,2",
        help="with the thinking cap: more budget factors for PixelThink's variant (a sweep of the "
        "accuracy-tokens trade-off, drawn in pareto.png); empty for none",
    )
    p.add_argument(
        "--rscore",
        choices=("overlap", "judge", "none"),
        default=None,
        help="RScore source: overlap = the reference-overlap stand-in (not an LLM judge; tiny default), "
        "judge = an LLM judge at --rscore-url (GPU default), none = no RScore/URSS",
    )
    p.add_argument("--rscore-url", help="OpenAI-compatible endpoint of the RScore judge (--rscore judge)")
    p.add_argument("--rscore-model", help="served model name of the RScore judge")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], argparse.ArgumentParser]:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants: expected names from {', '.join(VARIANTS)}, got {args.variants!r}")
    if len(set(names)) != len(names):
        parser.error(f"--variants: expected each name once, got {args.variants!r}")
    args.variant_names = names
    try:
        factors = [float(v) for v in args.cap_sweep.split(",") if v.strip()]
    except ValueError:
        factors = [-1.0]
    if not all(f > 0 for f in factors):
        parser.error(f"--cap-sweep: expected comma-separated numbers > 0, got {args.cap_sweep!r}")
    owned = [f for f in extra if f.split("=", 1)[0] in _OWNED]
    if owned:
        parser.error(f"flags after --: {', '.join(owned)} are set per variant by this script; drop them")
    if not args.tiny and "--tiny" not in extra and "--policy" not in " ".join(extra):
        parser.error("expected --tiny (CPU) or, after --, the example's --policy DIR --segmenter DIR")
    if args.tiny and "--tiny" not in extra:
        extra = ["--tiny", *extra]
    args.tiny = "--tiny" in extra
    args.example_flags = extra
    if args.rscore is None:
        args.rscore = "overlap" if args.tiny else ("judge" if args.rscore_url or args.rscore_model else "none")
    if args.rscore == "judge" and not (args.rscore_url and args.rscore_model):
        parser.error(
            "--rscore judge: expected --rscore-url (an OpenAI-compatible endpoint) and --rscore-model "
            "(its served model name)"
        )
    # the example checks its own flags now, before any variant runs (exit 2 with its usage on a bad one)
    pixelthink_grpo.parse_args([*extra, "--output-dir", str(Path(args.output_dir) / "check")])
    return args, extra, parser


def run_variant(
    name: str, extra: list[str], out: Path, *, init: Path | None, thinking_cap: bool, progress: bool, sweep: str = ""
) -> dict[str, Any]:
    """One variant: the example's ``main`` with the variant's flags; returns its metrics."""
    argv = [*extra, *VARIANTS[name], "--output-dir", str(out / name)]
    if init is not None:
        argv += ["--init-policy", str(init), "--warmup-steps", "0"]
    if thinking_cap:
        argv.append("--eval-thinking-cap")
        if sweep:
            argv += ["--thinking-cap-scales", f"1,{sweep}"]
    if not progress:
        argv.append("--no-progress")
    log.info("variant %s: %s", name, " ".join(argv))
    return pixelthink_grpo.main(argv)


def _eval_row(summary: dict[str, Any], *, rscore: float | None) -> dict[str, Any]:
    """The table's numbers for one evaluation pass (the example's ``after`` summary)."""
    timings = summary["timings"]
    n = max(1, int(summary["samples"]))
    generation = timings["prefill_s"] + timings["decode_s"]
    tokens = summary["mean_reasoning_tokens"]
    giou = summary["giou"]
    row: dict[str, Any] = {
        "mean_reasoning_tokens": tokens,
        "giou": giou,
        "giou_ci95": summary["giou_ci95"],
        "ciou": summary["ciou"],
        "giou_by_tier": summary["giou_by_tier"],
        "ciou_by_tier": summary["ciou_by_tier"],
        "parse_rate": summary["parse_rate"],
        "latency_s_per_sample": generation / n,
        "end_to_end_s_per_sample": (generation + timings["sam_s"]) / n,
        "tokens_per_s": timings["generated_tokens"] / timings["decode_s"] if timings["decode_s"] else None,
        "rscore": rscore,
    }
    row.update(_combined_scores(giou, rscore, tokens["all"]))
    return row


def _combined_scores(giou: float | None, rscore: float | None, mean_tokens: float | None) -> dict[str, Any]:
    """SAT, RST and URSS (PixelThink's efficiency scores; fitted forms, see ``adaptive_length_reward.rscore``)."""
    from adaptive_length_reward.metrics import sat
    from adaptive_length_reward.rscore import efficiency_scores

    if giou is None or mean_tokens is None or not mean_tokens > 0:
        return {"sat": None, "rst": None, "urss": None}
    if rscore is None:
        return {"sat": sat(giou, mean_tokens), "rst": None, "urss": None}
    return dict(efficiency_scores(rscore=rscore, giou=giou, mean_tokens=mean_tokens))


def _reductions(rows: dict[str, dict[str, Any]], base: str = "seg_zero") -> None:
    """Token and latency reduction of each row against ``base`` (in place), as fractions."""
    if base not in rows:
        return
    ref = rows[base]
    for row in rows.values():
        for key, out in (
            ("latency_s_per_sample", "latency_reduction"),
            ("end_to_end_s_per_sample", "end_to_end_reduction"),
        ):
            row[out] = 1 - row[key] / ref[key] if ref[key] else None
        a, b = row["mean_reasoning_tokens"]["all"], ref["mean_reasoning_tokens"]["all"]
        row["token_reduction"] = 1 - a / b if a is not None and b else None


def _notes(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    if args.tiny:
        notes.append(
            "tiny run: a random-weight Qwen2.5-VL after a supervised warm start; it learns the answer format "
            "and what the length terms do to reasoning length, not where the target is (gIoU is that of a few "
            "lucky boxes for every variant: docs/example.md), so compare lengths, parse rates and latency "
            "here, and accuracy only on a GPU run with real checkpoints"
        )
        notes.append(
            "+Prompt on the tiny policy: it never learned to follow instructions, so the concise instruction "
            "is just more prompt text to it; on a real instruction-tuned model it is the strong baseline "
            "PixelThink reports"
        )
    if args.rscore == "overlap":
        notes.append(
            "RScore from the reference-overlap stand-in (token F1 against the reference reasoning, x 10), "
            "not an LLM judge: RST and URSS are comparable between these variants only"
        )
    elif args.rscore == "none":
        notes.append("no RScore (--rscore none): RST and URSS not reported")
    if not all(runs[n]["tiers_valid"] for n in runs):
        notes.append(
            "some samples had no difficulty and were tiered at the fallback: the per-tier rows are marked not valid"
        )
    return notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every variant and write baselines.json, report.md and pareto.png; returns baselines.json's content."""
    args, extra, _ = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    runs: dict[str, dict[str, Any]] = {}
    init: Path | None = None
    for name in args.variant_names:
        runs[name] = run_variant(
            name,
            extra,
            out,
            init=init,
            thinking_cap=args.thinking_cap,
            progress=progress,
            sweep=args.cap_sweep if name == "pixelthink" else "",
        )
        reference = out / name / "reference-policy"
        if args.tiny and init is None and (reference / "config.json").is_file():
            init = reference  # the warm-started policy: the next variants start from it
    from pixelthink.baselines import rscores, write_outputs

    scores = rscores(runs, out, args)
    variants = {name: _eval_row(runs[name]["after"], rscore=scores.get(name, {}).get("after")) for name in runs}
    for name, row in variants.items():
        row["rscore_method"] = scores.get(name, {}).get("method")
    capped = {
        name: _eval_row(runs[name]["thinking_cap"]["after"], rscore=scores.get(name, {}).get("capped"))
        for name in runs
        if runs[name].get("thinking_cap")
    }
    sweep = [
        {
            "variant": name,
            "scale": point["scale"],
            **_eval_row(point["after"], rscore=None),
            "capped_share": point["cap"]["capped_share"],
        }
        for name in runs
        if len(runs[name].get("thinking_cap_sweep") or []) > 1
        for point in runs[name]["thinking_cap_sweep"]
    ]
    _reductions(variants)
    if capped:
        for name, row in capped.items():
            row["cap"] = runs[name]["thinking_cap"]["cap"]
        _reductions({**capped, "seg_zero": variants["seg_zero"]} if "seg_zero" in variants else capped)
    first = runs[args.variant_names[0]]
    result = {
        "variants": variants,
        "thinking_cap": capped,
        "thinking_cap_sweep": sweep,
        "rscore_source": args.rscore,
        "run": {
            **first["run"],
            "variants": args.variant_names,
            "flags": extra,
            "train_steps": first["train_steps"],
            "seed_shared": True,
        },
        "timings": {
            "total_s": time.perf_counter() - started,
            "per_variant_s": {n: runs[n]["timings"]["total_s"] for n in runs},
            "median_variant_s": statistics.median(runs[n]["timings"]["total_s"] for n in runs),
        },
        "tiers_valid": all(runs[n]["tiers_valid"] for n in runs),
        "notes": _notes(args, runs),
    }
    write_outputs(result, out)
    if progress:
        print((out / "report.md").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main()
