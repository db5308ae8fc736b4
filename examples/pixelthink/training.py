"""GRPO training of the policy with TRL and the library's adapter, plus the tiny policy's supervised warm start.

The reward reaches TRL as :class:`adaptive_length_reward.adapters.trl.TRLReward` (dataset columns
``ground_truth``, ``difficulty``, ``id`` (the GRPO group), ``query`` and ``mask_area_ratio`` become batch
columns). With ``--uncertainty margin|entropy`` the trainer is
:class:`adaptive_length_reward.adapters.trl.UncertaintyGRPOTrainer`, which measures each completion's
uncertainty where the tokens are sampled (statistics of each step's sampling distribution, recorded during
``generate``; no extra forward pass) and hands it to the reward; with ``none`` it is TRL's ``GRPOTrainer``.

Settings mirror PixelThink's official yaml (``training_scripts/qwen25vl_7b_refcocog.yaml``) where TRL has the
knob: ``n = 8`` completions per prompt, temperature 1.0, lr 1e-6, weight decay 1e-2, grad clip 1.0, KL 5e-3
(TRL's ``beta``; TRL's estimator is the same ``k3`` "low_var_kl"), clip 0.2, 1300-token completions.

A random-weight policy never writes ``<think>...</think><answer>{...}</answer>``, so every reward is 0 and GRPO
has nothing to learn from. ``--tiny`` therefore first runs a supervised *warm start* on the dataset's reference
answers (:func:`warm_up`); it is off for real checkpoints, which already follow the prompt.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.reward import Reward

from .models import Policy
from .prompts import WARMUP_CHECKS, conversation, reference_completion, warmup_reasoning
from .scenes import SegSample

__all__ = [
    "VLLM_MODES",
    "TimedRewardFunction",
    "TrainResult",
    "TrainSettings",
    "grpo_config_kwargs",
    "policy_image",
    "train",
    "training_rows",
    "vllm_sampling_kwargs",
    "warm_up",
]


def policy_image(image: Image.Image, frame: int) -> Image.Image:
    """The image the policy sees: resized to ``frame`` x ``frame`` (Seg-Zero: 840, bilinear) unless it already is."""
    return image if image.size == (frame, frame) else image.resize((frame, frame), Image.Resampling.BILINEAR)


def mask_area_ratio(sample: SegSample) -> float:
    """The target's share of the image: from the mask, else from the box in the policy's frame (an upper bound)."""
    if sample.mask is not None:
        return float(np.asarray(sample.mask, dtype=bool).mean())
    x1, y1, x2, y2 = sample.bbox
    return min(1.0, (x2 - x1 + 1) * (y2 - y1 + 1) / float(sample.frame**2))


def training_rows(samples: Sequence[SegSample], instruction: str = "") -> list[dict[str, Any]]:
    """TRL dataset rows: a conversational ``prompt`` (the question, then ``instruction``), one ``image``, and the
    columns the reward reads."""
    return [
        {
            "prompt": conversation(s.query, instruction),
            "image": policy_image(s.image, s.frame),
            "ground_truth": s.solution,
            "difficulty": None if math.isnan(s.difficulty) else float(s.difficulty),
            "id": s.id,
            "query": s.query,
            "mask_area_ratio": mask_area_ratio(s),
        }
        for s in samples
    ]


# ------------------------------------------------------------------------------------------------------------
# Warm-up (tiny policy only)
# ------------------------------------------------------------------------------------------------------------


#: ``warm_up(spread=...)`` values.
WARMUP_SPREADS = ("uniform", "binomial")


def warmup_keeps(
    rng: np.random.Generator, rows: int, *, spread: str = "uniform", keep_probability: float = 0.5
) -> npt.NDArray[np.bool_]:
    """Which of :data:`~pixelthink.prompts.WARMUP_CHECKS` each of ``rows`` warm-start examples keeps.

    ``"uniform"``: a number of checks drawn uniformly from 0 to all of them, which ones at random (their order
    kept). Every length is equally common, so at each point of its reasoning the warm-started policy is unsure
    whether to go on, and GRPO's length reward can move that choice. ``"binomial"``: each check kept with
    ``keep_probability``; the policy then almost always goes on after its first checks (after the second of six,
    with probability 1 - 0.5^4 = 0.94), and a length reward has little to move: in the demo, the easy tier's
    reasoning fell to 80 % of the GRPO start with it against 21 % with ``"uniform"`` (docs/example.md).
    """
    checks = len(WARMUP_CHECKS)
    if spread == "binomial":
        return rng.random((rows, checks)) < keep_probability
    if spread != "uniform":
        raise ValueError(f"warm_up: spread: expected one of {', '.join(WARMUP_SPREADS)}, got {spread!r}")
    keeps = np.zeros((rows, checks), dtype=bool)
    for row, count in enumerate(rng.integers(0, checks + 1, size=rows)):
        keeps[row, rng.choice(checks, size=int(count), replace=False)] = True
    return keeps


def warm_up(
    policy: Policy,
    samples: Sequence[SegSample],
    *,
    steps: int,
    learning_rate: float = 3e-3,
    batch_size: int = 8,
    answer_weight: float = 1.0,
    spread: str = "uniform",
    keep_probability: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Supervised steps on ``<think> reasoning </think><answer>{...}</answer>`` with the sample's true box and
    points (loss on the completion only).

    The reasoning is :func:`warmup_reasoning` of the query with some of its checks, drawn per example from
    ``seed`` (:func:`warmup_keeps`): the policy starts GRPO with a spread of reasoning lengths (about 10 + 2 x
    query words to 50 + 7 x query words) for the length reward to choose from. ``spread="uniform"`` (the default)
    keeps a number of checks drawn uniformly from 0 to all, ``"binomial"`` each check with ``keep_probability``.
    The answer's tokens weigh ``answer_weight`` in the token-mean cross-entropy: its format must be exact to parse,
    the reasoning's need not.

    Returns:
        ``{"steps", "seconds", "loss_first", "loss_last"}``.
    """
    torch = import_optional("torch", extra="example", purpose="The warm start")
    tqdm = import_optional("tqdm", extra="example", purpose="Progress bars").tqdm
    if steps <= 0:
        return {"steps": 0, "seconds": 0.0, "loss_first": None, "loss_last": None}
    if not samples:
        raise ValueError("warm_up: samples: expected at least one sample, got none")
    model, processor, tokenizer = policy.model, policy.processor, policy.tokenizer
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    answer_id = tokenizer.convert_tokens_to_ids("<answer>")
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    side = tokenizer.padding_side
    try:
        for step in tqdm(range(steps), desc="warm start", disable=not progress, leave=False):
            batch = [samples[(step * batch_size + i) % len(samples)] for i in range(batch_size)]
            prompts = [
                processor.apply_chat_template(conversation(s.query), add_generation_prompt=True, tokenize=False)
                for s in batch
            ]
            keeps = warmup_keeps(rng, len(batch), spread=spread, keep_probability=keep_probability)
            answers = [
                reference_completion(warmup_reasoning(s.query, keep), s.bbox, s.points) + tokenizer.eos_token
                for s, keep in zip(batch, keeps)
            ]
            images = [policy_image(s.image, s.frame) for s in batch]
            tokenizer.padding_side = "right"
            full = processor(
                text=[p + a for p, a in zip(prompts, answers)], images=images, return_tensors="pt", padding=True
            ).to(device)
            prompt_only = processor(text=prompts, images=images, return_tensors="pt", padding=True)
            completion = full["attention_mask"].bool().clone()
            for i, length in enumerate(prompt_only["attention_mask"].sum(dim=1).tolist()):
                completion[i, :length] = False
            logits = model(**full).logits[:, :-1].float()
            targets, scored = full["input_ids"][:, 1:], completion[:, 1:]
            weights = torch.where((full["input_ids"][:, :-1] == answer_id).cumsum(dim=1) > 0, answer_weight, 1.0)
            weights = weights * scored
            token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            loss = (token_loss * weights).sum() / weights.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    finally:
        tokenizer.padding_side = side
        model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - start, "loss_first": losses[0], "loss_last": losses[-1]}


