"""GPU check of the worked example: one command, no checkpoint, under 8 minutes on one H100/H200-class GPU.

What it runs, in this order (each stage's seconds are in the JSON):

1. **GRPO steps of the worked example on a size-true policy**: ``examples/pixelthink_grpo.py --policy
   random:qwen2.5-vl-3b`` (the published Qwen2.5-VL-3B architecture with random weights: real parameter count,
   real activation memory), the GrabCut segmenter, float32 master weights under bfloat16 autocast, PixelThink's
   reward with the margin uncertainty, ``--min-completion-length`` so every rollout has the same length. Recorded:
   median step time, peak GPU memory, the shares of the step spent on uncertainty and on the reward.
2. **The sampling-time uncertainty route** (``benchmarks/sampling_check.py``) on the same architecture with 4
   decoder layers in float32: the same draws with and without recording, the recorded margin / entropy / NLL
   against a separate forward pass (max |diff|), time and peak memory side by side.
3. **The weight check**: one AdamW step at lr 1e-6 under bfloat16 autocast: the share of parameters it changed.
4. **The uncertainty estimators on CUDA**: ``benchmarks/uncertainty.py --quick --device cuda`` (its JSON is
   embedded).

Accuracy and lengths of a random-weight policy mean nothing; the figures to read are time, memory and shares.

Run::

    python benchmarks/gpu_check.py                 # needs CUDA; writes benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --smoke         # the same pipeline on the CPU with the tiny policy (tests)

Without CUDA (and without ``--smoke``) it exits with status 2 and says so. Record the figures in
docs/performance.md with the GPU named (the JSON's ``device``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "pixelthink_grpo.py"

#: The worked example's flags for the size-true run (stage 1) and for ``--smoke`` (the tiny policy on a CPU).
GPU_RUN = [
    "--policy",
    "random:qwen2.5-vl-3b",
    "--segmenter",
    "grabcut",
    "--steps",
    "4",
    "--num-generations",
    "4",
    "--prompts-per-step",
    "2",
    "--max-completion-length",
    "256",
    "--min-completion-length",
    "256",
    "--eval-samples",
    "8",
    "--eval-max-new-tokens",
    "32",
    "--eval-batch-size",
    "8",
    "--no-eval-before",
    "--kl",
    "0",
    "--lr",
    "1e-6",
    "--save-steps",
    "1000",
    "--uncertainty",
    "margin",
]
SMOKE_RUN = [
    "--tiny",
    "--steps",
    "2",
    "--train-samples",
    "8",
    "--eval-samples",
    "4",
    "--warmup-steps",
    "1",
    "--max-completion-length",
    "24",
    "--eval-max-new-tokens",
    "16",
    "--no-eval-before",
    "--save-steps",
    "1000",
    "--uncertainty",
    "margin",
]


def _run(command: list[str], *, timeout: float) -> tuple[float, str]:
    """Run ``command``; returns (seconds, combined output). Raises ``RuntimeError`` with the output's tail."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited with status {done.returncode}:\n{output[-3000:]}")
    return seconds, output


def _policy(smoke: bool) -> Any:
    """The tiny policy on the CPU (``smoke``), else the random Qwen2.5-VL-3B architecture with 4 decoder layers in
    float32 on CUDA (real width and vocabulary; 4 layers keep the check short)."""
    sys.path.insert(0, str(ROOT / "examples"))
    from pixelthink.models import build_random_policy, build_tiny_policy
    from pixelthink.prompts import QUESTION_TEMPLATE

    if smoke:
        return build_tiny_policy(QUESTION_TEMPLATE, seed=0)
    return build_random_policy(QUESTION_TEMPLATE, "qwen2.5-vl-3b", layers=4, dtype="float32", device="cuda")


