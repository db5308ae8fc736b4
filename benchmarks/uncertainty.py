"""Uncertainty estimators, side by side in one run: time, extra peak memory, throughput and accuracy.

Full logits ``[N, V]`` (entropy; "all" rows also margin and self-certainty):

* ``naive_fp32``     softmax then sum over the whole tensor in float32 (verl's ``entropy_from_logits`` on
                     ``logits.float()``; ``verl/utils/torch_functional.py``)
* ``naive_native``   the same in the input dtype
* ``verl_chunked``   verl's ``entropy_from_logits_with_chunking`` (2048 rows per chunk, float32 per chunk;
                     same file), re-implemented here because verl is not installed
* ``trl_chunked``    TRL's ``trl.trainer.utils.entropy_from_logits(chunk_size=128)`` called as installed (input
                     dtype math); a re-implementation only if TRL is missing (the JSON says which)
* ``ours_eager`` / ``ours_compiled``: :func:`adaptive_length_reward.uncertainty.token_statistics`, entropy only
  and ``_all`` (entropy + margin + self-certainty in the same pass)

Peers compute every row (they take no mask); ours computes only rows under the mask, so at mask density 0.5
the peers' numbers are those of density 1.0 (same input, same work) and only ours are re-measured.

Time: one thread, one warm-up call, median (and min) of ``--repeats`` calls; the compiled path's first call
(compilation) is reported separately. Extra peak memory on CPU: each implementation in its own subprocess,
which builds the same input, warms up on a slice, resets the kernel's RSS high-water mark
(``/proc/self/clear_refs``), runs once and reports ``VmHWM - VmRSS`` before the run (glibc's mmap threshold is
pinned so freed buffers return to the OS); on CUDA ``torch.cuda.max_memory_allocated`` deltas. Accuracy:
max |error| against float64 on the computed rows. Throughput: elements processed per second against a measured
``torch.exp`` rate (the CPU bound) and bytes read per second against a measured copy bandwidth.

Top-k log-probs (100k tokens, vLLM-style dicts with k = 5 and the sampled token): the official PixelThink
per-token loop (two torch scalars per token), a pure-Python float64 top-2 loop, and ours from vLLM dicts, a
``FlatLogprobs``-like container, SGLang tuples and a dense array; identical values are checked.

Run ``.venv/bin/python benchmarks/uncertainty.py`` (full grid) or ``--quick``; results go to
``benchmarks/results/uncertainty.json`` (``uncertainty_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from adaptive_length_reward.uncertainty import (  # noqa: E402
    reduce_tokens,
    token_statistics,
    topk_from_dense,
    topk_from_sglang,
    topk_from_vllm,
    topk_margin_uncertainty,
)

torch.set_num_threads(1)
MiB = 2**20
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}

# ------------------------------------------------------------------------------------------------------------
# Implementations over full logits
# ------------------------------------------------------------------------------------------------------------


def naive_fp32(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    z = logits.float()
    pd = F.softmax(z, dim=-1)
    return {"entropy": torch.logsumexp(z, dim=-1) - torch.sum(pd * z, dim=-1)}


def naive_native(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    pd = F.softmax(logits, dim=-1)
    return {"entropy": torch.logsumexp(logits, dim=-1) - torch.sum(pd * logits, dim=-1)}


def verl_chunked(logits: torch.Tensor, mask: torch.Tensor, chunk_size: int = 2048) -> dict[str, torch.Tensor]:
    entropy = torch.zeros(logits.shape[0], device=logits.device)
    for i in range(0, logits.shape[0], chunk_size):
        chunk = logits[i : i + chunk_size].float()
        pd = F.softmax(chunk, dim=-1)
        entropy[i : i + chunk_size] = torch.logsumexp(chunk, dim=-1) - torch.sum(pd * chunk, dim=-1)
    return {"entropy": entropy}


def _trl_entropy() -> tuple[Callable[..., torch.Tensor], str]:
    try:
        from trl.trainer.utils import entropy_from_logits

        return entropy_from_logits, "trl.trainer.utils.entropy_from_logits (installed)"
    except ImportError:

        def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 128) -> torch.Tensor:
            parts = []
            for chunk in logits.reshape(-1, logits.shape[-1]).split(chunk_size, dim=0):
                logps = F.log_softmax(chunk, dim=-1)
                parts.append(-(torch.exp(logps) * logps).sum(-1))
            return torch.cat(parts).reshape(logits.shape[:-1])

        return entropy_from_logits, "re-implementation of TRL's chunked entropy (trl not installed)"


def trl_chunked(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"entropy": _trl_entropy()[0](logits, chunk_size=128)}


ALL = ("entropy", "margin", "self_certainty")
IMPLS: dict[str, Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]] = {
    "naive_fp32": naive_fp32,
    "naive_native": naive_native,
    "verl_chunked": verl_chunked,
    "trl_chunked": trl_chunked,
    "ours_eager": lambda x, m: token_statistics(x, mask=m, stats=("entropy",)),
    "ours_eager_all": lambda x, m: token_statistics(x, mask=m, stats=ALL),
    "ours_compiled": lambda x, m: token_statistics(x, mask=m, stats=("entropy",), compile=True),
    "ours_compiled_all": lambda x, m: token_statistics(x, mask=m, stats=ALL, compile=True),
}
PEERS = ("naive_fp32", "naive_native", "verl_chunked", "trl_chunked")


def make_mask(n: int, density: float, device: str, seed: int = 1) -> torch.Tensor:
    """Rows to compute: all, or a random subset of the given density."""
    if density >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < density).to(device)


def make_input(
    n: int, vocab: int, dtype: str, density: float, device: str, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits like a language model's: most rows peaked (a few large logits), some flat; generated in row
    chunks so no full-size float32 temporary exists (fair peak-memory baselines)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.empty(n, vocab, dtype=DTYPES[dtype], device=device)
    for start in range(0, n, 64):
        stop = min(start + 64, n)
        rows = torch.randn(stop - start, vocab, generator=generator) * 2.0
        scale = torch.rand(stop - start, 1, generator=generator) * 3.0 + 0.25  # flat (0.25) .. peaked (3.25)
        rows.mul_(scale)
        hot = torch.randint(0, vocab, (stop - start, 4), generator=generator)
        rows.scatter_add_(1, hot, torch.rand(stop - start, 4, generator=generator) * 12.0)
        logits[start:stop] = rows.to(device=device, dtype=DTYPES[dtype])
        del rows
    return logits, make_mask(n, density, device)


def reference(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """float64 entropy, margin and self-certainty of the masked rows (in chunks of 32 rows)."""
    rows = mask.nonzero().squeeze(1)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ALL}
    vocab = logits.shape[-1]
    for start in range(0, rows.numel(), 32):
        z = logits[rows[start : start + 32]].double()
        logp = torch.log_softmax(z, dim=-1)
        p = logp.exp()
        out["entropy"].append(-(p * logp).sum(-1))
        top = p.topk(2, dim=-1).values
        out["margin"].append(top[:, 0] - top[:, 1])
        out["self_certainty"].append(-logp.mean(-1) - math.log(vocab))
    return {k: torch.cat(v).cpu() for k, v in out.items()}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_impl(fn: Callable[[], Any], repeats: int, device: str) -> dict[str, Any]:
    """One implementation alone: first call (warm-up / compilation), then ``repeats`` timed calls."""
    return time_interleaved({"_": fn}, repeats, device)["_"]


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, device: str) -> dict[str, dict[str, Any]]:
    """Side by side: every implementation's first call, then ``repeats`` rounds calling each once in turn, so a
    neighbour's load on the shared CPU lands on all of them alike. Median and min per implementation."""
    first: dict[str, float] = {}
    for name, fn in fns.items():
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        first[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "first_s": first[name],
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "times_s": times[name],
        }
        for name in fns
    }


