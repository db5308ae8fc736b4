"""Seconds and peak memory per GRPO step: ``UncertaintyGRPOTrainer`` vs plain ``trl.GRPOTrainer``, side by side.

Variants, each a real trainer in this process on its own copy of the same tiny random policy (same init, same
data, same seed):

* ``plain``     ``trl.GRPOTrainer`` (no uncertainty);
* ``sampling``  ``UncertaintyGRPOTrainer`` default: U recorded during TRL's ``generate`` call (no extra pass);
* ``forward``   ``UncertaintyGRPOTrainer(uncertainty_source="forward")``: the extra no-grad forward pass (the
                previous default, for reference).

Steps are interleaved (plain, sampling, forward, plain, ...): each trainer's ``train()`` runs in its own thread and a
callback passes a turn token at every step boundary, so exactly one trainer computes at a time and load on the
(shared) machine falls on every variant alike. Before each step the torch RNG is re-seeded with ``seed + step``, so
all variants draw the same completions (the only difference is the uncertainty measurement). A step is timed from
``on_step_begin`` to ``on_step_end`` (generation, rewards, loss, backward, optimizer; not logging). Memory per step:
on CPU the kernel's RSS high-water mark is reset before the step (``/proc/self/clear_refs``) and ``VmHWM`` read after
it (glibc's mmap threshold pinned so freed buffers go back to the OS); reported as the step's peak RSS and as the
extra above the RSS at the step's start; on CUDA ``torch.cuda.max_memory_allocated``. Medians over the steps after
``--warmup``; ratios are medians of the variant over ``plain`` (and, less sensitive to the load drifting between
rounds, ``median_paired_time_ratio``: the median over rounds of the two steps' ratio). ``measuring``: seconds per
step inside the uncertainty code itself (the recorder's hook and cut, the trainer's reduction; for ``forward`` the
forward pass), timed by wrappers, and its share of the step. The load average is recorded at start and end.

Models: tiny Qwen2 (hidden 256, 4 layers, 4 heads, the test tokenizer's 420-token vocabulary) on text prompts and
the tiny Qwen2.5-VL (same text sizes, 2-layer vision tower) on 64x64 images; 8 completions per step (2 prompts x 4),
``max_completion_length`` 64 (random policies rarely stop early).

Run ``.venv/bin/python benchmarks/trl_step.py`` (``--steps 40``), or ``--quick``; results go to
``benchmarks/results/trl_step.json`` (``trl_step_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
}
if any(os.environ.get(k) != v for k, v in _ENV.items()):  # glibc reads its settings at start: re-exec once
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_ENV})

sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

VARIANTS = ("plain", "sampling", "forward")
#: Seconds spent measuring U in the current step, per variant (its thread's name): the recorder's hook and
#: per-completion cut, and the trainer's reduction (``_alr_measure``, which holds the forward pass of "forward").
MEASURING: dict[str, float] = dict.fromkeys(VARIANTS, 0.0)


def _timed(function: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            name = threading.current_thread().name
            if name in MEASURING:
                MEASURING[name] += time.perf_counter() - start

    return wrapper


def _instrument() -> None:
    """Count the time spent in the uncertainty code (benchmark only; the wrappers cost ~1 us a call)."""
    from adaptive_length_reward.adapters.trl_trainer import UncertaintyGRPOTrainer
    from adaptive_length_reward.uncertainty.sampling import SamplingRecorder

    SamplingRecorder._hook = _timed(SamplingRecorder._hook)  # type: ignore[method-assign]
    SamplingRecorder.per_completion = _timed(SamplingRecorder.per_completion)  # type: ignore[method-assign]
    UncertaintyGRPOTrainer._alr_measure = _timed(UncertaintyGRPOTrainer._alr_measure)  # type: ignore[method-assign]


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class Turns:
    """A token passed round-robin between the variants' threads at step boundaries."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.order, self.active = list(names), set(names)
        self.current = names[0]
        self.cond = threading.Condition()

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.current == name)

    def pass_on(self, name: str, finished: bool = False) -> None:
        with self.cond:
            if finished:
                self.active.discard(name)
            i = self.order.index(name)
            for k in range(1, len(self.order) + 1):
                candidate = self.order[(i + k) % len(self.order)]
                if candidate in self.active:
                    self.current = candidate
                    break
            self.cond.notify_all()


