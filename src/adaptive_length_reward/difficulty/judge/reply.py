"""Reading the judge's reply: three aspect scores from 1 to 10, and one difficulty from them.

PixelThink (arXiv 2505.23727, Sec. 3.2) has its judge answer JSON with the keys ``scene`` (scene complexity),
``seg`` (segmentation challenge) and ``language`` (linguistic ambiguity). The released table stores one scalar
per sample; how the three become one is not stated, and the mean is the natural reading, so::

    D = (scene + seg + language) / 3          (configurable: median, max, min, or weights)

What [`parse_judge_reply`][] tolerates is listed in docs/difficulty.md; scores outside ``[1, 10]`` are refused.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import json
import math
import re
import reprlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ...tiers import SCALE_MAX, SCALE_MIN

__all__ = [
    "ASPECTS",
    "MAX_REPLY_CHARS",
    "Aggregate",
    "JudgeReplyError",
    "check_weights",
    "combine_aspects",
    "parse_judge_reply",
]

#: The three aspects the judge rates, in this order (PixelThink's JSON keys).
ASPECTS: tuple[str, ...] = ("scene", "seg", "language")

Aggregate = Literal["mean", "median", "max", "min"]

NUMBER = r"-?\d+(?:\.\d+)?"

#: The most characters of a reply, outside its ``<think>`` blocks, that [`parse_judge_reply`][] reads; a longer
#: reply is refused (a verdict is a few hundred characters; the limit keeps a hostile judge from costing time).
MAX_REPLY_CHARS = 100_000
#: Brace spans longer than this are not parsed whole (objects inside them still are).
_MAX_SPAN = 20_000
#: Spans nested deeper than this (braces and brackets) are not parsed: no recursion limit is ever reached.
_MAX_NESTING = 24
#: How many characters, over all candidate spans, are parsed as JSON, and as Python literals.
_JSON_BUDGET, _LITERAL_BUDGET = 200_000, 8_000
#: Only the last this many candidate spans (those mentioning an aspect) are parsed.
_MAX_CANDIDATES = 64
#: Only the last this many brackets, braces, quotes and backslashes are looked at.
_MAX_STRUCTURE = 16_384
#: A score given as text longer than this is not a score.
_MAX_SCORE_TEXT = 40


class JudgeReplyError(ValueError):
    """The judge's reply holds no readable set of aspect scores; the message says what was wrong."""


_VARIANTS = {
    "scene": ("scene", "scene_complexity", "complexity", "scene_difficulty"),
    "seg": ("seg", "segmentation", "segmentation_challenge", "seg_challenge", "segmentation_difficulty"),
    "language": ("language", "linguistic", "linguistic_ambiguity", "language_ambiguity", "ambiguity"),
}
_ALIASES = {variant: aspect for aspect, variants in _VARIANTS.items() for variant in variants}
_SCORE_KEYS = ("score", "rating", "value")
#: Every alias contains one of these words: a span without any cannot hold an aspect (keys are read lower-cased).
_ASPECT_WORDS = ("scene", "seg", "complexity", "language", "linguistic", "ambiguity")
_ASPECT_WORD = re.compile("|".join(_ASPECT_WORDS), re.IGNORECASE)
_ASPECT_WORD_LOWER = re.compile(r"s(?:cene|eg)|complexity|l(?:anguage|inguistic)|ambiguity")
#: ``name: number`` lines: an alias (words joined by spaces, dashes or underscores), not inside a longer word.
#: Linear time without possessive quantifiers (Python 3.11+ only): no two neighbouring repeats can take the same
#: character (a run of spaces belongs to one ``[ \t]*``; the optional quote groups start with the quote), so a
#: failed match gives back each character at most once, and the alternation is bounded.
_LINE = re.compile(
    r"(?<![A-Za-z_\-])("
    + "|".join(sorted((a.replace("_", r"[\s_\-]+") for a in _ALIASES), key=len, reverse=True))
    + rf")(?![A-Za-z_\-])[ \t]*(?:[\"'][ \t]*)?[:=][ \t]*(?:[\"'][ \t]*)?({NUMBER}(?:[ \t]*/[ \t]*10)?)",
    re.IGNORECASE,
)
_SCORE_TEXT = re.compile(rf"\s*({NUMBER})\s*(?:/\s*10\s*)?")
_STRUCTURE = re.compile(r"[{}\[\]\"'\\]")
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlevel = 60, 60, 3


