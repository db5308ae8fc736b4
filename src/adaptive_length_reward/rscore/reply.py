"""Reading the RScore judge's reply: one score from 0 to 10.

The reply is read with the difficulty judge's bounded JSON scanner (:mod:`adaptive_length_reward.difficulty.judge
.reply`): ``<think>`` blocks are ignored, the last JSON object (or Python-literal dict) holding a score key wins,
else a single ``score: N`` line is read. A score outside ``[0, 10]`` is refused, never clipped: the judge is asked
again (``parse_retries``) and then the sample is recorded as ``"unparseable"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..difficulty.judge.reply import (
    MAX_REPLY_CHARS,
    NUMBER,
    JudgeReplyError,
    _objects,
    _without_thinking,
    score_in_range,
)

__all__ = ["RSCORE_KEYS", "RSCORE_MAX", "RSCORE_MIN", "parse_rscore_reply"]

#: The RScore scale (PixelThink reports RScore from 0 to 10).
RSCORE_MIN, RSCORE_MAX = 0.0, 10.0

#: Keys read as the score (compared lower-cased, spaces and dashes as underscores).
RSCORE_KEYS: tuple[str, ...] = ("score", "rscore", "rating", "reasoning_score", "overall_score", "overall")

_KEYWORD = re.compile("score|rating|overall", re.IGNORECASE)
_KEYWORD_LOWER = re.compile("score|rating|overall")
_LINE = re.compile(
    rf"(?<![A-Za-z_\-])(r?score|rating)(?![A-Za-z_\-])[ \t]*(?:[\"'][ \t]*)?[:=][ \t]*(?:[\"'][ \t]*)?"
    rf"({NUMBER}(?:[ \t]*/[ \t]*10)?)",
    re.IGNORECASE,
)


def _value(value: Any) -> float:
    """A 0..10 score from a number or a numeric string (``"7"``, ``"7/10"``)."""
    return score_in_range(value, RSCORE_MIN, RSCORE_MAX, what="a score from 0 to 10")


def _score_of(obj: Mapping[Any, Any]) -> float | None:
    """The score in one object (``None`` when it names none); two score keys are ambiguous."""
    found = [
        value
        for key, value in obj.items()
        if isinstance(key, str) and len(key) <= 64 and re.sub(r"[\s\-]+", "_", key.strip().lower()) in RSCORE_KEYS
    ]
    if len(found) > 1:
        raise JudgeReplyError(f"expected one score key, got {len(found)}")
    return _value(found[0]) if found else None


def parse_rscore_reply(reply: str) -> float:
    """The judge's 0..10 RScore from its raw reply.

    >>> parse_rscore_reply('<think>close to the long one</think> {"score": "8/10"}')
    8.0

    Any string is read in time linear in its length (at most
    ``MAX_REPLY_CHARS`` characters outside ``<think>``
    blocks): whatever the judge sends, the only exception is [`JudgeReplyError`][].

    Raises:
        JudgeReplyError: no score, two different ones, or one outside ``[0, 10]``.
        TypeError: ``reply`` is not a string (a programming error).
    """
    if not isinstance(reply, str):
        raise TypeError(f"parse_rscore_reply: reply: expected str, got {type(reply).__name__}")
    text = _without_thinking(reply)
    if not text.strip():
        raise JudgeReplyError("empty reply")
    if len(text) > MAX_REPLY_CHARS:
        raise JudgeReplyError(
            f"expected a reply of at most {MAX_REPLY_CHARS} characters outside <think> blocks, got {len(text)}"
        )
    best: float | None = None
    problem: str | None = None
    for obj in _objects(text, _KEYWORD, _KEYWORD_LOWER):
        try:
            score = _score_of(obj) if isinstance(obj, Mapping) else None
        except JudgeReplyError as error:
            problem = str(error)
            continue
        best = best if score is None else score
    if best is not None:
        return best
    if problem is not None:
        raise JudgeReplyError(f"a JSON object was found but {problem}")
    lines = {_value(m.group(2)) for m in _LINE.finditer(text)}
    if len(lines) == 1:
        return lines.pop()
    if len(lines) > 1:
        raise JudgeReplyError(f"expected one score, got {sorted(lines)}")
    raise JudgeReplyError(f'no JSON object with a "score" from 0 to 10 (reply starts {reply.strip()[:80]!r})')
