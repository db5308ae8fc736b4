"""A VLM judge that rates each sample's difficulty, as PixelThink does once per dataset.

PixelThink (arXiv 2505.23727, Sec. 3.2 and the ReasonSeg-Diff construction) shows an external judge
(Qwen2.5-VL-72B) the image, the referring expression, and the target's mask proportion and position, and has it
rate three aspects from 1 (very easy) to 10 (very hard), returned as JSON with the keys ``scene`` (scene
complexity), ``seg`` (segmentation challenge) and ``language`` (linguistic ambiguity). The released table stores
one scalar per sample; how the three become one is not stated, and the mean is the natural reading, so::

    D = (scene + seg + language) / 3          (configurable: median, max, min, or weights)

The official prompt text is not released. :data:`PIXELTHINK_V1` is this library's rendering of that design; its
text is versioned (:data:`PROMPT_VERSION`) and hashed into the cache key, so a changed prompt never reuses old
verdicts.

Reading the reply (:func:`parse_judge_reply`) tolerates what judges do: prose around the JSON, code fences,
``<think>`` blocks, single quotes, key variants (``"Scene Complexity"``), ``"7/10"`` strings, ``{"score": 7}``
objects, and, as a last resort, ``scene: 7`` lines. A reply that still cannot be read is asked again
(``parse_retries`` times, with the unreadable reply and a reminder of the format) and is then recorded as
``"unparseable"``: it never gets a score.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import math
import re
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from ..batch import RewardBatch
from ..config import ComponentConfig, Nested, build, register, validated
from ..errors import import_optional
from .backends import JudgeBackend, JudgeTransportError
from .cache import CachedJudgment, JudgmentCache
from .scale import SCALE_MAX, SCALE_MIN, MissingPolicy, check_missing_policy, resolve_missing
from .scorer import DifficultyScorer

__all__ = [
    "ASPECTS",
    "PIXELTHINK_V1",
    "PROMPTS",
    "PROMPT_VERSION",
    "DifficultyJudge",
    "JudgeDifficulty",
    "JudgeInputError",
    "JudgePrompt",
    "JudgeReplyError",
    "JudgeSample",
    "Judgment",
    "TargetGeometry",
    "combine_aspects",
    "load_image",
    "parse_box",
    "parse_judge_reply",
]

FloatArray = npt.NDArray[np.float64]

#: The three aspects the judge rates, in this order (PixelThink's JSON keys).
ASPECTS: tuple[str, ...] = ("scene", "seg", "language")

#: Version of the default prompt; bump it whenever its text changes.
PROMPT_VERSION = "pixelthink-v1"

Aggregate = Literal["mean", "median", "max", "min"]


class JudgeReplyError(ValueError):
    """The judge's reply holds no readable set of aspect scores; the message says what was wrong."""


class JudgeInputError(ValueError):
    """A sample cannot be shown to the judge (unreadable image, bad geometry); names the sample."""


# ------------------------------------------------------------------------------------------------------------
# Prompt
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class JudgePrompt:
    """A versioned judge prompt: system text, user template, and the reminder sent after an unreadable reply.

    ``template`` is a :class:`string.Template` with ``$expression`` (the referring expression) and ``$target``
    (the sentence :meth:`TargetGeometry.describe` writes); ``repair`` has ``$error``. The :attr:`fingerprint`
    (a hash of all texts) is part of the cache key next to :attr:`version`.
    """

    version: str
    system: str
    template: str
    repair: str

    def __post_init__(self) -> None:
        if not self.version:
            raise ValueError("JudgePrompt: version: expected a non-empty string, got ''")
        matches = string.Template.pattern.finditer(self.template)
        names = {m.group("named") or m.group("braced") for m in matches} - {None}
        if not {"expression", "target"} <= names:
            raise ValueError(f"JudgePrompt: template: expected the placeholders $expression and $target, got "
                             f"{sorted(names)}")

    def __repr__(self) -> str:
        return f"JudgePrompt(version={self.version!r}, fingerprint={self.fingerprint[:12]!r})"

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the prompt's texts (so an edit without a version bump still changes the cache key)."""
        text = json.dumps([self.system, self.template, self.repair])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def render(self, expression: str, geometry: TargetGeometry | None) -> str:
        """The user message's text for one sample."""
        target = (geometry or TargetGeometry()).describe()
        return string.Template(self.template).substitute(expression=expression.strip(), target=target)

    def messages(self, expression: str, geometry: TargetGeometry | None) -> list[dict[str, Any]]:
        """The conversation for one sample: system text, then the image and the rendered text."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user",
             "content": [{"type": "image"}, {"type": "text", "text": self.render(expression, geometry)}]},
        ]

    def repair_messages(self, messages: Sequence[Mapping[str, Any]], reply: str, error: str) -> list[dict[str, Any]]:
        """The conversation to send after an unreadable ``reply``: the original, the reply, and a reminder."""
        reminder = string.Template(self.repair).substitute(error=error)
        return [*map(dict, messages), {"role": "assistant", "content": reply}, {"role": "user", "content": reminder}]


_EXAMPLE = '{"scene": 4, "seg": 6, "language": 3}'

#: The default prompt: PixelThink's judge design (image, expression, mask proportion and position; three aspects
#: rated 1..10 as JSON) in this library's words.
PIXELTHINK_V1 = JudgePrompt(
    version=PROMPT_VERSION,
    system="You are a careful annotator of visual grounding and segmentation data.",
    template=(
        "You see an image and a referring expression that names one object in it. Rate how hard it is for a "
        "vision-language model to find that object and segment it exactly.\n\n"
        'Referring expression: "$expression"\n'
        "Target object: $target\n\n"
        "Rate each aspect with an integer from 1 (very easy) to 10 (very hard):\n"
        '- "scene": scene complexity: clutter, number of objects, similar distractors, occlusion, lighting.\n'
        '- "seg": segmentation challenge: a small, thin, partly hidden or irregular target, unclear boundaries.\n'
        '- "language": linguistic ambiguity: vague, indirect or multi-step wording, several objects that could '
        "match.\n\n"
        f"Reply with only a JSON object and nothing else, for example: {_EXAMPLE}"
    ),
    repair=(
        "Your previous reply could not be read ($error). Reply again with only the JSON object, for example: "
        f"{_EXAMPLE}"
    ),
)

#: Built-in prompts by version.
PROMPTS: dict[str, JudgePrompt] = {PIXELTHINK_V1.version: PIXELTHINK_V1}


# ------------------------------------------------------------------------------------------------------------
# Target geometry
# ------------------------------------------------------------------------------------------------------------

_NUMBER = r"-?\d+(?:\.\d+)?"


def parse_box(value: Any) -> tuple[float, float, float, float]:
    """A box ``(x1, y1, x2, y2)`` from 4 numbers, ``"[x1, y1, x2, y2]"``, or Seg-Zero's
    ``"<box>(x1,y1),(x2,y2)</box>"`` ground-truth string (other tags in the string are ignored).

    Raises:
        ValueError: not exactly four numbers, or ``x2 < x1`` / ``y2 < y1``.
    """
    if isinstance(value, str):
        tagged = re.search(r"<box>(.*?)</box>", value, flags=re.DOTALL)
        numbers = [float(x) for x in re.findall(_NUMBER, tagged.group(1) if tagged else value)]
    elif isinstance(value, Sequence | np.ndarray):
        try:
            numbers = [float(x) for x in np.asarray(value, dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            raise ValueError(f"parse_box: expected 4 numbers, got {value!r:.80}") from None
    else:
        raise ValueError(f"parse_box: expected 4 numbers or a '<box>(x1,y1),(x2,y2)</box>' string, got {value!r:.80}")
    if len(numbers) != 4 or not all(math.isfinite(x) for x in numbers):
        raise ValueError(f"parse_box: expected 4 finite numbers (x1, y1, x2, y2), got {value!r:.80}")
    x1, y1, x2, y2 = numbers
    if x2 < x1 or y2 < y1:
        raise ValueError(f"parse_box: expected x1 <= x2 and y1 <= y2, got {value!r:.80}")
    return (x1, y1, x2, y2)


def _region(cx: float, cy: float) -> str:
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    if vertical == "middle" and horizontal == "centre":
        return "the centre"
    if vertical == "middle":
        return f"the middle {horizontal}"
    return f"the {vertical} {horizontal}".replace(" centre", "")


def _percent(x: float) -> str:
    value = 100.0 * x
    return f"{value:.2g}%" if value < 1 else f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


@dataclass(frozen=True)
class TargetGeometry:
    """Where the target is: its mask's share of the image and its bounding box, both optional.

    Attributes:
        area_ratio: mask pixels / image pixels, in ``[0, 1]``.
        box: ``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` by the image's width and height.
        area_from_box: whether ``area_ratio`` was estimated from the box (no mask was given).
    """

    area_ratio: float | None = None
    box: tuple[float, float, float, float] | None = None
    area_from_box: bool = False

    def __post_init__(self) -> None:
        if self.area_ratio is not None and not 0.0 <= self.area_ratio <= 1.0:
            raise ValueError(f"TargetGeometry: area_ratio: expected a number in [0, 1], got {self.area_ratio!r}")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
                raise ValueError(f"TargetGeometry: box: expected 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1, got "
                                 f"{self.box}")

    @classmethod
    def from_mask(cls, mask: Any) -> TargetGeometry:
        """Area ratio and box of a binary mask (2-D array or PIL image; nonzero = target)."""
        array = np.asarray(mask)
        if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
            array = array.max(axis=-1)
        if array.ndim != 2 or array.size == 0:
            raise ValueError(f"TargetGeometry.from_mask: mask: expected a non-empty 2-D array, got shape {array.shape}")
        on = array > 0
        height, width = on.shape
        if not on.any():
            return cls(area_ratio=0.0)
        ys, xs = np.nonzero(on)
        box = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
        return cls(area_ratio=float(on.mean()), box=tuple(float(v) for v in box))  # type: ignore[arg-type]

    @classmethod
    def from_box(cls, box: Any, width: int, height: int, *, area_ratio: float | None = None) -> TargetGeometry:
        """From a pixel box (anything :func:`parse_box` reads) in a ``width x height`` image.

        Without ``area_ratio`` the box's own area stands in for the mask's (flagged as such in the prompt).
        """
        x1, y1, x2, y2 = parse_box(box)
        if width <= 0 or height <= 0:
            raise ValueError(f"TargetGeometry.from_box: expected a positive image size, got {width}x{height}")
        nx1, nx2 = min(max(x1 / width, 0.0), 1.0), min(max(x2 / width, 0.0), 1.0)
        ny1, ny2 = min(max(y1 / height, 0.0), 1.0), min(max(y2 / height, 0.0), 1.0)
        from_box = area_ratio is None
        area = (nx2 - nx1) * (ny2 - ny1) if from_box else area_ratio
        return cls(area_ratio=area, box=(nx1, ny1, nx2, ny2), area_from_box=from_box)

    def describe(self) -> str:
        """One sentence for the prompt, e.g. ``"it covers 3.2% of the image; its bounding box spans 12%-40% of
        the width and 30%-75% of the height (the middle left)."``"""
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            span = (f"spans {_percent(x1)}-{_percent(x2)} of the width and {_percent(y1)}-{_percent(y2)} of the "
                    f"height ({_region((x1 + x2) / 2, (y1 + y2) / 2)})")
            if self.area_ratio is None:
                return f"its bounding box {span}; its mask area was not given."
            if self.area_from_box:
                return (f"its bounding box covers about {_percent(self.area_ratio)} of the image and {span}; its "
                        "mask was not given.")
            return f"it covers {_percent(self.area_ratio)} of the image; its bounding box {span}."
        if self.area_ratio is not None:
            return f"it covers {_percent(self.area_ratio)} of the image; its position was not given."
        return "its mask was not given."


# ------------------------------------------------------------------------------------------------------------
# Reply parsing
# ------------------------------------------------------------------------------------------------------------

_ALIASES = {
    "scene": "scene", "scene_complexity": "scene", "complexity": "scene", "scene_difficulty": "scene",
    "seg": "seg", "segmentation": "seg", "segmentation_challenge": "seg", "seg_challenge": "seg",
    "segmentation_difficulty": "seg",
    "language": "language", "linguistic": "language", "linguistic_ambiguity": "language",
    "language_ambiguity": "language", "ambiguity": "language",
}
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
    if isinstance(value, bool):
        raise JudgeReplyError(f"expected a number from 1 to 10, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(rf"\s*({_NUMBER})\s*(?:/\s*10\s*)?", value)
        if match is None:
            raise JudgeReplyError(f"expected a number from 1 to 10, got {value!r:.40}")
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
        nested = [v for v in obj.values() if isinstance(v, Mapping)]
        for inner in nested:
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
    while True:
        start = text.find("{", position)
        if start < 0:
            return
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            closing = _matching_brace(text, start)
            obj = None
            if closing is not None:
                try:
                    obj = ast.literal_eval(text[start:closing])
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    obj = None
            if obj is None or closing is None:
                position = start + 1
                continue
            end = closing
        yield obj
        position = end


def _matching_brace(text: str, start: int) -> int | None:
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
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
        if not isinstance(obj, Mapping):
            continue
        try:
            aspects = _aspects_of(obj)
        except JudgeReplyError as error:
            problem = str(error)
            continue
        if aspects is not None:
            best = aspects
    if best is not None:
        return best
    if problem is not None:
        raise JudgeReplyError(f"a JSON object was found but {problem}")
    found: dict[str, list[str]] = {}
    pattern = re.compile(rf"([A-Za-z][A-Za-z _\-]*?)\s*[\"']?\s*[:=]\s*[\"']?\s*({_NUMBER}(?:\s*/\s*10)?)")
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
    if aggregate == "median":
        return float(np.median(values))
    if aggregate == "max":
        return float(values.max())
    if aggregate == "min":
        return float(values.min())
    return float(values.mean())


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float] | None:
    if weights is None:
        return None
    unknown = set(weights) - set(ASPECTS)
    if unknown:
        raise ValueError(f"weights: expected keys among {list(ASPECTS)}, got {sorted(unknown)}")
    out = {a: float(weights.get(a, 0.0)) for a in ASPECTS}
    if any(not math.isfinite(w) or w < 0 for w in out.values()) or sum(out.values()) <= 0:
        raise ValueError(f"weights: expected non-negative numbers with a positive sum, got {dict(weights)}")
    return out


# ------------------------------------------------------------------------------------------------------------
# Samples and verdicts
# ------------------------------------------------------------------------------------------------------------


def load_image(value: Any, *, base_dir: str | Path | None = None) -> Any:
    """A PIL RGB image from a PIL image, a path (relative to ``base_dir``), encoded bytes, a Hugging Face
    ``Image`` feature dict (``{"bytes": ..., "path": ...}``), or an ``H x W x 3`` uint8 array.

    Raises:
        TypeError: an unsupported value; ``FileNotFoundError``/``OSError`` from reading the file.
    """
    pil = import_optional("PIL.Image", extra="judge", purpose="Showing images to the difficulty judge")
    if isinstance(value, pil.Image):
        return value.convert("RGB") if value.mode != "RGB" else value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        with pil.open(path) as image:
            return image.convert("RGB")
    if isinstance(value, (bytes, bytearray)):
        with pil.open(io.BytesIO(value)) as image:
            return image.convert("RGB")
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            return load_image(value["bytes"])
        if value.get("path") is not None:
            return load_image(value["path"], base_dir=base_dir)
        raise TypeError(f"load_image: expected an image dict with 'bytes' or 'path', got keys {sorted(value)}")
    if isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype == np.uint8:
        return pil.fromarray(value).convert("RGB")
    raise TypeError(f"load_image: expected a PIL image, a path, bytes or an image dict, got {type(value).__name__}")


@dataclass(frozen=True)
class JudgeSample:
    """One sample to rate.

    Attributes:
        sample_id: the sample's id (its string form keys the cache).
        image: anything :func:`load_image` reads.
        expression: the referring expression.
        mask: the target mask (gives area and box), or ``None``.
        box: the target's pixel box (see :func:`parse_box`), used when there is no mask.
        area_ratio: the target's mask area ratio, used when there is no mask.
        base_dir: directory that relative image paths are relative to.
    """

    sample_id: Any
    image: Any
    expression: str
    mask: Any = None
    box: Any = None
    area_ratio: float | None = None
    base_dir: str | None = None

    def __post_init__(self) -> None:
        if self.sample_id is None:
            raise ValueError("JudgeSample: sample_id: expected an id, got None")
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise ValueError(f"JudgeSample {self.sample_id!r}: expression: expected a non-empty string, got "
                             f"{self.expression!r:.60}")

    @property
    def key(self) -> str:
        """The id's string form (the cache key)."""
        return str(self.sample_id)

    def geometry(self, width: int, height: int) -> TargetGeometry | None:
        """The target's geometry from the mask, else the box and/or the area ratio; ``None`` if none given."""
        if self.mask is not None:
            return TargetGeometry.from_mask(self.mask)
        area = None if self.area_ratio is None or (isinstance(self.area_ratio, float) and math.isnan(self.area_ratio)) \
            else float(self.area_ratio)
        if self.box is not None:
            return TargetGeometry.from_box(self.box, width, height, area_ratio=area)
        if area is not None:
            return TargetGeometry(area_ratio=area)
        return None


@dataclass(frozen=True)
class Judgment:
    """The judge's verdict on one sample.

    Attributes:
        sample_id: the sample id's string form.
        status: ``"ok"``; ``"unparseable"`` (replies unreadable after every retry; cached);
            ``"transport_error"`` (no reply at all; not cached, asked again next time).
        aspects: ``{"scene", "seg", "language"}`` scores when ``"ok"``.
        reply: the last raw reply.
        error: what went wrong, when not ``"ok"``.
        attempts: replies received (1 + the parse retries used).
        cached: whether the verdict came from the cache instead of the judge.
    """

    sample_id: str
    status: Literal["ok", "unparseable", "transport_error"]
    aspects: Mapping[str, float] | None = None
    reply: str | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = field(default=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def difficulty(self, *, aggregate: Aggregate = "mean", weights: Mapping[str, float] | None = None) -> float:
        """The combined score (see :func:`combine_aspects`); NaN unless ``"ok"``."""
        if self.aspects is None:
            return math.nan
        return combine_aspects(self.aspects, aggregate=aggregate, weights=weights)

    @classmethod
    def from_cached(cls, row: CachedJudgment) -> Judgment:
        return cls(sample_id=row.sample_id, status=row.status, aspects=row.aspects, reply=row.reply, error=row.error,
                   attempts=row.attempts, cached=True)


# ------------------------------------------------------------------------------------------------------------
# The judge
# ------------------------------------------------------------------------------------------------------------


class DifficultyJudge:
    """Asks a backend to rate samples, reads the replies, and keeps verdicts in a :class:`JudgmentCache`.

    Args:
        backend: where replies come from (:class:`~adaptive_length_reward.difficulty.backends.TransformersBackend`
            or :class:`~adaptive_length_reward.difficulty.backends.OpenAICompatibleBackend`).
        cache: a :class:`JudgmentCache`, a path to one, or ``None`` (nothing is remembered).
        prompt: the :class:`JudgePrompt` (default :data:`PIXELTHINK_V1`).
        parse_retries: how many times an unreadable reply is asked again before the sample is recorded as
            ``"unparseable"``.
        aggregate, weights: how :meth:`difficulty` combines the aspects (not part of the cache key: the cache
            keeps the aspects, so changing them needs no new judging).

    The cache key of a sample is ``(settings_hash, str(sample_id))``; :attr:`settings_hash` hashes the backend's
    :meth:`~adaptive_length_reward.difficulty.backends.JudgeBackend.identity` (model and generation settings),
    the prompt version and the prompt fingerprint.
    """

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: JudgmentCache | str | Path | None = None,
        prompt: JudgePrompt = PIXELTHINK_V1,
        parse_retries: int = 2,
        aggregate: Aggregate = "mean",
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if not isinstance(backend, JudgeBackend):
            raise TypeError(f"DifficultyJudge: backend: expected a JudgeBackend, got {type(backend).__name__}")
        if not isinstance(prompt, JudgePrompt):
            raise TypeError(f"DifficultyJudge: prompt: expected a JudgePrompt, got {type(prompt).__name__}")
        if isinstance(parse_retries, bool) or not isinstance(parse_retries, int) or parse_retries < 0:
            raise ValueError(f"DifficultyJudge: parse_retries: expected an int >= 0, got {parse_retries!r}")
        if aggregate not in ("mean", "median", "max", "min"):
            raise ValueError(f"DifficultyJudge: aggregate: expected 'mean', 'median', 'max' or 'min', got "
                             f"{aggregate!r}")
        try:
            self.weights = _check_weights(weights)
        except ValueError as error:
            raise ValueError(f"DifficultyJudge: {error}") from None
        self.backend, self.prompt, self.parse_retries, self.aggregate = backend, prompt, parse_retries, aggregate
        self.cache = JudgmentCache(cache) if isinstance(cache, (str, Path)) else cache
        if self.cache is not None and not isinstance(self.cache, JudgmentCache):
            raise TypeError(f"DifficultyJudge: cache: expected a JudgmentCache, a path or None, got "
                            f"{type(cache).__name__}")
        if self.cache is not None and not self.cache.readonly:
            self.cache.register_settings(self.settings_hash, self.settings)

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that can change a reply: backend identity, prompt version and fingerprint."""
        return {"judge": self.backend.identity(), "prompt_version": self.prompt.version,
                "prompt_sha256": self.prompt.fingerprint}

    @property
    def settings_hash(self) -> str:
        """SHA-256 (first 32 hex digits) of :attr:`settings` as canonical JSON."""
        text = json.dumps(self.settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def difficulty(self, judgment: Judgment) -> float:
        """The verdict's combined score with this judge's aggregation (NaN unless ``"ok"``)."""
        return judgment.difficulty(aggregate=self.aggregate, weights=self.weights)

    # -- asking ---------------------------------------------------------------------------------------------
    def ask(self, sample: JudgeSample) -> Judgment:
        """Rate one sample now (no cache): ask, read, re-ask on an unreadable reply up to ``parse_retries``.

        Raises:
            JudgeInputError: the sample's image or geometry cannot be used.
            ~adaptive_length_reward.difficulty.backends.JudgeRequestError: the backend rejected the request.
        """
        try:
            image = load_image(sample.image, base_dir=sample.base_dir)
            geometry = sample.geometry(*image.size)
        except (OSError, TypeError, ValueError) as error:
            raise JudgeInputError(f"sample {sample.sample_id!r}: {type(error).__name__}: {error}") from error
        first = self.prompt.messages(sample.expression, geometry)
        messages = first
        reply: str | None = None
        error_text = ""
        attempts = 0
        for _ in range(1 + self.parse_retries):
            try:
                reply = self.backend.complete(messages, image)
            except JudgeTransportError as error:
                return Judgment(sample.key, "transport_error", reply=reply, error=str(error), attempts=attempts)
            attempts += 1
            try:
                aspects = parse_judge_reply(reply)
            except JudgeReplyError as error:
                error_text = str(error)
                messages = self.prompt.repair_messages(first, reply, error_text)
                continue
            return Judgment(sample.key, "ok", aspects=aspects, reply=reply, attempts=attempts)
        return Judgment(sample.key, "unparseable", reply=reply, error=error_text, attempts=attempts)

    def _store(self, judgment: Judgment) -> None:
        if self.cache is not None and judgment.status in ("ok", "unparseable"):
            self.cache.put(self.settings_hash, CachedJudgment(
                sample_id=judgment.sample_id, status=judgment.status,
                aspects=judgment.aspects, reply=judgment.reply, error=judgment.error, attempts=judgment.attempts))

    def cached(self, sample_ids: Iterable[Any]) -> dict[str, Judgment]:
        """Stored verdicts for these ids (keyed by their string form); empty without a cache."""
        if self.cache is None:
            return {}
        return {k: Judgment.from_cached(v) for k, v in self.cache.get_many(self.settings_hash, sample_ids).items()}

    def judge(self, sample: JudgeSample, *, retry_failed: bool = False) -> Judgment:
        """One sample: the cached verdict if there is one, else ask and store."""
        return next(self.judge_many([sample], retry_failed=retry_failed))

    def judge_many(self, samples: Iterable[JudgeSample], *, retry_failed: bool = False) -> Iterator[Judgment]:
        """Verdicts for many samples, one per distinct id, cached ones first, then as the judge answers.

        At most ``backend.max_concurrency`` samples are in flight; each verdict is stored (atomically) before
        it is yielded. When the caller stops early or a sample raises, the requests already in flight are
        waited for and their verdicts stored too; a killed process loses only its requests in flight. Cached
        ``"unparseable"`` verdicts are asked again only with ``retry_failed=True``.

        Raises:
            JudgeInputError, JudgeRequestError: from :meth:`ask` (after the other finished verdicts are stored).
        """
        unique: dict[str, JudgeSample] = {}
        for sample in samples:
            if not isinstance(sample, JudgeSample):
                raise TypeError(f"DifficultyJudge.judge_many: samples: expected JudgeSample items, got "
                                f"{type(sample).__name__}")
            unique.setdefault(sample.key, sample)
        known = self.cached(unique)
        todo = []
        for key, sample in unique.items():
            hit = known.get(key)
            if hit is not None and (hit.ok or not retry_failed):
                yield hit
            else:
                todo.append(sample)
        if not todo:
            return
        workers = max(1, int(self.backend.max_concurrency))
        pending: set[Future[Judgment]] = set()
        queue = iter(todo)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alr-judge")
        try:
            for sample in queue:
                pending.add(pool.submit(self.ask, sample))
                if len(pending) >= workers:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                error: BaseException | None = None
                finished = []
                for future in done:  # store every finished verdict before handing any out
                    if future.exception() is not None:
                        error = error or future.exception()
                        continue
                    finished.append(future.result())
                    self._store(finished[-1])
                yield from finished
                if error is not None:
                    raise error
                for sample in queue:
                    pending.add(pool.submit(self.ask, sample))
                    if len(pending) >= workers:
                        break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in pending:  # finished after an error or an early stop: keep what was paid for
                if not future.cancelled() and future.exception() is None:
                    self._store(future.result())

    def __repr__(self) -> str:
        return f"DifficultyJudge({self.backend!r}, prompt={self.prompt.version!r}, cache={self.cache!r})"


# ------------------------------------------------------------------------------------------------------------
# As a scorer
# ------------------------------------------------------------------------------------------------------------


class JudgeDifficultyConfig(ComponentConfig):
    kind: Literal["judge_difficulty"] = "judge_difficulty"
    backend: Nested
    cache: str | None = None
    prompt_version: str = PROMPT_VERSION
    parse_retries: int = Field(2, ge=0)
    aggregate: Aggregate = "mean"
    weights: dict[str, float] | None = None
    id_column: str = Field("id", min_length=1)
    image_column: str = Field("image", min_length=1)
    expression_column: str = Field("problem", min_length=1)
    mask_column: str | None = None
    box_column: str | None = None
    area_column: str | None = None
    ask_missing: bool = True
    retry_failed: bool = False
    missing: float | str = "nan"

    @field_validator("prompt_version")
    @classmethod
    def _known_prompt(cls, value: str) -> str:
        if value not in PROMPTS:
            raise ValueError(f"expected one of {sorted(PROMPTS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> JudgeDifficultyConfig:
        _check_weights(self.weights)
        check_missing_policy(self.missing, owner="config", thresholds=(3.5, 5.0), names=("easy", "medium", "hard"))
        return self


@register("judge_difficulty", JudgeDifficultyConfig)
class JudgeDifficulty(DifficultyScorer):
    """Difficulty from a :class:`DifficultyJudge`, as a scorer for :class:`~adaptive_length_reward.reward.WithContext`.

    Each distinct sample id in a batch is looked up in the cache; with ``ask_missing=True`` the ones not there
    are rated now (a judge call inside the training loop: prefer annotating the dataset beforehand with the
    ``alr-difficulty`` CLI and running with ``ask_missing=False``, which only reads the cache).

    Args:
        backend: the judge's backend.
        cache: path of the :class:`JudgmentCache` (``None``: nothing is remembered between calls). With
            ``ask_missing=False`` it is opened read-only and must exist.
        prompt_version: one of :data:`PROMPTS`.
        parse_retries, aggregate, weights: as in :class:`DifficultyJudge`.
        id_column, image_column, expression_column: batch (dataset) columns of the id, image and expression.
        mask_column, box_column, area_column: optional columns of the target's mask, pixel box and area ratio.
        ask_missing: rate samples the cache does not know (default) or leave them missing.
        retry_failed: re-ask samples cached as ``"unparseable"``.
        missing: what a sample without a verdict gets: ``"nan"`` (default: the budget's
            ``missing_difficulty`` decides), ``"error"``, a tier name, or a value.
    """

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: str | Path | None = None,
        prompt_version: str = PROMPT_VERSION,
        parse_retries: int = 2,
        aggregate: Aggregate = "mean",
        weights: Mapping[str, float] | None = None,
        id_column: str = "id",
        image_column: str = "image",
        expression_column: str = "problem",
        mask_column: str | None = None,
        box_column: str | None = None,
        area_column: str | None = None,
        ask_missing: bool = True,
        retry_failed: bool = False,
        missing: MissingPolicy = "nan",
    ) -> None:
        if not isinstance(backend, JudgeBackend):
            raise TypeError(f"JudgeDifficulty: backend: expected a JudgeBackend, got {type(backend).__name__}")
        # The backend's own config is validated by the backend; a placeholder stands in here because a backend
        # holding a processor object has no config (to_config then raises, saying so).
        placeholder = backend.config_class.model_construct(kind=backend.kind)
        self._config = validated(
            "JudgeDifficulty", JudgeDifficultyConfig, backend=placeholder,
            cache=None if cache is None else str(cache), prompt_version=prompt_version, parse_retries=parse_retries,
            aggregate=aggregate, weights=None if weights is None else dict(weights), id_column=id_column,
            image_column=image_column, expression_column=expression_column, mask_column=mask_column,
            box_column=box_column, area_column=area_column, ask_missing=ask_missing, retry_failed=retry_failed,
            missing=missing,
        )
        self.backend = backend
        # cache-only mode opens the cache read-only: a mistyped path fails instead of reading an empty new file
        store = None if cache is None else JudgmentCache(cache, readonly=not ask_missing)
        self.judge = DifficultyJudge(backend, cache=store, prompt=PROMPTS[prompt_version],
                                     parse_retries=parse_retries, aggregate=aggregate, weights=weights)

    @property
    def requires(self) -> frozenset[str]:
        c = self._config
        needed = {c.id_column}
        if c.ask_missing:
            needed |= {c.image_column, c.expression_column}
            needed |= {name for name in (c.mask_column, c.box_column, c.area_column) if name is not None}
        return frozenset(needed)

    def samples(self, batch: RewardBatch) -> list[JudgeSample]:
        """One :class:`JudgeSample` per distinct id in the batch (first row of each id)."""
        c = self._config
        ids = batch.column(c.id_column, by="JudgeDifficulty")
        names = (c.image_column, c.expression_column, c.mask_column, c.box_column, c.area_column)
        columns = {name: batch.column(name, by="JudgeDifficulty") for name in names if name is not None}
        seen: dict[str, JudgeSample] = {}
        for i, sample_id in enumerate(ids):
            if str(sample_id) in seen:
                continue
            seen[str(sample_id)] = JudgeSample(
                sample_id=sample_id, image=columns[c.image_column][i], expression=columns[c.expression_column][i],
                mask=columns[c.mask_column][i] if c.mask_column else None,
                box=columns[c.box_column][i] if c.box_column else None,
                area_ratio=columns[c.area_column][i] if c.area_column else None,
            )
        return list(seen.values())

    def _score(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        ids = [str(s) for s in batch.column(c.id_column, by="JudgeDifficulty")]
        if c.ask_missing:
            verdicts = {j.sample_id: j for j in self.judge.judge_many(self.samples(batch), retry_failed=c.retry_failed)}
        else:
            verdicts = self.judge.cached(ids)
        values = np.array([self.judge.difficulty(verdicts[i]) if i in verdicts else np.nan for i in ids])
        values, fell_back = resolve_missing(values, c.missing, owner="JudgeDifficulty", labels=ids)
        self._count(len(batch), int(fell_back.sum()))
        return values

    def to_config(self) -> JudgeDifficultyConfig:
        return self._config.model_copy(update={"backend": self.backend.to_config()})

    @classmethod
    def from_config(cls, config: JudgeDifficultyConfig) -> JudgeDifficulty:
        values = {name: getattr(config, name) for name in type(config).model_fields if name not in ("kind", "backend")}
        return cls(build(config.backend), **values)

    def __repr__(self) -> str:
        return f"JudgeDifficulty({self.backend!r}, cache={self._config.cache!r})"