def _show(value: Any) -> str:
    """A short repr of any parsed value (bounded in length and depth; never raises)."""
    try:
        return _SHOW.repr(value)
    except Exception:  # e.g. an int too long to print: say what it was
        return f"<{type(value).__name__}>"


def _aspect_name(key: Any) -> str | None:
    if not isinstance(key, str) or len(key) > 64:
        return None
    return _ALIASES.get(re.sub(r"[\s\-]+", "_", key.strip().lower()))


def _score(value: Any, depth: int = 0) -> float:
    """A 1..10 score from a number, a numeric string (``"7"``, ``"7/10"``), or ``{"score": 7}``."""
    if isinstance(value, Mapping) and depth < 2:
        for key in _SCORE_KEYS:
            if key in value:
                return _score(value[key], depth + 1)
        raise JudgeReplyError(f"expected a number or an object with a 'score', got {_show(value)}")
    return score_in_range(value, SCALE_MIN, SCALE_MAX, what="a number from 1 to 10")


def score_in_range(value: Any, low: float, high: float, *, what: str) -> float:
    """A score in ``[low, high]`` from a number or a numeric string (``"7"``, ``"7/10"``); never clipped.

    Raises:
        JudgeReplyError: ``"expected {what}, got ..."`` for anything else; ``"expected a score from low to high"``
            for a number outside the range (NaN, an int beyond float range included).
    """
    match = _SCORE_TEXT.fullmatch(value) if isinstance(value, str) and len(value) <= _MAX_SCORE_TEXT else None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif match is not None:
            number = float(match.group(1))
        else:
            raise JudgeReplyError(f"expected {what}, got {_show(value)}")
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not low <= number <= high:  # also rejects NaN
        raise JudgeReplyError(f"expected a score from {low:g} to {high:g}, got {_show(value)}")
    return number


def _aspects_of(obj: Mapping[str, Any], depth: int = 0) -> dict[str, float] | None:
    """The three scores from one JSON object (looking up to two levels down, e.g. ``{"difficulty": {...}}``)."""
    found: dict[str, Any] = {}
    for key, value in obj.items():
        name = _aspect_name(key)
        if name is not None:
            if name in found:
                raise JudgeReplyError(f"aspect {name!r} given twice")
            found[name] = value
    if not found:
        for inner in (v for v in obj.values() if isinstance(v, Mapping) and depth < 2):
            result = _aspects_of(inner, depth + 1)
            if result is not None:
                return result
        return None
    missing = [a for a in ASPECTS if a not in found]
    if missing:
        raise JudgeReplyError(f"missing aspect(s) {missing} (got {sorted(found)})")
    return {name: _score(found[name]) for name in ASPECTS}


