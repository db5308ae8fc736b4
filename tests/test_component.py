"""The declaration machinery (``adaptive_length_reward.config.Component``): each parameter is written once, and the
constructor, validation, config, equality, pickling, signature and docs table derive from it."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from adaptive_length_reward import ColumnReward, ConfigError, Reward, RewardBatch, build
from adaptive_length_reward.config import Component, OpaqueConfig, config_of, param, parameters
from adaptive_length_reward.schedules import Schedule


class Scaled(Reward, kind="test_scaled"):
    """``scale * inner`` (a test component)."""

    inner: Reward = param(kw_only=False, doc="the scaled reward")
    scale: float = param(default=2.0, gt=0, doc="the factor")
    extras: Sequence[float | Schedule] = param(default=(), doc="numbers or schedules")
    token: Any = param(default=None, doc="an object outside the config")

    @staticmethod
    def _check(config: Any) -> None:
        if config.scale > 100:
            raise ValueError(f"scale: expected <= 100, got {config.scale}")

    def __post_init__(self) -> None:
        self.doubled = 2 * self.scale

    def _identity_extras(self) -> tuple[Any, ...]:
        return (self.token, *super()._identity_extras())

    def _evaluate(self, batch: RewardBatch) -> Any:
        return self.scale * self.inner.evaluate(batch).rewards


INNER = ColumnReward("accuracy")


def test_constructor_validates_and_keeps_values() -> None:
    reward = Scaled(INNER, scale=3)
    assert reward.scale == 3.0 and isinstance(reward.scale, float) and reward.inner is INNER
    assert reward.doubled == 6.0
    assert reward(completions=["a", "b"], accuracy=[1.0, 2.0]).tolist() == [3.0, 6.0]
    with pytest.raises(ConfigError, match=r"Scaled: scale: expected > 0, got -1"):
        Scaled(INNER, scale=-1)
    with pytest.raises(ConfigError, match=r"Scaled: scale: expected a finite number, got inf"):
        Scaled(INNER, scale=float("inf"))
    with pytest.raises(ConfigError, match=r"Scaled: scale: expected <= 100, got 200.0"):
        Scaled(INNER, scale=200)
    with pytest.raises(TypeError, match=r"Scaled: inner: expected a Reward, got str"):
        Scaled("accuracy")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Scaled: inner: expected a value, got nothing"):
        Scaled()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"Scaled: unexpected argument 'sclae'"):
        Scaled(INNER, sclae=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"takes 1 positional arguments, got 2"):
        Scaled(INNER, 2.0)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"Scaled: extras\[1\]: expected a Schedule, got Reward|extras\[1\]"):
        Scaled(INNER, extras=[1.0, INNER])  # type: ignore[list-item]


def test_config_round_trip_pickle_and_equality() -> None:
    reward = Scaled(INNER, scale=4.0, extras=[1.0], name="s")
    config = reward.to_config()
    assert config.model_dump()["inner"] == {
        "kind": "column",
        "column": "accuracy",
        "low": -np.inf,
        "high": np.inf,
        "name": None,
    }
    rebuilt = build(config.model_dump())
    assert rebuilt == reward and hash(rebuilt) == hash(reward) and rebuilt.name == "s"
    assert pickle.loads(pickle.dumps(reward)) == reward
    assert Scaled(INNER, scale=5.0) != reward


def test_equality_covers_objects_outside_the_config() -> None:
    first, second = object(), object()
    assert Scaled(INNER, token=first) == Scaled(INNER, token=first)
    assert Scaled(INNER, token=first) != Scaled(INNER, token=second)
    assert hash(Scaled(INNER, token=first)) != hash(Scaled(INNER, token=second))


def test_signature_and_parameter_table_come_from_the_declaration() -> None:
    signature = inspect.signature(Scaled)
    assert list(signature.parameters) == ["inner", "scale", "extras", "token", "name"]
    assert signature.parameters["inner"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert signature.parameters["scale"].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["scale"].default == 2.0
    rows = {row[0]: row for row in parameters(Scaled)}
    assert rows["scale"] == ("scale", "float", "2.0", "the factor")
    assert rows["inner"][2] == "required"
    assert "callable" not in str(inspect.signature(Scaled(INNER)))  # instances keep their __call__ signature


def test_a_class_without_a_kind_is_opaque_but_composes() -> None:
    class Local(Reward):
        def _evaluate(self, batch: RewardBatch) -> Any:
            return np.ones(len(batch))

    local = Local()
    assert isinstance(config_of(local), OpaqueConfig)
    assert local == local and local != Local()
    composite = local * INNER
    assert composite(completions=["a"], accuracy=[2.0]).tolist() == [2.0]
    with pytest.raises(ConfigError, match="cannot build .*Local from a config"):
        build(composite.to_config().model_dump())


def test_a_subclass_without_a_kind_of_its_own_does_not_reuse_the_parents() -> None:
    class Tweaked(Scaled):
        pass

    assert isinstance(config_of(Tweaked(INNER)), OpaqueConfig)


def test_kinds_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        type("Other", (Component,), {}, kind="test_scaled")


def test_children_outside_the_config_count_for_equality() -> None:
    first, second = Scaled(INNER, token=object()), Scaled(INNER, token=object())
    assert Scaled(first) != Scaled(second) and hash(Scaled(first)) != hash(Scaled(second))
    assert Scaled(first) == Scaled(first)

    class Local(Reward):
        def _evaluate(self, batch: RewardBatch) -> Any:
            return np.ones(len(batch))

    one, other = Local(), Local()
    assert Scaled(one) != Scaled(other) and Scaled(one) == Scaled(one)


def test_none_for_a_component_with_a_default_means_the_default() -> None:
    from adaptive_length_reward import SoftLengthPenalty, TieredBudget, WhitespaceWords

    penalty = SoftLengthPenalty(budget=None, length=None)  # type: ignore[arg-type]
    assert penalty.budget == TieredBudget() and penalty.length == WhitespaceWords()


def test_a_node_that_declares_its_columns_is_shared_across_derived_batches() -> None:
    from adaptive_length_reward.evaluation import once, scope

    calls: list[int] = []
    base = RewardBatch.from_completions(["a", "b"], accuracy=[1.0, 2.0])
    derived = base.replace(difficulty=[1.0, 2.0])
    changed = base.replace(accuracy=[3.0, 4.0])
    with scope():
        for batch in (base, derived, changed):
            once("node", batch, calls.append, 1, reads=frozenset({"completions", "accuracy"}))
        once("node", derived, calls.append, 1)  # without reads: matched by identity only
    assert len(calls) == 3
    assert derived.origin(frozenset({"accuracy"})) is base and changed.origin(frozenset({"accuracy"})) is changed


def test_a_derived_batch_pickles_without_its_parent_and_does_not_keep_it_alive() -> None:
    import gc

    base = RewardBatch.from_completions(["a"], accuracy=[1.0])
    derived = base.replace(difficulty=[2.0])
    assert derived.origin(frozenset({"accuracy"})) is base
    restored = pickle.loads(pickle.dumps(derived))
    assert restored.origin(frozenset({"accuracy"})) is restored and restored.difficulty.tolist() == [2.0]
    del base
    gc.collect()
    assert derived.origin(frozenset({"accuracy"})) is derived


def test_once_stores_a_none_result_too() -> None:
    from adaptive_length_reward.evaluation import once, scope

    calls: list[int] = []
    batch = RewardBatch(["a"])
    with scope():
        assert once("none", batch, calls.append, 1) is None
        assert once("none", batch, calls.append, 1) is None
    assert calls == [1]
