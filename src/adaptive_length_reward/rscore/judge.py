"""The RScore judge: one reasoning chain scored 0..10 against a short and a long reference chain by an LLM.

PixelThink (arXiv 2505.23727, ReasonSeg-Diff evaluation, Table 1) reports RScore, a judge's 0..10 score of the
model's reasoning against the benchmark's reference reasoning; the judge model is *unconfirmed*. This judge runs on
the difficulty judge's machinery ([`JudgeRunner`][]): the same
backends (an OpenAI-compatible server or a local transformers model), the same SQLite
[`JudgmentCache`][] (a rerun asks nothing it has a verdict for), the same
retry policy (transport retries in the backend; ``parse_retries`` re-asks after an unreadable reply, then a
verdict ``"unparseable"`` with no score) and the same claims, so several annotators can share one cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..difficulty.judge.backends import JudgeBackend
from ..difficulty.judge.cache import Judgment, JudgmentCache
from ..difficulty.judge.runner import JudgeRunner
from .prompt import RSCORE_V1, RScorePrompt
from .reply import parse_rscore_reply

__all__ = ["RSCORE_KEY", "RScoreItem", "RScoreJudge", "RScoreSample", "as_samples"]

#: The verdict's score key (a [`Judgment`][]'s ``aspects`` holds it).
RSCORE_KEY = "rscore"


def _text(value: Any, name: str, sample_id: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):  # a null read through pandas
        return None
    raise ValueError(f"RScoreSample {sample_id!r}: {name}: expected a string or None, got {type(value).__name__}")


@dataclass(frozen=True)
class RScoreSample:
    """One reasoning chain to score, with the sample's reference chains.

    Attributes:
        sample_id: the sample's id.
        reasoning: the model's reasoning (the ``<think>`` content); empty or ``None`` is shown as "no reasoning".
        reference_short, reference_long: the reference chains (ReasonSeg-Diff's short and long reasoning); at
            least one must be non-empty.
        question: the referring question, shown to the judge when given.

    The cache key ([`key`][]) is the id plus a hash of every text: the same sample id with another model's
    reasoning (another variant of an experiment) is a different verdict, and the same texts are never asked twice.
    """

    sample_id: Any
    reasoning: str | None
    reference_short: str | None
    reference_long: str | None
    question: str | None = None

    def __post_init__(self) -> None:
        if self.sample_id is None:
            raise ValueError("RScoreSample: sample_id: expected an id, got None")
        for name in ("reasoning", "reference_short", "reference_long", "question"):
            object.__setattr__(self, name, _text(getattr(self, name), name, self.sample_id))
        if not any(ref is not None and ref.strip() for ref in (self.reference_short, self.reference_long)):
            raise ValueError(
                f"RScoreSample {self.sample_id!r}: reference_short, reference_long: expected at least "
                "one non-empty reference reasoning, got none"
            )

    @property
    def key(self) -> str:
        """``"{sample_id}#{16 hex digits of the texts' SHA-256}"`` (the cache key)."""
        texts = [self.reasoning, self.reference_short, self.reference_long, self.question]
        digest = hashlib.sha256(json.dumps(texts).encode("utf-8")).hexdigest()[:16]
        return f"{self.sample_id}#{digest}"


#: An item [`RScoreJudge.score_many`][adaptive_length_reward.rscore.judge.RScoreJudge.score_many] takes: a sample,
#: or ``(reasoning, reference_short, reference_long)``.
RScoreItem = RScoreSample | Sequence[str | None]


def as_samples(items: Iterable[RScoreItem]) -> list[RScoreSample]:
    """Samples from [`RScoreSample`][] items or ``(reasoning, reference_short, reference_long)`` tuples (whose
    id is their position).

    Raises:
        ValueError: a tuple of another length, or texts [`RScoreSample`][] refuses.
    """
    samples = []
    for i, item in enumerate(items):
        if isinstance(item, RScoreSample):
            samples.append(item)
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
            samples.append(RScoreSample(i, *item))
        else:
            raise ValueError(
                f"items[{i}]: expected an RScoreSample or (reasoning, reference_short, "
                f"reference_long), got {type(item).__name__}"
            )
    return samples


class RScoreJudge(JudgeRunner[RScoreSample]):
    """An LLM judge scoring reasoning chains 0..10 against reference chains (PixelThink's RScore).

    Args:
        backend: where replies come from (a [`JudgeBackend`][]; the
            conversation is text only).
        cache: a [`JudgmentCache`][], a path to one, or ``None``.
        prompt: the [`RScorePrompt`][] (default ``RSCORE_V1``).
        parse_retries: re-asks after an unreadable reply (no score, or one outside 0..10) before the sample is
            recorded as ``"unparseable"``.
        claim_lease: seconds a claim on a sample holds (as for the difficulty judge).

    A verdict's score is ``judgment.aspects["rscore"]``; [`rscore`][] reads it (NaN unless ``"ok"``).
    """

    sample_type = RScoreSample
    prompt_type = RScorePrompt
    #: What produced the scores (reports carry it next to the numbers).
    method = "llm_judge"

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: JudgmentCache | str | Path | None = None,
        prompt: RScorePrompt = RSCORE_V1,
        parse_retries: int = 2,
        claim_lease: float = 600.0,
    ) -> None:
        super().__init__(backend, cache=cache, prompt=prompt, parse_retries=parse_retries, claim_lease=claim_lease)

    @property
    def settings(self) -> dict[str, Any]:
        """The difficulty judge's settings (backend identity, prompt version and fingerprint) and the task."""
        return {**super().settings, "task": "rscore"}

    def conversation(self, sample: RScoreSample) -> tuple[list[dict[str, Any]], Any]:
        """The prompt's text-only conversation (no image)."""
        prompt = typing.cast(RScorePrompt, self.prompt)  # checked by the constructor
        return prompt.chat(sample), None

    def read_reply(self, reply: str) -> dict[str, float]:
        """``{"rscore": score}`` ([`parse_rscore_reply`][])."""
        return {RSCORE_KEY: parse_rscore_reply(reply)}

    @staticmethod
    def rscore(judgment: Judgment) -> float:
        """The verdict's score, NaN unless ``"ok"``."""
        if not judgment.ok or judgment.aspects is None:
            return math.nan
        return float(judgment.aspects[RSCORE_KEY])

    def judgments(self, items: Iterable[RScoreItem], *, retry_failed: bool = False) -> list[Judgment]:
        """One verdict per item, in the items' order (cached ones read, the rest asked; see
        [`judge_many`][adaptive_length_reward.difficulty.judge.runner.JudgeRunner.judge_many])."""
        samples = as_samples(items)
        verdicts = {j.sample_id: j for j in self.judge_many(samples, retry_failed=retry_failed)}
        return [verdicts[s.key] for s in samples]

    def score_many(self, items: Iterable[RScoreItem], *, retry_failed: bool = False) -> list[float]:
        """RScore per item (NaN where the judge gave no readable score), in the items' order."""
        return [self.rscore(j) for j in self.judgments(items, retry_failed=retry_failed)]
