"""The core abstraction: a :class:`Reward` maps a :class:`~adaptive_length_reward.batch.RewardBatch` to a float
array, declares the context it needs, and composes with other rewards.

PixelThink's reward (arXiv 2505.23727, Sec. 3.3) is ``R = R_acc * s(L, B)``; written with this module::

    >>> from adaptive_length_reward import ColumnReward, Product, SoftLengthPenalty, TieredBudget
    >>> reward = Product([ColumnReward("accuracy"), SoftLengthPenalty(budget=TieredBudget())])
    >>> reward(completions=["short answer", "x " * 700], accuracy=[5.0, 5.0], difficulty=[2.0, 2.0]).tolist()
    [5.0, 0.0]
"""

from __future__ import annotations

import abc
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .batch import RewardBatch
from .config import ComponentConfig, Configurable, Nested, build, class_name, config_of, register, validated
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
    """What :meth:`Reward.evaluate` returns.

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


class Reward(Configurable[ComponentConfig], abc.ABC):
    """Base class of every reward: a batch in, one float per completion out.

    Subclasses implement :meth:`_evaluate` and set :attr:`requires` (the batch columns they read) and
    :attr:`bounds` (the documented output range, checked by the conformance tests). Instances are
    picklable and carry a stable ``__name__`` (TRL uses it to name the logged metric).

    Call a reward with a batch, or with keywords: ``reward(completions=[...], difficulty=[...])``.
    Unknown keywords become extra columns that the reward ignores.
    """

    #: Whether the reward may return NaN (documented per reward); otherwise a NaN/inf output is an error.
    may_return_nan: ClassVar[bool] = False

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"{class_name(self)}: name: expected a non-empty string without '/', got {name!r}")
        self._name = name

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

    # -- evaluation -----------------------------------------------------------------------------------------
    def __call__(self, batch: RewardBatch | None = None, /, **context: Any) -> FloatArray:
        """Rewards for the batch: a float64 array, one value per completion."""
        return self.evaluate(batch, **context).rewards

    def evaluate(self, batch: RewardBatch | None = None, /, **context: Any) -> RewardOutput:
        """Rewards plus named components and per-sample diagnostics (for logging)."""
        batch = as_batch(batch, context)
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
        """Compute the rewards; the batch already holds every column in :attr:`requires`."""

    # -- composition sugar ----------------------------------------------------------------------------------
    def __mul__(self, other: Reward) -> Product:
        if not isinstance(other, Reward):
            return NotImplemented
        return Product([self, other])

    def __add__(self, other: Reward) -> WeightedSum:
        if not isinstance(other, Reward):
            return NotImplemented
        return WeightedSum([self, other])


# ------------------------------------------------------------------------------------------------------------
# Leaves
# ------------------------------------------------------------------------------------------------------------


class ColumnRewardConfig(ComponentConfig):
    kind: Literal["column"] = "column"
    column: str = Field(min_length=1)
    low: float = -math.inf
    high: float = math.inf
    name: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRewardConfig:
        if not self.low <= self.high:
            raise ValueError(f"high: expected >= low ({self.low}), got {self.high}")
        return self


@register("column", ColumnRewardConfig)
class ColumnReward(Reward):
    """A reward read from a numeric batch column, e.g. an accuracy computed elsewhere or a ``correct`` flag.

    Values outside ``[low, high]`` or non-finite values raise: the column is a programming input, not model
    output.
    """

    def __init__(self, column: str, *, low: float = -math.inf, high: float = math.inf, name: str | None = None) -> None:
        self._config = validated("ColumnReward", ColumnRewardConfig, column=column, low=low, high=high, name=name)
        super().__init__(name=name or column)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self._config.column})

    @property
    def bounds(self) -> tuple[float, float]:
        return (self._config.low, self._config.high)

    def _evaluate(self, batch: RewardBatch) -> FloatArray:
        column = self._config.column
        try:
            values = np.asarray(batch.column(column), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as error:
            raise TypeError(f"ColumnReward: column {column!r}: expected numbers, got {error}") from None
        if not np.isfinite(values).all():
            raise ValueError(f"ColumnReward: column {column!r}: expected finite numbers, got {values.tolist()!r:.120}")
        c = self._config
        if (values < c.low).any() or (values > c.high).any():
            raise ValueError(
                f"ColumnReward: column {column!r}: expected values in [{c.low}, {c.high}], got {values.tolist()!r:.120}"
            )
        return values

    def to_config(self) -> ColumnRewardConfig:
        return self._config


# ------------------------------------------------------------------------------------------------------------
# Combinators
# ------------------------------------------------------------------------------------------------------------


def _unique_names(terms: Sequence[Reward]) -> list[str]:
    """Names of the terms, suffixed ``_2``, ``_3``... where they repeat."""
    seen: dict[str, int] = {}
    names = []
    for term in terms:
        count = seen.get(term.name, 0) + 1
        seen[term.name] = count
        names.append(term.name if count == 1 else f"{term.name}_{count}")
    return names


def _collect(outputs: Sequence[RewardOutput], names: Sequence[str]) -> tuple[dict[str, FloatArray], dict[str, Any]]:
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


def _check_terms(owner: str, terms: Any) -> list[Reward]:
    if isinstance(terms, Reward) or not isinstance(terms, Sequence) or not terms:
        raise TypeError(f"{owner}: terms: expected a non-empty sequence of rewards, got {terms!r:.80}")
    for i, term in enumerate(terms):
        if not isinstance(term, Reward):
            raise TypeError(f"{owner}: terms[{i}]: expected a Reward, got {type(term).__name__}")
    return list(terms)


class WeightedSumConfig(ComponentConfig):
    kind: Literal["weighted_sum"] = "weighted_sum"
    terms: tuple[Nested, ...] = Field(min_length=1)
    weights: tuple[float | Nested, ...] | None = None
    name: str | None = None


@register("weighted_sum", WeightedSumConfig)
class WeightedSum(Reward):
    """``sum_i w_i(step) * r_i``: weights are numbers or :class:`~adaptive_length_reward.schedules.Schedule`s.

    A weight of 0 keeps the term for logging only (its values still appear in the components).
    """

    def __init__(
        self,
        terms: Sequence[Reward],
        weights: Sequence[float | Schedule] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.terms = _check_terms("WeightedSum", terms)
        if weights is None:
            weights = [1.0] * len(self.terms)
        if isinstance(weights, (str, bytes)) or len(weights) != len(self.terms):
            raise ValueError(
                f"WeightedSum: weights: expected {len(self.terms)} weights (one per term), got {weights!r}"
            )
        self.weights: list[Schedule] = []
        for i, weight in enumerate(weights):
            if isinstance(weight, Schedule):
                self.weights.append(weight)
            elif isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight):
                self.weights.append(ConstantSchedule(float(weight)))
            else:
                raise ValueError(f"WeightedSum: weights[{i}]: expected a finite number or a Schedule, got {weight!r}")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(t.requires for t in self.terms))

    @property
    def bounds(self) -> tuple[float, float]:
        low = high = 0.0
        for term, weight in zip(self.terms, self.weights):
            if not isinstance(weight, ConstantSchedule):
                return (-math.inf, math.inf)
            w = weight(0)
            lo, hi = _interval_product(term.bounds, (w, w))
            low, high = low + lo, high + hi
        return (low, high)

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        outputs = [t.evaluate(batch) for t in self.terms]
        total = np.zeros(len(batch))
        for weight, output in zip(self.weights, outputs):
            w = weight(batch.step)
            if w != 0.0:
                total = total + w * output.rewards
        components, columns = _collect(outputs, _unique_names(self.terms))
        return RewardOutput(total, components, columns)

    def to_config(self) -> WeightedSumConfig:
        weights = tuple(w(0) if isinstance(w, ConstantSchedule) else config_of(w) for w in self.weights)
        return WeightedSumConfig(terms=tuple(config_of(t) for t in self.terms), weights=weights, name=self._name)

    @classmethod
    def from_config(cls, config: WeightedSumConfig) -> WeightedSum:
        weights = None if config.weights is None else [w if isinstance(w, float) else build(w) for w in config.weights]
        return cls([build(t) for t in config.terms], weights, name=config.name)


class ProductConfig(ComponentConfig):
    kind: Literal["product"] = "product"
    terms: tuple[Nested, ...] = Field(min_length=1)
    name: str | None = None


@register("product", ProductConfig)
class Product(Reward):
    """``prod_i r_i``; PixelThink's accuracy times soft length score is ``Product([accuracy, penalty])``."""

    def __init__(self, terms: Sequence[Reward], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.terms = _check_terms("Product", terms)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(t.requires for t in self.terms))

    @property
    def bounds(self) -> tuple[float, float]:
        bounds = self.terms[0].bounds
        for term in self.terms[1:]:
            bounds = _interval_product(bounds, term.bounds)
        return bounds

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        outputs = [t.evaluate(batch) for t in self.terms]
        total = np.ones(len(batch))
        for output in outputs:
            total = total * output.rewards
        components, columns = _collect(outputs, _unique_names(self.terms))
        return RewardOutput(total, components, columns)

    def to_config(self) -> ProductConfig:
        return ProductConfig(terms=tuple(config_of(t) for t in self.terms), name=self._name)

    @classmethod
    def from_config(cls, config: ProductConfig) -> Product:
        return cls([build(t) for t in config.terms], name=config.name)