# ------------------------------------------------------------------------------------------------------------
# GRPO
# ------------------------------------------------------------------------------------------------------------


#: ``TrainSettings.vllm_mode`` values: no vLLM, or TRL's two vLLM modes.
VLLM_MODES = (None, "colocate", "server")
#: TRL 1.16's ``GRPOConfig.loss_type`` values.
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass(frozen=True)
class TrainSettings:
    """GRPO settings (defaults: PixelThink's official yaml where TRL has the knob)."""

    steps: int = 100
    num_generations: int = 8
    prompts_per_step: int = 2
    micro_batch_size: int | None = None
    max_completion_length: int = 1300
    #: Rollouts at least this long (end-of-sequence suppressed until then), for timing at a fixed length.
    min_completion_length: int | None = None
    learning_rate: float = 1e-6
    kl: float = 5e-3
    temperature: float = 1.0
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    clip_epsilon: float = 0.2
    loss_type: str = "dapo"
    uncertainty: str = "margin"
    bf16: bool = False
    gradient_checkpointing: bool = False
    save_steps: int = 50
    seed: int = 0
    #: TRL/transformers ``report_to`` ("none", "tensorboard", "wandb", ...).
    report_to: str = "none"
    #: Generate rollouts with vLLM (TRL's ``use_vllm``): ``None`` (``generate``), ``"colocate"`` (vLLM in the
    #: training process, sharing the GPU) or ``"server"`` (a ``trl vllm-serve`` process).
    vllm_mode: str | None = None
    #: With ``vllm_mode="colocate"``: the share of GPU memory vLLM may take (TRL's default 0.3).
    vllm_gpu_memory_utilization: float = 0.3
    #: Text appended to every prompt's question (the +Prompt baseline: ``prompts.CONCISE_INSTRUCTION``).
    instruction: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "num_generations", "prompts_per_step", "max_completion_length", "save_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "num_generations" else 1):
                raise ValueError(
                    f"TrainSettings: {name}: expected an int >= {2 if name == 'num_generations' else 1}, got {value!r}"
                )
        if self.min_completion_length is not None and not (
            isinstance(self.min_completion_length, int)
            and 1 <= self.min_completion_length <= self.max_completion_length
        ):
            raise ValueError(
                f"TrainSettings: min_completion_length: expected an int in [1, max_completion_length = "
                f"{self.max_completion_length}], got {self.min_completion_length!r}"
            )
        batch = self.prompts_per_step * self.num_generations
        if self.micro_batch_size is not None and (self.micro_batch_size < 1 or batch % self.micro_batch_size):
            raise ValueError(
                f"TrainSettings: micro_batch_size: expected a divisor of prompts_per_step x "
                f"num_generations = {batch}, got {self.micro_batch_size!r}"
            )
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"TrainSettings: learning_rate: expected a number > 0, got {self.learning_rate!r}")
        if not (self.kl >= 0 and math.isfinite(self.kl)):
            raise ValueError(f"TrainSettings: kl: expected a number >= 0, got {self.kl!r}")
        if self.vllm_mode not in VLLM_MODES:
            raise ValueError(
                f"TrainSettings: vllm_mode: expected one of {', '.join(map(repr, VLLM_MODES))}, got {self.vllm_mode!r}"
            )
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"TrainSettings: vllm_gpu_memory_utilization: expected a number in (0, 1], got "
                f"{self.vllm_gpu_memory_utilization!r}"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(
                f"TrainSettings: loss_type: expected one of {', '.join(LOSS_TYPES)} (TRL's), got {self.loss_type!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TimedRewardFunction:
    """A TRL reward function that also adds up the seconds spent in it (picklable; keeps the ``__name__``)."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.seconds = 0.0
        self.calls = 0

    @property
    def __name__(self) -> str:
        return str(self.function.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        start = time.perf_counter()
        try:
            result: list[float | None] = self.function(*args, **kwargs)
            return result
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


@dataclass
class TrainResult:
    """What training produced: steps run, logs per step, and where the time went."""

    steps: int
    resumed_from: str | None
    seconds: float
    step_seconds: list[float]
    log_history: list[dict[str, Any]]
    reward_seconds: float
    uncertainty_seconds: float
    generation_seconds: float
    peak_memory_mb: float | None
    checkpoint_dir: str
    notes: list[str] = field(default_factory=list)


def _trainer_class(uncertainty: str) -> Any:
    """``GRPOTrainer`` (``uncertainty="none"``) or ``UncertaintyGRPOTrainer``, timing generation and uncertainty."""
    trl = import_optional("trl", extra="trl", purpose="GRPO training")
    if uncertainty == "none":
        base = trl.GRPOTrainer
    else:
        from adaptive_length_reward.adapters.trl import UncertaintyGRPOTrainer

        base = UncertaintyGRPOTrainer

    class TimedTrainer(base):  # type: ignore[misc, valid-type]
        alr_generation_seconds = 0.0
        alr_uncertainty_seconds = 0.0

        def _generate(self, prompts: list[Any]) -> Any:
            start = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self.alr_generation_seconds += time.perf_counter() - start

        if uncertainty != "none":

            def _alr_measure(self, *args: Any, **kwargs: Any) -> Any:
                # every route goes through here; on the default "sampling" route the per-token statistics are
                # recorded inside generation (their cost is part of the generation time) and this is the rest
                start = time.perf_counter()
                try:
                    return super()._alr_measure(*args, **kwargs)
                finally:
                    self.alr_uncertainty_seconds += time.perf_counter() - start

    TimedTrainer.__name__ = f"Timed{base.__name__}"
    return TimedTrainer


def _callback(
    log_path: Path, step_seconds: list[float], history: list[dict[str, Any]], reward_name: str, progress: bool
) -> Any:
    transformers = import_optional("transformers", extra="example", purpose="GRPO training")
    tqdm = import_optional("tqdm", extra="example", purpose="Progress bars").tqdm

    class RunLog(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        """Step wall-clock times, every log line appended to ``train_log.jsonl``, and a progress bar showing the
        reward and length (it replaces the trainer's own bar, which prints every log dictionary)."""

        def __init__(self) -> None:
            self._start = 0.0
            self._bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._bar = tqdm(total=state.max_steps, initial=state.global_step, desc="GRPO", disable=not progress)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step_seconds.append(time.perf_counter() - self._start)
            if self._bar is not None:
                self._bar.update(state.global_step - self._bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if not logs:
                return
            row = {"step": int(state.global_step)}
            row.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)})
            history.append(row)
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            if self._bar is not None and "reward" in row:
                self._bar.set_postfix(
                    reward=f"{row['reward']:.3f}", length=f"{row.get(f'{reward_name}/length', math.nan):.1f}"
                )

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self._bar is not None:
                self._bar.close()

    return RunLog()


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest ``N`` under ``checkpoint_dir``, or ``None``."""
    found = [p for p in checkpoint_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def grpo_config_kwargs(
    settings: TrainSettings, checkpoint_dir: Path | str, *, cuda: bool, generation_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword arguments of TRL's ``GRPOConfig`` for ``settings``.

    One optimizer step sees ``prompts_per_step x num_generations`` completions, ``micro_batch_size`` at a time
    (gradient accumulation; TRL generates the whole step's completions at once). With CUDA and ``settings.bf16``,
    ``bf16=True`` is mixed precision: bfloat16 autocast around the model's forward, the weights and AdamW's
    states stay in the model's dtype (float32 unless ``--param-dtype bfloat16``).

    With ``settings.vllm_mode``, TRL generates with vLLM (``use_vllm``; ``trl/trainer/grpo_trainer.py``
    builds ``VLLMGeneration`` from these fields) and ``generation_kwargs`` become vLLM ``SamplingParams``
    fields, so the ``generate`` names are translated (``min_new_tokens`` -> ``min_tokens``).
    """
    batch = settings.prompts_per_step * settings.num_generations
    micro = settings.micro_batch_size or batch  # completions per forward/backward; the rest is accumulated
    vllm: dict[str, Any] = {}
    if settings.vllm_mode is not None:
        vllm = {"use_vllm": True, "vllm_mode": settings.vllm_mode}
        if settings.vllm_mode == "colocate":
            vllm["vllm_gpu_memory_utilization"] = settings.vllm_gpu_memory_utilization
        if generation_kwargs:
            generation_kwargs = vllm_sampling_kwargs(generation_kwargs)
    return {
        **vllm,
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": batch // micro,
        "num_generations": settings.num_generations,
        "max_completion_length": settings.max_completion_length,
        "learning_rate": settings.learning_rate,
        "beta": settings.kl,
        "temperature": settings.temperature,
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "epsilon": settings.clip_epsilon,
        "loss_type": settings.loss_type,
        "max_steps": settings.steps,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": min(settings.save_steps, settings.steps),
        "save_total_limit": 2,
        "report_to": settings.report_to,
        "seed": settings.seed,
        "use_cpu": not cuda,
        "bf16": bool(cuda and settings.bf16),
        "remove_unused_columns": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "activation_checkpointing": settings.gradient_checkpointing,  # TRL's GRPOConfig turns it on by default
        "generation_kwargs": generation_kwargs,
        # the frozen KL reference model (built from the policy's path) in bfloat16 under mixed precision: it is
        # never updated, so it needs no float32 copy (TRL would otherwise use the policy's dtype)
        "model_init_kwargs": {"dtype": "bfloat16"} if cuda and settings.bf16 and settings.kl > 0 else None,
    }


