"""The core abstraction: a [`Reward`][] maps a [`RewardBatch`][] to a float
array, declares the context it needs, and composes with other rewards.

PixelThink's reward (arXiv 2505.23727, Sec. 3.3) is ``R = R_acc * s(L, B)``; written with this module::

    >>> from adaptive_length_reward import ColumnReward, Product, SoftLengthPenalty, TieredBudget
    >>> reward = Product([ColumnReward("accuracy"), SoftLengthPenalty(budget=TieredBudget())])
    >>> reward(completions=["short answer", "x " * 700], accuracy=[5.0, 5.0], difficulty=[2.0, 2.0]).tolist()
    [5.0, 0.0]
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from . import functional as F
from .batch import RewardBatch
from .config import Component, ComponentConfig, class_name, param
from .errors import ConfigError
from .evaluation import once, scope
from .schedules import ConstantSchedule, Schedule

__all__ = [
    "Clip",
    "ColumnReward",
    "ContextProvider",
    "Gate",
    "Product",
    "Reward",
    "RewardOutput",
    "WeightedSum",
    "WithContext",
    "as_batch",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RewardOutput:
    """What [`Reward.evaluate`][adaptive_length_reward.reward.Reward.evaluate] returns.

    Attributes:
        rewards: one float per completion.
        components: per-sample values of every named sub-reward of a composite, keyed by a ``/``-joined
            path of names (e.g. ``"accuracy"``, ``"soft_length_penalty"``); for logging.
        columns: per-sample diagnostics a reward computed on the way (``length``, ``budget``, ``tier``...).
    """

    rewards: FloatArray
    components: Mapping[str, FloatArray] = field(default_factory=dict)
    columns: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)


def as_batch(batch: RewardBatch | None, context: Mapping[str, Any]) -> RewardBatch:
    """Accept a ready batch, or build one from keywords (``completions=...`` plus context columns)."""
    if batch is None:
        context = dict(context)
        if "completions" not in context:
            raise TypeError("expected a RewardBatch or completions=... with context columns as keywords")
        return RewardBatch.from_completions(context.pop("completions"), **context)
    if not isinstance(batch, RewardBatch):
        raise TypeError(f"expected a RewardBatch, got {type(batch).__name__}; pass completions=... as a keyword")
    if context:
        return batch.replace(**context)
    return batch


def _snake(name: str) -> str:
    """``SoftLengthPenalty`` -> ``soft_length_penalty``; acronyms stay whole: ``DAPOOverlongPenalty`` ->
    ``dapo_overlong_penalty``, ``ALPReward`` -> ``alp_reward``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Reward(Component, abc.ABC):
    """Base class of every reward: a batch in, one float per completion out.

    Subclasses declare their parameters as annotated attributes (see
    [`Component`][]), implement ``_evaluate``, and set [`requires`][]
    (the batch columns they read) and [`bounds`][] (the documented output range, checked by the conformance
    tests). Instances are picklable and carry a stable ``__name__`` (TRL uses it to name the logged metric).

    Call a reward with a batch, or with keywords: ``reward(completions=[...], difficulty=[...])``.
    Unknown keywords become extra columns that the reward ignores. Within one [`evaluate`][], every node of the
    reward graph runs once ([`evaluation`][]).
    """

    #: Whether the reward may return NaN (documented per reward); otherwise a NaN/inf output is an error.
    may_return_nan: ClassVar[bool] = False

    _name: str | None = param(default=None, alias="name", doc="the reward's name (default: snake_case class name)")

    @staticmethod
    def _check(config: Any) -> None:
        name = config.name
        if name is not None and (not name or "/" in name):
            raise ValueError(f"name: expected a non-empty string without '/', got {name!r}")

    # -- identity -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The reward's name (snake_case class name unless given)."""
        return self._name or _snake(class_name(self))

    @property
    def __name__(self) -> str:
        return self.name

    # -- contract -------------------------------------------------------------------------------------------
    @property
    def requires(self) -> frozenset[str]:
        """Batch columns this reward (and its children) read; absent ones raise before any work is done."""
        return frozenset()

    @property
    def bounds(self) -> tuple[float, float]:
        """Documented range ``(low, high)`` of the output; infinite ends mean unbounded."""
        return (-math.inf, math.inf)

    @property
    def length_multiplier(self) -> bool:
        """Whether this reward is a length multiplier (1 = no penalty, smaller for longer completions) that scales a
        base reward, like PixelThink's ``s(L, B)``; [`Product`][] then applies its sign-safe rule."""
        return bool(getattr(type(self), "_length_multiplier", False))

    @property
    def reads(self) -> frozenset[str] | None:
        """Every column the result depends on (``completions`` and ``step`` included), when the reward can say so
        exactly; ``None`` (the default) means any column may matter. A reward that declares it is computed once
        per evaluation across batches that differ only in other columns ([`once`][])."""
        return None

    # -- evaluation -----------------------------------------------------------------------------------------
    def __call__(self, batch: RewardBatch | None = None, /, **context: Any) -> FloatArray:
        """Rewards for the batch: a float64 array, one value per completion."""
        return self.evaluate(batch, **context).rewards

    def evaluate(self, batch: RewardBatch | None = None, /, **context: Any) -> RewardOutput:
        """Rewards plus named components and per-sample diagnostics (for logging)."""
        batch = as_batch(batch, context)
        with scope():
            return once(self, batch, self._checked, batch, reads=self.reads)

    def _checked(self, batch: RewardBatch) -> RewardOutput:
        batch.require(sorted(self.requires), by=f"{class_name(self)} {self.name!r}")
        result = self._evaluate(batch)
        output = result if isinstance(result, RewardOutput) else RewardOutput(np.asarray(result))
        rewards = np.asarray(output.rewards, dtype=np.float64).reshape(-1)
        if rewards.shape != (len(batch),):
            raise RuntimeError(
                f"{class_name(self)} {self.name!r} returned {rewards.shape[0]} rewards for {len(batch)} completions"
            )
        if not self.may_return_nan and not np.isfinite(rewards).all():
            bad = int(np.flatnonzero(~np.isfinite(rewards))[0])
            raise FloatingPointError(
                f"{class_name(self)} {self.name!r} produced a non-finite reward ({rewards[bad]}) for sample {bad}"
            )
        return RewardOutput(rewards, output.components, output.columns)

    @abc.abstractmethod
    def _evaluate(self, batch: RewardBatch) -> RewardOutput | FloatArray:
        """Compute the rewards; the batch already holds every column in [`requires`][]."""

    # -- composition sugar ----------------------------------------------------------------------------------
    def __mul__(self, other: Reward) -> Product:
        if not isinstance(other, Reward):
            return NotImplemented
        return Product([self, other])

    def __add__(self, other: Reward) -> WeightedSum:
        if not isinstance(other, Reward):
            return NotImplemented
        return WeightedSum([self, other])


