"""Weights that follow the training step (warm up a length term, anneal it, switch it on late)."""

from __future__ import annotations

import abc
import math
from typing import Literal

from pydantic import Field, model_validator

from .config import ComponentConfig, Configurable, register, validated

__all__ = ["ConstantSchedule", "CosineSchedule", "LinearSchedule", "Schedule", "StepSchedule"]


class Schedule(Configurable[ComponentConfig], abc.ABC):
    """A weight as a function of the (non-negative integer) training step."""

    @abc.abstractmethod
    def __call__(self, step: int) -> float: ...


class ConstantScheduleConfig(ComponentConfig):
    kind: Literal["constant_schedule"] = "constant_schedule"
    value: float = Field(1.0, allow_inf_nan=False)


@register("constant_schedule", ConstantScheduleConfig)
class ConstantSchedule(Schedule):
    """The same weight at every step."""

    def __init__(self, value: float = 1.0) -> None:
        self._config = validated("ConstantSchedule", ConstantScheduleConfig, value=value)

    def __call__(self, step: int) -> float:
        return self._config.value

    def to_config(self) -> ConstantScheduleConfig:
        return self._config


class _RampConfig(ComponentConfig):
    start: float = Field(0.0, allow_inf_nan=False)
    end: float = Field(1.0, allow_inf_nan=False)
    begin_step: int = Field(0, ge=0)
    end_step: int = Field(1000, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> _RampConfig:
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step: expected > begin_step ({self.begin_step}), got {self.end_step}")
        return self


class LinearScheduleConfig(_RampConfig):
    kind: Literal["linear_schedule"] = "linear_schedule"


class CosineScheduleConfig(_RampConfig):
    kind: Literal["cosine_schedule"] = "cosine_schedule"


class _Ramp(Schedule):
    _config: _RampConfig

    def __init__(self, *, start: float = 0.0, end: float = 1.0, begin_step: int = 0, end_step: int = 1000) -> None:
        self._config = validated(  # type: ignore[assignment]
            type(self).__name__,
            self.config_class,
            start=start,
            end=end,
            begin_step=begin_step,
            end_step=end_step,
        )

    def _progress(self, step: int) -> float:
        c = self._config
        return min(1.0, max(0.0, (step - c.begin_step) / (c.end_step - c.begin_step)))

    def to_config(self) -> _RampConfig:
        return self._config


@register("linear_schedule", LinearScheduleConfig)
class LinearSchedule(_Ramp):
    """``start`` until ``begin_step``, linear to ``end`` at ``end_step``, then ``end``."""

    def __call__(self, step: int) -> float:
        c = self._config
        return c.start + (c.end - c.start) * self._progress(step)


@register("cosine_schedule", CosineScheduleConfig)
class CosineSchedule(_Ramp):
    """Half-cosine from ``start`` (at ``begin_step``) to ``end`` (at ``end_step``), constant outside."""

    def __call__(self, step: int) -> float:
        c = self._config
        return c.end + 0.5 * (c.start - c.end) * (1.0 + math.cos(math.pi * self._progress(step)))


class StepScheduleConfig(ComponentConfig):
    kind: Literal["step_schedule"] = "step_schedule"
    boundaries: tuple[int, ...] = ()
    values: tuple[float, ...] = (1.0,)

    @model_validator(mode="after")
    def _shape(self) -> StepScheduleConfig:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values: expected len(boundaries) + 1 = {len(self.boundaries) + 1} values, got {len(self.values)}"
            )
        if list(self.boundaries) != sorted(set(self.boundaries)) or any(b < 0 for b in self.boundaries):
            raise ValueError(f"boundaries: expected strictly increasing non-negative steps, got {self.boundaries}")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"values: expected finite numbers, got {self.values}")
        return self


@register("step_schedule", StepScheduleConfig)
class StepSchedule(Schedule):
    """Piecewise constant: ``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``."""

    def __init__(self, *, boundaries: tuple[int, ...] = (), values: tuple[float, ...] = (1.0,)) -> None:
        self._config = validated("StepSchedule", StepScheduleConfig, boundaries=boundaries, values=values)

    def __call__(self, step: int) -> float:
        c = self._config
        return c.values[sum(step >= b for b in c.boundaries)]

    def to_config(self) -> StepScheduleConfig:
        return self._config
