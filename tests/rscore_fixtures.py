"""Test fixtures for the RScore judge: a script for the scripted chat-completions server of
tests/difficulty_fixtures.py (replies derived from the ``sample-N`` named in the reasoning, not from a model),
and samples that name their number."""

from __future__ import annotations

import json
from typing import Any

from difficulty_fixtures import Action, Reply, Responder, sample_number

from adaptive_length_reward.rscore import RScoreSample

SHORT = "The query asks for the cup; the red cup on the left table matches."
LONG = (
    "The query asks for something to drink from. There are two cups and a bottle. The red cup on the left table "
    "is upright and closest, so it is the target; the bottle is not a cup."
)


def expected_rscore(n: int) -> float:
    """What :func:`rscore_by_sample` answers for sample ``n``: a fixed function of ``n`` on 0..10."""
    return float((3 * n + 1) % 11)


def rscore_by_sample(delay: float = 0.0) -> Responder:
    """Script: a valid JSON reply whose score is :func:`expected_rscore` of the sample number in the request."""

    def respond(body: dict[str, Any], index: int) -> Action:
        n = sample_number(body)
        if n is None:
            return Reply("I cannot tell which sample this is.", delay=delay)
        return Reply(
            f"Compared with both references:\n```json\n{json.dumps({'score': expected_rscore(n)})}\n```", delay=delay
        )

    return respond


def rscore_sample(n: int, *, reasoning: str | None = None) -> RScoreSample:
    """Sample ``n``: its reasoning names ``sample-n`` (the script reads the number from it)."""
    text = reasoning if reasoning is not None else f"I look for the cup of sample-{n}; it is the red one on the left."
    return RScoreSample(f"r{n}", text, SHORT, LONG)
