"""Online difficulty: how often the policy solves a prompt, from any accuracy reward over its GRPO group.

In GRPO every prompt is sampled ``K`` times, so its solve rate is free. ALP (Xiang et al., "Just Enough
Thinking", arXiv 2506.05256, Eq. 2) uses the group's solve rate ``p_solved`` as its difficulty signal; here it is
mapped onto the 1..10 scale, and [`EMAPassRateDifficulty`][] smooths it per prompt across steps::

    D = 1 + 9 (1 - p)        p = share of the group's completions whose accuracy >= pass_threshold
    r_t = decay * r_{t-1} + (1 - decay) * p_t        (r = p at the first step a prompt is seen)

See docs/difficulty.md for the tiers this gives, step semantics and checkpointing.

    >>> scorer = PassRateDifficulty()
    >>> batch = RewardBatch.from_completions(["a"] * 4, correct=[1, 1, 1, 0], group_ids=[0, 0, 1, 1])
    >>> scorer(batch).tolist()
    [1.0, 1.0, 5.5, 5.5]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .. import functional as F
from .._keyed_state import check_json_ids, check_state_format, json_id
from ..batch import RewardBatch
from ..config import param
from ..penalties import correctness, correctness_requires
from ..reward import Reward
from .scale import MissingPolicy, check_missing_policy, check_unit_interval, unit_to_scale
from .scorer import DifficultyScorer

__all__ = ["EMAPassRateDifficulty", "PassRateDifficulty", "ema_update", "pass_rate_to_difficulty"]

FloatArray = npt.NDArray[np.float64]

#: Tag of the JSON state written by
#: [`EMAPassRateDifficulty.state_dict`][adaptive_length_reward.difficulty.online.EMAPassRateDifficulty.state_dict].
STATE_FORMAT = "adaptive-length-reward/ema-pass-rate/1"


def pass_rate_to_difficulty(pass_rate: npt.ArrayLike) -> FloatArray:
    """``D = 1 + 9 (1 - p)``: a solve rate in ``[0, 1]`` on the 1..10 difficulty scale (NaN stays NaN).

    >>> pass_rate_to_difficulty([1.0, 0.5, 0.0]).tolist()
    [1.0, 5.5, 10.0]

    Raises:
        ValueError: a finite rate outside ``[0, 1]``.
    """
    return unit_to_scale(1.0 - check_unit_interval("pass_rate_to_difficulty: pass_rate", pass_rate))


def ema_update(previous: float, observed: float, decay: float) -> float:
    """``decay * previous + (1 - decay) * observed`` (``decay = 0`` keeps only the newest observation)."""
    return decay * previous + (1.0 - decay) * observed


class _PassRate(DifficultyScorer):
    """Which completions passed, by the one correctness rule ([`correctness`][]):
    an accuracy reward ``>= pass_threshold``, or the ``correct`` column. Pass rates are group statistics, so a
    scorer sees every row of the batch, also where a difficulty is already present."""

    row_wise: ClassVar[bool] = False

    accuracy: Reward | None = param(
        default=None,
        doc="an accuracy reward (e.g. PixelThink's 0..5); None reads the batch column correct (0/1 or bool)",
    )
    pass_threshold: float = param(
        default=1.0, doc="the accuracy that counts as solved (5.0: all five PixelThink terms)"
    )

    def passed(self, batch: RewardBatch) -> FloatArray:
        """1.0 where the completion passed (accuracy ``>= pass_threshold``, or ``correct`` is 1), else 0.0."""
        return correctness(batch, self.accuracy, self.pass_threshold, by=type(self).__name__, binary=False)


class PassRateDifficulty(_PassRate, kind="pass_rate_difficulty"):
    """Difficulty from the current GRPO group's solve rate: ``D = 1 + 9 (1 - p_group)`` (no memory).

    Needs ``group_ids``. Every completion of a group gets the same difficulty.
    """

    @property
    def requires(self) -> frozenset[str]:
        return correctness_requires(self.accuracy) | {"group_ids"}

    def _score(self, batch: RewardBatch) -> FloatArray:
        groups = batch.group_index(by="PassRateDifficulty")
        self._count(len(batch), 0)
        return pass_rate_to_difficulty(F.group_pass_rate(self.passed(batch), groups))


class EMAPassRateDifficulty(_PassRate, kind="ema_pass_rate_difficulty"):
    """Per-prompt exponential moving average of the solve rate across steps, on the 1..10 scale.

    Each call observes the batch at its ``step``: the same step again *replaces* that step's contribution, and
    steps must not go back. The state ([`state_dict`][]) is not in the configuration but is in equality.
    """

    decay: float = param(default=0.5, ge=0.0, lt=1.0, doc="weight of the history, in [0, 1) (0: only this step)")
    prompt_column: str = param(
        default="group_ids",
        min_length=1,
        doc="the column whose value identifies a prompt "
        "across steps (a dataset id, or group_ids when those are stable prompt ids)",
    )
    include_current: bool = param(
        default=True,
        doc="whether the difficulty includes this step's observation (as "
        "ALP uses the current group's rate), or is what was known before it",
    )
    unseen: MissingPolicy = param(
        default="nan",
        doc="with include_current=False, what a prompt without history "
        "gets: 'nan' (the budget decides), 'error', a tier name, or a value",
    )

    @staticmethod
    def _check(config: Any) -> None:
        check_missing_policy(config.unseen)

    def __post_init__(self) -> None:
        # prompt id -> {"rate": r_t, "before": r_{t-1} or None, "step": t, "count": observed steps}
        self._state: dict[Hashable, dict[str, Any]] = {}

    def __eq__(self, other: object) -> bool:
        same = super().__eq__(other)
        return same if same is not True else self._state == other._state  # type: ignore[attr-defined]

    __hash__ = DifficultyScorer.__hash__  # the configuration's: equal scorers still hash alike

    @property
    def requires(self) -> frozenset[str]:
        return correctness_requires(self.accuracy) | {self.prompt_column}

    def __len__(self) -> int:
        """Number of prompts with history."""
        return len(self._state)

    def observe(self, prompt_ids: Sequence[Any], passed: npt.ArrayLike, *, step: int) -> None:
        """Update the averages with one step's outcomes (``passed``: 0/1 per completion)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"EMAPassRateDifficulty: step: expected a non-negative int, got {step!r}")
        ok = np.asarray(passed, dtype=np.float64).reshape(-1)
        if ok.shape[0] != len(prompt_ids):
            raise ValueError(f"EMAPassRateDifficulty: passed: expected {len(prompt_ids)} values, got {ok.shape[0]}")
        outcomes: dict[Hashable, list[float]] = {}
        try:
            for pid, value in zip(map(json_id, prompt_ids), ok):
                outcomes.setdefault(pid, []).append(value)
        except TypeError as error:
            raise TypeError(
                f"EMAPassRateDifficulty: {self.prompt_column}: expected hashable ids, got {error}"
            ) from None
        for pid, values in outcomes.items():
            self._observe_one(pid, sum(values, 0.0) / len(values), int(step))

    def _observe_one(self, pid: Hashable, rate: float, step: int) -> None:
        entry = self._state.get(pid)
        if entry is None:
            self._state[pid] = {"rate": rate, "before": None, "step": step, "count": 1}
        elif step == entry["step"]:
            before = entry["before"]
            entry["rate"] = rate if before is None else ema_update(before, rate, self.decay)
        elif step > entry["step"]:
            entry.update(
                before=entry["rate"],
                rate=ema_update(entry["rate"], rate, self.decay),
                step=step,
                count=entry["count"] + 1,
            )
        else:
            raise ValueError(
                f"EMAPassRateDifficulty: step: prompt {pid!r} was last observed at step {entry['step']}, got "
                f"step {step}; steps must not go back (load the state saved with the matching checkpoint)"
            )

    def rates(self, prompt_ids: Sequence[Any], *, before_step: int | None = None) -> FloatArray:
        """Current smoothed solve rate per prompt id (NaN for prompts without history).

        With ``before_step``, a prompt observed at (or after) that step reports its rate from before its last
        observation (NaN if that was its first).
        """
        out = np.full(len(prompt_ids), np.nan)
        for i, pid in enumerate(prompt_ids):
            entry = self._state.get(json_id(pid))
            if entry is None:
                continue
            value = entry["before"] if before_step is not None and entry["step"] >= before_step else entry["rate"]
            out[i] = np.nan if value is None else value
        return out

    def state_dict(self) -> dict[str, Any]:
        """The whole state as JSON-native types: ``{"format", "prompts": [{"id", "rate", "before", "step", "count"}]}``.

        Raises:
            TypeError: a prompt id that JSON cannot represent as itself (ids must be str, int or float).
        """
        check_json_ids(self._state, owner="EMAPassRateDifficulty", noun="prompt")
        return {"format": STATE_FORMAT, "prompts": [{"id": pid, **entry} for pid, entry in self._state.items()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state with one from [`state_dict`][] (e.g. after ``json.loads``).

        Raises:
            ValueError: a state of another format, or an entry with a rate outside ``[0, 1]``.
        """
        check_state_format(state, STATE_FORMAT, owner="EMAPassRateDifficulty")
        restored: dict[Hashable, dict[str, Any]] = {}
        for i, item in enumerate(state.get("prompts", [])):
            try:
                before = None if item["before"] is None else float(item["before"])
                entry: dict[str, Any] = {
                    "rate": float(item["rate"]),
                    "before": before,
                    "step": int(item["step"]),
                    "count": int(item["count"]),
                }
                restored[item["id"]] = entry
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"EMAPassRateDifficulty: load_state_dict: prompts[{i}]: expected id, rate, before, "
                    f"step, count, got {item!r:.120} ({error})"
                ) from None
            for name in ("rate", "before"):
                if entry[name] is not None and not 0.0 <= entry[name] <= 1.0:
                    raise ValueError(
                        f"EMAPassRateDifficulty: load_state_dict: prompts[{i}].{name}: expected a "
                        f"rate in [0, 1], got {entry[name]!r}"
                    )
        self._state = restored

    def reset(self) -> None:
        """Forget every prompt's history."""
        self._state = {}

    def _score(self, batch: RewardBatch) -> FloatArray:
        prompt_ids = list(batch.column(self.prompt_column, by="EMAPassRateDifficulty"))
        self.observe(prompt_ids, self.passed(batch), step=batch.step)
        if self.include_current:
            self._count(len(batch), 0)
            return pass_rate_to_difficulty(self.rates(prompt_ids))
        values = pass_rate_to_difficulty(self.rates(prompt_ids, before_step=batch.step))
        return self._resolve(values, self.unseen, labels=prompt_ids)
