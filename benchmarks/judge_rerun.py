"""``alr-difficulty judge`` rerun over a fully cached dataset: time against the number of items (should be linear).

For each size (default 5k, 20k, 40k) the script writes a JSONL dataset, fills a verdict cache with an ``ok``
verdict for every item under the judge's own settings hash, and times ``alr-difficulty judge`` (in process, no
progress bar) over it: every verdict comes from the cache, the judge server is never asked (its URL points at a
closed port, so a request would fail). The script prints seconds per run (median of ``--repeats``), the time per
item, the ratios to the smallest size, and writes JSON. Before the fix the failure count was recomputed after
every verdict (quadratic): 5k 0.8 s, 10k 2.7 s, 20k 8.7 s, 40k 34.2 s.

    python benchmarks/judge_rerun.py [--sizes 5000 20000 40000] [--repeats 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from adaptive_length_reward.difficulty import DifficultyJudge, JudgmentCache, OpenAICompatibleBackend
from adaptive_length_reward.difficulty.cli import main

CLOSED_PORT_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, nothing is ever asked


def prepare(directory: Path, n: int) -> tuple[Path, Path]:
    """A JSONL dataset of ``n`` rows and a cache holding an ``ok`` verdict for each row."""
    data = directory / "data.jsonl"
    with data.open("w", encoding="utf-8") as stream:
        for i in range(n):
            stream.write(
                json.dumps(
                    {"id": f"s{i}", "image": f"images/{i}.png", "problem": f"object {i}", "mask_area_ratio": 0.1}
                )
                + "\n"
            )
    cache = directory / "cache.sqlite"
    backend = OpenAICompatibleBackend(base_url=CLOSED_PORT_URL, model="judge")
    settings_hash = DifficultyJudge(backend, cache=JudgmentCache(cache)).settings_hash
    aspects = json.dumps({"language": 2.0, "scene": 7.0, "seg": 4.0}, sort_keys=True)
    with contextlib.closing(sqlite3.connect(cache)) as connection, connection:  # one transaction: fast setup
        connection.executemany(
            "INSERT INTO judgments VALUES (?, ?, 'ok', ?, '{}', NULL, 1, ?)",
            ((settings_hash, f"s{i}", aspects, time.time()) for i in range(n)),
        )
    return data, cache


def rerun(data: Path, cache: Path) -> float:
    argv = [
        "judge",
        str(data),
        "-o",
        str(data.with_name("out.jsonl")),
        "--base-url",
        CLOSED_PORT_URL,
        "--model",
        "judge",
        "--cache",
        str(cache),
        "--no-progress",
        "--max-retries",
        "0",
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = main(argv)
    elapsed = time.perf_counter() - start
    if status != 0 or f"from cache {data.read_text().count(chr(10))}" not in out.getvalue():
        raise SystemExit(f"rerun failed (exit {status}):\n{out.getvalue()}")
    return elapsed


def run(sizes: list[int], repeats: int) -> dict[str, Any]:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data, cache = prepare(Path(tmp), n)
            times = [rerun(data, cache) for _ in range(repeats)]
        median = statistics.median(times)
        rows.append({"items": n, "median_s": median, "times_s": times, "us_per_item": 1e6 * median / n})
        print(f"{n:>7} items: {median:7.2f} s  ({1e6 * median / n:6.1f} us/item)", flush=True)
    base = rows[0]
    for row in rows:
        row["time_ratio_to_smallest"] = row["median_s"] / base["median_s"]
        row["size_ratio_to_smallest"] = row["items"] / base["items"]
    largest = rows[-1]
    print(
        f"time ratio {largest['items']}/{base['items']}: {largest['time_ratio_to_smallest']:.2f} "
        f"(size ratio {largest['size_ratio_to_smallest']:.0f}; linear <= 10 required)"
    )
    return {
        "benchmark": "judge_rerun",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeats": repeats,
        "rows": rows,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 40000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/judge_rerun.json"))
    args = parser.parse_args()
    result = run(sorted(args.sizes), args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
