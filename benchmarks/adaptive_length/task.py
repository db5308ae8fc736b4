"""The procedural task: chained modular arithmetic whose number of steps is the difficulty.

A problem is a start digit and ``k`` labelled operations, each ``+ v`` or ``- v`` modulo 10 (``k`` = 1..9 is the
difficulty ``D``). The prompt and the reference completion, written in the whitespace-separated token language of
:mod:`.models`::

    prompt      solve 3 a + 2 b - 1 c + 3 ?
    completion  <think> 3 a + 2 = 5 b - 1 = 4 c + 3 = 7 check c + 3 = 7 </think> <answer> 7 </answer>
    direct      <think> </think> <answer> 7 </answer>

Three kinds of reasoning tokens, so that a length reward has something to remove and something it must not:

* *essential steps* (``1 + 5 k`` tokens: the start digit, then ``label op value = result`` per step): a small model
  cannot add the chain in one go, so skipping them costs accuracy, and costs more the longer the chain;
* *re-checks* after the last step (``check`` plus a copy of the last step, 6 tokens each): they never change the
  answer; the verbosity a length reward should remove;
* *direct answers* (an empty ``<think> </think>``): the shortest completion, accurate only on the shortest chains.

Supervised traces draw the re-check count from a truncated geometric law (:attr:`TaskSettings.recheck_continue`,
:attr:`TaskSettings.max_rechecks`) and answer directly with probability :attr:`TaskSettings.direct_fraction`, both
independently of the difficulty: the fine-tuned policy starts equally verbose on easy and hard problems, and can
shorten its reasoning either by dropping re-checks (free) or by skipping the reasoning (costly, more so when hard).

Lengths in this experiment are reasoning tokens: the tokens between ``<think>`` and ``</think>``, which with this
task's one-token-per-word vocabulary equals :class:`adaptive_length_reward.WhitespaceWords` with
``span="reasoning"`` (the length PixelThink reports as ``#Token``, arXiv 2505.23727 Table 1).

Everything is a pure function of ``(seed, split, index)``: :func:`make_problem` draws problem ``index`` of a split
from ``numpy.random.default_rng([seed, split_code, index])``, so any subset is reproducible on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from adaptive_length_reward import ComponentConfig, RewardBatch, TieredBudget, extract_reasoning
from adaptive_length_reward.reward import Reward

__all__ = [
    "LABELS",
    "MODULUS",
    "SPLITS",
    "TIERS",
    "ChainAnswerAccuracy",
    "ChainProblem",
    "TaskSettings",
    "essential_reasoning_tokens",
    "make_problem",
    "parse_answer",
    "problems",
    "reasoning_lengths",
    "reasoning_token_count",
    "recheck_counts",
    "sample_trace",
    "tier_names",
]

#: Step labels, one per operation; they let the policy find operation ``j`` in the prompt by copying.
LABELS = "abcdefghi"
#: Results are taken modulo this.
MODULUS = 10
#: Tier names in difficulty order.
TIERS = ("easy", "medium", "hard")
#: Stable integer codes of the data splits (part of every problem's random seed).
SPLITS = {"sft": 0, "train": 1, "eval": 2}

Split = Literal["sft", "train", "eval"]
FloatArray = npt.NDArray[np.float64]


class TaskSettings(ComponentConfig):
    """What the task generator draws from; frozen and validated.

    Attributes:
        min_steps: fewest operations in a problem (the lowest difficulty).
        max_steps: most operations (the highest difficulty); at most ``len(LABELS)``.
        recheck_continue: in supervised traces, the probability of one more re-check after each re-check
            decision (truncated geometric law: ``P(r >= j) = recheck_continue ** j`` for ``j <= max_rechecks``).
        max_rechecks: the cap on re-checks in supervised traces.
        direct_fraction: the share of supervised traces that answer without reasoning (``<think> </think>``).
        max_operand: operands are drawn from ``1..max_operand`` (small operands keep each step's arithmetic
            within what a tiny model learns in a minute; the chain length still sets the difficulty).
        thresholds: the difficulty boundaries ``(tau2, tau1)`` of the *evaluation* tiers easy / medium / hard
            (``D < tau2``, ``tau2 <= D < tau1``, ``D >= tau1``); with steps 1..9 the default gives three steps
            per tier.
    """

    kind: Literal["chain_task_settings"] = "chain_task_settings"
    min_steps: int = Field(1, ge=1)
    max_steps: int = Field(9, ge=1, le=len(LABELS))
    recheck_continue: float = Field(0.7, ge=0.0, lt=1.0)
    max_rechecks: int = Field(6, ge=0)
    direct_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_operand: int = Field(3, ge=1, le=9)
    thresholds: tuple[float, float] = (3.5, 6.5)

    @model_validator(mode="after")
    def _ordered(self) -> TaskSettings:
        if self.max_steps < self.min_steps:
            raise ValueError(f"max_steps: expected >= min_steps ({self.min_steps}), got {self.max_steps}")
        low, high = self.thresholds
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"thresholds: expected two finite increasing numbers, got {self.thresholds}")
        return self

    @property
    def levels(self) -> int:
        """Number of distinct difficulties."""
        return self.max_steps - self.min_steps + 1


@dataclass(frozen=True)
class ChainProblem:
    """One problem: ``start`` then ``operations`` (``("+", 4)``, ``("-", 2)``...), all modulo :data:`MODULUS`."""

    start: int
    operations: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if not 0 <= self.start < MODULUS:
            raise ValueError(f"ChainProblem: start: expected a digit 0..{MODULUS - 1}, got {self.start!r}")
        if not 1 <= len(self.operations) <= len(LABELS):
            raise ValueError(
                f"ChainProblem: operations: expected 1..{len(LABELS)} operations, got {len(self.operations)}"
            )
        for i, (op, value) in enumerate(self.operations):
            if op not in ("+", "-") or not 0 <= value < MODULUS:
                raise ValueError(f"ChainProblem: operations[{i}]: expected ('+'|'-', digit), got {(op, value)!r}")

    @property
    def steps(self) -> int:
        """Number of operations."""
        return len(self.operations)

    @property
    def difficulty(self) -> float:
        """The difficulty ``D`` the rewards see: the number of steps."""
        return float(self.steps)

    @property
    def results(self) -> tuple[int, ...]:
        """The running value after each operation."""
        value, out = self.start, []
        for op, operand in self.operations:
            value = (value + operand) % MODULUS if op == "+" else (value - operand) % MODULUS
            out.append(value)
        return tuple(out)

    @property
    def answer(self) -> int:
        """The final value."""
        return self.results[-1]

    def prompt(self) -> str:
        """``solve 3 a + 4 b - 2 c + 5 ?``"""
        parts = ["solve", str(self.start)]
        for label, (op, value) in zip(LABELS, self.operations):
            parts += [label, op, str(value)]
        return " ".join([*parts, "?"])

    def step_text(self, index: int) -> str:
        """Step ``index`` (0-based) as the trace writes it: ``b - 2 = 5``."""
        op, value = self.operations[index]
        return f"{LABELS[index]} {op} {value} = {self.results[index]}"

    def reasoning(self, rechecks: int = 0) -> str:
        """The reasoning text: the start digit, every step, then ``rechecks`` copies of ``check <last step>``."""
        if rechecks < 0:
            raise ValueError(f"ChainProblem.reasoning: rechecks: expected >= 0, got {rechecks}")
        last = self.step_text(self.steps - 1)
        parts = [str(self.start), *(self.step_text(i) for i in range(self.steps)), *([f"check {last}"] * rechecks)]
        return " ".join(parts)

    def completion(self, rechecks: int = 0, *, direct: bool = False) -> str:
        """The whole reference completion: ``<think> reasoning </think> <answer> digit </answer>``, or with
        ``direct=True`` the answer after an empty ``<think> </think>``."""
        if direct:
            if rechecks:
                raise ValueError(f"ChainProblem.completion: rechecks: expected 0 with direct=True, got {rechecks}")
            return f"<think> </think> <answer> {self.answer} </answer>"
        return f"<think> {self.reasoning(rechecks)} </think> <answer> {self.answer} </answer>"


def essential_reasoning_tokens(steps: int) -> int:
    """Reasoning tokens of a trace without re-checks: ``1 + 5 * steps``."""
    return 1 + 5 * steps


def reasoning_token_count(steps: int, rechecks: int) -> int:
    """Reasoning tokens of a reference trace: ``1 + 5 * steps + 6 * rechecks``."""
    return essential_reasoning_tokens(steps) + 6 * rechecks


def _rng(seed: int, split: Split, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    if index < 0 or seed < 0:
        raise ValueError(f"seed and index: expected non-negative integers, got seed={seed!r}, index={index!r}")
    return np.random.default_rng([seed, SPLITS[split], index])


def make_problem(seed: int, split: Split, index: int, settings: TaskSettings | None = None) -> ChainProblem:
    """Problem ``index`` of ``split``: its step count cycles through the difficulties (``index % levels``), so
    any ``levels`` consecutive problems hold each difficulty once; digits and operators are random."""
    settings = settings or TaskSettings()
    rng = _rng(seed, split, index)
    steps = settings.min_steps + index % settings.levels
    start = int(rng.integers(0, MODULUS))
    ops = tuple(
        ("+" if rng.random() < 0.5 else "-", int(rng.integers(1, settings.max_operand + 1))) for _ in range(steps)
    )
    return ChainProblem(start=start, operations=ops)


def problems(seed: int, split: Split, count: int, settings: TaskSettings | None = None) -> list[ChainProblem]:
    """The first ``count`` problems of a split (balanced over difficulties when ``count`` is a multiple of
    ``settings.levels``)."""
    if count < 0:
        raise ValueError(f"problems: count: expected >= 0, got {count}")
    return [make_problem(seed, split, i, settings) for i in range(count)]


def sample_trace(seed: int, index: int, settings: TaskSettings | None = None) -> tuple[bool, int]:
    """``(direct, rechecks)`` of supervised trace ``index``: a direct answer with probability
    ``direct_fraction``, else the full reasoning with a truncated-geometric number of re-checks; both
    independent of the difficulty."""
    settings = settings or TaskSettings()
    rng = np.random.default_rng([seed, SPLITS["sft"], index, 1])
    if rng.random() < settings.direct_fraction:
        return True, 0
    count = 0
    while count < settings.max_rechecks and rng.random() < settings.recheck_continue:
        count += 1
    return False, count


_ANSWER = re.compile(r"<answer>\s*(\S+)\s*</answer>")


def parse_answer(text: str) -> int | None:
    """The digit inside the first ``<answer> ... </answer>``, or ``None`` when there is none or it is not a single
    digit (a malformed completion; never an error)."""
    match = _ANSWER.search(text)
    if match is None:
        return None
    token = match.group(1)
    return int(token) if len(token) == 1 and token.isdigit() else None


def recheck_counts(completions: Sequence[str]) -> npt.NDArray[np.int64]:
    """Re-checks per completion: ``check`` tokens in the reasoning span."""
    return np.fromiter(
        (extract_reasoning(c).split().count("check") for c in completions), dtype=np.int64, count=len(completions)
    )


def reasoning_lengths(completions: Sequence[str]) -> npt.NDArray[np.int64]:
    """Reasoning tokens per completion: whitespace tokens of the reasoning span (the library's span policy,
    :func:`adaptive_length_reward.extract_reasoning`)."""
    return np.fromiter((len(extract_reasoning(c).split()) for c in completions), dtype=np.int64, count=len(completions))


def tier_names(difficulty: Sequence[float] | FloatArray, thresholds: tuple[float, float]) -> npt.NDArray[np.str_]:
    """Tier per difficulty with :class:`adaptive_length_reward.TieredBudget`'s rule (``D < tau2`` easy, ...)."""
    budget = TieredBudget(
        thresholds=thresholds, names=TIERS, budgets=(None, None, None), uncertainty_scales=(0.0, 0.0, 0.0)
    )
    return budget.tiers(RewardBatch(completions=("",) * len(difficulty), difficulty=np.asarray(difficulty, float)))


