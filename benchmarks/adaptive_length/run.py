"""Run the whole adaptive-length experiment with one command and write its report.

    python -m benchmarks.adaptive_length.run --seed 0          # full run (CPU, ~20 min), writes docs/experiments/
    python -m benchmarks.adaptive_length.run --seed 0 --quick  # smoke test (seconds), writes to a temporary folder

Steps: build the tokenizer and a random tiny Qwen2 policy (:mod:`.models`); supervised fine-tuning on reference
traces (:mod:`.sft`); measure the SFT policy's uncertainty (sets ``uncertainty_only``'s scale); GRPO from the
same SFT weights with the same seed and steps for every variant and sweep point (:mod:`.grpo`,
:mod:`.variants`); evaluate each policy on the same held-out problems, sampled and greedy (:mod:`.evaluation`);
repeat ``none``, ``uniform`` and ``pixelthink`` with two more GRPO seeds to measure seed-to-seed spread; write
JSON, markdown and PNG plots (:mod:`.report`). The run is single-threaded (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``) and deterministic for a seed on the same software and hardware.

``--device cuda`` moves SFT, evaluation and TRL's training to a GPU (same code; not exercised on this CPU-only
machine); ``--grpo-steps`` and ``--sft-steps`` scale the run up.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from pydantic import Field

from adaptive_length_reward import ComponentConfig
from adaptive_length_reward.config import validated

from .evaluation import decode, rollout_uncertainty, summarize
from .grpo import GRPOSettings, train_variant
from .models import ModelSettings, build_model, build_tokenizer
from .report import VariantRun, assemble_results, write_report
from .sft import SFTSettings, supervised_fine_tune
from .task import TaskSettings, problems, tier_names
from .variants import PROBLEM_ID, REFERENCE_ACCURACY, Budgets, VariantSpec, main_variants, sweep_variants

__all__ = ["ExperimentConfig", "main", "run_experiment"]

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "experiments"


class ExperimentConfig(ComponentConfig):
    """Everything that defines a run (besides the seed)."""

    kind: Literal["adaptive_length_experiment"] = "adaptive_length_experiment"
    task: TaskSettings = Field(default_factory=TaskSettings)
    model: ModelSettings = Field(
        default_factory=lambda: ModelSettings(hidden_size=64, num_layers=2, intermediate_size=192)
    )
    sft: SFTSettings = Field(default_factory=SFTSettings)
    grpo: GRPOSettings = Field(default_factory=lambda: GRPOSettings(steps=100, learning_rate=5e-5))
    budgets: Budgets = Field(default_factory=Budgets)
    eval_problems: int = Field(360, ge=1)
    eval_samples: int = Field(4, ge=1)
    calibration_problems: int = Field(360, ge=1)
    calibration_quantile: float = Field(0.9, gt=0, lt=1)
    sweeps: bool = True
    replicate_seed_offsets: tuple[int, ...] = (1, 2)
    replicate_variants: tuple[str, ...] = ("none", "uniform", "pixelthink")
    variants: tuple[str, ...] | None = None
    train_passes: int = Field(
        1,
        ge=1,
        description="passes over the GRPO training problems: steps * prompts_per_step "
        "/ train_passes distinct problems, each seen train_passes times (1: every problem once)",
    )
    quick: bool = False
    device: Literal["cpu", "cuda"] = "cpu"

    @classmethod
    def full(cls) -> ExperimentConfig:
        """The committed experiment's settings (the defaults)."""
        return cls()

    @classmethod
    def smoke(cls) -> ExperimentConfig:
        """Seconds: a one-layer model, a few SFT steps, one GRPO step per variant, a handful of problems."""
        return cls(
            model=ModelSettings(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
            sft=SFTSettings(steps=20, batch_size=8, warmup_steps=2),
            grpo=GRPOSettings(steps=1, prompts_per_step=2, generations=2, max_completion_length=24, learning_rate=5e-5),
            budgets=Budgets(generation_cap=24),
            eval_problems=9,
            eval_samples=1,
            calibration_problems=9,
            replicate_seed_offsets=(1,),
            replicate_variants=("none", "pixelthink"),
            quick=True,
        )


def _progress(began: float) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f}s] {line}", flush=True)

    return say


