"""TRL adapter: library rewards as TRL reward functions (the uncertainty-measuring trainer is in [`trl_trainer`][]).

TRL's ``GRPOTrainer`` calls every reward function once per generation batch as
``reward_func(prompts=..., completions=..., completion_ids=..., **reward_kwargs)`` (every dataset column,
``trainer_state``, ``log_extra`` and ``log_metric``; ``trl/trainer/grpo_trainer.py::_calculate_rewards``, trl 1.16)
and expects ``list[float | None]`` back. A TRL reward function is a plain callable, so this module imports neither
TRL nor torch; the trainer's names (``UncertaintyGRPOTrainer``...) load [`trl_trainer`][] on first use.

>>> from adaptive_length_reward import SoftLengthPenalty, FixedBudget
>>> reward = TRLReward(SoftLengthPenalty(budget=FixedBudget(2)))
>>> reward(prompts=["p", "p"], completions=["a b", "a b c"], completion_ids=[[1, 2], [1, 2, 3]])
[1.0, 0.998]
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..batch import CONTEXT_FIELDS, RewardBatch
from ..config import Component, param
from ..reward import Reward
from .scoring import SampleScorer, ScoredBatch, finite_or_none

__all__ = ["AsyncTRLReward", "TRLReward"]  # and, lazily, the trainer's names below

_TRAINER_NAMES = ("TESTED_TRL_VERSIONS", "UncertaintyGRPOTrainer", "UncertaintyTrainerConfig", "check_trl_version")
_IMAGE_COLUMNS = ("image", "images")


def __getattr__(name: str) -> Any:
    """The trainer's names, from [`trl_trainer`][] (which imports TRL and torch) on first use."""
    if name not in _TRAINER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".trl_trainer", __package__), name)


