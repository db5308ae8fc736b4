"""Reading the judge's reply: three aspect scores from 1 to 10, and one difficulty from them.

PixelThink (arXiv 2505.23727, Sec. 3.2) has its judge answer JSON with the keys ``scene`` (scene complexity),
``seg`` (segmentation challenge) and ``language`` (linguistic ambiguity). The released table stores one scalar
per sample; how the three become one is not stated, and the mean is the natural reading, so::

    D = (scene + seg + language) / 3          (configurable: median, max, min, or weights)

What :func:`parse_judge_reply` tolerates is listed in docs/difficulty.md; scores outside ``[1, 10]`` are refused.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np

from ...tiers import SCALE_MAX, SCALE_MIN

__all__ = ["ASPECTS", "Aggregate", "JudgeReplyError", "check_weights", "combine_aspects", "parse_judge_reply"]

#: The three aspects the judge rates, in this order (PixelThink's JSON keys).
ASPECTS: tuple[str, ...] = ("scene", "seg", "language")

Aggregate = Literal["mean", "median", "max", "min"]

NUMBER = r"-?\d+(?:\.\d+)?"


class JudgeReplyError(ValueError):
    """The judge's reply holds no readable set of aspect scores; the message says what was wrong."""


_VARIANTS = {
    "scene": ("scene", "scene_complexity", "complexity", "scene_difficulty"),
    "seg": ("seg", "segmentation", "segmentation_challenge", "seg_challenge", "segmentation_difficulty"),
    "language": ("language", "linguistic", "linguistic_ambiguity", "language_ambiguity", "ambiguity"),
}
_ALIASES = {variant: aspect for aspect, variants in _VARIANTS.items() for variant in variants}
_SCORE_KEYS = ("score", "rating", "value")


def _aspect_name(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    return _ALIASES.get(re.sub(r"[\s\-]+", "_", key.strip().lower()))


def _score(value: Any) -> float:
    """A 1..10 score from a number, a numeric string (``"7"``, ``"7/10"``), or ``{"score": 7}``."""
    if isinstance(value, Mapping):
        for key in _SCORE_KEYS:
            if key in value:
                return _score(value[key])
        raise JudgeReplyError(f"expected a number or an object with a 'score', got {value!r:.60}")
    match = re.fullmatch(rf"\s*({NUMBER})\s*(?:/\s*10\s*)?", value) if isinstance(value, str) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif match is not None:
        number = float(match.group(1))
    else:
        raise JudgeReplyError(f"expected a number from 1 to 10, got {value!r:.40}")
    if not SCALE_MIN <= number <= SCALE_MAX:  # also rejects NaN; never clipped
        raise JudgeReplyError(f"expected a score from 1 to 10, got {value!r}")
    return number


def _aspects_of(obj: Mapping[str, Any]) -> dict[str, float] | None:
    """The three scores from one JSON object (looking one level down, e.g. ``{"difficulty": {...}}``)."""
    found: dict[str, Any] = {}
    for key, value in obj.items():
        name = _aspect_name(key)
        if name is not None:
            if name in found:
                raise JudgeReplyError(f"aspect {name!r} given twice")
            found[name] = value
    if not found:
        for inner in (v for v in obj.values() if isinstance(v, Mapping)):
            result = _aspects_of(inner)
            if result is not None:
                return result
        return None
    missing = [a for a in ASPECTS if a not in found]
    if missing:
        raise JudgeReplyError(f"missing aspect(s) {missing} (got {sorted(found)})")
    return {name: _score(found[name]) for name in ASPECTS}


def _objects(text: str) -> Iterator[Any]:
    """Every ``{...}`` in ``text`` that parses as JSON or as a Python literal, left to right."""
    decoder = json.JSONDecoder()
    position = 0
    while (start := text.find("{", position)) >= 0:
        try:
            obj, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            closing = _matching_brace(text, start)
            try:
                obj = None if closing is None else ast.literal_eval(text[start:closing])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                obj = None
            if obj is None or closing is None:
                position = start + 1
                continue
            position = closing
        yield obj


def _matching_brace(text: str, start: int) -> int | None:
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth == 0:
                return i + 1
    return None


def parse_judge_reply(reply: str) -> dict[str, float]:
    """The judge's three aspect scores from its raw reply.

    The last JSON object (or Python-literal dict) in the reply that names all three aspects wins; ``<think>``
    blocks are ignored. Without any such object, ``name: number`` lines are read when each aspect appears
    exactly once. Scores must lie in ``[1, 10]``: a score outside is an error, never clipped.

    >>> parse_judge_reply('Sure! ```json\\n{"scene": 7, "seg": "4/10", "language": 2}\\n```')
    {'scene': 7.0, 'seg': 4.0, 'language': 2.0}

    Raises:
        JudgeReplyError: saying what was missing or wrong.
        TypeError: ``reply`` is not a string (a programming error).
    """
    if not isinstance(reply, str):
        raise TypeError(f"parse_judge_reply: reply: expected str, got {type(reply).__name__}")
    text = re.sub(r"<think>.*?</think>", " ", reply, flags=re.DOTALL)
    if "</think>" in text:  # an opening tag outside the reply (reasoning parsers): keep what follows
        text = text.rsplit("</think>", 1)[1]
    if not text.strip():
        raise JudgeReplyError("empty reply")
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
    found: dict[str, list[str]] = {}
    pattern = re.compile(rf"([A-Za-z][A-Za-z _\-]*?)\s*[\"']?\s*[:=]\s*[\"']?\s*({NUMBER}(?:\s*/\s*10)?)")
    for key, value in pattern.findall(text):
        name = _aspect_name(key)
        if name is not None:
            found.setdefault(name, []).append(value)
    if all(len(found.get(a, [])) == 1 for a in ASPECTS):
        return {a: _score(found[a][0]) for a in ASPECTS}
    raise JudgeReplyError(f"no JSON object with the keys {list(ASPECTS)} (reply starts {reply.strip()[:80]!r})")


def combine_aspects(
    aspects: Mapping[str, float], *, aggregate: Aggregate = "mean", weights: Mapping[str, float] | None = None
) -> float:
    """One difficulty from the aspect scores: their mean (default), median, max or min, or a weighted mean
    ``sum_a w_a s_a / sum_a w_a`` when ``weights`` are given.

    >>> combine_aspects({"scene": 7, "seg": 4, "language": 1})
    4.0
    """
    values = np.array([float(aspects[a]) for a in ASPECTS])
    if weights is not None:
        w = np.array([float(weights.get(a, 0.0)) for a in ASPECTS])
        return float((w * values).sum() / w.sum())
    reduce = aggregate if aggregate in ("median", "max", "min") else "mean"  # numpy's functions of those names
    return float(getattr(np, reduce)(values))


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