def _environment() -> dict[str, Any]:
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def run_experiment(
    config: ExperimentConfig,
    *,
    seed: int,
    command: str,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run SFT, the GRPO variants and the evaluations; return the results dict :mod:`.report` writes."""
    import torch

    say = progress or (lambda line: None)
    torch.set_num_threads(1)
    began = time.perf_counter()
    c = config
    thresholds = c.task.thresholds
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, c.model, seed=seed).to(c.device)
    n_params = sum(p.numel() for p in model.parameters())
    say(
        f"policy: Qwen2 {c.model.num_layers} layers x {c.model.hidden_size}, {n_params:,} parameters; "
        f"SFT {c.sft.steps} steps"
    )
    sft = supervised_fine_tune(model, tokenizer, seed=seed, settings=c.sft, task=c.task, progress=say)

    eval_set = problems(seed, "eval", c.eval_problems, c.task)
    cap = c.grpo.max_completion_length

    def sample(policy: Any) -> Any:
        """The headline evaluation: ``eval_samples`` sampled completions per problem."""
        return decode(
            policy,
            tokenizer,
            eval_set,
            thresholds=thresholds,
            max_new_tokens=cap,
            greedy=False,
            samples=c.eval_samples,
            seed=seed,
        )

    def evaluate(policy: Any) -> dict[str, Any]:
        sampled = sample(policy)
        greedy = decode(policy, tokenizer, eval_set, thresholds=thresholds, max_new_tokens=cap, greedy=True, seed=seed)
        return {"sampled": sampled, "greedy": greedy}

    sft_eval = evaluate(model)
    say("SFT policy (sampled): " + _tier_line(sft_eval["sampled"]))

    calibration = problems(seed, "train", c.calibration_problems, c.task)
    uncertainty = rollout_uncertainty(model, tokenizer, calibration, max_new_tokens=cap, seed=seed)
    reference = float(np.quantile(uncertainty, c.calibration_quantile))
    budgets = c.budgets.model_copy(
        update={"uncertainty_reference": max(reference, 1e-6), "thresholds": thresholds, "generation_cap": cap}
    )
    calibration_tiers = tier_names([p.difficulty for p in calibration], thresholds)
    say(f"SFT policy uncertainty U: mean {uncertainty.mean():.4f}, q{c.calibration_quantile:g} {reference:.4f}")

    specs: list[VariantSpec] = main_variants(budgets) + (sweep_variants(budgets) if c.sweeps else [])
    if c.variants is not None:
        unknown = set(c.variants) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"variants: expected names from {[s.name for s in specs]}, got unknown {sorted(unknown)}")
        specs = [s for s in specs if s.name in c.variants]
    rows = c.grpo.steps * c.grpo.prompts_per_step
    if rows % c.train_passes:
        raise ValueError(f"train_passes: expected a divisor of steps * prompts_per_step ({rows}), got {c.train_passes}")
    distinct = rows // c.train_passes
    train_set = problems(seed, "train", distinct, c.task) * c.train_passes  # TRL's sampler shuffles the rows
    columns = _variant_columns(specs, model, tokenizer, train_set, c, seed=seed, progress=say)
    columns[PROBLEM_ID] = [i % distinct for i in range(rows)]
    replicated = [s for s in specs if s.name in c.replicate_variants]
    jobs = [(spec, seed) for spec in specs] + [
        (spec, seed + offset) for offset in c.replicate_seed_offsets for spec in replicated
    ]
    runs: list[VariantRun] = []
    replicates: dict[int, dict[str, Any]] = {}
    grpo_began = time.perf_counter()
    for i, (spec, grpo_seed) in enumerate(jobs):
        tag = spec.name if grpo_seed == seed else f"{spec.name} (GRPO seed {grpo_seed})"
        say(
            f"GRPO {i + 1}/{len(jobs)}: {tag}, {c.grpo.steps} steps"
            f"{', UncertaintyGRPOTrainer' if spec.uncertainty else ''}"
        )
        policy, log = train_variant(
            model,
            tokenizer,
            spec.reward,
            train_set,
            seed=grpo_seed,
            settings=c.grpo,
            uncertainty=spec.uncertainty,
            progress=say,
            label=tag,
            columns={name: columns[name] for name in spec.columns},
        )
        if grpo_seed == seed:
            evaluated = evaluate(policy)
            runs.append(VariantRun(spec=spec, log=log, sampled=evaluated["sampled"], greedy=evaluated["greedy"]))
            sampled = evaluated["sampled"]
        else:  # replicates: the headline (sampled) evaluation only
            sampled = sample(policy)
            replicates.setdefault(grpo_seed, {})[spec.name] = sampled
        say(f"  {tag} (sampled): " + _tier_line(sampled))
        remaining = (time.perf_counter() - grpo_began) / (i + 1) * (len(jobs) - i - 1)
        say(f"  done {i + 1}/{len(jobs)} runs; about {remaining / 60:.1f} min to go")
        del policy

    return assemble_results(
        config=c.model_dump(mode="json"),
        seed=seed,
        command=command,
        environment=_environment(),
        n_params=n_params,
        sft=sft,
        sft_eval=sft_eval,
        eval_set=eval_set,
        budgets=budgets,
        uncertainty=uncertainty,
        uncertainty_tiers=calibration_tiers,
        calibration_quantile=c.calibration_quantile,
        runs=runs,
        replicates=replicates,
        total_wall_s=time.perf_counter() - began,
    )


def _variant_columns(
    specs: Sequence[VariantSpec],
    model: Any,
    tokenizer: Any,
    train_set: Sequence[Any],
    c: ExperimentConfig,
    *,
    seed: int,
    progress: Callable[[str], None],
) -> dict[str, list[Any]]:
    """The extra dataset columns the variants read besides ``problem_id`` (HAPO's history key, set by the caller):
    only when a variant needs it, AdaptThink's reference accuracy (the SFT policy's mean accuracy over
    ``generations`` samples of each training prompt, sampled once before GRPO with the evaluation's sampler)."""
    columns: dict[str, list[Any]] = {}
    if any(REFERENCE_ACCURACY in spec.columns for spec in specs):
        sampled = decode(
            model,
            tokenizer,
            train_set,
            thresholds=c.task.thresholds,
            max_new_tokens=c.grpo.max_completion_length,
            greedy=False,
            samples=c.grpo.generations,
            seed=seed + 7919,
        )
        sums = np.bincount(sampled.problem, weights=sampled.correct, minlength=len(train_set))
        reference = sums / np.maximum(np.bincount(sampled.problem, minlength=len(train_set)), 1)
        columns[REFERENCE_ACCURACY] = [float(v) for v in reference]
        progress(
            f"reference accuracy (SFT policy, {c.grpo.generations} samples per training prompt): mean "
            f"{reference.mean():.3f}, {sampled.wall_s:.1f} s"
        )
    return columns


def _tier_line(result: Any) -> str:
    summary = summarize(result)
    return "  ".join(
        f"{tier} {s.mean_reasoning_tokens:.1f} tok / {100 * s.accuracy:.1f}%" for tier, s in summary.items()
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adaptive_length.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny settings, seconds")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default docs/experiments; with --quick a new temporary folder)",
    )
    parser.add_argument("--no-sweeps", action="store_true", help="skip the PixelThink sweeps")
    parser.add_argument(
        "--no-replicates", action="store_true", help="skip the extra GRPO seeds of none / uniform / pixelthink"
    )
    parser.add_argument("--variants", default=None, help="comma-separated variant names to run (default all)")
    parser.add_argument("--grpo-steps", type=int, default=None, help="GRPO steps per variant")
    parser.add_argument("--sft-steps", type=int, default=None, help="supervised fine-tuning steps")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    parser.add_argument(
        "--train-passes",
        type=int,
        default=None,
        help="passes over fewer distinct GRPO problems (HAPO's history needs problems seen again)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.adaptive_length.run``."""
    args = _parse(argv)
    if args.seed < 0:
        raise SystemExit(f"--seed: expected a non-negative integer, got {args.seed}")
    config = ExperimentConfig.smoke() if args.quick else ExperimentConfig.full()
    update: dict[str, Any] = {}
    if args.no_sweeps:
        update["sweeps"] = False
    if args.no_replicates:
        update["replicate_seed_offsets"] = ()
    if args.variants:
        update["variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if args.grpo_steps is not None:
        update["grpo"] = config.grpo.model_copy(update={"steps": args.grpo_steps})
    if args.sft_steps is not None:
        update["sft"] = config.sft.model_copy(update={"steps": args.sft_steps})
    if args.train_passes is not None:
        update["train_passes"] = args.train_passes
    if args.device != "cpu":
        update["device"] = args.device
        update["grpo"] = update.get("grpo", config.grpo).model_copy(update={"use_cpu": False})
    values = {
        **config.model_dump(),
        **{k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in update.items()},
    }
    config = validated("ExperimentConfig", ExperimentConfig, **values)
    out = args.out or (Path(tempfile.mkdtemp(prefix="adaptive-length-quick-")) if args.quick else DEFAULT_OUT)
    command = "python -m benchmarks.adaptive_length.run " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    say = _progress(time.perf_counter())
    results = run_experiment(config, seed=args.seed, command=command.strip(), progress=say)
    paths = write_report(results, out)
    say(f"wrote {', '.join(str(p) for p in paths)}")
    verdict = results["target"]
    say(f"target met: {verdict['met']}  ({verdict['summary']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