# ------------------------------------------------------------------------------------------------------------
# Peak memory
# ------------------------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(impl: str, n: int, vocab: int, dtype: str, density: float) -> None:
    """Subprocess entry: print this implementation's extra peak RSS (bytes) for one input as JSON."""
    logits, mask = make_input(n, vocab, dtype, density, "cpu")
    float(logits[:, :8].float().sum())  # touch
    fn = IMPLS[impl]
    rows = min(n, 64)
    fn(logits[:rows], mask[:rows])  # warm up (compiles the kernel for the same chunk shape)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    result = fn(logits, mask)
    peak = _status_kib("VmHWM")
    del result
    print(json.dumps({"extra_bytes": (peak - before) * 1024}))


def measure_memory(impl: str, n: int, vocab: int, dtype: str, density: float, device: str) -> float:
    if device.startswith("cuda"):
        logits, mask = make_input(n, vocab, dtype, density, device)
        IMPLS[impl](logits[:64], mask[:64])
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = IMPLS[impl](logits, mask)
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - before
        del result, logits, mask
        torch.cuda.empty_cache()
        return float(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    command = [
        sys.executable,
        __file__,
        "--memory-probe",
        impl,
        "--n",
        str(n),
        "--vocab",
        str(vocab),
        "--dtype",
        dtype,
        "--density",
        str(density),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {impl} failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["extra_bytes"])


# ------------------------------------------------------------------------------------------------------------
# Measured limits
# ------------------------------------------------------------------------------------------------------------


def measured_limits(device: str) -> dict[str, float]:
    """``torch.exp`` float32 elements/s on a cache-resident buffer, and copy bandwidth (bytes read + written)."""
    small = torch.randn(2**20, device=device)
    out = torch.empty_like(small)
    exp_t = time_impl(lambda: torch.exp(small, out=out), 20, device)["median_s"]
    big = torch.empty(64 * MiB, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(big)
    copy_t = time_impl(functools.partial(dst.copy_, big), 5, device)["median_s"]
    return {"exp_elements_per_s": small.numel() / exp_t, "copy_bytes_per_s": 2 * big.numel() * 4 / copy_t}


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "").strip()
        info["cpus"] = fields.get("CPU(s)", "").strip()
        info["hypervisor"] = fields.get("Hypervisor vendor", "").strip()
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor()
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------------------------------------------------
# Full-logits grid
# ------------------------------------------------------------------------------------------------------------


def run_config(
    n: int,
    vocab: int,
    dtype: str,
    densities: list[float],
    device: str,
    repeats: int,
    with_memory: bool,
    limits: dict[str, float],
) -> list[dict[str, Any]]:
    rows_out: list[dict[str, Any]] = []
    logits, _ = make_input(n, vocab, dtype, 1.0, device)
    peer_rows: dict[str, dict[str, Any]] = {}
    for density in densities:
        mask = make_mask(n, density, device)
        ref = reference(logits, mask)
        computed = int(mask.sum())
        names = [name for name in IMPLS if not (name in PEERS and name in peer_rows)]
        timings = time_interleaved(
            {name: functools.partial(IMPLS[name], logits, mask) for name in names}, repeats, device
        )
        for name in IMPLS:
            if name not in names:
                rows_out.append(dict(peer_rows[name], density=density, shared_with_density_1=True))
                continue
            timing = timings[name]
            result = IMPLS[name](logits, mask)
            errors = {}
            for stat, values in result.items():
                got = values.reshape(-1)[mask.reshape(-1)].double().cpu()
                errors[stat] = float((got - ref[stat]).abs().max())
            del result
            rows_done = n if name in PEERS else computed
            row = {
                "impl": name,
                "n": n,
                "vocab": vocab,
                "dtype": dtype,
                "density": density,
                "device": device,
                "rows_computed": rows_done,
                **timing,
                "max_abs_error": errors,
                "elements_per_s": rows_done * vocab / timing["median_s"],
                "bytes_per_s": rows_done * vocab * logits.element_size() / timing["median_s"],
            }
            row["fraction_of_exp_rate"] = row["elements_per_s"] / limits["exp_elements_per_s"]
            row["fraction_of_copy_bandwidth"] = row["bytes_per_s"] / limits["copy_bytes_per_s"]
            if name.startswith("ours_compiled"):
                row["compile_s"] = max(0.0, timing["first_s"] - timing["median_s"])
            if with_memory:
                row["extra_peak_bytes"] = measure_memory(name, n, vocab, dtype, density, device)
            if name in PEERS:
                peer_rows[name] = row
            rows_out.append(row)
            print(
                f"  {name:18s} n={n} V={vocab} {dtype} density={density}: median {timing['median_s'] * 1e3:9.1f} ms,"
                f" min {timing['min_s'] * 1e3:9.1f} ms"
                + (f", extra {row['extra_peak_bytes'] / MiB:8.1f} MiB" if with_memory else ""),
                flush=True,
            )
        gc.collect()
    del logits
    return rows_out


def print_table(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["device"], row["n"], row["vocab"], row["dtype"], row["density"]), []).append(row)
    for (device, n, vocab, dtype, density), items in groups.items():
        by = {r["impl"]: r for r in items}
        print(f"\n### {device}: N={n}, V={vocab}, {dtype}, mask density {density}\n")
        print(
            "| implementation | median (min) time | vs naive fp32 | vs verl | vs TRL | extra peak memory | "
            "memory vs naive fp32 | G elem/s (% of exp rate) | max err entropy | max err margin / SC |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in items:
            t = r["median_s"]

            def ratio(peer: str, t: float = t, by: dict[str, dict[str, Any]] = by) -> str:
                return f"{by[peer]['median_s'] / t:.1f}x" if peer in by else "-"

            mem = r.get("extra_peak_bytes")
            naive_mem = by.get("naive_fp32", {}).get("extra_peak_bytes")
            mem_s = f"{mem / MiB:.1f} MiB" if mem is not None else "-"
            mem_r = f"{100 * mem / naive_mem:.2f}%" if mem is not None and naive_mem else "-"
            err = r["max_abs_error"]
            others = " / ".join(f"{err[k]:.1e}" for k in ("margin", "self_certainty") if k in err) or "-"
            print(
                f"| {r['impl']}{' (shared)' if r.get('shared_with_density_1') else ''} | {t * 1e3:.1f} "
                f"({r['min_s'] * 1e3:.1f}) ms | "
                f"{ratio('naive_fp32')} | {ratio('verl_chunked')} | {ratio('trl_chunked')} | {mem_s} | {mem_r} | "
                f"{r['elements_per_s'] / 1e9:.2f} ({100 * r['fraction_of_exp_rate']:.0f}%) | "
                f"{err['entropy']:.1e} | {others} |"
            )


# ------------------------------------------------------------------------------------------------------------
# Top-k path
# ------------------------------------------------------------------------------------------------------------


from vllm_standins import FlatLogprobs, Logprob  # noqa: E402  (this script's folder is on sys.path)


def official_loop(token_dicts: list[dict[int, Any]]) -> float:
    """PixelThink's per-completion uncertainty as the official rollout code computes it
    (``verl/workers/rollout/vllm_rollout_spmd.py::compute_uncertainty_from_logprob_dict``): entries sorted by
    rank, two torch scalars per token, ``clamp(1 - (p1 - p2), 0, 1)``, mean; tokens with < 2 entries skipped."""
    values = []
    for entry in token_dicts:
        if not entry:
            continue
        ranked = sorted(entry.values(), key=lambda lp: lp.rank)
        if len(ranked) < 2:
            continue
        first = torch.exp(torch.tensor(ranked[0].logprob))
        second = torch.exp(torch.tensor(ranked[1].logprob))
        values.append(float(torch.clamp(1.0 - (first - second), 0.0, 1.0).item()))
    return float(sum(values) / len(values)) if values else 0.0


def python_top2_loop(token_dicts: list[dict[int, Any]]) -> tuple[float, list[float]]:
    """The same formula in plain float64 Python (no tensors): the reference for 'identical values'."""
    values = []
    for entry in token_dicts:
        if not entry or len(entry) < 2:
            continue
        a = b = -math.inf
        for lp in entry.values():
            x = lp.logprob
            if x > a:
                a, b = x, a
            elif x > b:
                b = x
        values.append(min(1.0, max(0.0, 1.0 - (math.exp(a) - math.exp(b)))))
    return (sum(values) / len(values) if values else 0.0), values


def make_topk(n_tokens: int, per_completion: int, k: int = 5, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n_comp = n_tokens // per_completion
    logits = rng.normal(size=(n_tokens, 64)) * rng.uniform(0.5, 4.0, size=(n_tokens, 1))
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    order = np.argsort(-logp, axis=1)
    sampled = np.array([rng.choice(64, p=np.exp(row)) for row in logp])
    vllm: list[list[dict[int, Logprob]]] = []
    flat: list[FlatLogprobs] = []
    sglang: list[list[list[tuple[float, int, None]]]] = []
    dense: list[np.ndarray] = []
    for c in range(n_comp):
        dicts, sg, starts, ends, ids, lps, ranks = [], [], [], [], [], [], []
        arr = np.full((per_completion, k + 1), -np.inf)
        for t in range(c * per_completion, (c + 1) * per_completion):
            top = order[t, :k]
            entry = {int(tok): Logprob(float(logp[t, tok]), r + 1) for r, tok in enumerate(top)}
            s = int(sampled[t])
            if s not in entry:
                entry = {s: Logprob(float(logp[t, s]), int(np.flatnonzero(order[t] == s)[0]) + 1), **entry}
            dicts.append(entry)
            starts.append(len(lps))
            for tok, lp in entry.items():
                ids.append(tok), lps.append(lp.logprob), ranks.append(lp.rank)
            ends.append(len(lps))
            sg.append([(float(logp[t, tok]), int(tok), None) for tok in top])
            arr[t - c * per_completion, : len(entry)] = [lp.logprob for lp in entry.values()]
        vllm.append(dicts)
        flat.append(FlatLogprobs(starts, ends, ids, lps, ranks))
        sglang.append(sg)
        dense.append(arr)
    return {"vllm": vllm, "flat": flat, "sglang": sglang, "dense": dense}


def run_topk(n_tokens: int, repeats: int) -> dict[str, Any]:
    data = make_topk(n_tokens, per_completion=500)
    vllm = data["vllm"]

    def ours(reader: Callable[[Any], Any], payload: Any) -> np.ndarray:
        topk = reader(payload)
        return reduce_tokens(*topk.padded(topk_margin_uncertainty(topk)))

    impls: dict[str, Callable[[], Any]] = {
        "official_per_token_tensors": lambda: [official_loop(d) for d in vllm],
        "python_float64_top2_loop": lambda: [python_top2_loop(d)[0] for d in vllm],
        "ours_vllm_dicts": lambda: ours(topk_from_vllm, vllm),
        "ours_vllm_flat": lambda: ours(topk_from_vllm, data["flat"]),
        "ours_sglang_tuples": lambda: ours(topk_from_sglang, data["sglang"]),
        "ours_dense_array": lambda: ours(topk_from_dense, data["dense"]),
    }
    official = np.array(impls["official_per_token_tensors"]())
    formula = np.array(impls["python_float64_top2_loop"]())
    per_token_formula = np.concatenate([python_top2_loop(d)[1] for d in vllm])
    per_token_ours = topk_margin_uncertainty(topk_from_vllm(vllm))
    results: dict[str, Any] = {
        "tokens": n_tokens,
        "completions": len(vllm),
        "k": 5,
        "per_token_max_abs_diff_vs_float64_formula": float(np.abs(per_token_ours - per_token_formula).max()),
        "rows": [],
    }
    timings = time_interleaved(impls, max(repeats, 3), "cpu")
    base = timings["official_per_token_tensors"]
    for name, fn in impls.items():
        timing = timings[name]
        values = np.asarray(fn(), dtype=np.float64)
        results["rows"].append(
            {
                "impl": name,
                **timing,
                "us_per_token": timing["median_s"] / n_tokens * 1e6,
                "us_per_token_min": timing["min_s"] / n_tokens * 1e6,
                "speedup_vs_official": base["median_s"] / timing["median_s"],
                "speedup_vs_official_min": base["min_s"] / timing["min_s"],
                "max_abs_diff_vs_official": float(np.abs(values - official).max()),
                "max_abs_diff_vs_float64_formula": float(np.abs(values - formula).max()),
            }
        )
    return results


def print_topk(results: dict[str, Any]) -> None:
    print(f"\n### Top-k path: {results['tokens']} tokens in {results['completions']} completions, vLLM k = 5\n")
    print(
        "| implementation | us / token, median (min) | speed-up vs official, median (min) | "
        "max diff vs official (float32) | max diff vs float64 formula |"
    )
    print("|---|---|---|---|---|")
    for r in results["rows"]:
        print(
            f"| {r['impl']} | {r['us_per_token']:.3f} ({r['us_per_token_min']:.3f}) | "
            f"{r['speedup_vs_official']:.1f}x ({r['speedup_vs_official_min']:.1f}x) | "
            f"{r['max_abs_diff_vs_official']:.1e} | {r['max_abs_diff_vs_float64_formula']:.1e} |"
        )
    print(f"\nPer-token max |ours - float64 formula|: {results['per_token_max_abs_diff_vs_float64_formula']:.1e}")


# ------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid (smoke check, one to two minutes)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per implementation (default 5; 2 quick)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--topk-tokens", type=int, default=None, help="tokens for the top-k benchmark (default 100000)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bf16", help=argparse.SUPPRESS)
    parser.add_argument("--density", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        memory_probe(args.memory_probe, args.n, args.vocab, args.dtype, args.density)
        return 0

    import torch._dynamo

    torch._dynamo.config.cache_size_limit = 64  # one compiled kernel per (V, dtype, chunk) in the grid
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    repeats = args.repeats or (2 if args.quick else 5)
    if args.quick:
        grid = [(128, 32000, dt) for dt in ("bf16", "fp32")]
        densities = [1.0, 0.5]
    else:
        ns = [256, 2048] + ([8192] if device.startswith("cuda") else [])
        grid = [(n, v, dt) for v in (32000, 151936) for n in ns for dt in ("bf16", "fp32")]
        densities = [1.0, 0.5]
    out = args.out or ROOT / "benchmarks" / "results" / ("uncertainty_quick.json" if args.quick else "uncertainty.json")
    print(f"device {device}, {torch.get_num_threads()} thread(s), repeats {repeats}", flush=True)
    info = machine(device)
    limits = measured_limits(device)
    print(
        f"measured: exp {limits['exp_elements_per_s'] / 1e9:.2f} G elem/s, copy "
        f"{limits['copy_bytes_per_s'] / 1e9:.1f} GB/s",
        flush=True,
    )
    started = time.time()
    rows: list[dict[str, Any]] = []
    for n, vocab, dtype in grid:
        rows += run_config(n, vocab, dtype, densities, device, repeats, not args.no_memory, limits)
    topk = run_topk(args.topk_tokens or (20_000 if args.quick else 100_000), repeats)
    try:
        info["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    print_table(rows)
    print_topk(topk)
    report = {
        "benchmark": "uncertainty",
        "quick": args.quick,
        "machine": info,
        "limits": limits,
        "trl_entropy": _trl_entropy()[1],
        "repeats": repeats,
        "wall_s": time.time() - started,
        "full_logits": rows,
        "topk": topk,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
