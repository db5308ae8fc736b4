"""GRPO fine-tuning of the SFT policy with TRL, the reward reaching TRL through the library's adapter.

Every variant starts from the same SFT weights and trains with the same seed, data order, number of steps and
hyper-parameters; only the reward differs. The reward is wrapped by
:class:`adaptive_length_reward.adapters.trl.TRLReward` (dataset columns ``difficulty`` and ``ground_truth`` become
batch columns; GRPO groups are runs of the same prompt). Variants whose reward reads ``uncertainty`` train with
:class:`adaptive_length_reward.adapters.trl.UncertaintyGRPOTrainer` (one no-grad forward pass per generation batch
measures PixelThink's ``U = mean_t (1 - (p1 - p2))`` over the completion's tokens); the others with TRL's plain
``GRPOTrainer``, so each variant's wall-clock per step includes exactly the work it needs.

Settings follow PixelThink's official GRPO recipe where they transfer (``training_scripts/*.yaml``: ``n = 8``
completions per prompt, temperature 1.0, grad clip 1.0, advantage ``(r - mean) / (std + eps)`` per group); the
learning rate is raised for a from-scratch 100k-parameter policy and the KL term is off (TRL's default ``beta=0``)
so a few dozen steps show the effect of the reward.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from adaptive_length_reward import ComponentConfig
from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.reward import Reward

from .task import ChainProblem

__all__ = ["GRPOSettings", "TrainLog", "grpo_rows", "train_variant"]


class GRPOSettings(ComponentConfig):
    """GRPO hyper-parameters shared by every variant."""

    kind: Literal["chain_grpo_settings"] = "chain_grpo_settings"
    steps: int = Field(60, ge=1)
    prompts_per_step: int = Field(8, ge=1)
    generations: int = Field(8, ge=2)
    learning_rate: float = Field(1e-4, gt=0)
    max_completion_length: int = Field(96, ge=8)
    temperature: float = Field(1.0, gt=0)
    kl_beta: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)
    use_cpu: bool = True


@dataclass
class TrainLog:
    """What one GRPO run reports: per-step wall-clock and training-batch means (from TRL's logs)."""

    step_seconds: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def median_step_s(self) -> float:
        return float(np.median(self.step_seconds)) if self.step_seconds else math.nan


def grpo_rows(
    problems: Sequence[ChainProblem], columns: Mapping[str, Sequence[Any]] | None = None
) -> list[dict[str, Any]]:
    """TRL dataset rows: a standard-format ``prompt`` and the columns the rewards read (plus ``columns``, one value
    per problem, for the variants that read more: a stable problem id, a reference accuracy)."""
    extra = dict(columns or {})
    for name, values in extra.items():
        if len(values) < len(problems):
            raise ValueError(f"columns[{name!r}]: expected {len(problems)} values (one per problem), got {len(values)}")
    return [
        {
            "prompt": p.prompt(),
            "ground_truth": p.answer,
            "difficulty": p.difficulty,
            "steps": p.steps,
            **{name: values[i] for name, values in extra.items()},
        }
        for i, p in enumerate(problems)
    ]


def _timer_callback(log: TrainLog, total: int, progress: Callable[[str], None] | None, label: str) -> Any:
    transformers = import_optional("transformers", extra="example", purpose="GRPO training")

    class StepTimer(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        """Wall-clock of each optimisation step (generation, reward, uncertainty and update included)."""

        def __init__(self) -> None:
            self.began = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            log.step_seconds.append(time.perf_counter() - self.began)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            step = state.global_step
            if progress is None or not logs or "reward" not in logs:
                return
            if step % max(1, total // 5) == 0 or step == total:
                progress(
                    f"  {label}: step {step}/{total}  reward {logs['reward']:.3f}  completion tokens "
                    f"{logs.get('completions/mean_length', math.nan):.1f}  "
                    f"{np.median(log.step_seconds):.2f}s/step"
                )

    return StepTimer()


def train_variant(
    sft_model: Any,
    tokenizer: Any,
    reward: Reward,
    problems: Sequence[ChainProblem],
    *,
    seed: int,
    settings: GRPOSettings | None = None,
    uncertainty: bool = False,
    progress: Callable[[str], None] | None = None,
    label: str = "grpo",
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> tuple[Any, TrainLog]:
    """GRPO-train a copy of ``sft_model`` with ``reward``; return the trained copy and its log.

    Args:
        sft_model: the starting policy (left untouched; a deep copy is trained).
        tokenizer: the task tokenizer (TRL's ``processing_class``).
        reward: the library reward of this variant.
        problems: training problems; ``settings.steps * settings.prompts_per_step`` of them are used once each.
        seed: TRL's seed (data order and sampling).
        settings: hyper-parameters.
        uncertainty: train with ``UncertaintyGRPOTrainer`` (the reward reads ``uncertainty``).
        progress: called with a progress line five times per run.
        label: the run's name in progress lines.
        columns: extra dataset columns, one value per problem (:func:`grpo_rows`).
    """
    import_optional("trl", extra="trl", purpose="GRPO training")
    datasets = import_optional("datasets", extra="data", purpose="GRPO training")
    transformers = import_optional("transformers", extra="trl", purpose="GRPO training")
    from trl import GRPOConfig, GRPOTrainer

    from adaptive_length_reward.adapters.trl import TRLReward, UncertaintyGRPOTrainer

    s = settings or GRPOSettings()
    needed = s.steps * s.prompts_per_step
    if len(problems) < needed:
        raise ValueError(f"problems: expected at least steps * prompts_per_step = {needed}, got {len(problems)}")
    model = copy.deepcopy(sft_model)
    model.train()
    log = TrainLog()
    with tempfile.TemporaryDirectory(prefix="alr-grpo-") as out_dir:
        args = GRPOConfig(
            output_dir=out_dir,
            use_cpu=s.use_cpu,
            bf16=False,
            seed=seed,
            data_seed=seed,
            per_device_train_batch_size=s.prompts_per_step * s.generations,
            num_generations=s.generations,
            max_completion_length=s.max_completion_length,
            temperature=s.temperature,
            max_steps=s.steps,
            learning_rate=s.learning_rate,
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=s.warmup_steps,
            beta=s.kl_beta,
            max_grad_norm=s.max_grad_norm,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer_cls = UncertaintyGRPOTrainer if uncertainty else GRPOTrainer
        trainer = trainer_cls(
            model=model,
            reward_funcs=TRLReward(reward),
            args=args,
            train_dataset=datasets.Dataset.from_list(grpo_rows(problems[:needed], columns)),
            processing_class=tokenizer,
            callbacks=[_timer_callback(log, s.steps, progress, label)],
        )
        trainer.remove_callback(transformers.PrinterCallback)  # progress comes from the step timer instead
        began = time.perf_counter()
        trainer.train()
        log.wall_s = time.perf_counter() - began
        log.history = [
            {k: float(v) for k, v in h.items() if isinstance(v, (int, float))}
            for h in trainer.state.log_history
            if "reward" in h
        ]
    model.eval()
    return model, log
