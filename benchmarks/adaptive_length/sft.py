"""Supervised fine-tuning of the tiny policy on reference traces, so GRPO starts from non-zero rewards.

Each step takes the next ``batch_size`` problems of the ``sft`` split (problem ``i`` traced as
:func:`~.task.sample_trace` says: a direct answer, or the full reasoning with a random number of re-checks; the
traces vary in length independently of the difficulty) and
minimises the cross-entropy of the completion tokens (``<think>`` ... ``</answer> <eos>``) given the prompt; prompt
tokens carry no loss. AdamW with linear warm-up and cosine decay; everything is seeded, so the same seed gives
the same weights on the same software.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from adaptive_length_reward import ComponentConfig
from adaptive_length_reward.errors import import_optional

from .models import EOS
from .task import TaskSettings, make_problem, sample_trace

__all__ = ["SFTResult", "SFTSettings", "supervised_fine_tune"]


class SFTSettings(ComponentConfig):
    """Supervised fine-tuning hyper-parameters."""

    kind: Literal["chain_sft_settings"] = "chain_sft_settings"
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)


@dataclass(frozen=True)
class SFTResult:
    """What :func:`supervised_fine_tune` reports."""

    steps: int
    final_loss: float
    loss_curve: list[tuple[int, float]]
    wall_s: float


def _lr_factor(step: int, settings: SFTSettings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _batch(tokenizer: Any, seed: int, start: int, size: int, task: TaskSettings) -> tuple[Any, Any, Any]:
    torch = import_optional("torch", extra="example", purpose="supervised fine-tuning")
    rows, prompt_lengths = [], []
    for index in range(start, start + size):
        problem = make_problem(seed, "sft", index, task)
        prompt = tokenizer(problem.prompt())["input_ids"]
        direct, rechecks = sample_trace(seed, index, task)
        completion = tokenizer(f"{problem.completion(rechecks, direct=direct)} {EOS}")["input_ids"]
        rows.append(prompt + completion)
        prompt_lengths.append(len(prompt))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.full((size, width), pad, dtype=torch.long)
    attention = torch.zeros((size, width), dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    for i, (row, p) in enumerate(zip(rows, prompt_lengths)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        labels[i, p : len(row)] = torch.tensor(row[p:])
    return ids, attention, labels


def supervised_fine_tune(
    model: Any,
    tokenizer: Any,
    *,
    seed: int,
    settings: SFTSettings | None = None,
    task: TaskSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> SFTResult:
    """Train ``model`` in place on reference traces of the ``sft`` split; return the loss curve.

    Args:
        model: a causal LM (``Qwen2ForCausalLM`` from :func:`~.models.build_model`).
        tokenizer: the task tokenizer.
        seed: the data seed (problems and re-check counts) and the torch seed of the optimiser's step order.
        settings: hyper-parameters.
        task: the task generator's settings.
        progress: called with a progress line every tenth of the run.
    """
    torch = import_optional("torch", extra="example", purpose="supervised fine-tuning")
    s, task = settings or SFTSettings(), task or TaskSettings()
    torch.manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, s))
    curve: list[tuple[int, float]] = []
    began = time.perf_counter()
    running = math.nan
    report_every = max(1, s.steps // 10)
    for step in range(s.steps):
        ids, attention, labels = (
            t.to(model.device) for t in _batch(tokenizer, seed, step * s.batch_size, s.batch_size, task)
        )
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        running = value if math.isnan(running) else 0.9 * running + 0.1 * value
        if (step + 1) % report_every == 0 or step + 1 == s.steps:
            curve.append((step + 1, running))
            if progress is not None:
                elapsed = time.perf_counter() - began
                progress(f"sft step {step + 1}/{s.steps}  loss {running:.4f}  {elapsed:.0f}s")
    model.eval()
    return SFTResult(steps=s.steps, final_loss=running, loss_curve=curve, wall_s=time.perf_counter() - began)