class ChainAnswerAccuracy(Reward):
    """1 where the digit in ``<answer>`` equals the batch's ``ground_truth``, else 0 (a completion without a
    parsable answer scores 0). The task's ``correct`` term; ``ground_truth`` holds the answer digit (int or str).

    Deliberately not registered in the library's config registry (that registry lists library components only,
    and the conformance suite covers every registered kind); inside a composite's config it dumps as an opaque
    entry naming this class.

    >>> ChainAnswerAccuracy()(completions=["<think> 3 </think> <answer> 7 </answer>", "<answer> x </answer>"],
    ...                        ground_truth=[7, 7]).tolist()
    [1.0, 0.0]
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    @property
    def name(self) -> str:
        return self._name or "correct"

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"ground_truth"})

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def _evaluate(self, batch: RewardBatch) -> FloatArray:
        truth = batch.column("ground_truth", by="ChainAnswerAccuracy")
        out = np.zeros(len(batch))
        for i, (text, expected) in enumerate(zip(batch.completions, truth)):
            try:
                digit = int(expected)
            except (TypeError, ValueError):
                raise TypeError(
                    f"ChainAnswerAccuracy: ground_truth[{i}]: expected the answer digit, got {expected!r}"
                ) from None
            out[i] = float(parse_answer(text) == digit)
        return out
