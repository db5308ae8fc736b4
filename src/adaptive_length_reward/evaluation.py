"""Evaluation as a graph with one memo per call: every node runs at most once per
[`Reward.evaluate`][adaptive_length_reward.reward.Reward.evaluate].

A shaped reward is a graph: ``pixelthink()`` is a product whose accuracy parses every completion and whose
length penalty counts lengths and asks a budget for budgets and tiers; an L1-Max on segmentation accuracy uses
the same accuracy node as its correctness; several segmentation terms share one parse. The outermost
``evaluate`` opens a *scope*; inside it [`once`][] runs a node's computation the first time it is asked for on
a batch and hands the stored result to every later parent. Nodes are keyed by equality (components compare by
their configuration), so two equal nodes built separately also run once. The memo lives only as long as the call.

    >>> from adaptive_length_reward import RewardBatch
    >>> calls = []
    >>> batch = RewardBatch(["a b"])
    >>> with scope():
    ...     first = once("words", batch, lambda: calls.append(1) or 2)
    ...     second = once("words", batch, lambda: calls.append(1) or 2)
    >>> first, second, len(calls)
    (2, 2, 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["once", "scope"]

T = TypeVar("T")

_MEMO: ContextVar[dict[tuple[Hashable, int], tuple[Any, Any]] | None] = ContextVar("alr_evaluation", default=None)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Open an evaluation scope (a no-op inside one): results of [`once`][] are shared until it closes."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def once(node: Hashable, batch: Any, compute: Callable[..., T], *args: Any, reads: frozenset[str] | None = None) -> T:
    """``compute(*args)`` the first time ``node`` is asked for on ``batch`` in the open scope, the stored result after.

    Outside a scope it simply computes. ``batch`` is matched by identity (batches are immutable; a changed
    column makes a new batch) and kept alive with the result so its id cannot be reused within the scope.
    A node that declares the columns it ``reads`` is matched on the batch it was derived from as long as none of
    those columns changed: the accuracy a difficulty provider computed before ``difficulty`` was filled in is the
    accuracy the reward needs after.
    """
    memo = _MEMO.get()
    if memo is None:
        return compute(*args)
    if reads is not None:
        batch = batch.origin(reads)
    key = (node, id(batch))
    if key not in memo:  # a stored None is a result too
        memo[key] = (batch, compute(*args))
    result: T = memo[key][1]
    return result