class StepMeter(TrainerCallback):  # type: ignore[misc]
    """Times each step and its peak memory, taking turns with the other variants."""

    def __init__(self, name: str, turns: Turns, seed: int, cuda: bool) -> None:
        self.name, self.turns, self.seed, self.cuda = name, turns, seed, cuda
        self.seconds: list[float] = []
        self.peak: list[float] = []
        self.extra: list[float] = []
        self.measuring: list[float] = []
        self._start = 0.0
        self._before = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.turns.wait(self.name)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        torch.manual_seed(self.seed + state.global_step)
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._before = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self._before = _kib("VmRSS") * 1024
        MEASURING[self.name] = 0.0
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)
        self.measuring.append(MEASURING[self.name])
        peak = torch.cuda.max_memory_allocated() if self.cuda else _kib("VmHWM") * 1024
        self.peak.append(float(peak))
        self.extra.append(float(peak - self._before))
        self.turns.pass_on(self.name)
        self.turns.wait(self.name)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.turns.pass_on(self.name, finished=True)


def _setup(kind: str, steps: int, seed: int, out_dir: str) -> dict[str, Any]:
    """The shared pieces of one model kind: dataset, processing class, a model factory, the GRPO config."""
    from adapter_fixtures import build_processor, build_text_lm, build_tokenizer, build_vlm, square_image
    from datasets import Dataset
    from trl import GRPOConfig

    tokenizer = build_tokenizer()
    sizes = dict(hidden=256, layers=4, logit_scale=20.0)
    if kind == "qwen2":
        rows = [{"prompt": [{"role": "user", "content": f"Question {i}: where is the red square?"}]} for i in range(64)]
        processing, build = tokenizer, (lambda: build_text_lm(tokenizer, **sizes))
    else:
        colours = ["red", "green", "blue", "yellow"]
        rows = [
            {
                "image": square_image(colours[i % 4], i % 9),
                "prompt": [
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Find square {i}."}]}
                ],
            }
            for i in range(64)
        ]
        processing, build = build_processor(tokenizer), (lambda: build_vlm(tokenizer, **sizes))
    args = dict(
        output_dir=out_dir,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=64,
        max_steps=steps,
        learning_rate=1e-5,
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        seed=seed,
        disable_tqdm=True,
    )
    return {
        "dataset": Dataset.from_list(rows),
        "processing": processing,
        "build": build,
        "config": lambda: GRPOConfig(**args),
    }


def _reward(prompts: Any = None, completions: Any = None, completion_ids: Any = None, **_: Any) -> list[float]:
    """The same cheap reward for every variant (shorter is better): the comparison is about the uncertainty."""
    return [-len(ids) / 64.0 for ids in completion_ids]


def run_kind(kind: str, steps: int, warmup: int, seed: int) -> dict[str, Any]:
    import trl

    from adaptive_length_reward.adapters.trl import UncertaintyGRPOTrainer

    parts = _setup(kind, steps, seed, tempfile.mkdtemp(prefix="alr-trl-step-"))
    turns = Turns(VARIANTS)
    cuda = torch.cuda.is_available()
    meters, trainers = {}, {}
    for name in VARIANTS:
        meters[name] = StepMeter(name, turns, seed, cuda)
        common = dict(
            model=parts["build"](),
            reward_funcs=_reward,
            args=parts["config"](),
            train_dataset=parts["dataset"],
            processing_class=parts["processing"],
            callbacks=[meters[name]],
        )
        if name == "plain":
            trainers[name] = trl.GRPOTrainer(**common)
        else:
            trainers[name] = UncertaintyGRPOTrainer(**common, uncertainty_source=name)
    errors: list[BaseException] = []

    def train(name: str) -> None:
        try:
            trainers[name].train()
        except BaseException as error:  # reported after the join
            errors.append(error)
            turns.pass_on(name, finished=True)

    threads = [threading.Thread(target=train, args=(name,), name=name) for name in VARIANTS]
    load_start = os.getloadavg()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return _summary(meters, warmup, load_start, trainers)


