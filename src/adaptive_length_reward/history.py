"""Per-problem state across training steps for history-aware length rewards (HAPO, arXiv 2505.11225).

[`LengthHistory`][] keeps, per problem id, the shortest correct length seen so far (HAPO's history state ``h_i``,
official tracker ``mode="min"``). It follows the online EMA difficulty's rules
([`EMAPassRateDifficulty`][adaptive_length_reward.difficulty.online.EMAPassRateDifficulty]): a step reads the history
from *before* it, the same step observed again replaces that step's contribution (a retried call scores alike), steps
never go back, and the whole state is JSON-native
([`LengthHistory.state_dict`][adaptive_length_reward.history.LengthHistory.state_dict]) so a run resumes from a
checkpoint.

    >>> history = LengthHistory()
    >>> history.observe(["p1", "p1", "p2"], correct=[1, 1, 0], lengths=[40, 30, 10], step=0).tolist()
    [nan, nan, nan]
    >>> history.observe(["p1", "p2"], correct=[1, 1], lengths=[50, 20], step=1).tolist()
    [30.0, nan]
    >>> history.state_dict()["problems"][0]
    {'id': 'p1', 'best': 30.0, 'before': 30.0, 'step': 1}
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._keyed_state import check_json_ids, check_state_format, json_id
from .functional import checked_lengths

__all__ = ["STATE_FORMAT", "LengthHistory"]

FloatArray = npt.NDArray[np.float64]

#: Tag of the JSON state written by
#: [`LengthHistory.state_dict`][adaptive_length_reward.history.LengthHistory.state_dict].
STATE_FORMAT = "adaptive-length-reward/length-history/1"


def _fmin(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


class LengthHistory:
    """Shortest correct length per problem id, across steps (see the module docstring)."""

    def __init__(self) -> None:
        # problem id -> {"best": h after its last step or None, "before": h before that step or None, "step": t}
        self._state: dict[Hashable, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LengthHistory) and self._state == other._state

    __hash__ = None  # type: ignore[assignment]  # mutable

    def observe(
        self, problem_ids: Sequence[Any], correct: npt.ArrayLike, lengths: npt.ArrayLike, *, step: int
    ) -> FloatArray:
        """Record one step's outcomes; return each row's history from *before* this step (NaN: none yet)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"LengthHistory: step: expected a non-negative int, got {step!r}")
        c = np.asarray(correct, dtype=np.float64).reshape(-1)
        L = checked_lengths(lengths)
        if not (c.shape[0] == L.shape[0] == len(problem_ids)):
            raise ValueError(
                f"LengthHistory: expected {len(problem_ids)} correct flags and lengths, got "
                f"{c.shape[0]} and {L.shape[0]}"
            )
        shortest: dict[Hashable, float | None] = {}
        try:
            for pid, ok, length in zip(map(json_id, problem_ids), c.tolist(), L.tolist()):
                shortest[pid] = _fmin(shortest.get(pid), float(length) if ok == 1 else None)
        except TypeError as error:
            raise TypeError(f"LengthHistory: problem ids: expected hashable ids, got {error}") from None
        prior = {pid: self._observe_one(pid, value, int(step)) for pid, value in shortest.items()}
        return np.array(
            [math.nan if prior[json_id(p)] is None else prior[json_id(p)] for p in problem_ids], dtype=np.float64
        )

    def _observe_one(self, pid: Hashable, shortest: float | None, step: int) -> float | None:
        entry = self._state.get(pid)
        if entry is None:
            self._state[pid] = {"best": shortest, "before": None, "step": step}
            return None
        if step == entry["step"]:
            entry["best"] = _fmin(entry["before"], shortest)
            return entry["before"]  # type: ignore[no-any-return]
        if step > entry["step"]:
            before = entry["best"]
            entry.update(before=before, best=_fmin(before, shortest), step=step)
            return before  # type: ignore[no-any-return]
        raise ValueError(
            f"LengthHistory: step: problem {pid!r} was last observed at step {entry['step']}, got step "
            f"{step}; steps must not go back (load the state saved with the matching checkpoint)"
        )

    def shortest(self, problem_ids: Sequence[Any]) -> FloatArray:
        """The current shortest correct length per problem id (NaN where none was seen)."""
        out = np.full(len(problem_ids), np.nan)
        for i, pid in enumerate(problem_ids):
            entry = self._state.get(json_id(pid))
            if entry is not None and entry["best"] is not None:
                out[i] = entry["best"]
        return out

    def state_dict(self) -> dict[str, Any]:
        """The state as JSON-native types: ``{"format", "problems": [{"id", "best", "before", "step"}]}``.

        Raises:
            TypeError: a problem id JSON cannot represent as itself (ids must be str, int or float).
        """
        check_json_ids(self._state, owner="LengthHistory", noun="problem")
        return {"format": STATE_FORMAT, "problems": [{"id": pid, **entry} for pid, entry in self._state.items()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state with one from [`state_dict`][] (e.g. after ``json.loads``).

        Raises:
            ValueError: a state of another format, or an entry without id/best/before/step or with a negative length.
        """
        check_state_format(state, STATE_FORMAT, owner="LengthHistory")
        restored: dict[Hashable, dict[str, Any]] = {}
        for i, item in enumerate(state.get("problems", [])):
            try:
                entry = {name: None if item[name] is None else float(item[name]) for name in ("best", "before")}
                entry["step"] = int(item["step"])
                restored[item["id"]] = entry
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"LengthHistory: load_state_dict: problems[{i}]: expected id, best, before, step, "
                    f"got {item!r:.120} ({error})"
                ) from None
            for name in ("best", "before"):
                value = entry[name]
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise ValueError(
                        f"LengthHistory: load_state_dict: problems[{i}].{name}: expected a length >= 0 "
                        f"or null, got {value!r}"
                    )
        self._state = restored

    def reset(self) -> None:
        """Forget every problem's history."""
        self._state = {}
