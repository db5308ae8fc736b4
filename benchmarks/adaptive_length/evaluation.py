"""Evaluation of a policy on held-out problems: reasoning length and accuracy per difficulty tier.

Two decoding modes, both on the same ``eval`` problems:

* ``sampled``: temperature 1.0, no top-k/top-p (the distribution GRPO optimises), ``samples`` completions per
  problem, each batch seeded;
* ``greedy``: one deterministic completion per problem (the protocol of Seg-Zero's and PixelThink's evaluation
  scripts).

Per completion: reasoning tokens (whitespace tokens of the ``<think>`` span, :func:`~.task.reasoning_lengths`),
re-checks (:func:`~.task.recheck_counts`), whether the reasoning is empty (a direct answer), whether the answer is
correct (:func:`~.task.parse_answer`; an unparsable answer is wrong, never an error),
whether the format holds, and the generated token count. Per tier: means and counts, and the paired per-problem
values that :mod:`.report` bootstraps for confidence intervals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.segmentation import ThinkingFormatReward

from .task import TIERS, ChainProblem, parse_answer, reasoning_lengths, recheck_counts, tier_names

__all__ = [
    "DecodeResult",
    "ScoredCompletions",
    "TierSummary",
    "decode",
    "evaluate_completions",
    "rollout_uncertainty",
    "summarize",
]


@dataclass(frozen=True)
class DecodeResult:
    """Per-completion measurements of one decoding pass (``problem`` indexes the problem list)."""

    problem: npt.NDArray[np.int64]
    tier: npt.NDArray[np.str_]
    reasoning_tokens: npt.NDArray[np.int64]
    rechecks: npt.NDArray[np.int64]
    correct: npt.NDArray[np.float64]
    format_ok: npt.NDArray[np.float64]
    generated_tokens: npt.NDArray[np.int64]
    wall_s: float
    completions: list[str] = field(repr=False)


@dataclass(frozen=True)
class TierSummary:
    """Means over the completions of one tier (``direct_rate``: share of empty reasoning spans)."""

    mean_reasoning_tokens: float
    accuracy: float
    format_rate: float
    mean_rechecks: float
    direct_rate: float
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean_reasoning_tokens": self.mean_reasoning_tokens,
            "accuracy": self.accuracy,
            "format_rate": self.format_rate,
            "mean_rechecks": self.mean_rechecks,
            "direct_rate": self.direct_rate,
            "count": self.count,
        }


@dataclass(frozen=True)
class ScoredCompletions:
    """What :func:`evaluate_completions` measures, one entry per completion."""

    tier: npt.NDArray[np.str_]
    reasoning_tokens: npt.NDArray[np.int64]
    rechecks: npt.NDArray[np.int64]
    correct: npt.NDArray[np.float64]
    format_ok: npt.NDArray[np.float64]


def evaluate_completions(
    completions: Sequence[str], problems: Sequence[ChainProblem], index: Sequence[int], thresholds: tuple[float, float]
) -> ScoredCompletions:
    """Tier, reasoning tokens, re-checks, correctness and format (0/1) of each completion of ``problems[index[i]]``."""
    if len(completions) != len(index):
        raise ValueError(f"index: expected {len(completions)} entries (one per completion), got {len(index)}")
    chosen = [problems[i] for i in index]
    tiers = tier_names([p.difficulty for p in chosen], thresholds)
    lengths = reasoning_lengths(completions)
    correct = np.array([float(parse_answer(c) == p.answer) for c, p in zip(completions, chosen)])
    fmt = ThinkingFormatReward()(completions=list(completions)) if completions else np.zeros(0)
    return ScoredCompletions(
        tier=tiers,
        reasoning_tokens=lengths,
        rechecks=recheck_counts(completions),
        correct=correct,
        format_ok=np.asarray(fmt, dtype=np.float64),
    )


def decode(
    model: Any,
    tokenizer: Any,
    problems: Sequence[ChainProblem],
    *,
    thresholds: tuple[float, float],
    max_new_tokens: int,
    greedy: bool,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 256,
) -> DecodeResult:
    """Generate for every problem (``samples`` times each when sampling) and measure the completions."""
    torch = import_optional("torch", extra="example", purpose="evaluating the policy")
    if samples < 1 or (greedy and samples != 1):
        raise ValueError(f"samples: expected >= 1 (and 1 for greedy decoding), got {samples}")
    index = [i for i in range(len(problems)) for _ in range(samples)]
    prompts = [problems[i].prompt() for i in index]
    texts: list[str] = []
    generated: list[int] = []
    model.eval()
    began = time.perf_counter()
    eos = tokenizer.eos_token_id
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        chunk = prompts[start : start + batch_size]
        inputs = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
        torch.manual_seed(seed * 100_003 + b)
        with torch.no_grad():
            sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": 1.0, "top_p": 1.0}
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos,
                **sampling,
            )
        new = out[:, inputs["input_ids"].shape[1] :]
        for row in new.tolist():
            stop = row.index(eos) + 1 if eos in row else len(row)
            generated.append(stop)
            texts.append(tokenizer.decode(row[:stop], skip_special_tokens=True))
    wall = time.perf_counter() - began
    scored = evaluate_completions(texts, problems, index, thresholds)
    return DecodeResult(
        problem=np.asarray(index, dtype=np.int64),
        tier=scored.tier,
        reasoning_tokens=scored.reasoning_tokens,
        rechecks=scored.rechecks,
        correct=scored.correct,
        format_ok=scored.format_ok,
        generated_tokens=np.asarray(generated, dtype=np.int64),
        wall_s=wall,
        completions=texts,
    )


def summarize(result: DecodeResult) -> dict[str, TierSummary]:
    """Per tier (``easy``/``medium``/``hard``) and ``all``: mean reasoning tokens, accuracy, format rate."""
    out = {}
    for tier in (*TIERS, "all"):
        keep = np.ones(result.tier.shape, bool) if tier == "all" else result.tier == tier
        n = int(keep.sum())
        out[tier] = TierSummary(
            mean_reasoning_tokens=float(result.reasoning_tokens[keep].mean()) if n else float("nan"),
            accuracy=float(result.correct[keep].mean()) if n else float("nan"),
            format_rate=float(result.format_ok[keep].mean()) if n else float("nan"),
            mean_rechecks=float(result.rechecks[keep].mean()) if n else float("nan"),
            direct_rate=float((result.reasoning_tokens[keep] == 0).mean()) if n else float("nan"),
            count=n,
        )
    return out


def rollout_uncertainty(
    model: Any,
    tokenizer: Any,
    problems: Sequence[ChainProblem],
    *,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 128,
) -> npt.NDArray[np.float64]:
    """PixelThink's uncertainty of one sampled completion per problem, measured as
    :class:`~adaptive_length_reward.adapters.trl.UncertaintyGRPOTrainer` measures it during training: one no-grad
    forward pass over prompt + completion, then ``U = mean_t (1 - (p1 - p2))`` over the completion's tokens
    (EOS included; :func:`adaptive_length_reward.uncertainty.sequence_uncertainty`, ``measure="margin"``).
    """
    torch = import_optional("torch", extra="example", purpose="measuring uncertainty")
    from adaptive_length_reward.uncertainty import sequence_uncertainty

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out = []
    model.eval()
    for b, start in enumerate(range(0, len(problems), batch_size)):
        chunk = [p.prompt() for p in problems[start : start + batch_size]]
        inputs = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
        width = inputs["input_ids"].shape[1]
        torch.manual_seed(seed * 100_003 + b)
        with torch.no_grad():
            ids = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                pad_token_id=pad,
                eos_token_id=eos,
            )
            completion = ids[:, width:]
            valid = torch.zeros_like(completion, dtype=torch.bool)
            for i, row in enumerate(completion.tolist()):
                stop = row.index(eos) + 1 if eos in row else len(row)
                valid[i, :stop] = True
            attention = torch.cat([inputs["attention_mask"], valid.long()], dim=1)
            logits = model(input_ids=ids, attention_mask=attention).logits[:, width - 1 : -1, :]
        out.append(sequence_uncertainty(logits, mask=valid, measure="margin", reduction="mean", temperature=1.0))
    return np.concatenate(out) if out else np.zeros(0)
