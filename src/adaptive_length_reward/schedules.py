"""Weights that follow the training step (warm up a length term, anneal it, switch it on late)."""

from __future__ import annotations

import abc
import math
from typing import Any

from .config import Component, param

__all__ = ["ConstantSchedule", "CosineSchedule", "LinearSchedule", "Schedule", "StepSchedule"]


class Schedule(Component, abc.ABC):
    """A weight as a function of the (non-negative integer) training step."""

    @abc.abstractmethod
    def __call__(self, step: int) -> float: ...


class ConstantSchedule(Schedule, kind="constant_schedule"):
    """The same weight at every step."""

    value: float = param(default=1.0, kw_only=False, doc="the weight")

    def __call__(self, step: int) -> float:
        return self.value


class _Ramp(Schedule):
    start: float = param(default=0.0, doc="the weight until begin_step")
    end: float = param(default=1.0, doc="the weight from end_step on")
    begin_step: int = param(default=0, ge=0, doc="where the ramp starts")
    end_step: int = param(default=1000, ge=0, doc="where the ramp ends")

    @staticmethod
    def _check(config: Any) -> None:
        if config.end_step <= config.begin_step:
            raise ValueError(f"end_step: expected > begin_step ({config.begin_step}), got {config.end_step}")

    def _progress(self, step: int) -> float:
        return min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))


class LinearSchedule(_Ramp, kind="linear_schedule"):
    """``start`` until ``begin_step``, linear to ``end`` at ``end_step``, then ``end``."""

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * self._progress(step)


class CosineSchedule(_Ramp, kind="cosine_schedule"):
    """Half-cosine from ``start`` (at ``begin_step``) to ``end`` (at ``end_step``), constant outside."""

    def __call__(self, step: int) -> float:
        return self.end + 0.5 * (self.start - self.end) * (1.0 + math.cos(math.pi * self._progress(step)))


class StepSchedule(Schedule, kind="step_schedule"):
    """Piecewise constant: ``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``."""

    boundaries: tuple[int, ...] = param(default=(), doc="the steps where the value changes, strictly increasing")
    values: tuple[float, ...] = param(default=(1.0,), doc="one value per interval: len(boundaries) + 1")

    @staticmethod
    def _check(config: Any) -> None:
        if len(config.values) != len(config.boundaries) + 1:
            raise ValueError(
                f"values: expected len(boundaries) + 1 = {len(config.boundaries) + 1} values, got {len(config.values)}"
            )
        if list(config.boundaries) != sorted(set(config.boundaries)) or any(b < 0 for b in config.boundaries):
            raise ValueError(f"boundaries: expected strictly increasing non-negative steps, got {config.boundaries}")
        if not all(math.isfinite(v) for v in config.values):
            raise ValueError(f"values: expected finite numbers, got {config.values}")

    def __call__(self, step: int) -> float:
        return self.values[sum(step >= b for b in self.boundaries)]
