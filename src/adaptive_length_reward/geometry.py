"""Mask geometry: how much of the image a binary target mask covers, and where.

One rule for every reader of masks (the heuristic difficulty baseline reads the area, the VLM judge's prompt the
area and the box, as PixelThink's judge is shown "the target's mask proportion and position", arXiv 2505.23727
Sec. 3.2)::

    area = (pixels > 0) / (height * width)
    box  = (min x / width, min y / height, (max x + 1) / width, (max y + 1) / height)     (of the pixels > 0)

    >>> mask = np.zeros((4, 8), dtype=bool)
    >>> mask[1:3, 2:6] = True
    >>> mask_geometry(mask)
    (0.25, (0.25, 0.25, 0.75, 0.75))
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Box", "mask_geometry"]

Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` by the image's width and height."""


def mask_geometry(mask: Any) -> tuple[float, Box | None]:
    """``(area ratio, box)`` of a mask: a 2-D array, a PIL image, or ``H x W x C`` (a pixel belongs to the target
    when any channel is nonzero). The box is ``None`` for an empty mask (area 0).

    Raises:
        ValueError: the mask is not 2-D (or image-like 3-D) or is empty.
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array.max(axis=-1)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"mask: expected a non-empty 2-D array (or H x W x C), got shape {array.shape}")
    on = array > 0
    if not on.any():
        return 0.0, None
    height, width = on.shape
    ys, xs = np.nonzero(on)
    box = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
    return float(on.mean()), (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
