"""What the per-id state across steps shares (``EMAPassRateDifficulty``'s pass rates, ``LengthHistory``'s shortest
lengths): ids kept as JSON-native keys, and the checks of ``state_dict`` / ``load_state_dict``."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np


def json_id(value: Any) -> Hashable:
    """An id as a JSON-native key (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[no-any-return]


def check_json_ids(ids: Iterable[Hashable], *, owner: str, noun: str) -> None:
    """Raise ``TypeError`` for an id JSON cannot represent as itself (ids must be str, int or float)."""
    for pid in ids:
        if isinstance(pid, bool) or not isinstance(pid, (str, int, float)):
            raise TypeError(
                f"{owner}: state_dict: {noun} ids must be str, int or float to round-trip through JSON, "
                f"got {type(pid).__name__} {pid!r:.60}"
            )


def check_state_format(state: Any, expected: str, *, owner: str) -> None:
    """Raise ``ValueError`` unless ``state`` is a mapping whose ``format`` is ``expected``."""
    if not isinstance(state, Mapping) or state.get("format") != expected:
        got = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"{owner}: load_state_dict: expected format {expected!r}, got {got!r}")
