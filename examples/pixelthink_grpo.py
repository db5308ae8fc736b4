"""The worked example: train a Qwen2.5-VL policy with GRPO and PixelThink's reward, then evaluate it with SAM.

PixelThink (arXiv 2505.23727): reward = segmentation accuracy x a soft length score whose budget depends on the
sample's difficulty tier and, for hard samples, on the policy's uncertainty. This script runs the whole loop:

1. data: a procedural reasoning-segmentation dataset (default; offline, deterministic), or local copies of
   RefCOCOg-9k / ReasonSeg (``--train-data``, ``--eval-data``);
2. difficulty from the dataset, a heuristic, a judge, or the online pass rate (``--difficulty``);
3. the policy (``--policy PATH`` or ``--tiny``) evaluated before training: greedy decoding, the segmenter (SAM /
   SAM2, or GrabCut: ``--segmenter grabcut``, the ``--tiny`` default) with the box and two points, gIoU / cIoU,
   reasoning tokens per tier, budget adherence, wall-clock per stage;
4. GRPO with TRL through ``adaptive_length_reward.adapters.trl`` (uncertainty measured per completion);
5. the same evaluation after training; a run folder with ``metrics.json``, ``config.json``, plots and
   ``report.md``. ``--resume`` continues from the latest checkpoint in the run folder.

Offline demo (``make demo``)::

    python examples/pixelthink_grpo.py --tiny

Real checkpoints on a GPU: see docs/example.md. ``--recipe pixelthink`` gives the official training settings;
``--config FILE.yaml`` reads flags from a file (keys: the long option names), flags on the command line win.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
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

logger = logging.getLogger("pixelthink_grpo")

#: Optimizer and loss settings shared by the tiny and the full defaults (the official yaml's values).
_COMMON_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "weight_decay": 1e-2,
    "max_grad_norm": 1.0,
    "clip_epsilon": 0.2,
    "loss_type": "dapo",
}
#: Settings that ``--tiny`` changes unless given explicitly: a CPU-sized demo of the same loop.
TINY_DEFAULTS: dict[str, Any] = {
    "train_samples": 64,
    "eval_samples": 96,
    "steps": 50,
    "num_generations": 4,
    "prompts_per_step": 4,
    "max_completion_length": 160,
    "eval_max_new_tokens": 160,
    "lr": 2.5e-4,
    "kl": 0.2,
    "warmup_steps": 400,
    "length_unit": "reasoning_tokens",
    "easy_budget": 20.0,
    "hard_budget": 80.0,
    "uncertainty_scale": 10.0,
    "beta": 1 / 60,
    "target_length": 40.0,
    "save_steps": 20,
    **_COMMON_DEFAULTS,
}
#: Defaults for real checkpoints: PixelThink's reward and the official optimizer settings; the batch shape
#: (2 prompts per step, 500 steps) is a single-GPU one, ``--recipe pixelthink`` gives the official one.
FULL_DEFAULTS: dict[str, Any] = {
    "train_samples": None,
    "eval_samples": 200,
    "steps": 500,
    "num_generations": 8,
    "prompts_per_step": 2,
    "max_completion_length": 1300,
    "eval_max_new_tokens": 1024,
    "lr": 1e-6,
    "kl": 5e-3,
    "warmup_steps": 0,
    "easy_budget": 96.0,
    "hard_budget": 256.0,
    "uncertainty_scale": 25.0,
    "beta": 1 / 500,
    "length_unit": "words",
    "target_length": 96.0,
    "save_steps": 50,
    **_COMMON_DEFAULTS,
}
#: Training recipes (``--recipe``): values that replace the defaults above; flags given on the command line or in
#: ``--config`` win. ``pixelthink`` is PixelThink's official training yaml (Seg-Zero's
#: ``training_scripts/qwen25vl_7b_refcocog.yaml`` with PixelThink's reward), as far as TRL has the knob; the
#: differences are listed in docs/example.md. ``steps: None`` means one epoch over the training data.
RECIPES: dict[str, dict[str, Any]] = {
    "pixelthink": {
        "prompts_per_step": 16,  # rollout batch: 16 prompts per optimizer step ...
        "num_generations": 8,  # ... x n = 8 completions = 128 completions per step
        "micro_batch_size": 8,  # 128 / 8 = 16 gradient-accumulation micro-batches (memory only)
        "steps": None,  # one epoch over the training data (9k prompts: 563 steps)
        "temperature": 1.0,
        "lr": 1e-6,
        "weight_decay": 1e-2,
        "max_grad_norm": 1.0,
        "kl": 5e-3,  # KL as a loss term (TRL's beta; TRL's per-token KL is the k3 estimator)
        "clip_epsilon": 0.2,
        "max_completion_length": 1300,  # response length; TRL 1.16 has no prompt-length limit (see the docs)
        "loss_type": "grpo",  # per-sequence token mean, then the mean over sequences
        "warmup_steps": 0,
    },
}
#: The segmenter ``--tiny`` uses when neither ``--segmenter`` nor ``--segmenter-kind`` is given.
TINY_SEGMENTER = "grabcut"
#: ``--segmenter`` values that name a built-in segmenter rather than a checkpoint directory.
BUILTIN_SEGMENTERS = ("grabcut", "random:sam", "random:sam2")
#: What ``--recipe`` expects for ``--policy`` (a local copy of this checkpoint; nothing is downloaded).
RECIPE_POLICIES = {"pixelthink": "Qwen2.5-VL-7B-Instruct"}
#: Options whose value is a path that must exist (checked before anything is built).
_INPUT_PATHS = ("train_data", "eval_data", "difficulty_table", "init_policy")


def build_parser() -> argparse.ArgumentParser:
    """The command line (defaults marked "tiny/full" depend on ``--tiny``)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
        usage="%(prog)s (--tiny | --policy DIR --segmenter DIR|grabcut) [--recipe pixelthink] "
        "[--config FILE] [options]\n       (--help lists every option)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON file of flags (keys: long option names, e.g.\n"
        "lr: 1.0e-6 or prompts-per-step: 16); command-line flags win",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="training recipe: pixelthink = the official training\n"
        "yaml (16 prompts x 8 per step, grpo loss, ...; needs\n"
        "--policy, a local Qwen2.5-VL-7B-Instruct); flags win",
    )
    g = p.add_argument_group("models")
    g.add_argument(
        "--tiny", action="store_true", help="random-weight tiny Qwen2.5-VL, the GrabCut segmenter,\nCPU-sized settings"
    )
    g.add_argument(
        "--policy",
        help="local Qwen2.5-VL checkpoint directory (required without --tiny), or\n"
        "random:ARCH, a published architecture with random weights for size-true timing\n"
        "without a checkpoint (ARCH: qwen2.5-vl-3b, qwen2.5-vl-7b)",
    )
    g.add_argument("--random-layers", type=int, help="with --policy random:ARCH: decoder layers (default: ARCH's)")
    g.add_argument(
        "--segmenter",
        help="local SAM / SAM2 checkpoint directory (transformers format),\n"
        "grabcut (OpenCV GrabCut from the box and points: no weights, CPU), or\n"
        "random:sam / random:sam2 (the tiny random segmenter, a wiring test);\n"
        f"with --tiny default: {TINY_SEGMENTER}",
    )
    g.add_argument(
        "--segmenter-kind",
        choices=("sam", "sam2"),
        help="with --tiny and no --segmenter: a tiny random SAM / SAM2 (same as --segmenter random:KIND)",
    )
    g.add_argument(
        "--init-policy",
        metavar="DIR",
        help="with --tiny: start from the weights saved in DIR (an earlier run's reference-policy,\n"
        "i.e. its warm-started policy) instead of random ones; pair it with --warmup-steps 0",
    )
    g.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    g = p.add_argument_group("data")
    g.add_argument(
        "--train-data",
        help="saved HF dataset (RefCOCOg-9k / ReasonSeg), ReasonSeg folder or JSON manifest; default: generated scenes",
    )
    g.add_argument("--eval-data", help="as --train-data, with masks; default: generated scenes (held-out seed)")
    g.add_argument("--train-samples", type=int, help="training samples (tiny 64, full: all)")
    g.add_argument("--eval-samples", type=int, help="evaluation samples (tiny 96, full 200)")
    g.add_argument("--image-size", type=int, default=840, help="side of generated scenes (default 840)")
    g.add_argument("--frame", type=int, default=840, help="square side the policy's coordinates live in (840)")
    g.add_argument("--difficulty-table", help="official refcoco_train_labeled_merged.json (image_id -> score)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("reward (ablations)")
    g.add_argument("--length-reward", choices=LENGTH_REWARDS, default="pixelthink")
    g.add_argument(
        "--prompt",
        choices=("default", "concise"),
        default="default",
        help="concise: the question asks for concise reasoning (the +Prompt baseline,\n"
        "training and evaluation); default: Seg-Zero's question",
    )
    g.add_argument("--difficulty", choices=DIFFICULTY_SOURCES, default="dataset")
    g.add_argument("--uncertainty", choices=UNCERTAINTY_ESTIMATORS, default="margin")
    g.add_argument(
        "--length-unit",
        choices=("words", "reasoning_tokens"),
        help="what the length reward counts (tiny: reasoning_tokens, so that breaking the answer's JSON\n"
        "never shortens a completion; full: words of the response, PixelThink's)",
    )
    g.add_argument("--easy-budget", type=float, help="easy-tier budget (tiny 20, full 96)")
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
    g.add_argument("--steps", type=int, help="GRPO steps (tiny 50, full 500)")
    g.add_argument("--num-generations", type=int, help="completions per prompt n (tiny 4, full 8)")
    g.add_argument("--prompts-per-step", type=int, help="prompts per GRPO step (tiny 4, full 2)")
    g.add_argument(
        "--micro-batch-size",
        type=int,
        help="completions per forward/backward (default: the whole step's prompts x n); must divide it",
    )
    g.add_argument("--max-completion-length", type=int, help="tokens (tiny 160, full 1300)")
    g.add_argument(
        "--min-completion-length",
        type=int,
        help="rollouts at least this many tokens (end-of-sequence\nsuppressed until then): timing at a fixed length",
    )
    g.add_argument("--lr", type=float, help="learning rate (tiny 2.5e-4, full 1e-6)")
    g.add_argument("--kl", type=float, help="KL coefficient, TRL's beta (tiny 0.2 against the warm start, full 5e-3)")
    g.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-2)")
    g.add_argument("--max-grad-norm", type=float, help="gradient clipping norm (default 1.0)")
    g.add_argument("--clip-epsilon", type=float, help="PPO ratio clip, TRL's epsilon (default 0.2)")
    g.add_argument(
        "--loss-type",
        help="TRL loss_type (default dapo: token-level mean; --recipe pixelthink: grpo,\n"
        "the per-sequence token mean averaged over sequences)",
    )
    g.add_argument("--warmup-steps", type=int, help="supervised warm-start steps (tiny 400, full 0)")
    g.add_argument("--warmup-lr", type=float, default=3e-3)
    g.add_argument(
        "--warmup-spread",
        choices=("uniform", "binomial"),  # pixelthink.training.WARMUP_SPREADS
        default="uniform",
        help="how many of the warm start's reasoning checks an example keeps: uniform\n"
        "(0 to all, equally often) or binomial (each with probability 1/2)",
    )
    g.add_argument("--save-steps", type=int, help="checkpoint every N steps (tiny 20, full 50)")
    g.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast (mixed precision, TRL's bf16) around\nfloat32 weights; default: on with CUDA",
    )
    g.add_argument(
        "--param-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="dtype of the trained weights (default float32: master weights\nfor AdamW); bfloat16 halves "
        "their memory but AdamW updates at small\nlearning rates round away (a warning says so)",
    )
    g.add_argument(
        "--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None, help="default: on with CUDA"
    )
    g.add_argument(
        "--use-vllm",
        action="store_true",
        help="generate rollouts with vLLM (TRL's use_vllm; needs CUDA,\n"
        "the vllm package and --policy DIR); see docs/example.md",
    )
    g.add_argument(
        "--vllm-mode",
        choices=("colocate", "server"),
        default="colocate",
        help="with --use-vllm: colocate (default: vLLM in this process) or\nserver (a running "
        "`trl vllm-serve --model DIR`)",
    )
    g.add_argument(
        "--vllm-gpu-memory-utilization",
        type=float,
        default=0.3,
        help="with --use-vllm --vllm-mode colocate: GPU memory share for vLLM (0.3)",
    )
    g = p.add_argument_group("evaluation and output")
    g.add_argument(
        "--eval-convention",
        choices=("lisa", "seg_zero"),
        default="lisa",
        help="how answers are parsed and IoU counted (docs/metrics.md): lisa (default: exact keys,\n"
        "an empty union counts 1, ignore pixels excluded) or seg_zero (Seg-Zero's evaluation.py:\n"
        "substring keys, int(), half-to-even rescale, empty unions skipped, ignore pixels as target)",
    )
    g.add_argument("--eval-batch-size", type=int, default=8)
    g.add_argument("--eval-max-new-tokens", type=int, help="tiny 160, full 1024 (Seg-Zero)")
    g.add_argument("--no-eval-before", action="store_true", help="skip the evaluation before training")
    g.add_argument(
        "--eval-thinking-cap",
        action="store_true",
        help="after training, evaluate once more with the inference-time thinking cap: each\n"
        "sample's PixelThink budget (from its difficulty; U = 0, as the answer's uncertainty\n"
        "is not known before it is generated) closes its reasoning (docs/thinking_budget.md)",
    )
    g.add_argument(
        "--thinking-cap-scales",
        default="1",
        help="with --eval-thinking-cap: comma-separated factors on the budgets, one capped\n"
        "evaluation each (a sweep of the accuracy-tokens trade-off); default 1",
    )
    g.add_argument("--output-dir", default="runs/demo")
    g.add_argument(
        "--report-to", default="none", help="TRL/transformers report_to: none (default), tensorboard, wandb, ..."
    )
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def input_error(message: str) -> SystemExit:
    """A bad input (a path that does not exist, a dataset that does not load): one line on stderr, exit status 2.
    Raise the result: ``raise input_error(...)``."""
    print(f"{Path(sys.argv[0]).name or 'pixelthink_grpo.py'}: error: {message}", file=sys.stderr)
    return SystemExit(2)


