"""Length-reward throughput, side by side in one run: this library vs per-sample Python loops.

The per-sample loops mirror how reference implementations are structured (PixelThink's official
``seg_pixelthink.py`` scores one completion at a time; open-r1's Kimi length reward loops in Python). Both sides
get the same 4096 completions and must produce identical rewards; the script prints medians, ratios and the
number of mismatches, and writes JSON.

    python benchmarks/length_rewards.py [--n 4096] [--repeats 7] [--out benchmarks/results/length_rewards.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from adaptive_length_reward import KimiLengthReward, RewardBatch, SoftLengthPenalty, TieredBudget


def make_completions(n: int, seed: int = 0) -> tuple[list[str], list[float], list[float], list[int], list[int]]:
    rng = np.random.default_rng(seed)
    words = "the red square left of blue circle object compare size position answer".split()
    texts, difficulty, uncertainty, groups, correct = [], [], [], [], []
    for i in range(n):
        k = int(rng.integers(5, 900))
        think = " ".join(words[j % len(words)] for j in rng.integers(0, len(words), k))
        answer = '<answer>{"bbox": [10, 20, 300, 400], "points_1": [50, 60], "points_2": [70, 80]}</answer>'
        texts.append(f"<think>{think}</think>{answer}" if i % 7 else f"<think>{think}")
        difficulty.append(float(rng.uniform(1, 9)))
        uncertainty.append(float(rng.uniform(0, 1)))
        groups.append(i // 8)
        correct.append(int(rng.integers(0, 2)))
    return texts, difficulty, uncertainty, groups, correct


def per_sample_pixelthink(texts: list[str], difficulty: list[float], uncertainty: list[float]) -> list[float]:
    """One completion at a time, as the official reward function is called."""
    out = []
    for text, d, u in zip(texts, difficulty, uncertainty):
        length = len(text.split())
        if d >= 5.0:
            budget = 256 + 25 * u
        elif d >= 3.5:
            out.append(1.0)
            continue
        else:
            budget = 96
        out.append(min(1.0, max(0.0, 1.0 + (budget - length) / 500)))
    return out


def per_group_kimi(texts: list[str], groups: list[int], correct: list[int]) -> list[float]:
    """Python loops over groups (open-r1's structure, but per group as the paper defines it)."""
    lengths = [len(t.split()) for t in texts]
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = [0.0] * len(texts)
    for idx in members.values():
        low, high = min(lengths[i] for i in idx), max(lengths[i] for i in idx)
        for i in idx:
            lam = 0.0 if high == low else 0.5 - (lengths[i] - low) / (high - low)
            out[i] = lam if correct[i] else min(0.0, lam)
    return out


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "length_rewards.json")
    args = parser.parse_args()

    texts, difficulty, uncertainty, groups, correct = make_completions(args.n)
    pixelthink = SoftLengthPenalty(budget=TieredBudget())
    kimi = KimiLengthReward()

    def ours_pixelthink() -> np.ndarray:
        batch = RewardBatch(tuple(texts), difficulty=difficulty, uncertainty=uncertainty)
        return pixelthink(batch)

    def ours_kimi() -> np.ndarray:
        return kimi(RewardBatch(tuple(texts), group_ids=groups, extra={"correct": correct}))

    rows = []
    for name, ours, reference in (
        (
            "pixelthink soft length score",
            ours_pixelthink,
            lambda: per_sample_pixelthink(texts, difficulty, uncertainty),
        ),
        ("kimi k1.5 group length reward", ours_kimi, lambda: per_group_kimi(texts, groups, correct)),
    ):
        t_ours, r_ours = median_seconds(ours, args.repeats)
        t_ref, r_ref = median_seconds(reference, args.repeats)
        mismatches = int(np.sum(~np.isclose(np.asarray(r_ours), np.asarray(r_ref), rtol=0, atol=1e-12)))
        rows.append(
            {
                "reward": name,
                "n": args.n,
                "ours_ms": t_ours * 1e3,
                "per_sample_ms": t_ref * 1e3,
                "speedup": t_ref / t_ours,
                "us_per_sample_ours": t_ours / args.n * 1e6,
                "mismatches": mismatches,
            }
        )

    print(f"{'reward':<32}{'ours (ms)':>11}{'per-sample (ms)':>17}{'ratio':>8}{'us/sample':>11}{'mismatch':>10}")
    for r in rows:
        print(
            f"{r['reward']:<32}{r['ours_ms']:>11.2f}{r['per_sample_ms']:>17.2f}{r['speedup']:>7.2f}x"
            f"{r['us_per_sample_ours']:>11.2f}{r['mismatches']:>10d}"
        )
    print(
        f"\nmedian of {args.repeats} runs, n = {args.n}, one thread; "
        "both sides count words exactly as len(text.split())."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    args.out.write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
