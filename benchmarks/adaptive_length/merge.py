"""Add variants run later to the committed results, after checking that the two runs are the same experiment.

    python -m benchmarks.adaptive_length.run --seed 0 --no-sweeps --no-replicates \\
        --variants none,grpo_lead,laser_d,hapo,adaptthink --out /tmp/alr-methods
    python -m benchmarks.adaptive_length.merge /tmp/alr-methods/adaptive_length.json

The later run trains the same SFT policy again (same seed, settings and code path) and ``none`` again. The merge
refuses unless the experiment's settings, the SFT policy's evaluation and uncertainty calibration, and ``none``'s
evaluation are identical to the committed run's, so every number of the added variants (reductions and accuracy
changes against ``none``, their bootstrap intervals) is what the full run would have written. Wall-clock per step
of the added variants is relative to the later run's own ``none`` (the machine's load differs between runs). The
added runs are recorded under ``added_runs``; the markdown and plots are rewritten from the merged JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import STEM, _json_ready, _markdown, _plots, target_verdict
from .variants import MAIN_VARIANTS

__all__ = ["main", "merge_results"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "experiments"
#: Settings that may differ between the committed run and a later partial run (what was run, not how).
_RUN_SELECTION = ("sweeps", "replicate_seed_offsets", "replicate_variants", "variants")
_COMPARED = ("mean_reasoning_tokens", "accuracy", "format_rate", "mean_rechecks", "direct_rate", "count")


def _tiers(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t: {k: entry[t].get(k) for k in _COMPARED} for t in ("easy", "medium", "hard", "all")}


def _check_same_experiment(base: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise ValueError naming the first difference that makes the runs incomparable."""
    if new["seed"] != base["seed"] or new["quick"] != base["quick"]:
        raise ValueError(f"seed/quick: expected {base['seed']}/{base['quick']}, got {new['seed']}/{new['quick']}")
    settings = {k: v for k, v in base["config"].items() if k not in _RUN_SELECTION}
    for key, value in settings.items():
        got = new["config"].get(key)
        if got != value:
            raise ValueError(f"config.{key}: expected the committed {value!r:.200}, got {got!r:.200}")
    if _tiers(new["sft"]) != _tiers(base["sft"]) or new["sft"]["uncertainty"] != base["sft"]["uncertainty"]:
        raise ValueError("sft: the later run's SFT policy evaluates differently (not the same policy)")
    if "none" not in new["variants"]:
        raise ValueError("variants: the later run must include 'none' (every comparison is against it)")
    if _tiers(new["variants"]["none"]) != _tiers(base["variants"]["none"]):
        raise ValueError("variants.none: the later run's 'none' evaluates differently from the committed one")


def merge_results(base: dict[str, Any], new: dict[str, Any], *, command: str | None = None) -> dict[str, Any]:
    """``base`` with the variants of ``new`` other than ``none`` added (after :func:`_check_same_experiment`)."""
    _check_same_experiment(base, new)
    added = [name for name in new["variants"] if name != "none"]
    merged = json.loads(json.dumps(base))
    for name in added:
        merged["variants"][name] = new["variants"][name]
    merged["main_variants"] = [v for v in MAIN_VARIANTS if v in merged["variants"]]
    merged["target"] = target_verdict(merged["variants"])
    runs = [r for r in merged.get("added_runs", []) if set(r["variants"]) != set(added)]
    runs.append(
        {
            "command": command or new["command"],
            "variants": added,
            "total_wall_s": new["total_wall_s"],
            "environment": new["environment"],
            "checked_identical": "settings, SFT evaluation and uncertainty calibration, and none's evaluation",
        }
    )
    merged["added_runs"] = runs
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.adaptive_length.merge``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adaptive_length.merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("new", type=Path, help="adaptive_length.json of the later run")
    parser.add_argument("--into", type=Path, default=DOCS / f"{STEM}.json", help="the committed results")
    parser.add_argument("--command", default=None, help="the later run's command as it should be recorded")
    args = parser.parse_args(argv)
    base = json.loads(args.into.read_text(encoding="utf-8"))
    new = json.loads(args.new.read_text(encoding="utf-8"))
    merged = merge_results(base, new, command=args.command)
    args.into.write_text(json.dumps(_json_ready(merged), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    plots = _plots(merged, args.into.parent)
    (args.into.parent / f"{STEM}.md").write_text(_markdown(merged, [p.name for p in plots]), encoding="utf-8")
    print(f"added {', '.join(merged['added_runs'][-1]['variants'])} to {args.into}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