def _summary(
    meters: dict[str, StepMeter], warmup: int, load_start: tuple[float, ...], trainers: dict[str, Any]
) -> dict[str, Any]:
    def median(values: list[float]) -> float:
        return statistics.median(values[warmup:] if len(values) > warmup else values)

    out: dict[str, Any] = {"load_average_at_start": load_start, "load_average_at_end": os.getloadavg(), "variants": {}}
    for name, meter in meters.items():
        out["variants"][name] = {
            "steps": len(meter.seconds),
            "median_s": median(meter.seconds),
            "min_s": min(meter.seconds),
            "median_peak_bytes": median(meter.peak),
            "median_extra_peak_bytes": median(meter.extra),
            "median_measuring_s": median(meter.measuring),
            "median_measuring_share": median([m / s for m, s in zip(meter.measuring, meter.seconds)]),
            "seconds": meter.seconds,
            "measuring_s": meter.measuring,
        }
    plain = out["variants"]["plain"]
    # Same draws in every variant: the completion lengths logged by TRL must agree.
    lengths = {
        name: [round(v, 6) for v in t._metrics["train"]["completions/mean_length"]] for name, t in trainers.items()
    }
    out["same_completions"] = all(v == lengths["plain"] for v in lengths.values())
    for name in VARIANTS[1:]:
        v = out["variants"][name]
        paired = [a / b for a, b in zip(meters[name].seconds[warmup:], meters["plain"].seconds[warmup:])]
        v["time_ratio"] = v["median_s"] / plain["median_s"]
        v["median_paired_time_ratio"] = statistics.median(paired) if paired else float("nan")
        v["peak_memory_ratio"] = v["median_peak_bytes"] / plain["median_peak_bytes"]
        v["extra_peak_memory_ratio"] = v["median_extra_peak_bytes"] / max(plain["median_extra_peak_bytes"], 1.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per variant and model (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the medians")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="qwen2,qwen2_5_vl")
    parser.add_argument("--quick", action="store_true", help="6 steps, 1 warm-up")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    steps, warmup = (6, 1) if args.quick else (args.steps, args.warmup)
    torch.set_num_threads(1)
    _instrument()
    import transformers
    import trl

    report: dict[str, Any] = {
        "info": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "steps": steps,
            "warmup": warmup,
            "seed": args.seed,
        },
        "models": {},
    }
    for kind in args.models.split(","):
        result = run_kind(kind, steps, warmup, args.seed)
        report["models"][kind] = result
        for name in VARIANTS:
            v = result["variants"][name]
            ratios = (
                ""
                if name == "plain"
                else (
                    f"  time x{v['time_ratio']:.3f} (paired x{v['median_paired_time_ratio']:.3f})  peak x"
                    f"{v['peak_memory_ratio']:.3f}  extra peak x{v['extra_peak_memory_ratio']:.3f}  measuring "
                    f"{v['median_measuring_s'] * 1000:.1f} ms ({v['median_measuring_share'] * 100:.1f}% of the step)"
                )
            )
            print(
                f"{kind:11s} {name:9s} {v['median_s'] * 1000:8.1f} ms/step  peak "
                f"{v['median_peak_bytes'] / 2**20:8.1f} MiB  extra {v['median_extra_peak_bytes'] / 2**20:7.2f} MiB"
                f"{ratios}"
            )
        print(
            f"{kind:11s} load average {result['load_average_at_start']} -> {result['load_average_at_end']}; "
            f"same completions in every variant: {result['same_completions']}"
        )
    out = args.out or ROOT / "benchmarks" / "results" / ("trl_step_quick.json" if args.quick else "trl_step.json")
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