def sampling_check(policy: Any, *, smoke: bool) -> dict[str, Any]:
    """The sampling-time uncertainty route (``benchmarks/sampling_check.py``) on ``policy``: the same draws with and
    without recording, the recorded statistics against a separate forward pass, time and peak memory."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from sampling_check import sampling_route_check

    device = "cpu" if smoke else "cuda"
    model = policy.model.to(device).eval()
    inputs = policy.tokenizer(
        ["Please find the red square with bbox and points.", "Where is the dog?"], return_tensors="pt", padding=True
    ).to(device)
    return sampling_route_check(
        model,
        dict(inputs),
        max_new_tokens=16 if smoke else 128,
        repeats=1 if smoke else 3,
        **policy.generation_kwargs(),
    )


def weight_check(policy: Any, *, smoke: bool) -> dict[str, Any]:
    """One AdamW step at lr 1e-6 under bfloat16 autocast on float32 weights: the share of parameters it changed
    (float32 master weights must move almost all of them; pure bfloat16 weights move about 2 %)."""
    import torch

    device = "cpu" if smoke else "cuda"
    model = policy.model.to(device).train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    ids = torch.randint(10, 200, (2, 48), device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = model(input_ids=ids).logits.float().logsumexp(dim=-1).mean()
    loss.backward()
    # the share among the elements the loss reaches (a non-zero gradient): rows of tokens absent from the batch get
    # no gradient and AdamW leaves them alone in any dtype; what float32 master weights change is the rest
    reached = [p.grad.detach() != 0 for p in model.parameters() if p.grad is not None]
    optimizer.step()
    moved = [(p.detach() != b) for p, b in zip(model.parameters(), before) if p.grad is not None]
    changed = sum(int((m & r).sum()) for m, r in zip(moved, reached))
    total = sum(int(r.sum()) for r in reached)
    return {"dtype": str(next(model.parameters()).dtype), "changed_share": changed / total, "parameters": total}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny policy: check the pipeline, not the GPU")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/gpu_check.json)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/gpu_check"), help="the example's run folder")
    parser.add_argument("--skip-estimators", action="store_true", help="skip stage 2")
    args = parser.parse_args(argv)
    import torch

    if not args.smoke and not torch.cuda.is_available():
        parser.exit(
            2, "gpu_check.py: error: expected a CUDA device, found none (use --smoke for the CPU pipeline check)\n"
        )
    started = time.perf_counter()
    device = "CPU (smoke)" if args.smoke else torch.cuda.get_device_name(0)
    result: dict[str, Any] = {"device": device, "smoke": args.smoke, "torch": torch.__version__, "stages": {}}
    flags = SMOKE_RUN if args.smoke else GPU_RUN
    seconds, _ = _run(
        [sys.executable, str(EXAMPLE), *flags, "--output-dir", str(args.run_dir), "--no-progress"], timeout=420
    )
    metrics = json.loads((ROOT / args.run_dir / "metrics.json").read_text())  # an absolute run_dir replaces ROOT
    timings = metrics["timings"]
    result["grpo"] = {
        "policy": metrics["run"]["policy"],
        "steps": metrics["train_steps"],
        "step_s_median": timings["train_step_s_median"],
        "peak_memory_mb": metrics["peak_memory_mb"],
        "uncertainty_share": timings["uncertainty_share"],
        "reward_share": timings["reward_share"],
        "generation_s": timings["generation_s"],
        "uncertainty_s": timings["uncertainty_s"],
        "reward_s": timings["reward_s"],
        "train_s": timings["train_s"],
        "completion_tokens": None if args.smoke else 256,
        "completions_per_step": (
            metrics["config"]["train"]["prompts_per_step"] * metrics["config"]["train"]["num_generations"]
        ),
    }
    result["stages"]["grpo_s"] = seconds
    start = time.perf_counter()
    policy = _policy(args.smoke)
    result["sampling_route"] = sampling_check(policy, smoke=args.smoke)
    result["stages"]["sampling_route_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result["weight_check"] = weight_check(policy, smoke=args.smoke)
    result["stages"]["weight_check_s"] = time.perf_counter() - start
    del policy
    if not args.skip_estimators:
        estimator_json = (
            ROOT
            / "benchmarks"
            / "results"
            / ("gpu_check_uncertainty_smoke.json" if args.smoke else "gpu_check_uncertainty.json")
        )
        command = [
            sys.executable,
            str(ROOT / "benchmarks" / "uncertainty.py"),
            "--quick",
            "--no-memory",
            "--device",
            "cpu" if args.smoke else "cuda",
            "--out",
            str(estimator_json),
        ]
        if args.smoke:
            command += ["--repeats", "1", "--topk-tokens", "2000"]
        seconds, _ = _run(command, timeout=300)
        result["stages"]["estimators_s"] = seconds
        result["estimators"] = json.loads(estimator_json.read_text())
    result["total_s"] = time.perf_counter() - started
    out = args.out or ROOT / "benchmarks" / "results" / ("gpu_check_smoke.json" if args.smoke else "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    grpo = result["grpo"]
    print(
        f"device: {device}\nGRPO on {grpo['policy']}: median step {grpo['step_s_median']:.2f} s, peak memory "
        f"{grpo['peak_memory_mb']:.0f} MB, uncertainty {100 * (grpo['uncertainty_share'] or 0):.1f} % and reward "
        f"{100 * (grpo['reward_share'] or 0):.2f} % of training\nlr 1e-6 step changed "
        f"{100 * result['weight_check']['changed_share']:.2f} % of {result['weight_check']['parameters']:,} "
        f"{result['weight_check']['dtype']} parameters\nsampling route: time ratio "
        f"{result['sampling_route']['time_ratio']:.3f}, max |diff| vs forward "
        f"{max(result['sampling_route']['max_abs_diff_vs_forward'].values()):.2e}\n"
        f"total {result['total_s']:.0f} s -> {out}"
    )
    return result


if __name__ == "__main__":
    main()