# -- Leaves -----------------------------------------------------------------------------------------------------------


def _check_range(config: Any) -> None:
    if not config.low <= config.high:
        raise ValueError(f"high: expected >= low ({config.low}), got {config.high}")


class ColumnReward(Reward, kind="column"):
    """A reward read from a numeric batch column, e.g. an accuracy computed elsewhere or a ``correct`` flag.

    Values outside ``[low, high]`` or non-finite values raise: the column is a programming input, not model
    output.
    """

    column: str = param(kw_only=False, min_length=1, doc="the batch column holding the reward")
    low: float = param(default=-math.inf, allow_inf_nan=True, doc="the lowest valid value")
    high: float = param(default=math.inf, allow_inf_nan=True, doc="the highest valid value")

    _check = staticmethod(_check_range)

    @property
    def name(self) -> str:
        """The given name, else the column's name."""
        return self._name or self.column

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.column})

    @property
    def reads(self) -> frozenset[str]:
        return self.requires

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    def _evaluate(self, batch: RewardBatch) -> FloatArray:
        column = self.column
        try:
            values = np.asarray(batch.column(column), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as error:
            raise TypeError(f"ColumnReward: column {column!r}: expected numbers, got {error}") from None
        if not np.isfinite(values).all():
            raise ValueError(f"ColumnReward: column {column!r}: expected finite numbers, got {values.tolist()!r:.120}")
        if (values < self.low).any() or (values > self.high).any():
            raise ValueError(
                f"ColumnReward: column {column!r}: expected values in [{self.low}, {self.high}], "
                f"got {values.tolist()!r:.120}"
            )
        return values


# -- Combinators ------------------------------------------------------------------------------------------------------


def _unique_names(terms: Sequence[Reward]) -> list[str]:
    """Names of the terms, suffixed ``_2``, ``_3``... where they repeat."""
    seen: dict[str, int] = {}
    names = []
    for term in terms:
        count = seen.get(term.name, 0) + 1
        seen[term.name] = count
        names.append(term.name if count == 1 else f"{term.name}_{count}")
    return names


def collect(outputs: Sequence[RewardOutput], names: Sequence[str]) -> tuple[dict[str, FloatArray], dict[str, Any]]:
    """Merge children's outputs: each child's rewards under its name, nested components under ``name/...``;
    diagnostic columns flat (first wins), qualified as ``name/column`` where children disagree."""
    components: dict[str, FloatArray] = {}
    columns: dict[str, Any] = {}
    for name, output in zip(names, outputs):
        components[name] = output.rewards
        for sub, values in output.components.items():
            components[f"{name}/{sub}"] = values
        for key, values in output.columns.items():
            if key not in columns:
                columns[key] = values
            elif not np.array_equal(np.asarray(columns[key]), np.asarray(values)):
                columns[f"{name}/{key}"] = values
    return components, columns


def _interval_product(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    products = []
    for x, y in itertools.product(a, b):
        products.append(0.0 if x == 0 or y == 0 else x * y)  # 0 * inf: the product of finite outputs is 0
    return (min(products), max(products))


class _Composite(Reward):
    """A reward over child rewards: requires what any child requires; outputs merged by ``collect``."""

    terms: Sequence[Reward] = param(kw_only=False, min_length=1, doc="the child rewards")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(t.requires for t in self.terms))

    def _children(self, batch: RewardBatch) -> tuple[list[RewardOutput], dict[str, FloatArray], dict[str, Any]]:
        outputs = [t.evaluate(batch) for t in self.terms]
        return (outputs, *collect(outputs, _unique_names(self.terms)))


class WeightedSum(_Composite, kind="weighted_sum"):
    """``sum_i w_i(step) * r_i``: weights are numbers or [`Schedule`][]s.

    A weight of 0 keeps the term for logging only (its values still appear in the components).
    """

    weights: Sequence[float | Schedule] | None = param(
        default=None, kw_only=False, doc="one weight per term (numbers or schedules); default all 1"
    )

    @staticmethod
    def _check(config: Any) -> None:
        for i, weight in enumerate(config.weights or ()):
            if not isinstance(weight, ComponentConfig) and not math.isfinite(weight):
                raise ValueError(f"weights[{i}]: expected a finite number or a Schedule, got {weight}")

    def __post_init__(self) -> None:
        weights = self.weights if self.weights is not None else (1.0,) * len(self.terms)
        if len(weights) != len(self.terms):
            raise ConfigError(
                f"WeightedSum: weights: expected {len(self.terms)} weights (one per term), got {weights!r}"
            )
        self._schedules = [w if isinstance(w, Schedule) else ConstantSchedule(w) for w in weights]

    @property
    def bounds(self) -> tuple[float, float]:
        low = high = 0.0
        for term, weight in zip(self.terms, self._schedules):
            if not isinstance(weight, ConstantSchedule):
                return (-math.inf, math.inf)
            w = weight(0)
            lo, hi = _interval_product(term.bounds, (w, w))
            low, high = low + lo, high + hi
        return (low, high)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        outputs, components, columns = self._children(batch)
        total = np.zeros(len(batch))
        for weight, output in zip(self._schedules, outputs):
            w = weight(batch.step)
            if w != 0.0:
                total = total + w * output.rewards
        return RewardOutput(total, components, columns)


class Product(_Composite, kind="product"):
    """``prod_i r_i``; PixelThink's accuracy times soft length score is ``Product([accuracy, penalty])``.

    Sign-safe with length multipliers: where some terms are length multipliers
    ([`Reward.length_multiplier`][adaptive_length_reward.reward.Reward.length_multiplier], e.g. [`SoftLengthPenalty`][])
    and the product ``b`` of the other terms (the base reward) is negative, the reward is ``b * (2 - s)`` rather than
    ``b * s`` (``s`` the multipliers' product): [`sign_safe_scale`][adaptive_length_reward.functional.sign_safe_scale].
    With the same base, a longer completion then never scores higher, whatever the base's sign (a plain product turns
    ``-1 * 0.5`` into a *better* reward than ``-1 * 1``). Where the base is >= 0 the result is the plain product, bit
    for bit (PixelThink's ``R_acc * s``).
    """

    def _split(self) -> tuple[list[int], list[int]]:
        """Indices of the base terms and of the length multipliers (no split when all terms are of one kind)."""
        scales = [i for i, t in enumerate(self.terms) if t.length_multiplier]
        bases = [i for i in range(len(self.terms)) if i not in scales]
        return (bases, scales) if bases and scales else (list(range(len(self.terms))), [])

    @property
    def bounds(self) -> tuple[float, float]:
        bases, scales = self._split()
        base = functools.reduce(_interval_product, [self.terms[i].bounds for i in bases])
        if not scales:
            return base
        scale = functools.reduce(_interval_product, [self.terms[i].bounds for i in scales])
        ends: list[float] = []
        if base[1] >= 0:
            ends.extend(_interval_product((max(base[0], 0.0), base[1]), scale))
        if base[0] < 0:
            ends.extend(_interval_product((base[0], min(base[1], 0.0)), (2.0 - scale[1], 2.0 - scale[0])))
        return (min(ends), max(ends))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        outputs, components, columns = self._children(batch)
        total = np.ones(len(batch))
        for output in outputs:
            total = total * output.rewards
        bases, scales = self._split()
        if scales:
            base = functools.reduce(np.multiply, [outputs[i].rewards for i in bases])
            negative = base < 0
            if negative.any():
                scale = functools.reduce(np.multiply, [outputs[i].rewards for i in scales])
                total = np.where(negative, F.sign_safe_scale(base, scale), total)
        return RewardOutput(total, components, columns)


class Gate(Reward, kind="gate"):
    """Apply ``term`` only where ``condition >= threshold``; elsewhere the reward is ``otherwise``.

    Example: a length penalty that only applies to correct answers (as in L1-Max and Kimi k1.5):
    ``Gate(SoftLengthPenalty(...), condition=ColumnReward("correct"), threshold=1.0, otherwise=1.0)``.
    """

    term: Reward = param(kw_only=False, doc="the gated reward")
    condition: Reward = param(doc="the reward that opens the gate")
    threshold: float = param(default=1.0, doc="the gate is open where condition >= threshold")
    otherwise: float = param(default=0.0, doc="the reward where the gate is closed")

    @property
    def requires(self) -> frozenset[str]:
        return self.term.requires | self.condition.requires

    @property
    def length_multiplier(self) -> bool:
        """A gated length multiplier that is 1 where the gate is closed is still a length multiplier."""
        return self.term.length_multiplier and self.otherwise == 1.0

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.term.bounds
        return (min(low, self.otherwise), max(high, self.otherwise))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        term, condition = self.term.evaluate(batch), self.condition.evaluate(batch)
        open_ = condition.rewards >= self.threshold
        rewards = np.where(open_, term.rewards, self.otherwise)
        components, columns = collect([term, condition], _unique_names([self.term, self.condition]))
        return RewardOutput(rewards, components, {**columns, "gate_open": open_})


class Clip(Reward, kind="clip"):
    """``clip(term, low, high)``."""

    term: Reward = param(kw_only=False, doc="the clipped reward")
    low: float = param(default=-math.inf, allow_inf_nan=True, doc="the lower end")
    high: float = param(default=math.inf, allow_inf_nan=True, doc="the upper end")

    _check = staticmethod(_check_range)

    @property
    def requires(self) -> frozenset[str]:
        return self.term.requires

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.term.bounds
        return (min(max(low, self.low), self.high), max(min(high, self.high), self.low))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        inner = self.term.evaluate(batch)
        components, columns = collect([inner], [self.term.name])
        return RewardOutput(np.clip(inner.rewards, self.low, self.high), components, columns)


# -- Context providers ------------------------------------------------------------------------------------------------


class ContextProvider(Component, abc.ABC):
    """Computes one batch column (``difficulty``, ``uncertainty``...) that rewards then read.

    Difficulty scorers and uncertainty estimators implement this, so a budget can use a column without
    knowing where it came from. Wrap a reward with [`WithContext`][] to run providers first.
    """

    #: The column this provider fills.
    provides: ClassVar[str]
    #: Whether each row's value depends on that row alone; [`WithContext`][] then hands the provider only
    #: the rows that miss the column. A provider over groups (a pass rate) sets it to False and sees every row.
    row_wise: ClassVar[bool] = True

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns the provider reads."""
        return frozenset()

    @abc.abstractmethod
    def __call__(self, batch: RewardBatch) -> npt.NDArray[Any]:
        """One value per completion for ``provides`` (NaN where it cannot tell)."""


class WithContext(Reward, kind="with_context"):
    """Run context providers, then the reward on the completed batch.

    ``mode="fill_missing"`` (default) keeps values the batch already has and fills only absent or NaN
    entries: a row-wise provider is called on those rows alone (a judge is not asked about a sample that
    already has a difficulty); ``"overwrite"`` replaces the column.
    """

    reward: Reward = param(kw_only=False, doc="the reward that reads the provided columns")
    providers: Sequence[ContextProvider] = param(kw_only=False, min_length=1, doc="run in order, each fills one column")
    mode: Literal["fill_missing", "overwrite"] = param(default="fill_missing", doc="keep present values, or replace")

    @property
    def name(self) -> str:
        """The given name, else the wrapped reward's name."""
        return self._name or self.reward.name

    @property
    def requires(self) -> frozenset[str]:
        provided = {p.provides for p in self.providers}
        needed = set(self.reward.requires) - provided
        for provider in self.providers:
            needed |= provider.requires - provided
        return frozenset(needed)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.reward.bounds

    @property
    def length_multiplier(self) -> bool:
        return self.reward.length_multiplier

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        for provider in self.providers:
            values = once((provider, self.mode), batch, self._provide, provider, batch)
            batch = batch.replace(**{provider.provides: values})
        inner = self.reward.evaluate(batch)
        return RewardOutput(inner.rewards, inner.components, inner.columns)

    def _provide(self, provider: ContextProvider, batch: RewardBatch) -> npt.NDArray[Any]:
        column = provider.provides
        current = None
        if self.mode == "fill_missing" and batch.has(column):
            current = np.asarray(batch.column(column), dtype=np.float64)
            missing = np.isnan(current)
            if not missing.any():
                return current
        rows = batch if current is None or not provider.row_wise else batch.take(np.flatnonzero(missing))
        values: npt.NDArray[Any] = np.asarray(provider(rows))
        if values.shape != (len(rows),):
            raise RuntimeError(f"{type(provider).__name__} returned shape {values.shape} for {len(rows)} completions")
        if current is None:
            return values
        if rows is batch:
            filled: npt.NDArray[Any] = np.where(missing, values, current)
            return filled
        filled = current.copy()
        filled[missing] = values
        return filled
