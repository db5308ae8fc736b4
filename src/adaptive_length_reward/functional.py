"""Length rewards as pure NumPy functions: the maths, written once. Classes in
[`penalties`][] wrap these.

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
    "adaptthink_reward",
    "alp_reward",
    "cosine_length_reward",
    "dapo_overlong_penalty",
    "group_pass_rate",
    "grpo_lead_reward",
    "hapo_history_update",
    "hapo_length_reward",
    "hapo_reward",
    "kimi_length_reward",
    "l1_exact_reward",
    "l1_max_reward",
    "laser_d_reward",
    "laser_d_targets",
    "laser_reward",
    "only_correct",
    "shorter_better_reward",
    "sign_safe_scale",
    "soft_length_penalty",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
_FLOAT_MAX = float(np.finfo(np.float64).max)


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

    Args:
        lengths: the lengths ``L``, one per sample.
        budgets: the budgets ``B``: one per sample, or one for all; ``inf`` for no penalty.
        beta: the slope; the score reaches 0 at ``L = B + 1/beta``.
        bonus_cap: a score above 1 under budget, up to ``1 + bonus_cap`` (official 0).

    Returns:
        The score per sample.

    Raises:
        ValueError: ``beta`` not a finite number > 0, ``bonus_cap`` not a finite number >= 0, or invalid lengths
            or budgets.
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
    Range: ``[-M, 1]``, always finite, with ``M`` float64's largest finite number (a penalty
    ``alpha * |B - L|`` beyond it saturates at ``M``).

    >>> l1_exact_reward([1, 0], [1000, 1000], [2000, 500]).tolist()
    [0.7, -0.15]
    """
    _positive("alpha", alpha)
    c, L, B = _correct(correct), checked_lengths(lengths), _budgets(targets, "targets")
    gap = np.where(np.isinf(B), 0.0, np.abs(np.where(np.isinf(B), 0.0, B) - L))
    with np.errstate(over="ignore"):  # beyond float64: saturates (documented above)
        return c - np.minimum(alpha * gap, _FLOAT_MAX)


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
    mean length when no sample in it is correct. Range: ``[-M, alpha]``, always finite, with ``M`` float64's
    largest finite number (about ``1.8e308``): a penalty ``beta * |L - L_SOL|`` beyond ``M`` saturates at ``M``,
    and a group whose lengths sum beyond ``M`` still gets its mean (computed on scaled lengths).

    >>> shorter_better_reward([1, 1, 0], [100, 300, 50], [0, 0, 0]).tolist()
    [2.0, 1.8, -0.05]
    >>> shorter_better_reward([1, 0], [0, 1e308], [0, 0], beta=10.0).tolist()
    [2.0, -1.7976931348623157e+308]
    """
    _positive("alpha", alpha)
    _positive("beta", beta)
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    shortest_correct = np.full(n_groups, np.inf)
    np.minimum.at(shortest_correct, g[c == 1], L[c == 1])
    optimal = np.where(np.isfinite(shortest_correct[g]), shortest_correct[g], _finite_group_mean(L, g, n_groups))
    with np.errstate(over="ignore"):  # beyond float64: saturates (documented above)
        penalty = np.minimum(beta * np.abs(L - optimal), _FLOAT_MAX)
    return alpha * c - penalty


def _finite_group_mean(values: FloatArray, groups: npt.NDArray[np.intp], n_groups: int) -> FloatArray:
    """``_group_mean`` of finite non-negative ``values``, finite even where a group's sum overflows float64
    (then recomputed on values scaled by their maximum; otherwise the plain, bit-identical mean)."""
    with np.errstate(over="ignore"):
        mean = _group_mean(values, groups, n_groups)
    if np.isfinite(mean).all():
        return mean
    scale = float(values.max())
    return _group_mean(values / scale, groups, n_groups) * scale


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
    rollout solves loses 0.5. Range: ``[-M, 1]``, always finite, with ``M`` float64's largest finite number (a
    penalty beyond it saturates at ``M``).

    >>> alp_reward([1, 1, 0, 0], [4096, 0, 4096, 0], [0, 0, 1, 1]).tolist()
    [0.5, 1.0, -0.25, 0.0]
    """
    _positive("beta", beta)
    _positive("normalizer", normalizer)
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    sizes = np.bincount(g, minlength=n_groups)[g]
    rate = np.maximum(_group_mean(c, g, n_groups), 1.0 / np.maximum(sizes, 1))
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: saturates (documented); L = 0 pays 0
        penalty = np.where(L > 0, (beta / normalizer) * rate * L, 0.0)
        return c - np.minimum(penalty, _FLOAT_MAX)


# -- Correct-only penalties and the sign-safe scaling ----------------------------------------------------------------