class GateConfig(ComponentConfig):
    kind: Literal["gate"] = "gate"
    term: Nested
    condition: Nested
    threshold: float = Field(1.0, allow_inf_nan=False)
    otherwise: float = Field(0.0, allow_inf_nan=False)
    name: str | None = None


@register("gate", GateConfig)
class Gate(Reward):
    """Apply ``term`` only where ``condition >= threshold``; elsewhere the reward is ``otherwise``.

    Example: a length penalty that only applies to correct answers (as in L1-Max and Kimi k1.5):
    ``Gate(SoftLengthPenalty(...), condition=ColumnReward("correct"), threshold=1.0, otherwise=1.0)``.
    """

    def __init__(
        self,
        term: Reward,
        *,
        condition: Reward,
        threshold: float = 1.0,
        otherwise: float = 0.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(term, Reward):
            raise TypeError(f"Gate: term: expected a Reward, got {type(term).__name__}")
        if not isinstance(condition, Reward):
            raise TypeError(f"Gate: condition: expected a Reward, got {type(condition).__name__}")
        self._scalars = validated(
            "Gate", GateConfig, term=term, condition=condition, threshold=threshold, otherwise=otherwise, name=name
        )
        super().__init__(name=name)
        self.term, self.condition = term, condition

    @property
    def requires(self) -> frozenset[str]:
        return self.term.requires | self.condition.requires

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.term.bounds
        return (min(low, self._scalars.otherwise), max(high, self._scalars.otherwise))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        term, condition = self.term.evaluate(batch), self.condition.evaluate(batch)
        open_ = condition.rewards >= self._scalars.threshold
        rewards = np.where(open_, term.rewards, self._scalars.otherwise)
        names = _unique_names([self.term, self.condition])
        components, columns = _collect([term, condition], names)
        return RewardOutput(rewards, components, {**columns, "gate_open": open_})

    def to_config(self) -> GateConfig:
        return self._scalars.model_copy(update={"term": config_of(self.term), "condition": config_of(self.condition)})

    @classmethod
    def from_config(cls, config: GateConfig) -> Gate:
        return cls(
            build(config.term),
            condition=build(config.condition),
            threshold=config.threshold,
            otherwise=config.otherwise,
            name=config.name,
        )


class ClipConfig(ComponentConfig):
    kind: Literal["clip"] = "clip"
    term: Nested
    low: float = -math.inf
    high: float = math.inf
    name: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ClipConfig:
        if not self.low <= self.high:
            raise ValueError(f"high: expected >= low ({self.low}), got {self.high}")
        return self


@register("clip", ClipConfig)
class Clip(Reward):
    """``clip(term, low, high)``."""

    def __init__(
        self, term: Reward, *, low: float = -math.inf, high: float = math.inf, name: str | None = None
    ) -> None:
        if not isinstance(term, Reward):
            raise TypeError(f"Clip: term: expected a Reward, got {type(term).__name__}")
        self._scalars = validated("Clip", ClipConfig, term=term, low=low, high=high, name=name)
        super().__init__(name=name)
        self.term = term

    @property
    def requires(self) -> frozenset[str]:
        return self.term.requires

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.term.bounds
        c = self._scalars
        return (min(max(low, c.low), c.high), max(min(high, c.high), c.low))

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        inner = self.term.evaluate(batch)
        components, columns = _collect([inner], [self.term.name])
        return RewardOutput(np.clip(inner.rewards, self._scalars.low, self._scalars.high), components, columns)

    def to_config(self) -> ClipConfig:
        return self._scalars.model_copy(update={"term": config_of(self.term)})

    @classmethod
    def from_config(cls, config: ClipConfig) -> Clip:
        return cls(build(config.term), low=config.low, high=config.high, name=config.name)


# ------------------------------------------------------------------------------------------------------------
# Context providers
# ------------------------------------------------------------------------------------------------------------


class ContextProvider(Configurable[ComponentConfig], abc.ABC):
    """Computes one batch column (``difficulty``, ``uncertainty``...) that rewards then read.

    Difficulty scorers and uncertainty estimators implement this, so a budget can use a column without
    knowing where it came from. Wrap a reward with :class:`WithContext` to run providers first.
    """

    #: The column this provider fills.
    provides: ClassVar[str]

    @property
    def requires(self) -> frozenset[str]:
        """Batch columns the provider reads."""
        return frozenset()

    @abc.abstractmethod
    def __call__(self, batch: RewardBatch) -> npt.NDArray[Any]:
        """One value per completion for :attr:`provides` (NaN where it cannot tell)."""


class WithContextConfig(ComponentConfig):
    kind: Literal["with_context"] = "with_context"
    reward: Nested
    providers: tuple[Nested, ...] = Field(min_length=1)
    mode: Literal["fill_missing", "overwrite"] = "fill_missing"
    name: str | None = None


@register("with_context", WithContextConfig)
class WithContext(Reward):
    """Run context providers, then the reward on the completed batch.

    ``mode="fill_missing"`` (default) keeps values the batch already has and fills only absent or NaN
    entries; ``"overwrite"`` replaces the column.
    """

    def __init__(
        self,
        reward: Reward,
        providers: Sequence[ContextProvider],
        *,
        mode: Literal["fill_missing", "overwrite"] = "fill_missing",
        name: str | None = None,
    ) -> None:
        if not isinstance(reward, Reward):
            raise TypeError(f"WithContext: reward: expected a Reward, got {type(reward).__name__}")
        for i, provider in enumerate(providers):
            if not isinstance(provider, ContextProvider):
                raise TypeError(
                    f"WithContext: providers[{i}]: expected a ContextProvider, got {type(provider).__name__}"
                )
        validated("WithContext", WithContextConfig, reward=reward, providers=list(providers), mode=mode, name=name)
        super().__init__(name=name)
        self.reward, self.providers, self.mode = reward, list(providers), mode

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

    def _evaluate(self, batch: RewardBatch) -> RewardOutput:
        for provider in self.providers:
            values = np.asarray(provider(batch))
            if values.shape != (len(batch),):
                raise RuntimeError(
                    f"{type(provider).__name__} returned shape {values.shape} for {len(batch)} completions"
                )
            column = provider.provides
            if self.mode == "fill_missing" and batch.has(column):
                current = np.asarray(batch.column(column), dtype=np.float64)
                values = np.where(np.isnan(current), values, current)
            batch = batch.replace(**{column: values})
        inner = self.reward.evaluate(batch)
        return RewardOutput(inner.rewards, inner.components, inner.columns)

    def to_config(self) -> WithContextConfig:
        return WithContextConfig(
            reward=config_of(self.reward),
            providers=tuple(config_of(p) for p in self.providers),
            mode=self.mode,
            name=self._name,
        )

    @classmethod
    def from_config(cls, config: WithContextConfig) -> WithContext:
        return cls(build(config.reward), [build(p) for p in config.providers], mode=config.mode, name=config.name)
