"""Segmentation reward throughput, side by side in one run: the PixelThink / Seg-Zero presets vs a per-sample
implementation that mirrors the official code's structure.

The per-sample side (``tests/test_segmentation_official.py``, checked against the official file on 20,000
cases) scores one completion at a time as ``seg_pixelthink_compute_score`` does: five term functions, each
re-running its regexes and ``json.loads``, then ``len(text.split())`` and the tiered budget. Both sides get the
same realistic completions (valid, long, truncated, malformed) in GRPO groups of 8 sharing a ground truth, and
must agree exactly. Timings alternate between the two sides; the script prints medians, ratios and the number
of mismatching scores, and writes JSON.

    python benchmarks/rewards.py [--n 4096] [--repeats 15] [--out benchmarks/results/rewards.json]
    python benchmarks/rewards.py --quick     # smoke check: 1,024 completions, 3 repeats -> rewards_quick.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_segmentation_official import (  # noqa: E402
    MALFORMED,
    answer_json,
    gt_string,
    random_truth,
    ref_accuracy,
    ref_pixelthink,
    wrap,
)

from adaptive_length_reward import RewardBatch  # noqa: E402
from adaptive_length_reward.presets import pixelthink, seg_zero  # noqa: E402


def realistic_cases(n: int, seed: int = 0, group: int = 8) -> dict[str, list[Any]]:
    """GRPO-like batches: 70% valid answers near the truth, 10% long reasoning (300-900 words), 10% truncated
    at a random character, 10% malformed (broken or nested JSON, NaN, strings, missing keys, no answer)."""
    rng = np.random.default_rng(seed)
    kinds: list[str] = []
    out: dict[str, list[Any]] = {"completions": [], "ground_truth": [], "difficulty": [], "uncertainty": []}
    while len(out["completions"]) < n:
        box, p1, p2 = random_truth(rng)
        truth = gt_string(box, p1, p2)
        difficulty = float(np.round(rng.uniform(1, 10), 2))
        for _ in range(group):
            spread = int(rng.choice([0, 2, 5, 10, 30, 120]))
            near = [int(v) + int(rng.integers(-spread, spread + 1)) for v in (*box, *p1, *p2)]
            answer = answer_json(near[:4], near[4:6], near[6:], spaces=bool(rng.random() < 0.8))
            roll = rng.random()
            if roll < 0.7:
                kind, text = "valid", wrap(rng, answer, int(rng.integers(15, 120)))
            elif roll < 0.8:
                kind, text = "long", wrap(rng, answer, int(rng.integers(300, 900)))
            elif roll < 0.9:
                full = wrap(rng, answer, int(rng.integers(15, 120)))
                kind, text = "truncated", full[: int(rng.integers(0, len(full)))]
            else:
                bad = MALFORMED[int(rng.integers(len(MALFORMED)))]
                kind, text = "malformed", wrap(rng, bad, int(rng.integers(15, 120))) if rng.random() < 0.5 else bad
            kinds.append(kind)
            out["completions"].append(text)
            out["ground_truth"].append(truth)
            out["difficulty"].append(difficulty)
            out["uncertainty"].append(float(rng.random()))
    for key in out:
        out[key] = out[key][:n]
    out["kinds"] = kinds[:n]
    return out


def alternate(ours: Callable[[], Any], reference: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median wall-clock and CPU (process) seconds of each side, runs interleaved so that load from other
    processes on a shared machine hits both alike; one warm-up call each first. Each timed call starts from a
    fresh garbage collector (``gc.collect()``) so that neither side pays for collections the other one set up;
    collections a side triggers itself count."""
    result = {"ours": ours(), "reference": reference()}
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "reference": []}
    for _ in range(repeats):
        for side, fn in (("ours", ours), ("reference", reference)):
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            result[side] = fn()
            times[side].append((time.perf_counter() - wall, time.process_time() - cpu))
    out: dict[str, Any] = dict(result)
    for side, pairs in times.items():
        out[f"{side}_wall"] = statistics.median(p[0] for p in pairs)
        out[f"{side}_cpu"] = statistics.median(p[1] for p in pairs)
        out[f"{side}_best"] = min(p[0] for p in pairs)  # least disturbed by other processes (timeit's estimate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="completions (default 4096; 1024 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per side (default 15; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke check in about a second")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/rewards[_quick].json")
    args = parser.parse_args()
    args.n = args.n or (1024 if args.quick else 4096)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.out = args.out or Path(__file__).parent / "results" / ("rewards_quick.json" if args.quick else "rewards.json")

    data = realistic_cases(args.n)
    texts, truths = data["completions"], data["ground_truth"]
    difficulty, uncertainty = data["difficulty"], data["uncertainty"]
    shaped, accuracy = pixelthink(), seg_zero()

    def ours_pixelthink() -> np.ndarray:  # the TRL call path: keyword columns -> RewardBatch -> reward
        return shaped(completions=texts, ground_truth=truths, difficulty=difficulty, uncertainty=uncertainty)

    def ref_pixelthink_loop() -> list[float]:
        return [
            ref_pixelthink(c, g, uncertainty=u, difficulty=d)
            for c, g, d, u in zip(texts, truths, difficulty, uncertainty)
        ]

    def ours_accuracy() -> np.ndarray:
        return accuracy(RewardBatch(tuple(texts), ground_truth=truths))

    def ref_accuracy_loop() -> list[float]:
        return [ref_accuracy(c, g) for c, g in zip(texts, truths)]

    rows = []
    for name, ours, reference in (
        ("pixelthink (accuracy x soft length)", ours_pixelthink, ref_pixelthink_loop),
        ("seg_zero (accuracy only)", ours_accuracy, ref_accuracy_loop),
    ):
        m = alternate(ours, reference, args.repeats)
        mismatches = int(np.sum(np.asarray(m["ours"]) != np.asarray(m["reference"])))
        rows.append(
            {
                "reward": name,
                "n": args.n,
                "mismatches": mismatches,
                "ours_ms": m["ours_wall"] * 1e3,
                "per_sample_ms": m["reference_wall"] * 1e3,
                "speedup": m["reference_wall"] / m["ours_wall"],
                "ours_cpu_ms": m["ours_cpu"] * 1e3,
                "per_sample_cpu_ms": m["reference_cpu"] * 1e3,
                "speedup_cpu": m["reference_cpu"] / m["ours_cpu"],
                "ours_best_ms": m["ours_best"] * 1e3,
                "per_sample_best_ms": m["reference_best"] * 1e3,
                "speedup_best": m["reference_best"] / m["ours_best"],
                "us_per_sample_ours": m["ours_wall"] / args.n * 1e6,
                "us_per_sample_reference": m["reference_wall"] / args.n * 1e6,
            }
        )

    mix = {kind: data["kinds"].count(kind) for kind in ("valid", "long", "truncated", "malformed")}
    chars = float(np.mean([len(t) for t in texts]))
    print(
        f"{'reward':<38}{'ours (ms)':>10}{'per-sample (ms)':>16}{'ratio':>8}{'ratio (CPU)':>12}{'ratio (min)':>12}"
        f"{'us/sample':>10}{'mismatch':>9}"
    )
    for r in rows:
        print(
            f"{r['reward']:<38}{r['ours_ms']:>10.2f}{r['per_sample_ms']:>16.2f}{r['speedup']:>7.2f}x"
            f"{r['speedup_cpu']:>11.2f}x{r['speedup_best']:>11.2f}x{r['us_per_sample_ours']:>10.2f}{r['mismatches']:>9d}"
        )
    print(
        f"\nmedians of {args.repeats} interleaved runs (wall clock; CPU = process time; min = fastest run), "
        f"n = {args.n} completions "
        f"({mix}; mean {chars:.0f} chars), one thread"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other processes share the CPU
    result = {
        "machine": machine,
        "load_average_1min": load,
        "repeats": args.repeats,
        "mix": mix,
        "mean_chars": chars,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