def _spans(text: str, positions: list[int], *, quotes: bool) -> list[tuple[int, int]]:
    """``(start, end)`` of each closed ``{...}`` at most ``_MAX_NESTING`` deep inside, in one pass over the
    structural characters at ``positions`` (linear time).
    With ``quotes``, braces inside quoted strings (``"..."`` with backslash escapes, ``'...'``) do not count."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[int, bool]] = []  # per open bracket: (start, is a brace)
    deepest: list[int] = []  # per open bracket: the deepest stack length reached inside it
    quote = ""
    escaped = -2
    for i in positions:
        ch = text[i]
        if quote:
            if ch == "\\" and escaped != i - 1:
                escaped = i
            elif ch == quote and escaped != i - 1:
                quote = ""
        elif ch in "\"'\\":
            quote = ch if quotes and stack and ch != "\\" else ""
        elif ch == "{" or ch == "[":
            stack.append((i, ch == "{"))
            deepest.append(len(stack))
        elif stack:
            start, brace = stack.pop()
            inner = deepest.pop()
            if deepest and inner > deepest[-1]:
                deepest[-1] = inner
            if brace and ch == "}" and inner - len(stack) <= _MAX_NESTING:
                spans.append((start, i + 1))
    return spans


def _parse_object(span: str, budget: list[int]) -> Any:
    """``span`` as JSON, else as a Python literal; ``None`` when neither reads it or the ``[json, literal]``
    character budget is spent (each attempt is paid from it)."""
    if len(span) <= budget[0]:
        budget[0] -= len(span)
        try:
            return json.loads(span)
        except (ValueError, RecursionError):  # JSONDecodeError, or Python's int-digits limit
            pass
    if len(span) > budget[1]:
        return None
    budget[1] -= len(span)
    try:
        return ast.literal_eval(span)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, OverflowError):
        return None


def _objects(
    text: str, keywords: re.Pattern[str] = _ASPECT_WORD, keywords_lower: re.Pattern[str] = _ASPECT_WORD_LOWER
) -> Iterator[Any]:
    """The ``{...}`` spans of ``text`` that parse as JSON or a Python literal, left to right, skipping spans
    inside one already read; only spans holding a key word (``keywords``; ``keywords_lower`` for lower-cased
    text; default the aspect words ``_ASPECT_WORD``), the last
    ``_MAX_CANDIDATES`` of them, among the last ``_MAX_STRUCTURE`` structural characters. Spans are found
    twice, minding quotes and not (a stray apostrophe in prose must not hide an object)."""
    # the last _MAX_STRUCTURE structural characters, found from the end (a reply of 100 kB of braces would
    # otherwise make a match object for every one of them)
    last = len(text) - 1
    positions = [last - m.start() for m in itertools.islice(_STRUCTURE.finditer(text[::-1]), _MAX_STRUCTURE)][::-1]
    found = _spans(text, positions, quotes=True)
    if '"' in text or "'" in text:
        found += _spans(text, positions, quotes=False)
    if not found:
        return
    spans = sorted({(start, -end) for start, end in found})
    # the lower-cased text is searched several times faster than the text with a case-insensitive pattern; the
    # positions agree unless lower-casing changed the length (a few Unicode letters)
    lower = text.lower()
    pattern, searched = (keywords_lower, lower) if len(lower) == len(text) else (keywords, text)
    words = [m.start() for m in pattern.finditer(searched)]
    candidates: list[tuple[int, int]] = []
    for start, negative_end in reversed(spans):
        end = -negative_end
        if end - start <= _MAX_SPAN and bisect.bisect_left(words, start) < bisect.bisect_left(words, end):
            candidates.append((start, end))
            if len(candidates) == _MAX_CANDIDATES:
                break
    covered = 0
    budget = [_JSON_BUDGET, _LITERAL_BUDGET]
    for start, end in reversed(candidates):
        if start < covered:
            continue
        obj = _parse_object(text[start:end], budget)
        if obj is not None:
            covered = end
            yield obj


def _lines(text: str) -> Iterator[re.Match[str]]:
    """The matches of ``_LINE.finditer(text)``, tried only where an aspect word starts: every alias begins with
    one of ``_ASPECT_WORDS`` (same case rules), and a match cannot start inside a longer word (its lookbehind),
    so no match is missed; about 3x faster on a long reply that mentions an aspect a few times."""
    end = 0
    for word in _ASPECT_WORD.finditer(text):
        if word.start() >= end and (match := _LINE.match(text, word.start())) is not None:
            end = match.end()
            yield match


def _without_thinking(reply: str) -> str:
    """``reply`` without ``<think>...</think>`` blocks, and without everything before a lone ``</think>``."""
    parts: list[str] = []
    position = 0
    while (start := reply.find("<think>", position)) >= 0:
        end = reply.find("</think>", start + 7)
        if end < 0:
            break
        parts += [reply[position:start], " "]
        position = end + 8
    text = "".join(parts) + reply[position:]
    if "</think>" in text:  # an opening tag outside the reply (reasoning parsers): keep what follows
        text = text.rsplit("</think>", 1)[1]
    return text


def parse_judge_reply(reply: str) -> dict[str, float]:
    """The judge's three aspect scores from its raw reply.

    The last JSON object (or Python-literal dict) in the reply that names all three aspects wins; ``<think>``
    blocks are ignored. Without any such object, ``name: number`` lines are read when each aspect appears
    exactly once. Scores must lie in ``[1, 10]``: a score outside is an error, never clipped.

    Any string is read in time linear in its length (at most ``MAX_REPLY_CHARS`` characters outside
    ``<think>`` blocks; longer is refused), without deep recursion: whatever the judge sends, the only exception
    is [`JudgeReplyError`][].

    >>> parse_judge_reply('Sure! ```json\\n{"scene": 7, "seg": "4/10", "language": 2}\\n```')
    {'scene': 7.0, 'seg': 4.0, 'language': 2.0}

    Raises:
        JudgeReplyError: saying what was missing or wrong.
        TypeError: ``reply`` is not a string (a programming error).
    """
    if not isinstance(reply, str):
        raise TypeError(f"parse_judge_reply: reply: expected str, got {type(reply).__name__}")
    text = _without_thinking(reply)
    if not text.strip():
        raise JudgeReplyError("empty reply")
    if len(text) > MAX_REPLY_CHARS:
        raise JudgeReplyError(
            f"expected a reply of at most {MAX_REPLY_CHARS} characters outside <think> blocks, got {len(text)}"
        )
    lower = text.lower()
    if not any(word in lower for word in _ASPECT_WORDS):
        raise JudgeReplyError(f"no JSON object with the keys {list(ASPECTS)} (reply starts {reply.strip()[:80]!r})")
    best: dict[str, float] | None = None
    problem: str | None = None
    for obj in _objects(text):
        try:
            aspects = _aspects_of(obj) if isinstance(obj, Mapping) else None
        except JudgeReplyError as error:
            problem = str(error)
            continue
        best = aspects or best
    if best is not None:
        return best
    if problem is not None:
        raise JudgeReplyError(f"a JSON object was found but {problem}")
    found: dict[str, str] = {}
    for match in _lines(text):
        name = _aspect_name(match.group(1))
        if name is None or name in found:  # an aspect twice: ambiguous, nothing is read
            found = {}
            break
        found[name] = match.group(2)
    if len(found) == len(ASPECTS):
        return {a: _score(found[a]) for a in ASPECTS}
    raise JudgeReplyError(f"no JSON object with the keys {list(ASPECTS)} (reply starts {reply.strip()[:80]!r})")


def combine_aspects(
    aspects: Mapping[str, float], *, aggregate: Aggregate = "mean", weights: Mapping[str, float] | None = None
) -> float:
    """One difficulty from the aspect scores: their mean (default), median, max or min, or a weighted mean
    ``sum_a w_a s_a / sum_a w_a`` when ``weights`` are given.

    >>> combine_aspects({"scene": 7, "seg": 4, "language": 1})
    4.0
    """
    values = [float(aspects[a]) for a in ASPECTS]
    if weights is not None:  # plain Python: three numbers, called once per sample on every (cached) rerun
        w = [float(weights.get(a, 0.0)) for a in ASPECTS]
        return sum(wi * vi for wi, vi in zip(w, values)) / sum(w)
    if aggregate == "median":
        return sorted(values)[1]
    if aggregate in ("max", "min"):
        return max(values) if aggregate == "max" else min(values)
    return sum(values) / len(values)


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float] | None:
    """Aspect weights with every aspect present (absent ones 0), or ``None``.

    Raises:
        ValueError: an unknown aspect, a negative or non-finite weight, or a zero sum.
    """
    if weights is None:
        return None
    unknown = set(weights) - set(ASPECTS)
    if unknown:
        raise ValueError(f"weights: expected keys among {list(ASPECTS)}, got {sorted(unknown)}")
    out = {a: float(weights.get(a, 0.0)) for a in ASPECTS}
    if any(not math.isfinite(w) or w < 0 for w in out.values()) or sum(out.values()) <= 0:
        raise ValueError(f"weights: expected non-negative numbers with a positive sum, got {dict(weights)}")
    return out
