"""Seg-Zero's prompt and answer format (used unchanged by PixelThink), and the conversations built from them.

Source: Seg-Zero ``evaluation_scripts/evaluation.py`` and PixelThink ``verl/utils/rl_dataset.py``
(``SEG_PROMPT_WITH_IMAGE_TAG``): the question is lower-cased with trailing periods stripped, the image comes
first, the system prompt is Qwen's default "You are a helpful assistant.".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ANSWER_HINT",
    "CONCISE_INSTRUCTION",
    "QUESTION_TEMPLATE",
    "WARMUP_CHECKS",
    "conversation",
    "format_answer",
    "question_text",
    "reference_completion",
    "warmup_reasoning",
]

QUESTION_TEMPLATE = (
    "Please find '{Question}' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format."
    "i.e., <think> thinking process here </think>"
    "<answer>{Answer}</answer>"
)
ANSWER_HINT = "{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}"
#: The +Prompt baseline's instruction (PixelThink's Table 1 row "+Prompt": Seg-Zero's reward, a prompt asking for
#: concise reasoning). The paper does not print its wording; this one asks for the same thing.
CONCISE_INSTRUCTION = " Keep the thinking process concise: only as long as the question needs."


def question_text(query: str, instruction: str = "") -> str:
    """The user text for one query: ``QUESTION_TEMPLATE`` with ``query.lower().strip(".")``, then ``instruction``.

    >>> question_text("The Red Mug.")[:30]
    "Please find 'the red mug' with"
    >>> question_text("a cup", CONCISE_INSTRUCTION).endswith("as long as the question needs.")
    True
    """
    return QUESTION_TEMPLATE.format(Question=query.lower().strip("."), Answer=ANSWER_HINT) + instruction


def conversation(query: str, instruction: str = "") -> list[dict[str, Any]]:
    """TRL's conversational prompt for one sample: a user message with the image first, then the question
    (followed by ``instruction``, e.g. :data:`CONCISE_INSTRUCTION`)."""
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question_text(query, instruction)}]}
    ]


def format_answer(bbox: Sequence[int], points: Sequence[Sequence[int]]) -> str:
    """``<answer>{"bbox": [...], "points_1": [...], "points_2": [...]}</answer>`` (the format the reward parses).

    >>> format_answer((1, 2, 3, 4), ((5, 6), (7, 8)))
    '<answer>{"bbox": [1, 2, 3, 4], "points_1": [5, 6], "points_2": [7, 8]}</answer>'
    """
    body = {
        "bbox": [int(v) for v in bbox],
        "points_1": [int(v) for v in points[0]],
        "points_2": [int(v) for v in points[1]],
    }
    return f"<answer>{json.dumps(body)}</answer>"


def reference_completion(reasoning: str, bbox: Sequence[int], points: Sequence[Sequence[int]]) -> str:
    """A well-formed completion: ``<think> reasoning </think>`` then the answer (used by the tiny warm-up)."""
    return f"<think> {reasoning} </think>{format_answer(bbox, points)}"


#: The checks of :func:`warmup_reasoning`, between its first and last sentence (``{q}``: the query).
WARMUP_CHECKS = (
    "I look at every shape in the image.",
    "I compare the colour of each shape with {q}.",
    "I compare the size of each shape with {q}.",
    "I compare the position of each shape with {q}.",
    "I compare the kind of each shape with {q}.",
    "I rule out the shapes that do not match.",
)


def warmup_reasoning(query: str, keep: Sequence[bool] | None = None) -> str:
    """The verbose, query-restating reasoning the tiny policy is warmed up on: "The question asks for {q}.", the
    checks of :data:`WARMUP_CHECKS` selected by ``keep`` (default: all), "The target is {q}.".

    A model of under 1 M parameters cannot learn to describe a scene in a few hundred steps, but it can learn to
    restate the query in a sequence of checks; the warm-up draws which checks to keep per example (so the policy
    starts GRPO with a spread of reasoning lengths to choose from), and the sentences are what GRPO with a length
    reward can then drop.

    >>> warmup_reasoning("The red mug.", keep=[False] * 6)
    'The question asks for the red mug. The target is the red mug.'
    """
    q = query.lower().strip(".")
    keep = [True] * len(WARMUP_CHECKS) if keep is None else list(keep)
    if len(keep) != len(WARMUP_CHECKS):
        raise ValueError(f"warmup_reasoning: keep: expected {len(WARMUP_CHECKS)} flags, got {len(keep)}")
    checks = [c.format(q=q) for c, k in zip(WARMUP_CHECKS, keep) if k]
    return " ".join([f"The question asks for {q}.", *checks, f"The target is {q}."])
