"""Stand-ins and settings shared by the worked example's tests (tests/test_example_*.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


class WordTokenizer:
    """A tokenizer stand-in: one token per whitespace word (a string, or a list of strings)."""

    def __call__(self, text: Any, add_special_tokens: bool = False) -> dict[str, Any]:
        if isinstance(text, str):
            return {"input_ids": list(range(len(text.split())))}
        return {"input_ids": [list(range(len(t.split()))) for t in text]}


class BoxSegmenter:
    """Test double for SAM: the mask is the prompt box (a real SAM with known outputs cannot be trained here);
    ``calls`` records every ``predict`` call as ``(image size, box, points)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def predict(self, image: Image.Image, box: tuple[float, ...], points: Any) -> np.ndarray:
        self.calls.append((image.size, box, points))
        mask = np.zeros((image.height, image.width), dtype=bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        mask[y1 : y2 + 1, x1 : x2 + 1] = True
        return mask


#: The smallest settings the worked example runs with (seconds on a CPU).
SMALLEST = [
    "--tiny",
    "--steps",
    "1",
    "--eval-samples",
    "2",
    "--train-samples",
    "4",
    "--warmup-steps",
    "1",
    "--num-generations",
    "2",
    "--prompts-per-step",
    "1",
    "--max-completion-length",
    "24",
    "--eval-max-new-tokens",
    "24",
    "--image-size",
    "128",
    "--save-steps",
    "1",
    "--no-progress",
]
