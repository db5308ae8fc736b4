"""The pure length-reward functions: hand-computed values from each paper, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import budgets_st, correct_st, group_batches, lengths_st

from adaptive_length_reward import functional as F

# ---------------------------------------------------------------------------------------------------------------
# Hand-computed values. Each case cites the equation it checks.
# ---------------------------------------------------------------------------------------------------------------


def test_soft_length_penalty_pixelthink_eq5() -> None:
    # PixelThink (arXiv 2505.23727) Eq. 5 / official seg_pixelthink.py: s = clip(1 - beta*max(0, L - B), 0, 1),
    # beta = 1/500. Easy budget 96: L=96 -> 1; L=196 -> 1 - 100/500 = 0.8; L=596 -> 0; L=1000 -> 0 (clipped).
    got = F.soft_length_penalty([10, 96, 196, 346, 596, 1000], [96] * 6)
    np.testing.assert_allclose(got, [1.0, 1.0, 0.8, 0.5, 0.0, 0.0], atol=1e-12)
    # Hard tier with U = 0.4: B = 256 + 25*0.4 = 266; L = 366 -> 1 - 100/500 = 0.8.
    np.testing.assert_allclose(F.soft_length_penalty([366], [266.0]), [0.8], atol=1e-12)
    # Medium tier: no penalty (infinite budget) whatever the length.
    np.testing.assert_allclose(F.soft_length_penalty([0, 10_000], [np.inf, np.inf]), [1.0, 1.0])


def test_soft_length_penalty_bonus_matches_official_clip() -> None:
    # The official code computes 1 + beta*(B - L) under budget, then clips to 1 (no bonus): bonus_cap=0.
    # With bonus_cap=0.2: L=0, B=96 -> min(1 + 96/500, 1.2) = 1.192; L=46 -> 1.1.
    np.testing.assert_allclose(F.soft_length_penalty([0, 46], [96, 96], bonus_cap=0.2), [1.192, 1.1], atol=1e-12)
    np.testing.assert_allclose(F.soft_length_penalty([0], [np.inf], bonus_cap=0.2), [1.2])


def test_l1_exact_eq1() -> None:
    # L1 (arXiv 2503.04697) Eq. 1: r = c - alpha*|n_gold - n_y|, alpha = 0.0003.
    # c=1, L=1000, target 2000 -> 1 - 0.3 = 0.7; c=0, L=1000, target 500 -> -0.15.
    np.testing.assert_allclose(F.l1_exact_reward([1, 0], [1000, 1000], [2000, 500]), [0.7, -0.15], atol=1e-12)
    np.testing.assert_allclose(F.l1_exact_reward([1], [50_000], [np.inf]), [1.0])  # no target: r = c


def test_l1_max_eq2() -> None:
    # L1-Max (arXiv 2503.04697) Eq. 2: r = c * clip(alpha*(n_gold - n_y) + delta, 0, 1), alpha 0.0003, delta 0.5.
    # L = target -> 0.5; L = target - 1000 -> 0.8; L = target + 4000 -> clip(-0.7) = 0; L far below -> 1.
    got = F.l1_max_reward([1, 1, 1, 1, 0], [2000, 1000, 6000, 0, 10], [2000] * 5)
    np.testing.assert_allclose(got, [0.5, 0.8, 0.0, 1.0, 0.0], atol=1e-12)


def test_dapo_overlong_eq13() -> None:
    # DAPO (arXiv 2503.14476) Eq. 13 with L_max = 20480, L_cache = 4096: 0 up to 16384, linear to -1 at 20480.
    got = F.dapo_overlong_penalty([0, 16384, 17408, 18432, 20480, 25000])
    np.testing.assert_allclose(got, [0.0, 0.0, -0.25, -0.5, -1.0, -1.0], atol=1e-12)


def test_cosine_eq1() -> None:
    # Demystifying Long CoT (arXiv 2502.03373) Eq. 1: r = eta_min + 0.5*(eta_max - eta_min)*(1 + cos(pi*L/L_max)).
    # Correct (0.5, 1.0): L = L_max/2 -> 0.5 + 0.25*(1 + 0) = 0.75. Wrong reversed (-0.5 .. -1): L = L_max/2 -> -0.75.
    got = F.cosine_length_reward([1, 0, 1], [500, 500, 250], max_length=1000)
    expected_quarter = 0.5 + 0.25 * (1 + math.cos(math.pi / 4))
    np.testing.assert_allclose(got, [0.75, -0.75, expected_quarter], atol=1e-12)
    # Beyond L_max: the exceed penalty r_e when given.
    np.testing.assert_allclose(F.cosine_length_reward([1], [2000], exceed_penalty=-10.0), [-10.0])
    np.testing.assert_allclose(F.cosine_length_reward([1], [2000]), [0.5])


def test_kimi_sec_2_3_3() -> None:
    # Kimi k1.5 (arXiv 2501.12599) Sec. 2.3.3: lambda = 0.5 - (len - min_len)/(max_len - min_len);
    # correct: lambda; wrong: min(0, lambda). Group 0 lengths 100, 200, 300 -> lambda 0.5, 0, -0.5.
    got = F.kimi_length_reward([1, 0, 0, 1, 1], [100, 200, 300, 7, 7], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(got, [0.5, 0.0, -0.5, 0.0, 0.0], atol=1e-12)
    # A wrong short answer gets min(0, 0.5) = 0, never a bonus.
    np.testing.assert_allclose(F.kimi_length_reward([0, 1], [100, 300], [0, 0]), [0.0, -0.5])


def test_shorter_better_eq3() -> None:
    # ShorterBetter (arXiv 2504.21370) Eq. 3: r = alpha*I(correct) - beta*|L - L_SOL|, alpha 2, beta 0.001;
    # L_SOL = shortest correct length in the group; group mean if none correct.
    got = F.shorter_better_reward([1, 1, 0, 0, 0], [100, 300, 50, 100, 300], [0, 0, 0, 1, 1])
    # group 0: L_SOL = 100 -> [2, 2 - 0.2, -0.05]; group 1: none correct, mean 200 -> [-0.1, -0.1].
    np.testing.assert_allclose(got, [2.0, 1.8, -0.05, -0.1, -0.1], atol=1e-12)


def test_alp_eq2() -> None:
    # ALP (arXiv 2506.05256) Eq. 2: r = 1[correct] - (beta/N) * max(p_solved, 1/K) * |y|.
    # Group 0: 3 of 4 correct, p = 0.75; beta = 0.5, N = 1000, L = 400 -> 1 - 0.0005*0.75*400 = 0.85.
    # Group 1: 0 of 2 correct, max(0, 1/2) = 0.5; L = 1000 -> 0 - 0.0005*0.5*1000 = -0.25.
    got = F.alp_reward([1, 1, 1, 0, 0, 0], [400, 0, 0, 0, 1000, 0], [0, 0, 0, 0, 1, 1], beta=0.5, normalizer=1000)
    np.testing.assert_allclose(got, [0.85, 1.0, 1.0, 0.0, -0.25, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.soft_length_penalty([1], [1], beta=0), "beta: expected a finite number > 0, got 0"),
        (lambda: F.soft_length_penalty([-1], [1]), "lengths: expected finite non-negative"),
        (lambda: F.soft_length_penalty([1], [np.nan]), "budgets: expected non-negative numbers or inf"),
        (lambda: F.l1_exact_reward([2], [1], [1]), "correct: expected 0/1"),
        (lambda: F.kimi_length_reward([1, 1], [1, 2], [0.5, 1]), "groups: expected 2 non-negative integer"),
        (lambda: F.dapo_overlong_penalty([1], max_length=10, cache_length=20), "cache_length: expected <= max_length"),
        (
            lambda: F.cosine_length_reward([1], [1], correct_range=(1.0, 0.5)),
            "correct_range: expected finite (min, max)",
        ),
    ],
)
def test_bad_arguments_name_the_argument(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------------------------
# Properties.
# ---------------------------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(lengths_st, budgets_st), min_size=1, max_size=50), st.floats(1e-6, 1.0), st.floats(0.0, 2.0))
def test_soft_length_penalty_range(pairs: list[tuple[int, float]], beta: float, cap: float) -> None:
    lengths, budgets = zip(*pairs)
    s = F.soft_length_penalty(lengths, budgets, beta=beta, bonus_cap=cap)
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1 + cap).all()


@given(lengths_st, lengths_st, budgets_st, budgets_st)
def test_soft_length_penalty_monotone(l1: int, l2: int, b1: float, b2: float) -> None:
    (short, long), (small, large) = sorted((l1, l2)), sorted((b1, b2))
    # Non-increasing in length at a fixed budget, non-decreasing in budget at a fixed length.
    assert F.soft_length_penalty([long], [small])[0] <= F.soft_length_penalty([short], [small])[0]
    assert F.soft_length_penalty([short], [small])[0] <= F.soft_length_penalty([short], [large])[0]


@given(hnp.arrays(np.int64, st.integers(1, 40), elements=correct_st), st.data())
def test_budgeted_peers_ranges(correct: np.ndarray, data: st.DataObject) -> None:
    n = correct.size
    lengths = data.draw(hnp.arrays(np.int64, n, elements=lengths_st))
    targets = data.draw(hnp.arrays(np.float64, n, elements=budgets_st))
    exact = F.l1_exact_reward(correct, lengths, targets)
    assert np.isfinite(exact).all() and (exact <= 1).all()
    maxed = F.l1_max_reward(correct, lengths, targets)
    assert np.isfinite(maxed).all() and (maxed >= 0).all() and (maxed <= 1).all()
    dapo = F.dapo_overlong_penalty(lengths, max_length=30_000, cache_length=5_000)
    assert ((dapo >= -1) & (dapo <= 0)).all()
    cosine = F.cosine_length_reward(correct, lengths, max_length=20_000, exceed_penalty=-2.0)
    assert np.isfinite(cosine).all() and (cosine >= -2).all() and (cosine <= 1).all()


@given(group_batches())
def test_group_rewards_ranges(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    correct, lengths, groups = batch
    kimi = F.kimi_length_reward(correct, lengths, groups)
    assert np.isfinite(kimi).all() and (kimi >= -0.5).all() and (kimi <= 0.5).all()
    sb = F.shorter_better_reward(correct, lengths, groups)
    assert np.isfinite(sb).all() and (sb <= 2.0).all()
    alp = F.alp_reward(correct, lengths, groups)
    assert np.isfinite(alp).all() and (alp <= 1.0).all()
    rate = F.group_pass_rate(correct, groups)
    assert ((rate >= 0) & (rate <= 1)).all()


@given(group_batches(), st.data())
def test_group_rewards_depend_only_on_own_group(
    batch: tuple[np.ndarray, np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    """Changing every other group's samples leaves a group's rewards unchanged (Kimi, ShorterBetter, ALP)."""
    correct, lengths, groups = batch
    target = data.draw(st.sampled_from(sorted(set(groups.tolist()))))
    others = groups != target
    new_correct, new_lengths = correct.copy(), lengths.copy()
    new_correct[others] = data.draw(hnp.arrays(np.int64, int(others.sum()), elements=correct_st))
    new_lengths[others] = data.draw(hnp.arrays(np.int64, int(others.sum()), elements=st.integers(0, 50_000)))
    mine = ~others
    for fn in (F.kimi_length_reward, F.shorter_better_reward, F.alp_reward):
        before = fn(correct, lengths, groups)[mine]
        after = fn(new_correct, new_lengths, groups)[mine]
        np.testing.assert_array_equal(before, after, err_msg=fn.__name__)


def test_kimi_is_per_group_not_per_batch() -> None:
    # open-r1 takes min/max over the whole batch; here group 1's very long sample must not touch group 0.
    a = F.kimi_length_reward([1, 1, 1, 1], [10, 20, 5, 10_000], [0, 0, 1, 1])
    np.testing.assert_allclose(a[:2], [0.5, -0.5])