def config_file_argv(path: str, parser: argparse.ArgumentParser) -> list[str]:
    """The flags a ``--config`` file stands for: ``{"lr": 1e-6, "bf16": false}`` -> ``["--lr", "1e-06",
    "--no-bf16"]``. Keys are long option names (``-`` or ``_``); put before the command line, whose flags win."""
    location = Path(path)
    if not location.is_file():
        raise input_error(f"--config: expected a YAML or JSON file, got {path!r} (no such file)")
    text = location.read_text(encoding="utf-8")
    if location.suffix.lower() == ".json":
        load, parse_errors = json.loads, (ValueError,)
    else:
        try:
            import yaml
        except ImportError:
            raise input_error(
                "--config: a YAML file needs PyYAML (pip install 'adaptive-length-reward[example]'), "
                "or give a .json file"
            ) from None
        load, parse_errors = yaml.safe_load, (yaml.YAMLError,)
    try:
        data = load(text)
    except parse_errors as error:  # say where, in one line
        raise input_error(
            f"--config: {path}: expected YAML or JSON, got a parse error: {' '.join(str(error).split())}"
        ) from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise input_error(f"--config: {path}: expected a mapping of option names to values, got {type(data).__name__}")
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []
    for key, value in data.items():
        dest = str(key).lstrip("-").replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("config", "help"):
            parser.error(f"--config: {path}: unknown option {key!r}")
        option = "--" + dest.replace("_", "-")
        if value is None:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                parser.error(f"--config: {path}: {key}: expected true or false, got {value!r}")
            argv.append(option if value else "--no-" + option[2:])
        elif isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                parser.error(f"--config: {path}: {key}: expected true or false, got {value!r}")
            if value:
                argv.append(option)
        elif isinstance(value, (dict, list)):
            parser.error(f"--config: {path}: {key}: expected a single value, got {value!r}")
        else:
            argv += [option, str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The command line with ``--config`` and ``--recipe`` applied and checked (see :func:`resolve`).

    Precedence: command-line flags, then the ``--config`` file, then ``--recipe``, then the tiny/full defaults.
    Argument errors exit with status 2 and the usage line (``parser.error``); bad input paths with status 2 and
    one line.
    """
    parser = parser or build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        argv = config_file_argv(known.config, parser) + argv
    return resolve(parser.parse_args(argv), parser)


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Fill the recipe and tiny/full defaults and check the combination of flags and the input paths.

    A bad combination exits through ``parser.error`` (status 2, with the usage line); without a parser it raises
    ``SystemExit`` with the message. A missing input path exits with status 2 and one line.
    """

    def error(message: str) -> None:
        if parser is not None:
            parser.error(message)
        raise SystemExit(message)

    recipe = getattr(args, "recipe", None)
    if recipe is not None:
        if args.tiny:
            error(f"--recipe {recipe}: expected real checkpoints (--policy), got --tiny")
        for key, value in RECIPES[recipe].items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    defaults = TINY_DEFAULTS if args.tiny else FULL_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None and not (recipe is not None and key in RECIPES[recipe]):
            setattr(args, key, value)
    if not args.tiny and not args.policy:
        wanted = (
            f"a local {RECIPE_POLICIES[recipe]} checkpoint directory"
            if recipe
            else "a local Qwen2.5-VL checkpoint directory (or --tiny)"
        )
        error(f"--policy: expected {wanted}, got none")
    if not args.tiny and not args.segmenter:
        error(
            "--segmenter: expected a local SAM / SAM2 checkpoint directory, grabcut or random:sam (or --tiny), got none"
        )
    if args.policy and args.policy.startswith("random:"):
        from pixelthink.models import ARCHITECTURES

        if args.policy.removeprefix("random:") not in ARCHITECTURES:
            error(
                f"--policy: expected random:ARCH with ARCH one of {', '.join(sorted(ARCHITECTURES))}, "
                f"got {args.policy!r}"
            )
    elif args.random_layers is not None:
        error(f"--random-layers: expected only with --policy random:ARCH, got --policy {args.policy!r}")
    if args.segmenter and args.segmenter.startswith("random:") and args.segmenter not in BUILTIN_SEGMENTERS:
        error(f"--segmenter: expected random:sam or random:sam2, got {args.segmenter!r}")
    if args.segmenter and args.segmenter_kind:
        error(f"--segmenter-kind: expected only with --tiny and no --segmenter, got --segmenter {args.segmenter!r}")
    if args.init_policy is not None and not args.tiny:
        error(
            f"--init-policy: expected only with --tiny (use --policy DIR for a checkpoint), got --policy "
            f"{args.policy!r}"
        )
    if args.segmenter_kind and not args.tiny:
        error("--segmenter-kind: expected only with --tiny (or use --segmenter random:KIND)")
    if args.use_vllm and (args.tiny or (args.policy or "").startswith("random:")):
        error(
            f"--use-vllm: expected --policy DIR (a local checkpoint vLLM can load), got "
            f"{'--tiny' if args.tiny else '--policy ' + args.policy}"
        )
    if args.difficulty == "judge" and not (args.judge_url or args.judge_model):
        error(
            "--difficulty judge: expected --judge-url (with --judge-model = served name) or "
            "--judge-model (a local checkpoint path), got neither"
        )
    names = [
        "num_generations",
        "prompts_per_step",
        "max_completion_length",
        "eval_samples",
        "eval_max_new_tokens",
        "eval_batch_size",
        "threads",
    ]
    if args.steps is not None:  # None: one epoch (a recipe), set once the data is loaded
        names.insert(0, "steps")
    for name in names:
        if getattr(args, name) < 1:
            error(f"--{name.replace('_', '-')}: expected an int >= 1, got {getattr(args, name)}")
    for name in ("lr", "weight_decay", "max_grad_norm", "clip_epsilon", "temperature", "kl"):
        value = getattr(args, name)
        if not (math.isfinite(value) and (value >= 0 if name in ("weight_decay", "kl") else value > 0)):
            error(
                f"--{name.replace('_', '-')}: expected a number {'>=' if name in ('weight_decay', 'kl') else '>'} 0,"
                f" got {value}"
            )
    try:
        scales = [float(v) for v in str(args.thinking_cap_scales).split(",") if v.strip()]
    except ValueError:
        scales = []
    if not scales or not all(math.isfinite(v) and v > 0 for v in scales):
        error(f"--thinking-cap-scales: expected comma-separated numbers > 0, got {args.thinking_cap_scales!r}")
    args.thinking_cap_scales = scales
    # input paths: one clean line, before anything is built
    for name in _INPUT_PATHS:
        value = getattr(args, name)
        if value is not None and not Path(value).exists():
            raise input_error(f"--{name.replace('_', '-')}: expected an existing file or folder, got {value!r}")
    for name in ("policy", "segmenter"):
        value = getattr(args, name)
        if value and not value.startswith("random:") and value != "grabcut" and not Path(value).is_dir():
            raise input_error(f"--{name}: expected a local checkpoint directory, got {value!r} (no such folder)")
    if args.init_policy is not None and not (Path(args.init_policy) / "config.json").is_file():
        raise input_error(
            f"--init-policy: expected a folder with config.json (a saved policy), got {args.init_policy!r}"
        )
    if args.init_policy is not None and args.warmup_steps:
        logger.warning(
            "--init-policy with --warmup-steps %d: the saved policy is warm-started again before GRPO; "
            "pass --warmup-steps 0 to start GRPO from it as saved",
            args.warmup_steps,
        )
    return args


def build_train_settings(args: argparse.Namespace, *, bf16: bool, checkpointing: bool) -> Any:
    """The GRPO settings of resolved arguments (``bf16``: the autocast; ``checkpointing``: gradient checkpointing).

    Raises:
        ValueError: a value TrainSettings refuses (``main`` turns it into a usage error).
    """
    from pixelthink.prompts import CONCISE_INSTRUCTION
    from pixelthink.training import TrainSettings

    return TrainSettings(
        steps=args.steps,
        num_generations=args.num_generations,
        prompts_per_step=args.prompts_per_step,
        micro_batch_size=args.micro_batch_size,
        max_completion_length=args.max_completion_length,
        min_completion_length=args.min_completion_length,
        learning_rate=args.lr,
        kl=args.kl,
        temperature=args.temperature,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        clip_epsilon=args.clip_epsilon,
        loss_type=args.loss_type,
        uncertainty=args.uncertainty,
        bf16=bf16,
        gradient_checkpointing=checkpointing,
        save_steps=args.save_steps,
        seed=args.seed,
        report_to=args.report_to,
        vllm_mode=args.vllm_mode if args.use_vllm else None,
        vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        instruction=CONCISE_INSTRUCTION if args.prompt == "concise" else "",
    )


def warn_precision(args: argparse.Namespace) -> str | None:
    """With ``--param-dtype bfloat16``: log and warn that small AdamW updates round away; returns the message."""
    if args.param_dtype != "bfloat16":
        return None
    message = (
        f"--param-dtype bfloat16: the trained weights are bfloat16 (8-bit mantissa), so AdamW updates "
        f"smaller than about 1/256 of a weight round away: at lr {args.lr:g} most weights never change "
        "(float32 master weights, the default, keep them)"
    )
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=2)
    return message


