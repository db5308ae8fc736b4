"""The worked example: train a Qwen2.5-VL policy with GRPO and PixelThink's reward, then evaluate it with SAM.

PixelThink (arXiv 2505.23727): reward = segmentation accuracy x a soft length score whose budget depends on the
sample's difficulty tier and, for hard samples, on the policy's uncertainty. This script runs the whole loop:

1. data: a procedural reasoning-segmentation dataset (default; offline, deterministic), or local copies of
   RefCOCOg-9k / ReasonSeg (``--train-data``, ``--eval-data``);
2. difficulty from the dataset, a heuristic, a judge, or the online pass rate (``--difficulty``);
3. the policy (``--policy PATH`` or ``--tiny``) evaluated before training: greedy decoding, SAM with the box and
   two points, gIoU / cIoU, reasoning tokens per tier, budget adherence, wall-clock per stage;
4. GRPO with TRL through ``adaptive_length_reward.adapters.trl`` (uncertainty measured per completion);
5. the same evaluation after training; a run folder with ``metrics.json``, ``config.json``, plots and
   ``report.md``. ``--resume`` continues from the latest checkpoint in the run folder.

Offline demo (``make demo``)::

    python examples/pixelthink_grpo.py --tiny

Real checkpoints on a GPU: see docs/example.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixelthink.rewards import DIFFICULTY_SOURCES, LENGTH_REWARDS, UNCERTAINTY_ESTIMATORS, RewardSettings
from pixelthink.scenes import SceneGenerator, SegSample

#: Settings that ``--tiny`` changes unless given explicitly: a CPU-sized demo of the same loop.
TINY_DEFAULTS: dict[str, Any] = {
    "train_samples": 64, "eval_samples": 24, "steps": 40, "num_generations": 4, "prompts_per_step": 2,
    "max_completion_length": 160, "eval_max_new_tokens": 160, "lr": 5e-4, "kl": 0.0, "warmup_steps": 80,
    "easy_budget": 40.0, "hard_budget": 80.0, "uncertainty_scale": 10.0, "beta": 1 / 60,
    "target_length": 40.0, "save_steps": 20,
}
#: Defaults for real checkpoints: PixelThink's official yaml and reward.
FULL_DEFAULTS: dict[str, Any] = {
    "train_samples": None, "eval_samples": 200, "steps": 500, "num_generations": 8, "prompts_per_step": 2,
    "max_completion_length": 1300, "eval_max_new_tokens": 1024, "lr": 1e-6, "kl": 5e-3, "warmup_steps": 0,
    "easy_budget": 96.0, "hard_budget": 256.0, "uncertainty_scale": 25.0, "beta": 1 / 500,
    "target_length": 96.0, "save_steps": 50,
}


def build_parser() -> argparse.ArgumentParser:
    """The command line (defaults marked "tiny/full" depend on ``--tiny``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--tiny", action="store_true", help="random-weight tiny Qwen2.5-VL and SAM, CPU-sized settings")
    g.add_argument("--policy", help="local Qwen2.5-VL checkpoint directory (required without --tiny), or\n"
                                    "random:ARCH, a published architecture with random weights for size-true timing\n"
                                    "without a checkpoint (ARCH: qwen2.5-vl-3b, qwen2.5-vl-7b)")
    g.add_argument("--random-layers", type=int, help="with --policy random:ARCH: decoder layers (default: ARCH's)")
    g.add_argument("--segmenter", help="local SAM / SAM2 checkpoint directory (transformers format), or\n"
                                       "random:sam / random:sam2 (the tiny random segmenter)")
    g.add_argument("--segmenter-kind", choices=("sam", "sam2"), default="sam", help="tiny segmenter kind")
    g.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    g = p.add_argument_group("data")
    g.add_argument("--train-data", help="saved HF dataset (RefCOCOg-9k / ReasonSeg), ReasonSeg folder or JSON "
                                        "manifest; default: generated scenes")
    g.add_argument("--eval-data", help="as --train-data, with masks; default: generated scenes (held-out seed)")
    g.add_argument("--train-samples", type=int, help="training samples (tiny 64, full: all)")
    g.add_argument("--eval-samples", type=int, help="evaluation samples (tiny 24, full 200)")
    g.add_argument("--image-size", type=int, default=840, help="side of generated scenes (default 840)")
    g.add_argument("--frame", type=int, default=840, help="square side the policy's coordinates live in (840)")
    g.add_argument("--difficulty-table", help="official refcoco_train_labeled_merged.json (image_id -> score)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("reward (ablations)")
    g.add_argument("--length-reward", choices=LENGTH_REWARDS, default="pixelthink")
    g.add_argument("--difficulty", choices=DIFFICULTY_SOURCES, default="dataset")
    g.add_argument("--uncertainty", choices=UNCERTAINTY_ESTIMATORS, default="margin")
    g.add_argument("--length-unit", choices=("words", "reasoning_tokens"), default="words")
    g.add_argument("--easy-budget", type=float, help="easy-tier budget (tiny 40, full 96)")
    g.add_argument("--hard-budget", type=float, help="hard-tier base budget (tiny 80, full 256)")
    g.add_argument("--uncertainty-scale", type=float, help="hard budget += scale * U (tiny 10, full 25)")
    g.add_argument("--beta", type=float, help="soft length slope (tiny 1/60, full 1/500)")
    g.add_argument("--missing-difficulty", type=float, default=3.0, help="difficulty of unscored samples (3.0)")
    g.add_argument("--target-length", type=float, help="L1's target length (tiny 40, full 96)")
    g.add_argument("--correct-threshold", type=float, default=3.0, help="R_acc counted as correct (peers, online)")
    g.add_argument("--length-weight", type=float, default=1.0, help="weight of an added peer length term")
    g.add_argument("--judge-url", help="OpenAI-compatible endpoint of the difficulty judge (--difficulty judge)")
    g.add_argument("--judge-model", help="served model name (with --judge-url) or a local checkpoint path")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="GRPO steps (tiny 40, full 500)")
    g.add_argument("--num-generations", type=int, help="completions per prompt n (tiny 4, full 8)")
    g.add_argument("--prompts-per-step", type=int, help="prompts per GRPO step (default 2)")
    g.add_argument("--micro-batch-size", type=int, help="completions per forward/backward (default: the whole step's "
                                                         "prompts x n); must divide it")
    g.add_argument("--max-completion-length", type=int, help="tokens (tiny 160, full 1300)")
    g.add_argument("--min-completion-length", type=int, help="rollouts at least this many tokens (end-of-sequence\n"
                                                            "suppressed until then): timing at a fixed length")
    g.add_argument("--lr", type=float, help="learning rate (tiny 5e-4, full 1e-6)")
    g.add_argument("--kl", type=float, help="KL coefficient, TRL's beta (tiny 0, full 5e-3)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--loss-type", default="dapo", help="TRL loss_type (default dapo: token-level mean)")
    g.add_argument("--warmup-steps", type=int, help="supervised format warm-up steps (tiny 80, full 0)")
    g.add_argument("--warmup-lr", type=float, default=3e-3)
    g.add_argument("--save-steps", type=int, help="checkpoint every N steps (tiny 20, full 50)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="default: on with CUDA")
    g.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on with CUDA")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-batch-size", type=int, default=8)
    g.add_argument("--eval-max-new-tokens", type=int, help="tiny 160, full 1024 (Seg-Zero)")
    g.add_argument("--no-eval-before", action="store_true", help="skip the evaluation before training")
    g.add_argument("--output-dir", default="runs/demo")
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the tiny/full defaults and check the combination of flags; raise SystemExit with a clear message."""
    defaults = TINY_DEFAULTS if args.tiny else FULL_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.tiny and not args.policy:
        raise SystemExit("--policy: expected a local Qwen2.5-VL checkpoint directory (or --tiny), got none")
    if not args.tiny and not args.segmenter:
        raise SystemExit("--segmenter: expected a local SAM / SAM2 checkpoint directory (or --tiny), got none")
    if args.policy and args.policy.startswith("random:"):
        from pixelthink.models import ARCHITECTURES

        if args.policy.removeprefix("random:") not in ARCHITECTURES:
            raise SystemExit(f"--policy: expected random:ARCH with ARCH one of {', '.join(sorted(ARCHITECTURES))}, "
                             f"got {args.policy!r}")
    elif args.random_layers is not None:
        raise SystemExit(f"--random-layers: expected only with --policy random:ARCH, got --policy {args.policy!r}")
    if args.segmenter and args.segmenter.startswith("random:") and args.segmenter not in ("random:sam", "random:sam2"):
        raise SystemExit(f"--segmenter: expected random:sam or random:sam2, got {args.segmenter!r}")
    if args.difficulty == "judge" and not (args.judge_url or args.judge_model):
        raise SystemExit("--difficulty judge: expected --judge-url (with --judge-model = served name) or "
                         "--judge-model (a local checkpoint path), got neither")
    for name in ("steps", "num_generations", "prompts_per_step", "max_completion_length", "eval_samples",
                 "eval_max_new_tokens", "eval_batch_size", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')}: expected an int >= 1, got {getattr(args, name)}")
    return args


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------


def load_samples(path: str | None, *, count: int | None, seed: int, start: int, args: argparse.Namespace
                 ) -> tuple[list[SegSample], str]:
    """Samples from ``path`` (format detected) or, without one, generated scenes ``start .. start+count-1``."""
    if path is None:
        generator = SceneGenerator(seed=seed, image_size=args.image_size)
        return generator.samples(count if count is not None else 256, start=start), f"generated scenes (seed {seed})"
    from pixelthink.sources import load_reasonseg, load_saved_dataset

    location = Path(path)
    saved = location.is_dir() and any((location / n).is_file()
                                      for n in ("dataset_info.json", "state.json", "dataset_dict.json"))
    if saved:
        samples = load_saved_dataset(location, limit=count, frame=args.frame, difficulty_table=args.difficulty_table)
    else:
        samples = load_reasonseg(location, limit=count, frame=args.frame, difficulty_table=args.difficulty_table)
    if not samples:
        raise SystemExit(f"{path}: expected at least one sample, found none")
    return samples, str(location)


def judge_difficulty(samples: list[SegSample], args: argparse.Namespace, run_dir: Path) -> dict[str, int]:
    """Score every sample with the difficulty judge (cached in the run folder) and write it into the samples."""
    from adaptive_length_reward.difficulty import (
        DifficultyJudge,
        JudgeSample,
        OpenAICompatibleBackend,
        TransformersBackend,
    )

    if args.judge_url:
        backend: Any = OpenAICompatibleBackend(base_url=args.judge_url, model=args.judge_model or "judge")
    else:
        backend = TransformersBackend(model_path=args.judge_model, device=args.device_resolved)
    judge = DifficultyJudge(backend, cache=run_dir / "judge_cache.sqlite")
    requests = [JudgeSample(sample_id=s.id, image=s.image, expression=s.query, mask=s.mask,
                            box=None if s.mask is not None else list(s.bbox)) for s in samples]
    by_id = {s.id: s for s in samples}
    counts = {"ok": 0, "failed": 0}
    for verdict in judge.judge_many(requests):
        score = judge.difficulty(verdict)
        counts["ok" if verdict.ok else "failed"] += 1
        by_id[verdict.sample_id].difficulty = score  # NaN when not ok: --missing-difficulty decides
    return counts


# ------------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_json_ready(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_json_ready(record)) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; returns the metrics written to ``metrics.json``."""
    args = resolve(build_parser().parse_args(argv))
    started = time.perf_counter()
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; TRL 1.16 still calls the old names
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6.*", category=FutureWarning)
    import torch
    from pixelthink.evaluation import evaluate
    from pixelthink.models import (
        build_random_policy,
        build_tiny_policy,
        build_tiny_segmenter,
        load_policy,
        load_segmenter,
    )
    from pixelthink.prompts import QUESTION_TEMPLATE
    from pixelthink.report import plot_length_by_tier, plot_training_curves, summary_table, write_report
    from pixelthink.rewards import build_reward
    from pixelthink.training import TrainSettings, latest_checkpoint, train, warm_up

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    args.device_resolved = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    bf16 = args.bf16 if args.bf16 is not None else args.device_resolved.startswith("cuda")
    checkpointing = (args.gradient_checkpointing if args.gradient_checkpointing is not None
                     else args.device_resolved.startswith("cuda"))
    progress = not args.no_progress
    try:
        reward_settings = RewardSettings(
            length_reward=args.length_reward, difficulty=args.difficulty, uncertainty=args.uncertainty,
            length_unit=args.length_unit, easy_budget=args.easy_budget, hard_budget=args.hard_budget,
            uncertainty_scale=args.uncertainty_scale, beta=args.beta, missing_difficulty=args.missing_difficulty,
            target_length=args.target_length, correct_threshold=args.correct_threshold,
            length_weight=args.length_weight, max_completion_length=args.max_completion_length,
        )
        train_settings = TrainSettings(
            steps=args.steps, num_generations=args.num_generations, prompts_per_step=args.prompts_per_step,
            micro_batch_size=args.micro_batch_size, max_completion_length=args.max_completion_length,
            min_completion_length=args.min_completion_length, learning_rate=args.lr, kl=args.kl,
            temperature=args.temperature, loss_type=args.loss_type,
            uncertainty=args.uncertainty, bf16=bf16, gradient_checkpointing=checkpointing,
            save_steps=args.save_steps, seed=args.seed,
        )
    except ValueError as error:  # a bad flag value: say which, as the command line's own errors do
        raise SystemExit(f"error: {error}") from None
    run_dir = Path(args.output_dir)
    resuming = args.resume and latest_checkpoint(run_dir / "checkpoints") is not None
    if args.resume and not resuming:
        raise SystemExit(f"--resume: expected a checkpoint-N folder under {run_dir / 'checkpoints'}, found none")
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)

    # -- data -----------------------------------------------------------------------------------------------
    train_samples, train_name = load_samples(args.train_data, count=args.train_samples, seed=args.seed, start=0,
                                             args=args)
    eval_samples, eval_name = load_samples(args.eval_data, count=args.eval_samples, seed=args.seed + 1, start=0,
                                           args=args)
    judged = None
    if args.difficulty == "judge":
        judged = judge_difficulty(train_samples + eval_samples, args, run_dir)

    # -- models ---------------------------------------------------------------------------------------------
    if args.tiny:
        policy = build_tiny_policy(QUESTION_TEMPLATE, seed=args.seed)
        segmenter = build_tiny_segmenter(args.segmenter_kind, seed=args.seed)
    else:
        dtype = "bfloat16" if bf16 else "float32"
        if args.policy.startswith("random:"):
            policy = build_random_policy(QUESTION_TEMPLATE, args.policy.removeprefix("random:"),
                                         layers=args.random_layers, dtype=dtype, device=args.device_resolved,
                                         seed=args.seed)
            if args.kl > 0:  # TRL builds the KL reference model from the policy's path: give it one
                initial = run_dir / "initial-policy"
                if not (initial / "config.json").is_file():
                    policy.model.save_pretrained(initial)
                    policy.processor.save_pretrained(initial)
                policy.model.config._name_or_path = str(initial)
        else:
            policy = load_policy(args.policy, dtype=dtype, device=args.device_resolved)
        if args.segmenter.startswith("random:"):
            segmenter = build_tiny_segmenter(args.segmenter.removeprefix("random:"), seed=args.seed)
        else:
            segmenter = load_segmenter(args.segmenter, device=args.device_resolved)
    policy.model.to(args.device_resolved)
    segmenter.model.to(args.device_resolved)

    reward = build_reward(reward_settings, policy.tokenizer)
    config = {"args": {k: v for k, v in vars(args).items()}, "reward": reward_settings.to_dict(),
              "reward_component": reward.to_config().model_dump(mode="json"), "train": train_settings.to_dict()}
    _write_json(run_dir / "config.json", config)

    # -- warm-up, evaluation before ----------------------------------------------------------------------
    warm = {"steps": 0, "seconds": 0.0, "loss_first": None, "loss_last": None, "skipped": "resume"}
    if not resuming:
        warm = warm_up(policy, train_samples, steps=args.warmup_steps, learning_rate=args.warmup_lr,
                       progress=progress)
    eval_kwargs = {"train_reward": reward, "reward_settings": reward_settings, "batch_size": args.eval_batch_size,
                   "max_new_tokens": args.eval_max_new_tokens, "progress": progress}
    before_path = run_dir / "eval_before.json"
    before: dict[str, Any] | None = None
    before_records: list[dict[str, Any]] = []
    if resuming and before_path.is_file():
        stored = json.loads(before_path.read_text())
        before, before_records = stored["summary"], stored["records"]
    elif not args.no_eval_before:
        result = evaluate(policy, segmenter, eval_samples, desc="evaluate (before)", **eval_kwargs)
        before, before_records = result.summary(), result.records
        _write_json(before_path, {"summary": before, "records": before_records})

    # -- GRPO -----------------------------------------------------------------------------------------------
    trained, model = train(policy, train_samples, reward, train_settings, run_dir, resume=resuming,
                           progress=progress)
    policy.model = model

    # -- evaluation after -----------------------------------------------------------------------------------
    after_result = evaluate(policy, segmenter, eval_samples, desc="evaluate (after)", **eval_kwargs)
    after = after_result.summary()
    _write_records(run_dir / "eval_after.jsonl", after_result.records)

    # -- metrics, plots, report -----------------------------------------------------------------------------
    train_s = trained.seconds
    timings = {
        "warmup_s": warm["seconds"], "train_s": train_s,
        "train_step_s_median": statistics.median(trained.step_seconds) if trained.step_seconds else None,
        "generation_s": trained.generation_seconds - trained.uncertainty_seconds,
        "uncertainty_s": trained.uncertainty_seconds, "reward_s": trained.reward_seconds,
        "uncertainty_share": trained.uncertainty_seconds / train_s if train_s else None,
        "reward_share": trained.reward_seconds / train_s if train_s else None,
        "eval_prefill_s": after["timings"]["prefill_s"], "eval_decode_s": after["timings"]["decode_s"],
        "eval_sam_s": after["timings"]["sam_s"], "eval_sam_ms_per_call": after["timings"]["sam_ms_per_call"],
        "total_s": time.perf_counter() - started,
    }
    budgets = {"easy": (reward_settings.easy_budget, 0.0), "medium": None,
               "hard": (reward_settings.hard_budget, reward_settings.uncertainty_scale)}
    plots = [
        plot_length_by_tier(before_records, after_result.records, run_dir / "plots" / "reasoning_length_by_tier.png",
                            length_unit=reward_settings.length_unit, budgets=budgets,
                            title=f"{policy.name}: reasoning length per difficulty tier, before and after "
                                  f"{trained.steps} GRPO steps ({args.length_reward})"),
        plot_training_curves(trained.log_history if not resuming else _read_log(run_dir / "train_log.jsonl"),
                             run_dir / "plots" / "training_curves.png", reward_name=reward.name,
                             title=f"GRPO with the {reward.name} reward: per-step curves"),
    ]
    metrics = {
        "giou": after["giou"], "ciou": after["ciou"], "mean_reasoning_tokens": after["mean_reasoning_tokens"],
        "budget_adherence": after["budget_adherence"], "budget_adherence_by_tier": after["budget_adherence_by_tier"],
        "train_steps": trained.steps, "timings": timings, "before": before, "after": after,
        "warmup": warm, "peak_memory_mb": trained.peak_memory_mb, "resumed_from": trained.resumed_from,
        "judge": judged,
        "run": {"name": run_dir.name, "policy": policy.name, "segmenter": segmenter.name, "data": train_name,
                "eval_data": eval_name, "device": _device_name(args.device_resolved),
                "train_samples": len(train_samples), "eval_samples": len(eval_samples)},
        "config": {"reward": reward_settings.to_dict(), "train": train_settings.to_dict()},
        "plots": [str(p.relative_to(run_dir)) for p in plots],
    }
    notes = [
        "budgets are in the reward's length unit; the easy and hard budgets of this run are "
        f"{reward_settings.easy_budget:g} and {reward_settings.hard_budget:g} + "
        f"{reward_settings.uncertainty_scale:g} U (PixelThink: 96 and 256 + 25 U words)",
        *after_result.notes, *trained.notes,
    ]
    if args.tiny:
        millions = sum(p.numel() for p in policy.model.parameters()) / 1e6
        notes.insert(0, f"tiny run: random-weight models (a {millions:.1f} M-parameter Qwen2.5-VL after a short format "
                        "warm-up, a random SAM); the numbers show that the loop works end to end and that the length "
                        "reward moves reasoning length, not what PixelThink achieves on real data")
    elif args.policy.startswith("random:"):
        billions = sum(p.numel() for p in policy.model.parameters()) / 1e9
        notes.insert(0, f"size-true timing run: {policy.name}, {billions:.2f} B parameters; the step time, memory and "
                        "reward/uncertainty shares are those of this size, the accuracy and lengths mean nothing")
    metrics["notes"] = notes
    _write_json(run_dir / "metrics.json", metrics)
    write_report(run_dir / "report.md", _json_ready(metrics), plots=plots, notes=notes)
    if progress:
        print("\n" + summary_table(_json_ready(metrics)))
        print(f"\nrun folder: {run_dir}  ({timings['total_s']:.1f} s; report.md, metrics.json, plots/)")
    return metrics


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)"


if __name__ == "__main__":
    main()