def only_correct(values: ArrayLike, correct: ArrayLike, *, neutral: float | ArrayLike) -> FloatArray:
    """``values`` where the answer is correct, ``neutral`` (the method's no-length value) where it is wrong.

    The ``only_correct`` option of every length reward: prime-rl #2829 (``gate_by_correctness``) and PipelineRL
    #126 apply the length term to correct answers only, so a wrong answer is never pushed to fail fast.

    >>> only_correct([0.5, 0.5], [1, 0], neutral=1.0).tolist()
    [0.5, 1.0]
    """
    c = _correct(correct)
    return np.where(c == 1, np.asarray(values, dtype=np.float64), np.asarray(neutral, dtype=np.float64))


def sign_safe_scale(base: ArrayLike, scale: ArrayLike) -> FloatArray:
    """A base reward scaled by a length multiplier ``s`` (1 = no penalty) so that longer never scores higher.

    ``r = base * s`` where ``base >= 0`` (PixelThink's ``R_acc * s(L, B)``, arXiv 2505.23727 Eq. 5, unchanged) and
    ``r = base * (2 - s)`` where ``base < 0``: one rule, ``r = base - |base| (1 - s)``. A plain product rewards a
    longer completion once the base is negative (``-1 * 0.5 > -1 * 1``), the sign bug found in NeMo-RL PR #3852's
    review; here ``r`` is non-increasing in ``L`` whatever the sign of ``base``.

    >>> sign_safe_scale([2.0, -2.0, -2.0], [0.5, 1.0, 0.5]).tolist()
    [1.0, -2.0, -3.0]
    """
    b, s = np.asarray(base, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    return np.where(b >= 0, b * s, b * (2.0 - s))


# -- GRPO-LEAD, LASER / LASER-D, HAPO, AdaptThink ---------------------------------------------------------------------


def grpo_lead_reward(
    correct: ArrayLike, lengths: ArrayLike, groups: ArrayLike, *, alpha: float = 0.5, wrong_reward: float = -1.0
) -> FloatArray:
    """GRPO-LEAD's length-dependent accuracy reward (Zhang & Zuo, arXiv 2504.09696, "length-dependent accuracy
    reward"; TRL PR #6222, ``trl/rewards``: ``get_length_scaled_accuracy_reward``).

    ``r = exp(-alpha * z)`` for a correct answer, ``z = (L - mean) / std`` its length's z-score among the *correct*
    answers of its group (population std; ``z = 0`` where the group has one correct answer or equal lengths);
    ``r = wrong_reward`` (-1) for a wrong one. Defaults are TRL PR #6222's (``alpha = 0.5``, ``-1``).
    Range: ``[min(wrong_reward, exp(-alpha sqrt(K - 1))), min(M, exp(alpha sqrt(K - 1)))]`` for groups of ``K`` (a
    z-score among ``n`` values is at most ``sqrt(n - 1)`` in size; ``M`` is float64's largest finite number, where
    a huge ``alpha`` saturates). Lengths whose moments overflow float64 get their z-scores on scaled lengths.

    >>> np.round(grpo_lead_reward([1, 1, 0], [100, 300, 50], [0, 0, 0], alpha=0.5), 4).tolist()
    [1.6487, 0.6065, -1.0]
    """
    _positive("alpha", alpha)
    if not math.isfinite(wrong_reward):
        raise ValueError(f"wrong_reward: expected a finite number, got {wrong_reward!r}")
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    ok = c == 1
    with np.errstate(over="ignore", invalid="ignore"):
        z, exact = _correct_zscores(L, g, ok, n_groups)
        if not exact:  # moments beyond float64: a z-score is scale-free, so take it on L / max L
            z, exact = _correct_zscores(L / L.max(), g, ok, n_groups)
        return np.where(ok, np.minimum(np.exp(-alpha * z), _FLOAT_MAX), wrong_reward)


def _correct_zscores(
    L: FloatArray, g: npt.NDArray[np.intp], ok: npt.NDArray[np.bool_], n_groups: int
) -> tuple[FloatArray, bool]:
    """Per sample, its length's z-score among the correct answers of its group (0 without spread), and whether the
    group moments stayed within float64."""
    count = np.bincount(g[ok], minlength=n_groups).astype(np.float64)
    mean = np.bincount(g[ok], weights=L[ok], minlength=n_groups) / np.maximum(count, 1.0)
    square = np.bincount(g[ok], weights=(L[ok] - mean[g[ok]]) ** 2, minlength=n_groups) / np.maximum(count, 1.0)
    std = np.sqrt(square)[g]
    spread = std > 1e-9 * np.maximum(1.0, mean[g])
    z: FloatArray = np.where(spread, (L - mean[g]) / np.where(spread, std, 1.0), 0.0)
    return z, bool(np.isfinite(mean).all() and np.isfinite(square).all())


def laser_reward(correct: ArrayLike, lengths: ArrayLike, targets: ArrayLike, *, alpha: float = 0.5) -> FloatArray:
    """LASER (Liu et al., "Learn to Reason Efficiently with Adaptive Length-based Reward Shaping", arXiv 2505.15612,
    Eq. 2 with Table 2's LASER row: the unified form ``R = C(y) + lambda(y) S(L(y))`` with a step function ``S``;
    code: hkust-nlp/Laser).

    ``r = c + alpha * c * 1[L <= L_T]``: a correct answer within the target length earns a bonus ``alpha``; wrong
    answers get 0 whatever their length. An infinite target gives every correct answer the bonus (no length term).
    Range: ``[0, 1 + alpha]``.

    >>> laser_reward([1, 1, 0], [100, 300, 50], [200, 200, 200]).tolist()
    [1.5, 1.0, 0.0]
    """
    _positive("alpha", alpha)
    c, L, T = _correct(correct), checked_lengths(lengths), _budgets(targets, "targets")
    return c + alpha * c * (L <= T)


def laser_d_targets(
    correct: ArrayLike,
    lengths: ArrayLike,
    groups: ArrayLike,
    *,
    pass_rate_cuts: tuple[float, float] = (1 / 3, 2 / 3),
    max_target: float = math.inf,
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """LASER-D's difficulty-aware adaptive targets (arXiv 2505.15612, Eq. 2 / Table 2's LASER-D row: the step
    reward with a target ``L_A`` per difficulty level, set by the expected-correct-responses rule; code:
    hkust-nlp/Laser): ``(targets, buckets)`` per sample.

    A group's difficulty bucket comes from its solve rate ``p``: easy (0) where ``p >= cuts[1]``, medium (1) where
    ``cuts[0] <= p < cuts[1]``, hard (2) below. Each bucket's target is the smallest length ``L_A`` whose *expected
    correct responses* reach one, ``ECR = K * P(correct and length <= L_A) >= 1`` (``K`` completions per prompt):
    with ``G`` groups in the bucket, the ``G``-th shortest correct length of the bucket. A bucket without ``G``
    correct answers gets ``max_target``. The paper re-estimates the targets on a monitoring set every few steps;
    here they are estimated from the batch being scored (the same rule on the policy's current rollouts).

    >>> targets, buckets = laser_d_targets([1, 1, 1, 0, 1, 0], [10, 30, 20, 50, 40, 60], [0, 0, 1, 1, 2, 2])
    >>> targets.tolist(), buckets.tolist()
    ([10.0, 10.0, 40.0, 40.0, 40.0, 40.0], [0, 0, 1, 1, 1, 1])
    """
    low, high = pass_rate_cuts
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(f"pass_rate_cuts: expected (low, high) with 0 <= low <= high <= 1, got {pass_rate_cuts}")
    if not (max_target >= 0):
        raise ValueError(f"max_target: expected a number >= 0 or inf, got {max_target!r}")
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    rate = _group_mean(c, g, n_groups)
    buckets = np.where(rate >= high, 0, np.where(rate >= low, 1, 2)).astype(np.intp)
    targets = np.full(L.shape[0], float(max_target))
    for bucket in range(3):
        rows = buckets == bucket
        need = np.unique(g[rows]).size
        solved = np.sort(L[rows & (c == 1)])
        if need and solved.size >= need:
            targets[rows] = solved[need - 1]
    return targets, buckets


def laser_d_reward(
    correct: ArrayLike,
    lengths: ArrayLike,
    groups: ArrayLike,
    *,
    alpha: float = 0.5,
    pass_rate_cuts: tuple[float, float] = (1 / 3, 2 / 3),
    max_target: float = math.inf,
) -> FloatArray:
    """LASER-D (arXiv 2505.15612): [`laser_reward`][] with the targets of [`laser_d_targets`][].

    Range: ``[0, 1 + alpha]``.

    >>> laser_d_reward([1, 1, 1, 0, 1, 0], [10, 30, 20, 50, 40, 60], [0, 0, 1, 1, 2, 2]).tolist()
    [1.5, 1.0, 1.5, 0.0, 1.5, 0.0]
    """
    targets, _ = laser_d_targets(correct, lengths, groups, pass_rate_cuts=pass_rate_cuts, max_target=max_target)
    return laser_reward(correct, lengths, targets, alpha=alpha)


def hapo_length_reward(
    correct: ArrayLike, lengths: ArrayLike, history: ArrayLike, *, correct_floor: float = -0.7
) -> FloatArray:
    """HAPO's history-aware length reward (Huang et al., arXiv 2505.11225, the cosine length reward; official code
    ``utils.py::compute_len_reward``).

    ``f(L, h) = cos(min(pi/2 * L / h, pi))`` with ``h`` the shortest correct length seen for the problem in earlier
    steps: 1 at ``L = 0``, 0 at ``L = h``, -1 from ``L = 2h``. A correct answer gets ``max(correct_floor, f)``
    (-0.7: a correct answer always out-scores a wrong one), a wrong one ``min(0, f)`` (a short wrong answer is not
    rewarded, a long one is). Without history (``h`` NaN, or ``h <= 0`` as in the official code) the reward is 0.
    Range: ``[-1, 1]``.

    >>> np.round(hapo_length_reward([1, 1, 1, 0, 0], [0, 50, 300, 20, 300], [100, 100, 100, 100, np.nan]), 4).tolist()
    [1.0, 0.7071, -0.7, 0.0, 0.0]
    """
    if not (math.isfinite(correct_floor) and -1.0 <= correct_floor <= 0.0):
        raise ValueError(f"correct_floor: expected a number in [-1, 0], got {correct_floor!r}")
    c, L = _correct(correct), checked_lengths(lengths)
    h = np.asarray(history, dtype=np.float64)
    known = np.isfinite(h) & (h > 0)
    ratio = np.where(known, L / np.where(known, h, 1.0), 0.0)
    f = np.cos(np.minimum(ratio * (np.pi / 2), np.pi))
    shaped = np.where(c == 1, np.maximum(correct_floor, f), np.minimum(0.0, f))
    return np.where(known, shaped, 0.0)


def hapo_reward(
    correct: ArrayLike, lengths: ArrayLike, history: ArrayLike, *, weight: float = 1.0, correct_floor: float = -0.7
) -> FloatArray:
    """HAPO's full reward (arXiv 2505.11225; official ``w_lr``): ``r = c + weight * f_len``
    ([`hapo_length_reward`][]).

    Range: ``[-weight, 1 + weight]``.

    >>> hapo_reward([1, 0], [100, 300], [100, 100]).tolist()
    [1.0, -1.0]
    """
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight: expected a finite number >= 0, got {weight!r}")
    return _correct(correct) + weight * hapo_length_reward(correct, lengths, history, correct_floor=correct_floor)


def hapo_history_update(history: ArrayLike, correct: ArrayLike, lengths: ArrayLike, groups: ArrayLike) -> FloatArray:
    """HAPO's history update (arXiv 2505.11225, history state "min"; official tracker ``mode="min"``): per group
    (problem), the minimum of its
    history and the lengths of this step's correct answers; NaN stays NaN where nothing was ever solved.

    ``history`` holds one value per group (indexed by the dense group index).

    >>> hapo_history_update([np.nan, 40.0], [1, 0, 1], [50, 10, 30], [0, 0, 1]).tolist()
    [50.0, 30.0]
    """
    c, L = _correct(correct), checked_lengths(lengths)
    g, n_groups = _groups(groups, L.shape[0])
    h: FloatArray = np.array(history, dtype=np.float64)
    if h.shape != (n_groups,):
        raise ValueError(f"history: expected {n_groups} values (one per group), got shape {h.shape}")
    shortest = np.full(n_groups, np.inf)
    np.minimum.at(shortest, g[c == 1], L[c == 1])
    seen = np.isfinite(shortest)
    h[seen] = np.fmin(h[seen], shortest[seen])
    return h


def adaptthink_reward(
    accuracy: ArrayLike, reasoning_lengths: ArrayLike, reference_accuracy: ArrayLike, *, delta: float = 0.05
) -> FloatArray:
    """AdaptThink (Zhang et al., arXiv 2505.13417, the constrained objective's reward after the Lagrangian step;
    official repository THU-KEG/AdaptThink): ``r = delta * 1[no thinking] + R(x, y) - mean R_ref(x)``.

    ``R`` is the task accuracy, ``mean R_ref(x)`` the reference model's mean accuracy on the prompt (sampled before
    training), and a completion does not think when its reasoning is empty (``<think></think>`` at once, length 0).
    The paper's ``delta`` default is 0.05. Range: ``[min R - max R_ref, max R - min R_ref + delta]``.

    >>> np.round(adaptthink_reward([1, 1, 0], [0, 40, 0], [0.5, 0.5, 0.5]), 4).tolist()
    [0.55, 0.5, -0.45]
    """
    if not (math.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta: expected a finite number >= 0, got {delta!r}")
    acc = _floats(accuracy, "accuracy", "finite numbers", lambda a: np.isfinite(a).all())
    ref = _floats(reference_accuracy, "reference_accuracy", "finite numbers", lambda a: np.isfinite(a).all())
    L = checked_lengths(reasoning_lengths, "reasoning_lengths")
    reward: FloatArray = delta * (L == 0) + acc - ref
    return reward
