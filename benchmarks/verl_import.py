"""What the verl plugin costs every ``import verl`` (the driver and every Ray worker), side by side in one run.

Three conditions, each a fresh interpreter timing ``import verl`` (wall and CPU seconds: on a shared machine the
CPU time is the steadier one) and reading its peak RSS, interleaved round by round:

* ``without``: entry points off (``VERL_USE_EXTERNAL_PLUGINS=none``), verl alone;
* ``plugin``: verl's default, which loads this package's ``verl.plugins`` entry point (the lazy, stdlib-only
  ``adaptive_length_reward_verl_plugin``);
* ``eager``: entry points off and the adapter modules imported at ``import verl`` through
  ``VERL_USE_EXTERNAL_MODULES`` (what the entry point did before it was lazy).

Prints medians, the differences and ratios to ``without``, and writes JSON. Run it in the verl venv
(``make test-verl`` builds it), where the entry point is installed::

    .venv-verl/bin/python benchmarks/verl_import.py [--rounds 7] [--out benchmarks/results/verl_import.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = """
import resource, sys, time, json
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start, start_cpu = time.perf_counter(), cpu()
import verl
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "adapter_loaded": "adaptive_length_reward.adapters.verl" in sys.modules,
                  "library_loaded": "adaptive_length_reward" in sys.modules}))
"""

CONDITIONS: dict[str, dict[str, str]] = {
    "without": {"VERL_USE_EXTERNAL_PLUGINS": "none"},
    "plugin": {"VERL_USE_EXTERNAL_PLUGINS": "auto"},
    "eager": {
        "VERL_USE_EXTERNAL_PLUGINS": "none",
        "VERL_USE_EXTERNAL_MODULES": (
            "adaptive_length_reward.adapters.verl,adaptive_length_reward.adapters.verl_agent_loop"
        ),
    },
}


def measure(condition: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    env.update(OMP_NUM_THREADS="1", **CONDITIONS[condition])
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"{condition}: import verl failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "verl_import.json")
    args = parser.parse_args(argv)
    import importlib.metadata

    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="verl.plugins")}
    if points.get("adaptive_length_reward") != "adaptive_length_reward_verl_plugin":
        raise SystemExit(f"the plugin's entry point is not installed in this venv ({sys.executable}): {points}")
    measure("without")  # warm the file cache once, unrecorded
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CONDITIONS}
    for _ in range(args.rounds):
        for name in CONDITIONS:
            samples[name].append(measure(name))
    keys = ("seconds", "cpu_seconds", "max_rss_mb")
    medians = {name: {key: statistics.median(s[key] for s in runs) for key in keys} for name, runs in samples.items()}
    base = medians["without"]
    result = {
        "benchmark": "import verl, fresh interpreter per sample, conditions interleaved",
        "verl": importlib.metadata.version("verl"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "rounds": args.rounds,
        "medians": medians,
        "minus_without": {name: {key: m[key] - base[key] for key in keys} for name, m in medians.items()},
        "ratio_to_without": {name: {key: m[key] / base[key] for key in keys} for name, m in medians.items()},
        "loaded_at_import": {
            name: {"adapter": runs[0]["adapter_loaded"], "library": runs[0]["library_loaded"]}
            for name, runs in samples.items()
        },
        "samples": samples,
        "limits": {"plugin_minus_without_seconds": 0.2, "plugin_minus_without_max_rss_mb": 20.0},
    }
    for name, m in medians.items():
        d, r = result["minus_without"][name], result["ratio_to_without"][name]
        print(
            f"{name:8s} import verl {m['seconds']:6.2f} s wall ({d['seconds']:+.3f} s, x{r['seconds']:.3f}), "
            f"{m['cpu_seconds']:6.2f} s CPU ({d['cpu_seconds']:+.3f} s, x{r['cpu_seconds']:.3f}), "
            f"peak RSS {m['max_rss_mb']:7.1f} MB ({d['max_rss_mb']:+.1f} MB, x{r['max_rss_mb']:.3f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
