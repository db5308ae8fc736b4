"""Online difficulty: how often the policy solves a prompt, from any accuracy reward over its GRPO group.

A judge costs money and sees the task, not the policy. The policy's own solve rate is free in GRPO, where every
prompt is sampled ``K`` times: ALP (Xiang et al., "Just Enough Thinking", arXiv 2506.05256, Eq. 2) uses the
group's solve rate ``p_solved`` as its difficulty signal, and GRPO-lambda-style methods gate length penalties on
group accuracy the same way. Here the rate is mapped onto the 1..10 scale of
:mod:`~adaptive_length_reward.difficulty.scale` so it can drive the same budgets as a judge's score::

    D = 1 + 9 (1 - p)        p = share of the group's completions whose accuracy >= pass_threshold

(``p = 1`` -> 1, very easy; ``p = 0`` -> 10, very hard.) With the PixelThink tiers (3.5, 5.0) that is: easy
when ``p > 0.722``, medium when ``0.556 < p <= 0.722``, hard when ``p <= 0.556``.

:class:`EMAPassRateDifficulty` smooths the rate per prompt id across training steps with an exponential moving
average whose state is explicit and JSON-serialisable (``state_dict`` / ``load_state_dict``), so it survives a
checkpoint-and-resume exactly::

    r_t = decay * r_{t-1} + (1 - decay) * p_t        (r = p at the first step a prompt is seen)

    >>> scorer = PassRateDifficulty()
    >>> batch = RewardBatch.from_completions(["a"] * 4, correct=[1, 1, 1, 0], group_ids=[0, 0, 1, 1])
    >>> scorer(batch).tolist()
    [1.0, 1.0, 5.5, 5.5]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .. import functional as F
from ..batch import RewardBatch
from ..config import ComponentConfig, Nested, build, register, validated
from ..reward import Reward
from .scale import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TIER_NAMES,
    MissingPolicy,
    check_missing_policy,
    check_unit_interval,
    resolve_missing,
    unit_to_scale,
)
from .scorer import DifficultyScorer

__all__ = ["EMAPassRateDifficulty", "PassRateDifficulty", "ema_update", "pass_rate_to_difficulty"]

FloatArray = npt.NDArray[np.float64]

#: Tag of the JSON state written by :meth:`EMAPassRateDifficulty.state_dict`.
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


class _PassRateConfig(ComponentConfig):
    accuracy: Nested | None = None
    pass_threshold: float = Field(1.0, allow_inf_nan=False)


class _PassRate(DifficultyScorer):
    """Shared plumbing: which completions passed, from an accuracy reward or the ``correct`` column."""

    accuracy: Reward | None

    def _init_accuracy(self, accuracy: Any) -> None:
        if accuracy is not None and not isinstance(accuracy, Reward):
            raise TypeError(f"{type(self).__name__}: accuracy: expected a Reward or None, got "
                            f"{type(accuracy).__name__}")
        self.accuracy = accuracy

    def _accuracy_requires(self) -> set[str]:
        return set(self.accuracy.requires) if self.accuracy is not None else {"correct"}

    def passed(self, batch: RewardBatch) -> FloatArray:
        """1.0 where the completion passed (accuracy ``>= pass_threshold``, or ``correct`` is 1), else 0.0."""
        threshold = self._config.pass_threshold  # type: ignore[attr-defined]
        if self.accuracy is not None:
            passed: FloatArray = (self.accuracy(batch) >= threshold).astype(np.float64)
            return passed
        raw = batch.column("correct", by=type(self).__name__)
        try:
            values = np.asarray([float(v) for v in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{type(self).__name__}: column 'correct': expected numbers or bools, got "
                            f"{list(raw)[:5]!r}") from None
        if not np.isfinite(values).all():
            raise ValueError(f"{type(self).__name__}: column 'correct': expected finite values, got "
                             f"{values.tolist()[:8]}")
        solved: FloatArray = (values >= threshold).astype(np.float64)
        return solved


# ------------------------------------------------------------------------------------------------------------


class PassRateDifficultyConfig(_PassRateConfig):
    kind: Literal["pass_rate_difficulty"] = "pass_rate_difficulty"


@register("pass_rate_difficulty", PassRateDifficultyConfig)
class PassRateDifficulty(_PassRate):
    """Difficulty from the current GRPO group's solve rate: ``D = 1 + 9 (1 - p_group)`` (no memory).

    Args:
        accuracy: any accuracy reward (e.g. PixelThink's 0..5 accuracy); a completion passes where it is
            ``>= pass_threshold``. ``None`` reads the batch column ``correct`` (0/1 or bool).
        pass_threshold: the accuracy that counts as solved (default 1.0; use 5.0 for "all five PixelThink
            terms satisfied").

    Needs ``group_ids``. Every completion of a group gets the same difficulty.
    """

    def __init__(self, *, accuracy: Reward | None = None, pass_threshold: float = 1.0) -> None:
        self._init_accuracy(accuracy)
        self._config = validated("PassRateDifficulty", PassRateDifficultyConfig, accuracy=accuracy,
                                 pass_threshold=pass_threshold)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(self._accuracy_requires() | {"group_ids"})

    def _score(self, batch: RewardBatch) -> FloatArray:
        groups = batch.group_index(by="PassRateDifficulty")
        self._count(len(batch), 0)
        return pass_rate_to_difficulty(F.group_pass_rate(self.passed(batch), groups))

    def to_config(self) -> PassRateDifficultyConfig:
        return self._config

    @classmethod
    def from_config(cls, config: PassRateDifficultyConfig) -> PassRateDifficulty:
        accuracy = None if config.accuracy is None else build(config.accuracy)
        return cls(accuracy=accuracy, pass_threshold=config.pass_threshold)


# ------------------------------------------------------------------------------------------------------------


class EMAPassRateDifficultyConfig(_PassRateConfig):
    kind: Literal["ema_pass_rate_difficulty"] = "ema_pass_rate_difficulty"
    decay: float = Field(0.5, ge=0.0, lt=1.0)
    prompt_column: str = Field("group_ids", min_length=1)
    include_current: bool = True
    unseen: float | str = "nan"

    @model_validator(mode="after")
    def _check_unseen(self) -> EMAPassRateDifficultyConfig:
        check_missing_policy(self.unseen, owner="config", thresholds=DEFAULT_THRESHOLDS, names=DEFAULT_TIER_NAMES)
        return self


def _json_id(value: Any) -> Hashable:
    """Prompt ids as JSON-native keys (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    return value  # type: ignore[no-any-return]


@register("ema_pass_rate_difficulty", EMAPassRateDifficultyConfig)
class EMAPassRateDifficulty(_PassRate):
    """Per-prompt exponential moving average of the solve rate across steps, on the 1..10 scale.

    Each call observes the batch: for every prompt id (column ``prompt_column``; by default the GRPO
    ``group_ids``), ``p_t`` = the share of its completions in the batch that passed, and the prompt's rate
    becomes ``r_t = decay * r_{t-1} + (1 - decay) * p_t`` (``r = p`` the first time). The batch's ``step``
    identifies the observation: evaluating the same step again *replaces* that step's contribution instead of
    counting it twice (so two rewards sharing one scorer do not double-update it); steps must not go back.
    Pass the trainer's global step in the batch, or every call counts as the same step.

    Args:
        accuracy, pass_threshold: as in :class:`PassRateDifficulty`.
        decay: weight of the history, in ``[0, 1)`` (0 = only the current step, like
            :class:`PassRateDifficulty`).
        prompt_column: the column whose value identifies a prompt across steps (a dataset ``id`` column, or
            ``group_ids`` when those are stable prompt ids, as TRL's prompt text is).
        include_current: ``True`` (default): the difficulty returned includes this step's observation (as ALP
            uses the current group's rate). ``False``: the difficulty is the estimate from earlier steps only
            (what was known before these rollouts), and prompts never seen before get ``unseen``.
        unseen: with ``include_current=False``, what a prompt without history gets: ``"nan"`` (default: the
            budget's ``missing_difficulty`` decides), ``"error"``, a tier name, or a value.

    The state is explicit: :meth:`state_dict` returns plain JSON types and :meth:`load_state_dict` restores it
    exactly; the configuration (:meth:`to_config`) does not carry it.
    """

    def __init__(
        self,
        *,
        accuracy: Reward | None = None,
        pass_threshold: float = 1.0,
        decay: float = 0.5,
        prompt_column: str = "group_ids",
        include_current: bool = True,
        unseen: MissingPolicy = "nan",
    ) -> None:
        self._init_accuracy(accuracy)
        self._config = validated(
            "EMAPassRateDifficulty", EMAPassRateDifficultyConfig, accuracy=accuracy, pass_threshold=pass_threshold,
            decay=decay, prompt_column=prompt_column, include_current=include_current, unseen=unseen,
        )
        # prompt id -> {"rate": r_t, "before": r_{t-1} or None, "step": t, "count": observed steps}
        self._state: dict[Hashable, dict[str, Any]] = {}

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(self._accuracy_requires() | {self._config.prompt_column})

    def __len__(self) -> int:
        """Number of prompts with history."""
        return len(self._state)

    # -- state ----------------------------------------------------------------------------------------------
    def observe(self, prompt_ids: Sequence[Any], passed: npt.ArrayLike, *, step: int) -> None:
        """Update the averages with one step's outcomes (``passed``: 0/1 per completion)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"EMAPassRateDifficulty: step: expected a non-negative int, got {step!r}")
        ok = np.asarray(passed, dtype=np.float64).reshape(-1)
        if ok.shape[0] != len(prompt_ids):
            raise ValueError(f"EMAPassRateDifficulty: passed: expected {len(prompt_ids)} values, got {ok.shape[0]}")
        ids = [_json_id(p) for p in prompt_ids]
        totals: dict[Hashable, list[float]] = {}
        try:
            for pid, value in zip(ids, ok):
                tally = totals.setdefault(pid, [0.0, 0.0])
                tally[0] += value
                tally[1] += 1.0
        except TypeError as error:
            raise TypeError(f"EMAPassRateDifficulty: {self._config.prompt_column}: expected hashable ids, got "
                            f"{error}") from None
        decay = self._config.decay
        for pid, (solved, count) in totals.items():
            rate = solved / count
            entry = self._state.get(pid)
            if entry is None:
                self._state[pid] = {"rate": rate, "before": None, "step": int(step), "count": 1}
            elif step == entry["step"]:
                before = entry["before"]
                entry["rate"] = rate if before is None else ema_update(before, rate, decay)
            elif step > entry["step"]:
                entry["before"] = entry["rate"]
                entry["rate"] = ema_update(entry["rate"], rate, decay)
                entry["step"] = int(step)
                entry["count"] += 1
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
            entry = self._state.get(_json_id(pid))
            if entry is None:
                continue
            if before_step is not None and entry["step"] >= before_step:
                out[i] = np.nan if entry["before"] is None else entry["before"]
            else:
                out[i] = entry["rate"]
        return out

    def state_dict(self) -> dict[str, Any]:
        """The whole state as JSON-native types: ``{"format", "prompts": [{"id", "rate", "before", "step", "count"}]}``.

        Raises:
            TypeError: a prompt id that JSON cannot represent as itself (ids must be str, int or float).
        """
        prompts = []
        for pid, entry in self._state.items():
            if isinstance(pid, bool) or not isinstance(pid, (str, int, float)):
                raise TypeError(f"EMAPassRateDifficulty: state_dict: prompt ids must be str, int or float to "
                                f"round-trip "
                                f"through JSON, got {type(pid).__name__} {pid!r:.60}")
            prompts.append({"id": pid, **entry})
        return {"format": STATE_FORMAT, "prompts": prompts}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state with one from :meth:`state_dict` (e.g. after ``json.loads``).

        Raises:
            ValueError: a state of another format, or an entry with a rate outside ``[0, 1]``.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            got = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"EMAPassRateDifficulty: load_state_dict: expected format {STATE_FORMAT!r}, got {got!r}")
        restored: dict[Hashable, dict[str, Any]] = {}
        for i, item in enumerate(state.get("prompts", [])):
            try:
                rate, before = float(item["rate"]), item["before"]
                step, count = int(item["step"]), int(item["count"])
                pid = item["id"]
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"EMAPassRateDifficulty: load_state_dict: prompts[{i}]: expected id, rate, before, "
                                 f"step, count, got {item!r:.120} ({error})") from None
            for name, value in (("rate", rate), ("before", before)):
                if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                    raise ValueError(f"EMAPassRateDifficulty: load_state_dict: prompts[{i}].{name}: expected a "
                                     f"rate in [0, 1], got {value!r}")
            restored[pid] = {"rate": rate, "before": None if before is None else float(before), "step": step,
                             "count": count}
        self._state = restored

    def reset(self) -> None:
        """Forget every prompt's history."""
        self._state = {}

    # -- scoring --------------------------------------------------------------------------------------------
    def _score(self, batch: RewardBatch) -> FloatArray:
        c = self._config
        prompt_ids = list(batch.column(c.prompt_column, by="EMAPassRateDifficulty"))
        self.observe(prompt_ids, self.passed(batch), step=batch.step)
        if c.include_current:
            self._count(len(batch), 0)
            return pass_rate_to_difficulty(self.rates(prompt_ids))
        values = pass_rate_to_difficulty(self.rates(prompt_ids, before_step=batch.step))
        values, fell_back = resolve_missing(values, c.unseen, owner="EMAPassRateDifficulty", labels=prompt_ids)
        self._count(len(batch), int(fell_back.sum()))
        return values

    def to_config(self) -> EMAPassRateDifficultyConfig:
        return self._config

    @classmethod
    def from_config(cls, config: EMAPassRateDifficultyConfig) -> EMAPassRateDifficulty:
        accuracy = None if config.accuracy is None else build(config.accuracy)
        return cls(accuracy=accuracy, pass_threshold=config.pass_threshold, decay=config.decay,
                   prompt_column=config.prompt_column, include_current=config.include_current, unseen=config.unseen)