def vllm_sampling_kwargs(generation_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``generate`` keyword arguments as vLLM ``SamplingParams`` fields (TRL passes ``generation_kwargs`` to vLLM
    unchanged under ``use_vllm``).

    Raises:
        ValueError: a setting vLLM's sampling has no field for (``suppress_tokens``: the random size-true
            policies need it; use a checkpoint with vLLM).
    """
    renamed = {"min_new_tokens": "min_tokens"}
    unsupported = sorted(set(generation_kwargs) - set(renamed))
    if unsupported:
        raise ValueError(
            f"vLLM generation: expected generation settings vLLM's SamplingParams has, got "
            f"{', '.join(unsupported)} (a random:ARCH policy suppresses token ids; use a local "
            "checkpoint with --use-vllm)"
        )
    return {renamed[key]: value for key, value in generation_kwargs.items()}


def train(
    policy: Policy,
    samples: Sequence[SegSample],
    reward: Reward,
    settings: TrainSettings,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> tuple[TrainResult, Any]:
    """Run GRPO for ``settings.steps`` steps (or what remains after the latest checkpoint with ``resume``).

    Returns:
        The :class:`TrainResult` and the trained model (unwrapped).
    """
    torch = import_optional("torch", extra="example", purpose="GRPO training")
    datasets = import_optional("datasets", extra="example", purpose="GRPO training")
    trl = import_optional("trl", extra="trl", purpose="GRPO training")
    from adaptive_length_reward.adapters.trl import TRLReward

    checkpoint_dir = run_dir / "checkpoints"
    checkpoint = latest_checkpoint(checkpoint_dir) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: expected a checkpoint-N folder under {checkpoint_dir}, found none")
    cuda = torch.cuda.is_available()
    generation_kwargs = policy.generation_kwargs()
    if settings.min_completion_length is not None:
        generation_kwargs["min_new_tokens"] = settings.min_completion_length
    args = trl.GRPOConfig(
        **grpo_config_kwargs(settings, checkpoint_dir, cuda=cuda, generation_kwargs=generation_kwargs or None)
    )
    reward_function = TimedRewardFunction(TRLReward(reward, group_by="id"))
    log_path = run_dir / "train_log.jsonl"
    if not resume and log_path.exists():
        log_path.unlink()
    step_seconds: list[float] = []
    history: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if settings.uncertainty != "none":
        extra["uncertainty_measure"] = settings.uncertainty
    trainer = _trainer_class(settings.uncertainty)(
        model=policy.model,
        reward_funcs=[reward_function],
        args=args,
        train_dataset=datasets.Dataset.from_list(training_rows(samples, settings.instruction)),
        processing_class=policy.processor,
        callbacks=[_callback(log_path, step_seconds, history, reward_function.__name__, progress)],
        **extra,
    )
    transformers = import_optional("transformers", extra="example", purpose="GRPO training")
    for printer in (transformers.PrinterCallback, transformers.ProgressCallback):  # our bar replaces both
        trainer.remove_callback(printer)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.eval()
    result = TrainResult(
        steps=int(trainer.state.global_step),
        resumed_from=str(checkpoint) if checkpoint else None,
        seconds=seconds,
        step_seconds=step_seconds,
        log_history=history,
        reward_seconds=reward_function.seconds,
        uncertainty_seconds=float(getattr(trainer, "alr_uncertainty_seconds", 0.0)),
        generation_seconds=float(getattr(trainer, "alr_generation_seconds", 0.0)),
        peak_memory_mb=peak,
        checkpoint_dir=str(checkpoint_dir),
        notes=[] if cuda else ["peak memory is the process's peak resident set size (CPU run)"],
    )
    return result, model


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux
