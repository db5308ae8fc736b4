"""What the judge is shown: a versioned prompt, and the sentence that says where the target is.

PixelThink (arXiv 2505.23727, Sec. 3.2 and the ReasonSeg-Diff construction) shows its judge (Qwen2.5-VL-72B) the
image, the referring expression, and the target's mask proportion and position. The official prompt text is not
released: ``PIXELTHINK_V1`` is this library's rendering of that design. Its text is versioned
(``PROMPT_VERSION``) and hashed into the cache key, so a changed prompt never reuses old verdicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...geometry import Box, mask_geometry
from .reply import NUMBER

__all__ = ["PIXELTHINK_V1", "PROMPTS", "PROMPT_VERSION", "JudgePrompt", "TargetGeometry", "parse_box"]

#: Version of the default prompt; bump it whenever its text changes.
PROMPT_VERSION = "pixelthink-v1"


@dataclass(frozen=True, repr=False)
class JudgePrompt:
    """A versioned judge prompt: system text, user template, and the reminder sent after an unreadable reply.

    ``template`` is a ``string.Template`` with ``$expression`` (the referring expression) and ``$target``
    (the sentence [`TargetGeometry.describe`][adaptive_length_reward.difficulty.judge.prompt.TargetGeometry.describe]
    writes); ``repair`` has ``$error``. The [`fingerprint`][] (a hash of all texts) is part of the cache key next to
    ``version``.
    """

    version: str
    system: str
    template: str
    repair: str

    #: The placeholders ``template`` must hold (a subclass asking another question names its own).
    placeholders: ClassVar[tuple[str, ...]] = ("expression", "target")

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not self.version:
            raise ValueError(f"{name}: version: expected a non-empty string, got ''")
        matches = string.Template.pattern.finditer(self.template)
        names = {m.group("named") or m.group("braced") for m in matches} - {None}
        if not set(self.placeholders) <= names:
            wanted = " and ".join(f"${p}" for p in self.placeholders)
            raise ValueError(f"{name}: template: expected the placeholders {wanted}, got {sorted(names)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r}, fingerprint={self.fingerprint[:12]!r})"

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
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": self.render(expression, geometry)}],
            },
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


def parse_box(value: Any) -> Box:
    """A box ``(x1, y1, x2, y2)`` from 4 numbers, ``"[x1, y1, x2, y2]"``, or Seg-Zero's
    ``"<box>(x1,y1),(x2,y2)</box>"`` ground-truth string (other tags in the string are ignored).

    Raises:
        ValueError: not exactly four numbers, or ``x2 < x1`` / ``y2 < y1``.
    """
    if isinstance(value, str):
        tagged = re.search(r"<box>(.*?)</box>", value, flags=re.DOTALL)
        numbers = [float(x) for x in re.findall(NUMBER, tagged.group(1) if tagged else value)]
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
    if vertical == "middle":
        return "the centre" if horizontal == "centre" else f"the middle {horizontal}"
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
    box: Box | None = None
    area_from_box: bool = False

    def __post_init__(self) -> None:
        if self.area_ratio is not None and not 0.0 <= self.area_ratio <= 1.0:
            raise ValueError(f"TargetGeometry: area_ratio: expected a number in [0, 1], got {self.area_ratio!r}")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
                raise ValueError(
                    f"TargetGeometry: box: expected 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1, got {self.box}"
                )

    @classmethod
    def from_mask(cls, mask: Any) -> TargetGeometry:
        """Area ratio and box of a binary mask ([`mask_geometry`][])."""
        area, box = mask_geometry(mask)
        return cls(area_ratio=area, box=box)

    @classmethod
    def from_box(cls, box: Any, width: int, height: int, *, area_ratio: float | None = None) -> TargetGeometry:
        """From a pixel box (anything [`parse_box`][] reads) in a ``width x height`` image.

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
        if self.box is None:
            if self.area_ratio is None:
                return "its mask was not given."
            return f"it covers {_percent(self.area_ratio)} of the image; its position was not given."
        x1, y1, x2, y2 = self.box
        span = (
            f"spans {_percent(x1)}-{_percent(x2)} of the width and {_percent(y1)}-{_percent(y2)} of the "
            f"height ({_region((x1 + x2) / 2, (y1 + y2) / 2)})"
        )
        if self.area_ratio is None:
            return f"its bounding box {span}; its mask area was not given."
        if self.area_from_box:
            return (
                f"its bounding box covers about {_percent(self.area_ratio)} of the image and {span}; its "
                "mask was not given."
            )
        return f"it covers {_percent(self.area_ratio)} of the image; its bounding box {span}."
