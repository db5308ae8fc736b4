"""Judge reply parsing time against reply length (1 kB, 10 kB, 100 kB) for hostile and ordinary replies.

Each kind of reply is built at each size and parsed ``--repeats`` times (median CPU time); the script prints
the times and the ratios 10 kB / 1 kB and 100 kB / 10 kB (linear: about 10; the old parser was cubic on runs of
spaces, e.g. 1.2 s at 800 characters), and writes JSON. The must-show bound is 50 ms per call up to 100 kB.

    python benchmarks/judge_parse.py [--repeats 7] [--out benchmarks/results/judge_parse.json]
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

from adaptive_length_reward.difficulty.judge import JudgeReplyError, parse_judge_reply

VERDICT = '{"scene": 7, "seg": 4, "language": 2}'
SIZES = (1_000, 10_000, 100_000)


def fill(motif: str, size: int, tail: str = "") -> str:
    return (motif * (size // len(motif) + 1))[: size - len(tail)] + tail


#: Reply kinds: a function of the target size in characters.
KINDS: dict[str, Callable[[int], str]] = {
    "prose then verdict": lambda n: fill("The object is small and partly hidden. ", n, VERDICT),
    "spaces after a letter": lambda n: fill(" ", n, "")[:-1] + "a",
    "open braces": lambda n: fill("{", n),
    "nested keys": lambda n: fill('{"a":', n),
    "think tags": lambda n: fill("<think>", n),
    "many near-verdicts": lambda n: fill('{"scene": 1}', n),
    "aspect lines": lambda n: fill("scene: 1 ", n),
    "apostrophes and braces": lambda n: fill("{it's ", n, VERDICT),
    "long number": lambda n: '{"scene": ' + "9" * (n - 40) + ', "seg": 4, "language": 2}',
}


def parse_time(reply: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        try:
            parse_judge_reply(reply)
        except JudgeReplyError:
            pass
        times.append(time.process_time() - start)
    return statistics.median(times)


def run(repeats: int) -> dict[str, Any]:
    rows = []
    print(f"{'reply':24} " + " ".join(f"{s // 1000:>6} kB" for s in SIZES) + "   10k/1k  100k/10k")
    for name, build in KINDS.items():
        ms = [1000 * parse_time(build(size), repeats) for size in SIZES]
        ratios = [ms[1] / max(ms[0], 1e-6), ms[2] / max(ms[1], 1e-6)]
        rows.append(
            {
                "reply": name,
                "sizes": list(SIZES),
                "median_ms": ms,
                "ratio_10k_1k": ratios[0],
                "ratio_100k_10k": ratios[1],
            }
        )
        print(f"{name:24} " + " ".join(f"{m:6.2f} ms" for m in ms) + f"   {ratios[0]:6.1f}  {ratios[1]:8.1f}")
    worst = max(max(r["median_ms"]) for r in rows)
    print(f"slowest call at 100 kB: {worst:.1f} ms (bound 50 ms)")
    return {
        "benchmark": "judge_parse",
        "python": platform.python_version(),
        "repeats": repeats,
        "slowest_ms": worst,
        "rows": rows,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/judge_parse.json"))
    args = parser.parse_args()
    result = run(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