def check_vllm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``--use-vllm`` needs a CUDA device and the ``vllm`` package: an argument error (status 2) otherwise."""
    import importlib.util

    if not args.device_resolved.startswith("cuda"):
        parser.error(f"--use-vllm: expected a CUDA device, got {args.device_resolved!r} (vLLM generates on GPUs)")
    if importlib.util.find_spec("vllm") is None:
        parser.error("--use-vllm: expected the vllm package (pip install 'trl[vllm]'), not installed")


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------


def load_samples(
    path: str | None, *, count: int | None, seed: int, start: int, args: argparse.Namespace
) -> tuple[list[SegSample], str]:
    """Samples from ``path`` (format detected) or, without one, generated scenes ``start .. start+count-1``."""
    if path is None:
        generator = SceneGenerator(seed=seed, image_size=args.image_size)
        return generator.samples(count if count is not None else 256, start=start), f"generated scenes (seed {seed})"
    from pixelthink.sources import load_source

    location = Path(path)
    try:  # a save_to_disk copy, a hub cache folder, parquet / arrow files, a LISA folder or a manifest (docs/data.md)
        samples = load_source(location, limit=count, frame=args.frame, difficulty_table=args.difficulty_table)
    except (OSError, ValueError) as error:  # missing files, a layout the loaders do not know: one line, no traceback
        raise input_error(f"{path}: {' '.join(str(error).split())}") from None
    if not samples:
        raise input_error(f"{path}: expected at least one sample, found none")
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
    requests = [
        JudgeSample(
            sample_id=s.id,
            image=s.image,
            expression=s.query,
            mask=s.mask,
            box=None if s.mask is not None else list(s.bbox),
        )
        for s in samples
    ]
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
    parser = build_parser()
    args = parse_args(argv, parser)
    started = time.perf_counter()
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; TRL 1.16 still calls the old names
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6.*", category=FutureWarning)
    import torch
    from pixelthink.evaluation import evaluate, paired_difference_interval, paired_ious
    from pixelthink.models import (
        GrabCutSegmenter,
        build_random_policy,
        build_tiny_policy,
        build_tiny_segmenter,
        load_policy,
        load_segmenter,
    )
    from pixelthink.prompts import QUESTION_TEMPLATE
    from pixelthink.report import (
        demo_targets,
        plot_length_by_tier,
        plot_training_curves,
        summary_table,
        write_report,
    )
    from pixelthink.rewards import build_reward
    from pixelthink.training import latest_checkpoint, train, warm_up

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    args.device_resolved = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    bf16 = args.bf16 if args.bf16 is not None else args.device_resolved.startswith("cuda")
    warn_precision(args)
    if args.use_vllm:
        check_vllm(args, parser)
    checkpointing = (
        args.gradient_checkpointing
        if args.gradient_checkpointing is not None
        else args.device_resolved.startswith("cuda")
    )
    progress = not args.no_progress
    run_dir = Path(args.output_dir)
    train_samples, train_name = load_samples(
        args.train_data, count=args.train_samples, seed=args.seed, start=0, args=args
    )
    if args.steps is None:  # a recipe's one epoch
        args.steps = max(1, math.ceil(len(train_samples) / args.prompts_per_step))
    try:
        reward_settings = RewardSettings(
            length_reward=args.length_reward,
            difficulty=args.difficulty,
            uncertainty=args.uncertainty,
            length_unit=args.length_unit,
            easy_budget=args.easy_budget,
            hard_budget=args.hard_budget,
            uncertainty_scale=args.uncertainty_scale,
            beta=args.beta,
            missing_difficulty=args.missing_difficulty,
            target_length=args.target_length,
            correct_threshold=args.correct_threshold,
            length_weight=args.length_weight,
            max_completion_length=args.max_completion_length,
        )
        train_settings = build_train_settings(args, bf16=bf16, checkpointing=checkpointing)
    except ValueError as error:  # a bad flag value: an argument error (usage, exit status 2)
        parser.error(str(error))
    resuming = args.resume and latest_checkpoint(run_dir / "checkpoints") is not None
    if args.resume and not resuming:
        raise input_error(f"--resume: expected a checkpoint-N folder under {run_dir / 'checkpoints'}, found none")
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)

    # -- data -----------------------------------------------------------------------------------------------
    eval_samples, eval_name = load_samples(
        args.eval_data, count=args.eval_samples, seed=args.seed + 1, start=0, args=args
    )
    judged = None
    if args.difficulty == "judge":
        judged = judge_difficulty(train_samples + eval_samples, args, run_dir)

    # -- models ---------------------------------------------------------------------------------------------
    if args.tiny:
        policy = build_tiny_policy(QUESTION_TEMPLATE, seed=args.seed)
        if args.init_policy is not None:  # the same tokenizer (trained deterministically), saved weights
            policy.model = type(policy.model).from_pretrained(args.init_policy)
    else:
        # float32 master weights by default: bf16 is autocast (TRL's bf16=True), not the weights' dtype
        dtype = args.param_dtype
        if args.policy.startswith("random:"):
            policy = build_random_policy(
                QUESTION_TEMPLATE,
                args.policy.removeprefix("random:"),
                layers=args.random_layers,
                dtype=dtype,
                device=args.device_resolved,
                seed=args.seed,
            )
            if args.kl > 0:  # TRL builds the KL reference model from the policy's path: give it one
                initial = run_dir / "initial-policy"
                if not (initial / "config.json").is_file():
                    policy.model.save_pretrained(initial)
                    policy.processor.save_pretrained(initial)
                policy.model.config._name_or_path = str(initial)
        else:
            policy = load_policy(args.policy, dtype=dtype, device=args.device_resolved)
    segmenter_name = args.segmenter or (f"random:{args.segmenter_kind}" if args.segmenter_kind else TINY_SEGMENTER)
    segmenter: Any
    if segmenter_name == "grabcut":
        segmenter = GrabCutSegmenter(seed=args.seed)
    elif segmenter_name.startswith("random:"):
        segmenter = build_tiny_segmenter(segmenter_name.removeprefix("random:"), seed=args.seed)
    else:
        segmenter = load_segmenter(segmenter_name, device=args.device_resolved)
    if args.tiny and args.param_dtype != "float32":
        policy.model.to(getattr(torch, args.param_dtype))
    policy.model.to(args.device_resolved)
    if hasattr(segmenter, "model"):  # GrabCut has no weights
        segmenter.model.to(args.device_resolved)

    reward = build_reward(reward_settings, policy.tokenizer)
    config = {
        "args": {k: v for k, v in vars(args).items()},
        "reward": reward_settings.to_dict(),
        "reward_component": reward.to_config().model_dump(mode="json"),
        "train": train_settings.to_dict(),
    }
    _write_json(run_dir / "config.json", config)

    # -- warm-up, evaluation before ----------------------------------------------------------------------
    warm = {"steps": 0, "seconds": 0.0, "loss_first": None, "loss_last": None, "skipped": "resume"}
    if not resuming:
        warm = warm_up(
            policy,
            train_samples,
            steps=args.warmup_steps,
            learning_rate=args.warmup_lr,
            spread=args.warmup_spread,
            seed=args.seed,
            progress=progress,
        )
    if args.tiny and args.kl > 0:  # the KL reference is the warm-started policy; TRL loads it from the model's path
        reference = run_dir / "reference-policy"
        if not resuming:
            policy.model.save_pretrained(reference)
        policy.model.config._name_or_path = str(reference)
    eval_kwargs = {
        "train_reward": reward,
        "reward_settings": reward_settings,
        "convention": args.eval_convention,
        "instruction": train_settings.instruction,
        "batch_size": args.eval_batch_size,
        "max_new_tokens": args.eval_max_new_tokens,
        "progress": progress,
    }
    before_path = run_dir / "eval_before.json"
    before: dict[str, Any] | None = None
    before_records: list[dict[str, Any]] = []
    if resuming and before_path.is_file():
        stored = json.loads(before_path.read_text())
        before, before_records = stored["summary"], stored["records"]
    elif not args.no_eval_before:
        with _autocast(torch, args.device_resolved, bf16):
            result = evaluate(policy, segmenter, eval_samples, desc="evaluate (before)", **eval_kwargs)
        before, before_records = result.summary(), result.records
        _write_json(before_path, {"summary": before, "records": before_records})

    # -- GRPO -----------------------------------------------------------------------------------------------
    trained, model = train(policy, train_samples, reward, train_settings, run_dir, resume=resuming, progress=progress)
    policy.model = model

    # -- evaluation after -----------------------------------------------------------------------------------
    with _autocast(torch, args.device_resolved, bf16):
        after_result = evaluate(policy, segmenter, eval_samples, desc="evaluate (after)", **eval_kwargs)
    after = after_result.summary()
    _write_records(run_dir / "eval_after.jsonl", after_result.records)
    capped: dict[str, Any] | None = None
    sweep: list[dict[str, Any]] = []
    for scale in args.thinking_cap_scales if args.eval_thinking_cap else []:
        with _autocast(torch, args.device_resolved, bf16):
            capped_result, cap = capped_evaluation(
                policy, segmenter, eval_samples, after_result, reward_settings, eval_kwargs, scale=scale
            )
        sweep.append({"scale": scale, "after": capped_result.summary(), "cap": cap})
        if capped is None:  # the first scale is the run's thinking cap
            capped = {"after": capped_result.summary(), "cap": cap}
            _write_records(run_dir / "eval_capped.jsonl", capped_result.records)

    # -- metrics, plots, report -----------------------------------------------------------------------------
    train_s = trained.seconds
    timings = {
        "warmup_s": warm["seconds"],
        "train_s": train_s,
        "train_step_s_median": statistics.median(trained.step_seconds) if trained.step_seconds else None,
        "generation_s": trained.generation_seconds - trained.uncertainty_seconds,
        "uncertainty_s": trained.uncertainty_seconds,
        "reward_s": trained.reward_seconds,
        "uncertainty_share": trained.uncertainty_seconds / train_s if train_s else None,
        "reward_share": trained.reward_seconds / train_s if train_s else None,
        "eval_prefill_s": after["timings"]["prefill_s"],
        "eval_decode_s": after["timings"]["decode_s"],
        "eval_sam_s": after["timings"]["sam_s"],
        "eval_sam_ms_per_call": after["timings"]["sam_ms_per_call"],
        "total_s": time.perf_counter() - started,
    }
    budgets = {
        "easy": (reward_settings.easy_budget, 0.0),
        "medium": None,
        "hard": (reward_settings.hard_budget, reward_settings.uncertainty_scale),
    }
    plots = [
        plot_length_by_tier(
            before_records,
            after_result.records,
            run_dir / "plots" / "reasoning_length_by_tier.png",
            length_unit=reward_settings.length_unit,
            budgets=budgets,
            title=f"{policy.name}: reasoning length per difficulty tier, before and after "
            f"{trained.steps} GRPO steps ({args.length_reward})"
            + ("" if after["tiers_valid"] else " [tiers not valid: fallback difficulty]"),
        ),
        plot_training_curves(
            trained.log_history if not resuming else _read_log(run_dir / "train_log.jsonl"),
            run_dir / "plots" / "training_curves.png",
            reward_name=reward.name,
            title=f"GRPO with the {reward.name} reward: per-step curves",
        ),
    ]
    metrics = {
        "giou": after["giou"],
        "ciou": after["ciou"],
        "mean_reasoning_tokens": after["mean_reasoning_tokens"],
        "budget_adherence": after["budget_adherence"],
        "budget_adherence_by_tier": after["budget_adherence_by_tier"],
        # evaluation tiers from the training's difficulty source; False: some samples were tiered at the fallback
        "difficulty_source": reward_settings.difficulty,
        "tiers_valid": after["tiers_valid"] and (before is None or before.get("tiers_valid", after["tiers_valid"])),
        "train_steps": trained.steps,
        "timings": timings,
        "before": before,
        "after": after,
        "warmup": warm,
        "peak_memory_mb": trained.peak_memory_mb,
        "resumed_from": trained.resumed_from,
        "judge": judged,
        "thinking_cap": capped,
        "thinking_cap_sweep": sweep,
        "run": {
            "name": run_dir.name,
            "policy": policy.name,
            "segmenter": segmenter.name,
            "data": train_name,
            "eval_data": eval_name,
            "device": _device_name(args.device_resolved),
            "train_samples": len(train_samples),
            "eval_samples": len(eval_samples),
            "versions": package_versions(),
        },
        "config": {"reward": reward_settings.to_dict(), "train": train_settings.to_dict()},
        "plots": [str(p.relative_to(run_dir)) for p in plots],
    }
    notes = [
        "budgets are in the reward's length unit; the easy and hard budgets of this run are "
        f"{reward_settings.easy_budget:g} and {reward_settings.hard_budget:g} + "
        f"{reward_settings.uncertainty_scale:g} U (PixelThink: 96 and 256 + 25 U words)",
        *after_result.notes,
        *trained.notes,
    ]
    if args.tiny:
        millions = sum(p.numel() for p in policy.model.parameters()) / 1e6
        notes.insert(
            0,
            f"tiny run: a random-weight {millions:.1f} M-parameter Qwen2.5-VL after a supervised warm "
            f"start, segmenter {segmenter.name}; its answers parse but it does not learn where the target "
            "is in a CPU budget (its gIoU is that of a few lucky boxes: see docs/example.md), so the numbers "
            "show the loop and what the length reward does to reasoning length, not what PixelThink achieves "
            "on real data",
        )
    elif args.policy.startswith("random:"):
        billions = sum(p.numel() for p in policy.model.parameters()) / 1e9
        notes.insert(
            0,
            f"size-true timing run: {policy.name}, {billions:.2f} B parameters; the step time, memory and "
            "reward/uncertainty shares are those of this size, the accuracy and lengths mean nothing",
        )
    if before is not None and len(before_records) == len(after_result.records):
        after_ious, before_ious = paired_ious(after_result.records, before_records)  # seg_zero may skip samples
        metrics["giou_change"] = (after["giou"] or 0.0) - (before["giou"] or 0.0)
        metrics["giou_change_ci95"] = paired_difference_interval(after_ious, before_ious)
    if args.tiny:  # what the demo is meant to show, checked and reported (met or not)
        metrics["targets"] = demo_targets(metrics)
    metrics["notes"] = notes
    _write_json(run_dir / "metrics.json", metrics)
    write_report(run_dir / "report.md", _json_ready(metrics), plots=plots, notes=notes)
    if progress:
        print("\n" + summary_table(_json_ready(metrics)))
        print(f"\nrun folder: {run_dir}  ({timings['total_s']:.1f} s; report.md, metrics.json, plots/)")
    return metrics


def capped_evaluation(
    policy: Any,
    segmenter: Any,
    samples: list[SegSample],
    uncapped: Any,
    settings: RewardSettings,
    eval_kwargs: dict[str, Any],
    *,
    scale: float = 1.0,
) -> tuple[Any, dict[str, Any]]:
    """Evaluate with the inference-time thinking cap: each sample's PixelThink budget (times ``scale``) closes its
    reasoning.

    The budget is the training policy's (``rewards.budget_policy``) for the sample's evaluation difficulty (the
    uncapped pass's, so both passes tier alike; a sample without one gets ``--missing-difficulty``) and U = 0:
    the uncertainty term needs the answer's token probabilities, which are not known before it is generated.
    Budgets in words (``--length-unit words``) become tokens through the tokens-per-word ratio of the uncapped
    pass's reasoning. Returns the evaluation and ``{"budget_unit", "tokens_per_word", "caps", "capped"}``.
    """
    from pixelthink.evaluation import evaluate
    from pixelthink.rewards import budget_policy

    from adaptive_length_reward.adapters.thinking_budget import ThinkingBudgetProcessor, thinking_budgets
    from adaptive_length_reward.spans import extract_reasoning

    records = uncapped.records
    difficulty = [settings.missing_difficulty if r["difficulty"] is None else r["difficulty"] for r in records]
    budgets = thinking_budgets(budget_policy(settings), difficulty=difficulty, uncertainty=[0.0] * len(records))
    ratio = None
    factor = scale
    if settings.length_unit == "words":
        words = sum(len(extract_reasoning(r["completion"]).split()) for r in records)
        tokens = sum(r["reasoning_tokens"] for r in records)
        ratio = tokens / words if words else 1.0
        factor *= ratio
    budgets = [None if b is None else int(b * factor) for b in budgets]
    caps = {s.id: b for s, b in zip(samples, budgets)}
    processors: list[Any] = []

    def cap(chunk: list[SegSample]) -> list[Any]:
        processor = ThinkingBudgetProcessor(policy.tokenizer, [caps[s.id] for s in chunk])
        processors.append(processor)
        return [processor]

    result = evaluate(
        policy, segmenter, samples, desc=f"evaluate (thinking cap x{scale:g})", logits_processors=cap, **eval_kwargs
    )
    fired = [bool(c) for p in processors for c in p.capped]
    info = {
        "scale": scale,
        "budget_unit": "reasoning tokens",
        "tokens_per_word": ratio,
        "uncertainty": 0.0,
        "caps": [caps[s.id] for s in samples],
        "capped": fired,
        "capped_share": sum(fired) / len(fired) if fired else 0.0,
    }
    return result, info


def _autocast(torch: Any, device: str, bf16: bool) -> Any:
    """bfloat16 autocast on CUDA when ``bf16`` (evaluation runs as training does); otherwise no change."""
    import contextlib

    if bf16 and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


#: The packages whose versions decide the tiny run's numbers (recorded in ``metrics.json``: ``run.versions``).
VERSIONED = (
    "adaptive-length-reward",
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "tokenizers",
    "numpy",
    "opencv-python-headless",
    "pillow",
)


def package_versions() -> dict[str, str | None]:
    """Python's and each of ``VERSIONED``'s installed version (``None`` when absent): the tiny run is seeded and
    gives the same numbers on every run in one environment, but another version of these can change them."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)"


if __name__ == "__main__":
    main()