def _same_image(a: Any, b: Any) -> bool:
    """Whether two dataset image values show the same pixels (PIL images, arrays, paths, or lists of them).

    TRL loads the dataset row once per generation, so the completions of one prompt carry equal images that
    are usually distinct objects: identity alone is not enough, and pixels are compared when it fails.
    """
    if a is b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_image(x, y) for x, y in zip(a, b))
    if hasattr(a, "mode") and hasattr(a, "tobytes") and hasattr(b, "mode") and hasattr(b, "tobytes"):  # PIL
        return bool(a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes())
    if hasattr(a, "shape") and hasattr(b, "shape"):  # numpy arrays, CPU tensors
        return bool(tuple(a.shape) == tuple(b.shape) and np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _consecutive_groups(prompts: Sequence[Any], images: Sequence[Any] | None = None) -> list[int]:
    """Group id per completion: a new group starts wherever the prompt (or its image) differs from the previous.

    TRL's ``RepeatSampler`` puts the ``num_generations`` completions of one prompt next to each other within a
    process, so equal neighbours are one GRPO group (caveats: docs/trl.md).
    """
    ids: list[int] = []
    for i, prompt in enumerate(prompts):
        same = i > 0 and prompt == prompts[i - 1] and (images is None or _same_image(images[i], images[i - 1]))
        ids.append(0 if i == 0 else ids[-1] if same else ids[-1] + 1)
    return ids


class TRLReward(Component):
    """A library reward as a TRL reward function: picklable, with a fixed ``__name__`` (docs/trl.md).

    Per call it builds one [`RewardBatch`][] from TRL's arguments (the dataset
    columns the ``*_column`` parameters name, ``token_ids`` from ``completion_ids``, ``group_ids`` by ``group_by``,
    ``step`` from ``trainer_state``, an extra column per other keyword with one value per completion), scores it
    through [`SampleScorer`][] and logs
    [`logs`][adaptive_length_reward.adapters.scoring.ScoredBatch.logs] through TRL's ``log_extra``/``log_metric``.
    A NaN reward gives ``None`` (TRL: "not scored by this function"). A component for its declaration, equality and
    pickling, with no registered kind (adapters are not built from configs).
    """

    kind = "trl_reward"

    reward: Reward = param(kw_only=False, doc="the library reward")
    difficulty_column: str | None = param(default="difficulty", min_length=1, doc="dataset column of the difficulty")
    ground_truth_column: str | None = param(default="ground_truth", min_length=1, doc="dataset column of the answer")
    uncertainty_column: str | None = param(default="uncertainty", min_length=1, doc="column of the uncertainty")
    group_by: str | None = param(default="prompt", min_length=1, doc="'prompt', a dataset column, or None (no groups)")
    log_components: bool = param(default=True, doc="log the reward's components")
    log_columns: bool = param(default=True, doc="log the per-sample diagnostics (length, budget, tier...)")
    name: str | None = param(default=None, pattern=r"^[^/]+$", min_length=1, doc="the __name__ TRL logs under")

    def __post_init__(self) -> None:
        self._scorer = SampleScorer(self.reward)

    @property
    def __name__(self) -> str:
        return self.name or self.reward.name

    def build_batch(
        self,
        prompts: Sequence[Any] | None,
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any = None,
        **columns: Any,
    ) -> RewardBatch:
        """The [`RewardBatch`][] this function scores for one TRL call (see the class docstring)."""
        n = len(completions)
        mapped = {
            self.difficulty_column: "difficulty",
            self.ground_truth_column: "ground_truth",
            self.uncertainty_column: "uncertainty",
        }
        context = {
            field: columns[column]
            for column, field in mapped.items()
            if column is not None and columns.get(column) is not None
        }
        if completion_ids is not None:
            context["token_ids"] = [list(ids) for ids in completion_ids]
        if self.group_by == "prompt" and prompts is not None:
            images = next(
                (
                    columns[c]
                    for c in _IMAGE_COLUMNS
                    if isinstance(columns.get(c), (list, tuple)) and len(columns[c]) == len(prompts)
                ),
                None,
            )
            context["group_ids"] = _consecutive_groups(prompts, images)
        elif self.group_by not in (None, "prompt") and columns.get(self.group_by) is not None:
            context["group_ids"] = list(columns[self.group_by])
        step = getattr(trainer_state, "global_step", 0) if trainer_state is not None else 0
        extra = {
            key: values
            for key, values in columns.items()
            if key not in mapped
            and key not in CONTEXT_FIELDS
            and key != "step"
            and isinstance(values, (list, tuple))
            and len(values) == n
        }
        return RewardBatch.from_completions(completions, step=int(step or 0), extra=extra, **context)

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **dataset_columns: Any,
    ) -> list[float | None]:
        """Score one TRL generation batch; see the class docstring for the mapping and logging."""
        if completions is None:
            raise TypeError(f"{type(self).__name__}: completions: expected the completions TRL passes, got None")
        batch = self.build_batch(prompts, completions, completion_ids, trainer_state, **dataset_columns)
        scored = self._scorer.score(batch)
        self._log(scored, log_extra, log_metric)
        return [float(r) if not math.isnan(r) else None for r in scored.rewards.tolist()]

    def _log(
        self,
        scored: ScoredBatch,
        log_extra: Callable[[str, list[Any]], None] | None,
        log_metric: Callable[[str, float], None] | None,
    ) -> None:
        for key, values in scored.logs.items():
            if not (self.log_components if key in scored.components else self.log_columns):
                continue
            if log_extra is not None:
                log_extra(f"{self.__name__}/{key}", finite_or_none(values))
            finite = values[np.isfinite(values)]
            if log_metric is not None and finite.size:
                log_metric(f"{self.__name__}/{key}", float(finite.mean()))


class AsyncTRLReward(TRLReward):
    """[`TRLReward`][] with an ``async`` ``__call__`` that scores in a worker thread.

    TRL gathers async reward functions concurrently (``asyncio.gather`` on its own event loop,
    ``grpo_trainer.py::_calculate_rewards``), so an expensive reward (e.g. segmentation with a mask model)
    overlaps with other async rewards instead of blocking them. Results are identical to [`TRLReward`][].
    """

    async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        return await asyncio.to_thread(TRLReward.__call__, self, *args, **kwargs)


#: The frozen configuration model of [`TRLReward`][] (derived from its declaration).
TRLRewardConfig = TRLReward.config_model()
