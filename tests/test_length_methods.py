"""GRPO-LEAD, LASER / LASER-D, HAPO and AdaptThink (issue 16), ``only_correct`` on every length reward, and the
sign-safe composition.

Hand-computed cases from each paper's definition (the pure functions and the reward classes), hypothesis
properties per method (bounds, monotonicity in length for fixed correctness, group invariances), HAPO's resumable
JSON state, and the sign-safety property over every length penalty x base-reward sign.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import group_batches

import adaptive_length_reward as alr
from adaptive_length_reward import functional as F
from adaptive_length_reward import history as H

# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------------------------


def test_grpo_lead_hand_computed() -> None:
    # GRPO-LEAD (arXiv 2504.09696; TRL PR #6222): correct -> exp(-alpha z), z over the group's correct lengths
    # (population std), wrong -> -1. Group 0 correct lengths 100, 200, 300: mean 200, std sqrt(20000/3) = 81.65;
    # z = -1.2247, 0, 1.2247 -> exp(+-0.5*1.2247) = 1.8452, 1, 0.5419. Group 1: one correct -> z = 0 -> 1.
    got = F.grpo_lead_reward([1, 1, 1, 0, 1, 0], [100, 200, 300, 10, 50, 5], [0, 0, 0, 0, 1, 1], alpha=0.5)
    z = 100 / math.sqrt(20000 / 3)
    np.testing.assert_allclose(got, [math.exp(0.5 * z), 1.0, math.exp(-0.5 * z), -1.0, 1.0, -1.0], rtol=1e-12)
    # Equal correct lengths: std 0 -> z = 0 -> every correct answer earns exactly 1.
    np.testing.assert_allclose(F.grpo_lead_reward([1, 1], [7, 7], [0, 0]), [1.0, 1.0])
    np.testing.assert_allclose(F.grpo_lead_reward([1, 0], [1, 2], [0, 0], wrong_reward=0.0), [1.0, 0.0])


def test_laser_hand_computed() -> None:
    # LASER (arXiv 2505.15612): r = c + alpha c 1[L <= L_T]; alpha 0.5, L_T = 100.
    got = F.laser_reward([1, 1, 0, 0, 1], [100, 101, 50, 500, 0], [100] * 5)
    np.testing.assert_allclose(got, [1.5, 1.0, 0.0, 0.0, 1.5])
    np.testing.assert_allclose(F.laser_reward([1], [10**6], [np.inf]), [1.5])  # no target: every correct answer


def test_laser_d_targets_hand_computed() -> None:
    # Groups of K = 4. Group 0 solves 4/4 (easy), group 1 solves 2/4 (medium), groups 2 and 3 solve 1/4, 0/4 (hard).
    correct = [1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    lengths = [40, 10, 30, 20, 60, 50, 5, 5, 90, 1, 1, 1, 1, 1, 1, 1]
    groups = np.repeat([0, 1, 2, 3], 4)
    targets, buckets = F.laser_d_targets(correct, lengths, groups, max_target=500)
    assert buckets.tolist() == [0] * 4 + [1] * 4 + [2] * 8
    # ECR >= 1 with one group in a bucket: the shortest correct length (easy 10, medium 50). The hard bucket has
    # two groups but one correct answer: ECR = 4 * 1/8 = 0.5 < 1 at every length -> max_target.
    assert targets.tolist() == [10.0] * 4 + [50.0] * 4 + [500.0] * 8
    rewards = F.laser_d_reward(correct, lengths, groups, max_target=500)
    assert rewards[:8].tolist() == [1.0, 1.5, 1.0, 1.0, 1.0, 1.5, 0.0, 0.0] and rewards[8] == 1.5


def test_hapo_hand_computed() -> None:
    # HAPO (arXiv 2505.11225; official compute_len_reward): f = cos(min(pi/2 L/h, pi)); correct max(-0.7, f);
    # wrong min(0, f); no history -> 0. h = 100: L = 0 -> 1; 50 -> cos(pi/4); 100 -> 0; 150 -> cos(3pi/4) = -0.7071
    # (correct: floored at -0.7); 250 -> -1 (wrong) / -0.7 (correct).
    got = F.hapo_length_reward([1, 1, 1, 1, 0, 0, 0, 1], [0, 50, 100, 150, 50, 150, 250, 10], [100] * 7 + [np.nan])
    expected = [1.0, math.cos(math.pi / 4), 0.0, -0.7, 0.0, math.cos(3 * math.pi / 4), -1.0, 0.0]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(F.hapo_reward([1, 0], [0, 250], [100, 100], weight=0.5), [1.5, -0.5])
    # h = 0 (a correct empty answer) is the official code's "no history": reward 0.
    np.testing.assert_allclose(F.hapo_length_reward([1], [5], [0.0]), [0.0])


def test_adaptthink_hand_computed() -> None:
    # AdaptThink (arXiv 2505.13417): r = delta 1[no thinking] + R - mean R_ref; delta = 0.05.
    got = F.adaptthink_reward([1, 1, 0, 0], [0, 12, 0, 12], [0.75, 0.75, 0.25, 0.25])
    np.testing.assert_allclose(got, [0.3, 0.25, -0.2, -0.25], atol=1e-12)


def test_sign_safe_scale_hand_computed() -> None:
    # base >= 0: base * s (PixelThink); base < 0: base * (2 - s).
    np.testing.assert_allclose(F.sign_safe_scale([5, -1, -1, 0], [0.5, 1.0, 0.25, 0.1]), [2.5, -1.0, -1.75, 0.0])


def _batch(**columns: Any) -> alr.RewardBatch:
    n = len(next(iter(columns.values())))
    return alr.RewardBatch.from_completions(["x"] * n, **columns)


def test_reward_classes_match_the_functions() -> None:
    length = alr.PrecomputedLength()
    batch = _batch(
        lengths=[100, 200, 300, 10, 50, 5],
        correct=[1, 1, 1, 0, 1, 0],
        group_ids=[0, 0, 0, 0, 1, 1],
        problem_id=["a", "a", "a", "a", "b", "b"],
        reference_accuracy=[0.5] * 6,
    )
    lengths, correct, groups = [100, 200, 300, 10, 50, 5], [1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 1, 1]
    np.testing.assert_array_equal(
        alr.GRPOLeadReward(length=length)(batch), F.grpo_lead_reward(correct, lengths, groups)
    )
    np.testing.assert_array_equal(
        alr.LASERReward(length=length, budget=alr.FixedBudget(150))(batch), F.laser_reward(correct, lengths, [150] * 6)
    )
    out = alr.LASERDReward(length=length).evaluate(batch)
    np.testing.assert_array_equal(out.rewards, F.laser_d_reward(correct, lengths, groups))
    assert out.columns["tier"].tolist() == ["easy"] * 4 + ["medium"] * 2  # solve rates 3/4 and 1/2
    assert out.columns["budget"].tolist() == [100.0] * 4 + [50.0] * 2
    np.testing.assert_array_equal(alr.HAPOReward(length=length)(batch), np.asarray(correct, dtype=float))  # no history
    think = alr.AdaptThinkReward(length=length)
    np.testing.assert_allclose(think(batch), np.asarray(correct) - 0.5)


# ---------------------------------------------------------------------------------------------------------------
# Properties per method
# ---------------------------------------------------------------------------------------------------------------


def _monotone_within_groups(correct: np.ndarray, lengths: np.ndarray, groups: np.ndarray, r: np.ndarray) -> None:
    """Within a group and a correctness value, a longer completion never scores higher."""
    for g in np.unique(groups):
        for c in (0, 1):
            rows = np.flatnonzero((groups == g) & (correct == c))
            order = rows[np.argsort(lengths[rows], kind="stable")]
            for a, b in zip(order[:-1], order[1:]):
                if lengths[a] < lengths[b]:
                    assert r[a] >= r[b] - 1e-9, (lengths[a], r[a], lengths[b], r[b])


@given(group_batches(), st.floats(0.01, 3.0))
def test_grpo_lead_properties(batch: tuple[np.ndarray, np.ndarray, np.ndarray], alpha: float) -> None:
    correct, lengths, groups = batch
    r = F.grpo_lead_reward(correct, lengths, groups, alpha=alpha)
    sizes = np.bincount(groups)[groups]
    assert np.isfinite(r).all()
    assert (r[correct == 0] == -1.0).all()
    ok = correct == 1
    assert (r[ok] > 0).all() and (r[ok] <= np.exp(alpha * np.sqrt(np.maximum(sizes[ok] - 1, 0))) + 1e-9).all()
    _monotone_within_groups(correct, lengths, groups, r)
    # Group invariances: an affine change of one group's lengths (a z-score's invariance) and a permutation.
    scaled = np.where(groups == groups[0], 3 * lengths + 17, lengths)
    np.testing.assert_allclose(F.grpo_lead_reward(correct, scaled, groups, alpha=alpha), r, rtol=1e-9, atol=1e-12)
    order = np.random.default_rng(0).permutation(len(r))
    np.testing.assert_allclose(F.grpo_lead_reward(correct[order], lengths[order], groups[order], alpha=alpha), r[order])


@given(group_batches(), st.floats(0.01, 2.0), st.floats(0, 60_000))
def test_laser_properties(batch: tuple[np.ndarray, np.ndarray, np.ndarray], alpha: float, target: float) -> None:
    correct, lengths, groups = batch
    r = F.laser_reward(correct, lengths, np.full(len(correct), target), alpha=alpha)
    assert ((r >= 0) & (r <= 1 + alpha)).all() and (r[correct == 0] == 0).all()
    _monotone_within_groups(correct, lengths, groups, r)
    rd = F.laser_d_reward(correct, lengths, groups, alpha=alpha)
    assert ((rd >= 0) & (rd <= 1 + alpha)).all() and (rd[correct == 0] == 0).all()
    _monotone_within_groups(correct, lengths, groups, rd)
    targets, buckets = F.laser_d_targets(correct, lengths, groups)
    for b in np.unique(buckets):  # one target per bucket, and at least one correct answer per prompt fits it
        inside = buckets == b
        assert np.unique(targets[inside]).size == 1
        if np.isfinite(targets[inside][0]):
            fits = (correct == 1) & inside & (lengths <= targets[inside][0])
            assert fits.sum() >= np.unique(groups[inside]).size
    order = np.random.default_rng(1).permutation(len(r))
    np.testing.assert_array_equal(
        F.laser_d_reward(correct[order], lengths[order], groups[order], alpha=alpha), rd[order]
    )


@given(group_batches(), st.floats(0.0, 3.0), st.floats(-1.0, 0.0))
def test_hapo_properties(batch: tuple[np.ndarray, np.ndarray, np.ndarray], weight: float, floor: float) -> None:
    correct, lengths, groups = batch
    n_groups = int(groups.max()) + 1
    history = F.hapo_history_update(np.full(n_groups, np.nan), correct, lengths, groups)
    h = history[groups]
    r = F.hapo_reward(correct, lengths, h, weight=weight, correct_floor=floor)
    assert ((r >= -weight - 1e-12) & (r <= 1 + weight + 1e-12)).all()
    _monotone_within_groups(correct, lengths, groups, r)
    f = F.hapo_length_reward(correct, lengths, h, correct_floor=floor)
    assert (f[correct == 0] <= 0).all() and (f[correct == 1] >= floor).all()
    # The history only shrinks, and is the shortest correct length of the group.
    for g in range(n_groups):
        solved = lengths[(groups == g) & (correct == 1)]
        assert (np.isnan(history[g]) and solved.size == 0) or history[g] == solved.min()
    again = F.hapo_history_update(history, correct, lengths // 2, groups)
    assert (np.nan_to_num(again, nan=-1) <= np.nan_to_num(history, nan=-1) + 1e-12).all() or np.isnan(history).any()


@given(hnp.arrays(np.int64, st.integers(1, 20), elements=st.integers(0, 1)), st.data())
def test_adaptthink_properties(correct: np.ndarray, data: st.DataObject) -> None:
    n = correct.size
    lengths = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 50)))
    reference = data.draw(hnp.arrays(np.float64, n, elements=st.floats(0, 1)))
    delta = data.draw(st.floats(0, 1))
    r = F.adaptthink_reward(correct, lengths, reference, delta=delta)
    assert ((r >= -1 - 1e-12) & (r <= 1 + delta + 1e-12)).all()
    thinking = F.adaptthink_reward(correct, lengths + 1, reference, delta=delta)
    np.testing.assert_allclose(r - thinking, delta * (lengths == 0), atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# HAPO's history: step semantics, JSON state, resuming
# ---------------------------------------------------------------------------------------------------------------


def _hapo_steps(seed: int, steps: int) -> list[alr.RewardBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for step in range(steps):
        problems = rng.choice(["p0", "p1", "p2", 3, 4.5], size=8).tolist()
        out.append(
            _batch(
                lengths=rng.integers(0, 200, 8).tolist(),
                correct=rng.integers(0, 2, 8).tolist(),
                problem_id=[p if p in ("p0", "p1", "p2") else float(p) for p in problems],
                step=step,
            )
        )
    return out


def test_hapo_state_is_json_and_resumes_identically() -> None:
    batches = _hapo_steps(0, 6)
    straight = alr.HAPOReward(length=alr.PrecomputedLength())
    expected = [straight(b) for b in batches]
    first = alr.HAPOReward(length=alr.PrecomputedLength())
    for b in batches[:3]:
        first(b)
    saved = json.dumps(first.state_dict())  # JSON-native
    resumed = alr.HAPOReward(length=alr.PrecomputedLength())
    resumed.load_state_dict(json.loads(saved))
    assert resumed == first and resumed != alr.HAPOReward(length=alr.PrecomputedLength())
    for b, want in zip(batches[3:], expected[3:]):
        np.testing.assert_array_equal(resumed(b), want)
    assert pickle.loads(pickle.dumps(straight)).state_dict() == straight.state_dict()


def test_hapo_same_step_again_scores_alike_and_steps_do_not_go_back() -> None:
    reward = alr.HAPOReward(length=alr.PrecomputedLength())
    reward(_batch(lengths=[100, 50], correct=[1, 0], problem_id=["a", "a"], step=0))
    later = _batch(lengths=[50, 150], correct=[1, 1], problem_id=["a", "a"], step=1)
    first, second = reward(later), reward(later)  # a retried call: the step's contribution is replaced
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, [1 + math.cos(math.pi / 4), 1 - 0.7])  # h = 100 from step 0
    assert reward.history.shortest(["a"]).tolist() == [50.0]
    with pytest.raises(ValueError, match="steps must not go back"):
        reward(_batch(lengths=[1], correct=[1], problem_id=["a"], step=0))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"format": "nope"}, "expected format"),
        ({"format": H.STATE_FORMAT, "problems": [{"id": "a", "best": -3, "before": None, "step": 0}]}, "length >= 0"),
        ({"format": H.STATE_FORMAT, "problems": [{"id": "a"}]}, r"problems\[0\]: expected id, best, before, step"),
    ],
)
def test_hapo_bad_state_is_named(state: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alr.HAPOReward().load_state_dict(state)


def test_hapo_state_refuses_ids_json_cannot_hold() -> None:
    reward = alr.HAPOReward(length=alr.PrecomputedLength())
    reward(_batch(lengths=[1], correct=[1], problem_id=[("tuple", 1)]))
    with pytest.raises(TypeError, match="problem ids must be str, int or float"):
        reward.state_dict()


# ---------------------------------------------------------------------------------------------------------------
# The new rewards through the library's contract (what tests/test_conformance.py checks for registered kinds)
# ---------------------------------------------------------------------------------------------------------------

CONTEXT = {
    "lengths": [12, 600, 3, 0, 100, 2],
    "correct": [1, 0, 1, 1, 0, 0],
    "group_ids": ["a"] * 3 + ["b"] * 3,
    "problem_id": ["a"] * 3 + ["b"] * 3,
    "reference_accuracy": [0.5, 0.5, 0.5, 1.0, 1.0, 1.0],
    "accuracy": [5.0, 2.0, 0.0, 3.0, 1.0, 4.0],
}
ACC = alr.ColumnReward("accuracy", low=0.0, high=5.0)
NEW: dict[str, Callable[[], alr.Reward]] = {
    "grpo_lead": lambda: alr.GRPOLeadReward(),
    "laser": lambda: alr.LASERReward(budget=alr.FixedBudget(10), correctness=ACC, correct_threshold=4.0),
    "laser_d": lambda: alr.LASERDReward(length=alr.PrecomputedLength(), max_target=50),
    "hapo": lambda: alr.HAPOReward(weight=0.5),
    "adaptthink": lambda: alr.AdaptThinkReward(delta=0.1, only_correct=True),
}


def _context_batch(drop: str | None = None) -> alr.RewardBatch:
    texts = ["<think>a b</think>x", "<think>" + "w " * 50 + "</think>", "<think></think>y", "", "no tags", "<think>"]
    return alr.RewardBatch.from_completions(texts, **{k: v for k, v in CONTEXT.items() if k != drop})


@pytest.mark.parametrize("name", sorted(NEW))
def test_new_rewards_keep_the_contract(name: str) -> None:
    reward = NEW[name]()
    out = reward.evaluate(_context_batch())
    low, high = reward.bounds
    assert out.rewards.shape == (6,) and np.isfinite(out.rewards).all()
    assert ((out.rewards >= low) & (out.rewards <= high)).all(), (out.rewards, reward.bounds)
    for values in {**out.components, **out.columns}.values():
        assert np.asarray(values).shape == (6,)
    rebuilt = alr.build(json.loads(reward.to_config().model_dump_json()))
    assert rebuilt.to_config() == reward.to_config()
    np.testing.assert_array_equal(NEW[name]()(_context_batch()), rebuilt(_context_batch()))
    clone = pickle.loads(pickle.dumps(NEW[name]()))
    np.testing.assert_array_equal(clone(_context_batch()), NEW[name]()(_context_batch()))
    for column in sorted(reward.requires):
        with pytest.raises(alr.MissingContextError, match=f"'{column}'"):
            NEW[name]()(_context_batch(drop=column))


def test_adaptthink_refuses_a_reference_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="column 'reference_accuracy': expected mean accuracies in \\[0, 1\\]"):
        alr.AdaptThinkReward()(_batch(correct=[1], reference_accuracy=[1.5]))


def test_top_level_exports() -> None:
    for name in ("GRPOLeadReward", "LASERReward", "LASERDReward", "HAPOReward", "AdaptThinkReward"):
        assert name in alr.__all__ and getattr(alr, name).kind


# ---------------------------------------------------------------------------------------------------------------
# only_correct on every length reward
# ---------------------------------------------------------------------------------------------------------------

LENGTH = alr.PrecomputedLength()
ONLY_CORRECT: dict[str, Callable[..., alr.Reward]] = {
    "soft_length_penalty": lambda **k: alr.SoftLengthPenalty(budget=alr.FixedBudget(50), length=LENGTH, **k),
    "l1_exact": lambda **k: alr.L1ExactReward(budget=alr.FixedBudget(50), length=LENGTH, **k),
    "l1_max": lambda **k: alr.L1MaxReward(budget=alr.FixedBudget(50), length=LENGTH, **k),
    "dapo_overlong": lambda **k: alr.DAPOOverlongPenalty(max_length=100, cache_length=50, length=LENGTH, **k),
    "cosine_length": lambda **k: alr.CosineLengthReward(max_length=200, length=LENGTH, **k),
    "kimi_length": lambda **k: alr.KimiLengthReward(length=LENGTH, **k),
    "shorter_better": lambda **k: alr.ShorterBetterReward(length=LENGTH, **k),
    "alp": lambda **k: alr.ALPReward(normalizer=100, length=LENGTH, **k),
    "grpo_lead": lambda **k: alr.GRPOLeadReward(length=LENGTH, **k),
    "laser": lambda **k: alr.LASERReward(budget=alr.FixedBudget(50), length=LENGTH, **k),
    "laser_d": lambda **k: alr.LASERDReward(length=LENGTH, **k),
    "hapo": lambda **k: alr.HAPOReward(length=LENGTH, **k),
}


def test_every_length_reward_has_only_correct() -> None:
    from adaptive_length_reward.config import _REGISTRY
    from adaptive_length_reward.penalties import _LengthReward

    kinds = {kind for kind, (_, cls) in _REGISTRY.items() if isinstance(cls, type) and issubclass(cls, _LengthReward)}
    assert kinds == set(ONLY_CORRECT)


@pytest.mark.parametrize("name", sorted(ONLY_CORRECT))
@settings(max_examples=40)
@given(lengths=hnp.arrays(np.int64, 6, elements=st.integers(0, 400)))
def test_only_correct_leaves_wrong_answers_alone(name: str, lengths: np.ndarray) -> None:
    correct = [1, 0, 1, 0, 0, 1]
    batch = _batch(lengths=lengths.tolist(), correct=correct, group_ids=[0] * 6, problem_id=["p"] * 6)
    other = batch.replace(lengths=(lengths[::-1] + 7).astype(float))
    plain, gated = ONLY_CORRECT[name](), ONLY_CORRECT[name](only_correct=True)
    a, b = gated(batch), ONLY_CORRECT[name](only_correct=True)(other)
    wrong = np.asarray(correct) == 0
    np.testing.assert_array_equal(a[wrong], np.full(3, a[wrong][0]))  # one value, whatever the length
    np.testing.assert_array_equal(a[wrong], b[wrong])
    ok = ~wrong
    np.testing.assert_array_equal(a[ok], plain(batch)[ok])  # correct answers exactly as without the option


def test_only_correct_neutral_values() -> None:
    batch = _batch(lengths=[700, 700], correct=[1, 0], group_ids=[0, 0])
    np.testing.assert_array_equal(ONLY_CORRECT["soft_length_penalty"](only_correct=True)(batch), [0.0, 1.0])
    np.testing.assert_array_equal(ONLY_CORRECT["dapo_overlong"](only_correct=True)(batch), [-1.0, 0.0])
    np.testing.assert_array_equal(ONLY_CORRECT["cosine_length"](only_correct=True)(batch), [0.5, -1.0])
    # The option reads correctness only when set: the penalty alone still needs no 'correct' column.
    assert "correct" not in alr.SoftLengthPenalty().requires
    assert "correct" in alr.SoftLengthPenalty(only_correct=True).requires


# ---------------------------------------------------------------------------------------------------------------
# Sign safety: every length penalty x base-reward sign
# ---------------------------------------------------------------------------------------------------------------


def _base() -> alr.ColumnReward:
    return alr.ColumnReward("base")


#: How each length reward composes with a base reward: multipliers in a Product, the others added. L1-Exact (a
#: two-sided target), and Cosine / ShorterBetter without only_correct (they reward longer *wrong* answers by design,
#: to keep the policy thinking when wrong) are left out; with only_correct those two are in.
SIGN_SAFE: dict[str, Callable[[], alr.Reward]] = {
    "soft_length_penalty": lambda: alr.Product(
        [_base(), alr.SoftLengthPenalty(budget=alr.FixedBudget(40), length=LENGTH, beta=0.01)]
    ),
    "soft_length_penalty_bonus": lambda: alr.Product(
        [_base(), alr.SoftLengthPenalty(budget=alr.FixedBudget(40), length=LENGTH, beta=0.01, bonus_cap=0.5)]
    ),
    "soft_length_penalty_only_correct": lambda: alr.Product(
        [_base(), alr.SoftLengthPenalty(budget=alr.FixedBudget(40), length=LENGTH, beta=0.01, only_correct=True)]
    ),
    "gated_soft_length_penalty": lambda: alr.Product(
        [
            _base(),
            alr.Gate(
                alr.SoftLengthPenalty(budget=alr.FixedBudget(40), length=LENGTH),
                condition=alr.ColumnReward("correct"),
                otherwise=1.0,
            ),
        ]
    ),
    "penalty_first": lambda: alr.Product([alr.SoftLengthPenalty(budget=alr.FixedBudget(40), length=LENGTH), _base()]),
    **{
        name: (lambda name=name: alr.WeightedSum([_base(), ONLY_CORRECT[name]()]))
        for name in ("l1_max", "dapo_overlong", "kimi_length", "alp", "grpo_lead", "laser", "laser_d", "hapo")
    },
    **{
        f"{name}_only_correct": (lambda name=name: alr.WeightedSum([_base(), ONLY_CORRECT[name](only_correct=True)]))
        for name in sorted(ONLY_CORRECT)
        if name not in ("soft_length_penalty", "l1_exact")
    },
}


@pytest.mark.parametrize("name", sorted(SIGN_SAFE))
@pytest.mark.parametrize("sign", [-1.0, 0.0, 1.0])
@settings(max_examples=40)  # x 3 signs x 25 compositions
@given(lengths=hnp.arrays(np.int64, st.integers(2, 10), elements=st.integers(0, 300), unique=True), data=st.data())
def test_longer_never_scores_higher_whatever_the_base_sign(
    name: str, sign: float, lengths: np.ndarray, data: st.DataObject
) -> None:
    n = lengths.size
    correct = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    magnitude = data.draw(st.floats(0.01, 10))
    columns = {
        "lengths": lengths.tolist(),
        "correct": correct.tolist(),
        "base": [sign * magnitude] * n,
        "group_ids": [0] * n,
        "problem_id": ["p"] * n,
    }
    reward = SIGN_SAFE[name]()
    earlier = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 300)))
    reward(_batch(**{**columns, "lengths": earlier.tolist(), "correct": [1] * n}, step=0))  # HAPO's history
    r = reward(_batch(**columns, step=1))
    _monotone_within_groups(correct, lengths, np.zeros(n, dtype=int), r)


def test_a_plain_product_is_not_sign_safe_and_product_is() -> None:
    # The bug NeMo-RL PR #3852's review found: accuracy -1 times a length score gives the longer answer more.
    base, scale = np.array([-1.0, -1.0]), F.soft_length_penalty([10, 300], [40, 40], beta=0.01)
    assert (base * scale)[1] > (base * scale)[0]  # the naive product prefers the longer completion
    reward = SIGN_SAFE["soft_length_penalty"]()
    got = reward(_batch(lengths=[10, 300], base=[-1.0, -1.0]))
    np.testing.assert_allclose(got, [-1.0, -1.0 * (2 - scale[1])])
    assert got[0] > got[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.grpo_lead_reward([1], [1], [0], alpha=0), "alpha: expected a finite number > 0, got 0"),
        (lambda: F.grpo_lead_reward([1], [1], [0], wrong_reward=math.inf), "wrong_reward: expected a finite number"),
        (lambda: F.laser_reward([1], [-1], [5]), "lengths: expected finite non-negative"),
        (lambda: F.laser_d_targets([1], [1], [0], pass_rate_cuts=(0.8, 0.2)), "pass_rate_cuts: expected"),
        (lambda: F.hapo_length_reward([1], [1], [1], correct_floor=0.5), "correct_floor: expected a number in"),
        (lambda: F.hapo_reward([1], [1], [1], weight=-1), "weight: expected a finite number >= 0"),
        (lambda: F.hapo_history_update([1.0], [1, 1], [1, 2], [0, 1]), "history: expected 2 values"),
        (lambda: F.adaptthink_reward([1], [0], [np.nan]), "reference_accuracy: expected finite numbers"),
        (lambda: F.only_correct([1.0], [2], neutral=0.0), "correct: expected 0/1"),
    ],
)
def test_bad_arguments_name_the_argument(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(alr.ConfigError, match="LASERDReward: pass_rate_cuts: expected"):
        alr.LASERDReward(pass_rate_cuts=(0.9, 0.1))
    with pytest.raises(alr.ConfigError, match="HAPOReward: correct_floor"):
        alr.HAPOReward(correct_floor=0.5)
    with pytest.raises(alr.ConfigError, match="AdaptThinkReward: delta"):
        alr.AdaptThinkReward(delta=-1)
