"""What the RScore judge is shown: a versioned prompt comparing one reasoning chain with reference chains.

PixelThink (arXiv 2505.23727; the ReasonSeg-Diff benchmark and its evaluation metrics, Table 1) scores a model's
reasoning from 0 to 10 against the benchmark's reference reasoning, of which each sample has a short and a long
version. The judge model and its prompt are not released (*unconfirmed*): ``RSCORE_V1`` is this library's
rendering of that design. Like the difficulty judge's prompt, its text is versioned (``RSCORE_PROMPT_VERSION``)
and hashed into the cache key, so a changed prompt never reuses old verdicts.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..difficulty.judge.prompt import JudgePrompt

if TYPE_CHECKING:
    from .judge import RScoreSample

__all__ = ["RSCORE_PROMPTS", "RSCORE_PROMPT_VERSION", "RSCORE_V1", "RScorePrompt"]

#: Version of the default RScore prompt; bump it whenever its text changes.
RSCORE_PROMPT_VERSION = "rscore-v1"

#: What an absent text is shown as.
_ABSENT = {
    "reasoning": "(no reasoning was written)",
    "reference_short": "(not given)",
    "reference_long": "(not given)",
    "question": "(not given)",
}


@dataclass(frozen=True, repr=False)
class RScorePrompt(JudgePrompt):
    """A versioned RScore prompt (text only, no image): system text, user template, and the reminder sent after an
    unreadable reply.

    ``template`` is a ``string.Template`` with ``$reasoning``, ``$reference_short`` and ``$reference_long``
    (and optionally ``$question``, the referring expression); ``repair`` has ``$error``. The
    [`fingerprint`][adaptive_length_reward.difficulty.judge.prompt.JudgePrompt.fingerprint] is part of the cache key
    next to the version.
    """

    placeholders: ClassVar[tuple[str, ...]] = ("reasoning", "reference_short", "reference_long")

    def render_sample(self, sample: RScoreSample) -> str:
        """The user message's text for one sample (an empty or absent text is named as such)."""
        texts = {
            "reasoning": sample.reasoning,
            "reference_short": sample.reference_short,
            "reference_long": sample.reference_long,
            "question": sample.question,
        }
        values = {k: v.strip() if v is not None and v.strip() else _ABSENT[k] for k, v in texts.items()}
        return string.Template(self.template).safe_substitute(values)

    def chat(self, sample: RScoreSample) -> list[dict[str, Any]]:
        """The conversation for one sample: the system text, then the rendered user text (no image)."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.render_sample(sample)}]


_EXAMPLE = '{"score": 7}'

#: The default prompt: a 0..10 score of the reasoning against a short and a long reference chain, as JSON.
RSCORE_V1 = RScorePrompt(
    version=RSCORE_PROMPT_VERSION,
    system="You are a strict grader of step-by-step reasoning for visual grounding and segmentation.",
    template=(
        "A model was asked to find one object in an image from a referring question and wrote the reasoning "
        "below before answering. Two reference reasonings for the same sample were written by annotators: a short "
        "one and a long one. Both are correct; the short one shows that brief reasoning can be complete.\n\n"
        "Question: $question\n\n"
        "Short reference reasoning:\n$reference_short\n\n"
        "Long reference reasoning:\n$reference_long\n\n"
        "Model reasoning:\n$reasoning\n\n"
        "Score the model reasoning from 0 to 10 against the references: does it identify the same target object, "
        "use the same key visual and spatial cues, and stay correct and coherent without contradicting them? "
        "10: as good as a reference; 5: partly right, with missing or wrong steps; 0: wrong target, irrelevant or "
        "empty. Do not reward length for its own sake: a short reasoning that matches the short reference can "
        "score 10.\n\n"
        f"Reply with only a JSON object and nothing else, for example: {_EXAMPLE}"
    ),
    repair=(
        "Your previous reply could not be read ($error). Reply again with only the JSON object holding a score "
        f"from 0 to 10, for example: {_EXAMPLE}"
    ),
)

#: Built-in RScore prompts by version.
RSCORE_PROMPTS: dict[str, RScorePrompt] = {RSCORE_V1.version: RSCORE_V1}
