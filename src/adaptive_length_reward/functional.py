"""Length rewards as pure NumPy functions: the maths, written once. Classes in
:mod:`adaptive_length_reward.penalties` wrap these.

Conventions: ``lengths`` are non-negative numbers; ``budgets``/``targets`` are non-negative numbers where
``inf`` means "no length term" (the function returns its no-penalty value); ``correct`` is 0/1 (bool or
float); ``groups`` is a dense integer group index (0..G-1) per sample. All functions return float64 arrays
of the inputs' broadcast shape and never produce NaN or inf from finite inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "alp_reward",
    "cosine_length_reward",
    "dapo_overlong_penalty",
    "group_pass_rate",
    "kimi_length_reward",
    "l1_exact_reward",
    "l1_max_reward",
    "shorter_better_reward",
    "soft_length_penalty",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def _floats(values: ArrayLike, name: str, expected: str, ok: Callable[[FloatArray], Any]) -> FloatArray:
    """``values`` as float64, or ValueError ``name: expected <expected>, got <the first values>``."""
    array = np.asarray(values, dtype=np.float64)
    if not ok(array):
        raise ValueError(f"{name}: expected {expected}, got {np.asarray(values).ravel()[:8].tolist()}")
    return array


def checked_lengths(lengths: ArrayLike, name: str = "lengths") -> FloatArray:
    """Lengths as float64, after checking they are finite and non-negative (ValueError naming ``name``)."""
    return _floats(lengths, name, "finite non-negative numbers", lambda a: np.isfinite(a).all() and (a >= 0).all())


def _budgets(budgets: ArrayLike, name: str = "budgets") -> FloatArray:
    return _floats(budgets, name, "non-negative numbers or inf (no penalty)", lambda a: (a >= 0).all())


def _correct(correct: ArrayLike) -> FloatArray:
    return _floats(correct, "correct", "0/1 values", lambda a: np.isin(a, (0.0, 1.0)).all())


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def _groups(groups: ArrayLike, n: int) -> tuple[npt.NDArray[np.intp], int]:
    """The group index as intp and the number of groups."""
    array = np.asarray(groups)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise ValueError(
            f"groups: expected {n} non-negative integer group indices, got shape {array.shape}, dtype {array.dtype}"
        )
    return array.astype(np.intp), int(array.max()) + 1 if n else 0


def _group_mean(values: FloatArray, groups: npt.NDArray[np.intp], n_groups: int) -> FloatArray:
    """Per sample, the mean of ``values`` over its group."""
    sizes = np.maximum(np.bincount(groups, minlength=n_groups), 1)
    mean: FloatArray = (np.bincount(groups, weights=values, minlength=n_groups) / sizes)[groups]
    return mean


def soft_length_penalty(
    lengths: ArrayLike, budgets: ArrayLike, *, beta: float = 1 / 500, bonus_cap: float = 0.0
) -> FloatArray:
    """PixelThink's soft length score (arXiv 2505.23727, Eq. 5; official ``seg_pixelthink.py``).

    ``s(L, B) = clip(1 + beta * (B - L), 0, 1 + bonus_cap)``; with the default ``bonus_cap = 0`` this is
    ``clip(1 - beta * max(0, L - B), 0, 1)``: 1 within budget, falling linearly to 0 at ``L = B + 1/beta``.
    The official code computes the under-budget "bonus" and clips it to 1, so no bonus is the default.
    An infinite budget means no penalty: the score is ``1 + bonus_cap``.

    Range: ``[0, 1 + bonus_cap]``.

    >>> soft_length_penalty([50, 96, 346, 596, 2000], 96).tolist()
    [1.0, 1.0, 0.5, 0.0, 0.0]
    >>> soft_length_penalty([500], float("inf")).tolist()
    [1.0]
    """
    _positive("beta", beta)
    if not (math.isfinite(bonus_cap) and bonus_cap >= 0):
        raise ValueError(f"bonus_cap: expected a finite number >= 0, got {bonus_cap!r}")
    L, B = checked_lengths(lengths), _budgets(budgets)
    with np.errstate(invalid="ignore"):
        raw = 1.0 + beta * (B - L)  # inf where B is inf
    return np.clip(raw, 0.0, 1.0 + bonus_cap)


def l1_exact_reward(correct: ArrayLike, lengths: ArrayLike, targets: ArrayLike, *, alpha: float = 0.0003) -> FloatArray:
    """L1 / LCPO-Exact (Aggarwal & Welleck, arXiv 2503.04697, Eq. 1): ``r = c - alpha * |B - L|``.

    The target ``B`` is the length the prompt asks for; ``inf`` means no length term (``r = c``).
    Range: ``(-inf, 1]``, finite for finite inputs.

    >>> l1_exact_reward([1, 0], [1000, 1000], [2000, 500]).tolist()
    [0.7, -0.15]
    """
    _positive("alpha", alpha)
    c, L, B = _correct(correct), checked_lengths(lengths), _budgets(targets, "targets")
    gap = np.where(np.isinf(B), 0.0, np.abs(np.where(np.isinf(B), 0.0, B) - L))
    return c - alpha * gap


def l1_max_reward(
    correct: ArrayLike, lengths: ArrayLike, targets: ArrayLike, *, alpha: float = 0.0003, delta: float = 0.5
) -> FloatArray:
    """L1 / LCPO-Max (arXiv 2503.04697, Eq. 2): ``r = c * clip(alpha * (B - L) + delta, 0, 1)``.

    ``inf`` target means no length term (``r = c``). Range: ``[0, 1]``.

    >>> l1_max_reward([1, 1, 0], [1000, 4000, 10], [1000, 1000, 1000]).tolist()
    [0.5, 0.0, 0.0]
    """
    _positive("alpha", alpha)
    if not math.isfinite(delta):
        raise ValueError(f"delta: expected a finite number, got {delta!r}")
    c, L, B = _correct(correct), checked_lengths(lengths), _budgets(targets, "targets")
    with np.errstate(invalid="ignore"):
        scale = np.clip(alpha * (B - L) + delta, 0.0, 1.0)
    return c * scale


def dapo_overlong_penalty(lengths: ArrayLike, *, max_length: float = 20480, cache_length: float = 4096) -> FloatArray:
    """DAPO soft overlong punishment (Yu et al., arXiv 2503.14476, Eq. 13).

    ``0`` for ``L <= Lmax - Lc``; ``((Lmax - Lc) - L) / Lc`` for ``Lmax - Lc < L <= Lmax``; ``-1`` beyond.
    Range: ``[-1, 0]``. Added to the task reward (not multiplied).

    >>> dapo_overlong_penalty([100, 18432, 20480, 30000], max_length=20480, cache_length=4096).tolist()
    [0.0, -0.5, -1.0, -1.0]
    """
    _positive("max_length", max_length)
    _positive("cache_length", cache_length)
    if cache_length > max_length:
        raise ValueError(f"cache_length: expected <= max_length ({max_length}), got {cache_length}")
    start = max_length - cache_length
    return np.clip((start - checked_lengths(lengths)) / cache_length, -1.0, 0.0)


def cosine_length_reward(
    correct: ArrayLike,
    lengths: ArrayLike,
    *,
    max_length: float = 1000,
    correct_range: tuple[float, float] = (0.5, 1.0),
    wrong_range: tuple[float, float] = (-1.0, -0.5),
    exceed_penalty: float | None = None,
) -> FloatArray:
    """Cosine length scaling (Yeo et al., "Demystifying Long CoT", arXiv 2502.03373, Eq. 1).

    ``r = eta_min + 0.5 * (eta_max - eta_min) * (1 + cos(pi * L / Lmax))``. Correct answers use
    ``correct_range = (min, max)`` so short correct answers earn the most; wrong answers use
    ``wrong_range = (min, max)`` *reversed*, so short wrong answers are punished most (longer thinking is
    encouraged when wrong) -- the same convention as TRL's ``get_cosine_scaled_reward``.
    ``L > Lmax`` gets ``exceed_penalty`` if given (the paper's ``r_e``), else the value at ``L = Lmax``.

    Range: ``[min(all ends, exceed_penalty), max(all ends)]``.

    >>> cosine_length_reward([1, 1, 0, 0], [0, 1000, 0, 1000]).tolist()
    [1.0, 0.5, -1.0, -0.5]
    """
    _positive("max_length", max_length)
    for name, (low, high) in (("correct_range", correct_range), ("wrong_range", wrong_range)):
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"{name}: expected finite (min, max) with min <= max, got {(low, high)}")
    if exceed_penalty is not None and not math.isfinite(exceed_penalty):
        raise ValueError(f"exceed_penalty: expected a finite number or None, got {exceed_penalty!r}")
    c, L = _correct(correct), checked_lengths(lengths)
    cosine = np.cos(np.pi * np.minimum(L / max_length, 1.0))
    eta_min = np.where(c == 1, correct_range[0], wrong_range[1])
    eta_max = np.where(c == 1, correct_range[1], wrong_range[0])
    reward = eta_min + 0.5 * (eta_max - eta_min) * (1.0 + cosine)
    if exceed_penalty is not None:
        reward = np.where(L > max_length, exceed_penalty, reward)
    return reward


def kimi_length_reward(correct: ArrayLike, lengths: ArrayLike, groups: ArrayLike) -> FloatArray:
    """Kimi k1.5 length reward (Kimi Team, arXiv 2501.12599, Sec. 2.3.3), per GRPO group.

    ``lambda_i = 0.5 - (L_i - min_g L) / (max_g L - min_g L)``; ``r = lambda_i`` if correct else
    ``min(0, lambda_i)``; ``0`` for the whole group where ``max_g L == min_g L``. Statistics are taken over
    the sample's own group (open-r1 takes them over the whole batch, which mixes prompts).
    Range: ``[-0.5, 0.5]``.

    >>> kimi_length_reward([1, 1, 0, 1], [10, 30, 20, 5], [0, 0, 0, 1]).tolist()
    [0.5, -0.5, 0.0, 0.0]
    """
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    low, high = np.full(n_groups, np.inf), np.full(n_groups, -np.inf)
    np.minimum.at(low, g, L)
    np.maximum.at(high, g, L)
    span = (high - low)[g]
    lam = np.where(span > 0, 0.5 - (L - low[g]) / np.where(span > 0, span, 1.0), 0.0)
    return np.where(c == 1, lam, np.minimum(0.0, lam))


def shorter_better_reward(
    correct: ArrayLike, lengths: ArrayLike, groups: ArrayLike, *, alpha: float = 2.0, beta: float = 0.001
) -> FloatArray:
    """ShorterBetter (Yi et al., arXiv 2504.21370, Eq. 3): ``r = alpha * c - beta * |L - L_SOL|``.

    ``L_SOL`` (sample optimal length) is the shortest correct length in the sample's group, or the group's
    mean length when no sample in it is correct. Range: ``(-inf, alpha]`` (finite for finite lengths).

    >>> shorter_better_reward([1, 1, 0], [100, 300, 50], [0, 0, 0]).tolist()
    [2.0, 1.8, -0.05]
    """
    _positive("alpha", alpha)
    _positive("beta", beta)
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    shortest_correct = np.full(n_groups, np.inf)
    np.minimum.at(shortest_correct, g[c == 1], L[c == 1])
    optimal = np.where(np.isfinite(shortest_correct[g]), shortest_correct[g], _group_mean(L, g, n_groups))
    return alpha * c - beta * np.abs(L - optimal)


def group_pass_rate(correct: ArrayLike, groups: ArrayLike) -> FloatArray:
    """Per sample, the share of correct samples in its group (the online solve rate of its prompt)."""
    c = _correct(correct)
    return _group_mean(c, *_groups(groups, c.shape[0]))


def alp_reward(
    correct: ArrayLike, lengths: ArrayLike, groups: ArrayLike, *, beta: float = 0.5, normalizer: float = 4096
) -> FloatArray:
    """Adaptive Length Penalty (Xiang et al., "Just Enough Thinking", arXiv 2506.05256, Eq. 2).

    ``r = c - (beta / N) * max(p_solved, 1/K) * L`` with ``p_solved`` the group's solve rate, ``K`` the
    group's size and ``N`` a normalising length. Easy prompts (high solve rate) pay the most per token.
    Defaults (``beta = 0.5``, ``N = 4096``) are this library's: a 4096-token answer to a prompt every
    rollout solves loses 0.5. Range: ``(-inf, 1]`` (finite for finite lengths).

    >>> alp_reward([1, 1, 0, 0], [4096, 0, 4096, 0], [0, 0, 1, 1]).tolist()
    [0.5, 1.0, -0.25, 0.0]
    """
    _positive("beta", beta)
    _positive("normalizer", normalizer)
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    sizes = np.bincount(g, minlength=n_groups)[g]
    rate = np.maximum(_group_mean(c, g, n_groups), 1.0 / np.maximum(sizes, 1))
    return c - (beta / normalizer) * rate * L
