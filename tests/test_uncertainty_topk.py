"""Top-k log-prob estimators: PixelThink's margin exactly, engine formats agree, entropy bounds hold."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_length_reward.uncertainty import (
    TopKLogprobs,
    deepconf_confidence,
    deepconf_uncertainty,
    reduce_ragged,
    topk_entropy_bounds,
    topk_from_dense,
    topk_from_sglang,
    topk_from_vllm,
    topk_margin,
    topk_margin_uncertainty,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.vllm_standins import FlatLogprobs, Logprob  # noqa: E402  (vLLM cannot be installed here)


def rollout(seed: int, completions: int = 5, k: int = 5, vocab: int = 40) -> list[list[dict[int, Logprob]]]:
    """vLLM-shaped log-probs: per token the top-k by rank plus the sampled token when it is outside them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(completions):
        tokens = []
        for _ in range(int(rng.integers(0, 30))):
            logits = rng.normal(size=vocab) * rng.uniform(0.2, 5.0)
            logp = logits - np.log(np.exp(logits).sum())
            order = np.argsort(-logp)
            sampled = int(rng.choice(vocab, p=np.exp(logp)))
            entry = {int(order[r]): Logprob(float(logp[order[r]]), r + 1) for r in range(k)}
            if sampled not in entry:  # vLLM puts the sampled token first
                entry = {sampled: Logprob(float(logp[sampled]), int(np.flatnonzero(order == sampled)[0]) + 1), **entry}
            tokens.append(entry)
        out.append(tokens)
    return out


def pixelthink_token(entry: dict[int, Logprob]) -> float:
    """PixelThink's per-token formula (official vllm_rollout_spmd.py): the two entries of lowest rank,
    ``clip(1 - (exp(l1) - exp(l2)), 0, 1)``; written in float64 Python."""
    first, second = sorted(entry.values(), key=lambda lp: lp.rank)[:2]
    return min(1.0, max(0.0, 1.0 - (math.exp(first.logprob) - math.exp(second.logprob))))


def pixelthink_completion(tokens: list[dict[int, Logprob]]) -> float:
    """The official per-completion mean: tokens with fewer than two entries skipped, 0.0 when none is left."""
    values = [pixelthink_token(t) for t in tokens if t and len(t) >= 2]
    return sum(values) / len(values) if values else 0.0


@pytest.mark.parametrize("seed", range(4))
def test_margin_equals_pixelthink_per_token_and_per_completion(seed: int) -> None:
    data = rollout(seed)
    topk = topk_from_vllm(data)
    per_token = topk_margin_uncertainty(topk)
    want = np.array([pixelthink_token(t) for tokens in data for t in tokens])
    assert per_token.shape == want.shape
    assert np.abs(per_token - want).max(initial=0.0) <= 1e-9
    per_completion = reduce_ragged(topk.split(per_token))
    np.testing.assert_allclose(per_completion, [pixelthink_completion(t) for t in data], rtol=0, atol=1e-12)


def test_official_float32_loop_agrees_to_float32_precision() -> None:
    torch = pytest.importorskip("torch")
    data = rollout(7)

    def official(tokens: list[dict[int, Logprob]]) -> float:  # torch scalars per token, as the official code
        values = []
        for entry in tokens:
            first, second = sorted(entry.values(), key=lambda lp: lp.rank)[:2]
            p1, p2 = torch.exp(torch.tensor(first.logprob)), torch.exp(torch.tensor(second.logprob))
            values.append(float(torch.clamp(1.0 - (p1 - p2), 0.0, 1.0).item()))
        return sum(values) / len(values) if values else 0.0

    topk = topk_from_vllm(data)
    ours = reduce_ragged(topk.split(topk_margin_uncertainty(topk)))
    np.testing.assert_allclose(ours, [official(t) for t in data], rtol=0, atol=1e-6)


def test_engine_formats_give_identical_arrays() -> None:
    data = rollout(3)
    from_dicts = topk_from_vllm(data)
    flat = []
    for tokens in data:
        starts, ends, ids, lps, ranks = [], [], [], [], []
        for entry in tokens:
            starts.append(len(lps))
            for token, lp in entry.items():
                ids.append(token), lps.append(lp.logprob), ranks.append(lp.rank)
            ends.append(len(lps))
        flat.append(FlatLogprobs(starts, ends, ids, lps, ranks))
    from_flat = topk_from_vllm(flat)
    json_like = [[{str(t): {"logprob": lp.logprob, "rank": lp.rank} for t, lp in e.items()} for e in c] for c in data]
    from_json = topk_from_vllm(json_like)
    floats = [[{t: lp.logprob for t, lp in e.items()} for e in c] for c in data]
    from_floats = topk_from_vllm(floats)
    sglang = [[[(lp.logprob, t, None) for t, lp in e.items()] for e in c] for c in data]
    from_sglang = topk_from_sglang(sglang)
    dense = [
        np.array([[lp.logprob for lp in e.values()] + [-np.inf] * (6 - len(e)) for e in c]).reshape(-1, 6) for c in data
    ]
    from_dense = topk_from_dense(dense)
    for other in (from_flat, from_json, from_floats, from_sglang, from_dense):
        np.testing.assert_array_equal(other.values, from_dicts.values)
        np.testing.assert_array_equal(other.lengths, from_dicts.lengths)
        np.testing.assert_array_equal(other.counts, from_dicts.counts)
    stacked = np.concatenate(dense)
    np.testing.assert_array_equal(topk_from_dense(stacked, lengths=from_dicts.lengths).values, from_dicts.values)


def test_the_sampled_tokens_extra_entry_never_changes_the_margin() -> None:
    top = {1: Logprob(-0.2, 1), 2: Logprob(-1.9, 2), 3: Logprob(-3.0, 3)}
    with_sampled = {9: Logprob(-7.5, 12), **top}
    a, b = topk_margin(topk_from_vllm([[top], [with_sampled]]))
    assert a == b == pytest.approx(math.exp(-0.2) - math.exp(-1.9), abs=1e-15)


def test_missing_tokens_and_empty_completions() -> None:
    data = [[{1: Logprob(-0.1, 1)}, None, {}, {1: Logprob(-0.5, 1), 2: Logprob(-1.5, 2)}], [], None]
    topk = topk_from_vllm(data)
    assert topk.lengths.tolist() == [4, 0, 0]
    per_token = topk_margin_uncertainty(topk)
    assert np.isnan(per_token[:3]).all() and per_token[3] == pytest.approx(1 - (math.exp(-0.5) - math.exp(-1.5)))
    # tokens with fewer than two entries are skipped, as in the official code; empty -> 0.0 (documented)
    np.testing.assert_allclose(reduce_ragged(topk.split(per_token)), [per_token[3], 0.0, 0.0])
    assert topk_from_sglang([[None, [(-0.1, 1, "a"), (-2.0, 2, None)]]]).counts.tolist() == [0, 2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.5])
def test_invalid_log_probs_raise_naming_the_token(bad: float) -> None:
    data = [[{1: Logprob(-0.1, 1), 2: Logprob(-1.0, 2)}], [{1: Logprob(-0.3, 1)}, {4: Logprob(bad, 1)}]]
    with pytest.raises(
        ValueError,
        match=r"vLLM logprobs: expected log-probabilities \(<= 0, or -inf\), got .* "
        r"at completion 1, token 1",
    ):
        topk_from_vllm(data)
    with pytest.raises(ValueError, match="dense top-k logprobs: expected log-probabilities"):
        topk_from_dense([np.array([[-0.1, bad]])])


def test_tiny_positive_rounding_is_clipped_to_zero() -> None:
    assert topk_from_dense([np.array([[3e-7, -20.0]])]).values[0, 0] == 0.0


def test_wrong_types_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="expected a dict .* got list"):
        topk_from_vllm([[{1: Logprob(-0.1)}, [(-0.1, 1)]]])
    with pytest.raises(TypeError, match="expected every dict value to be a Logprob"):
        topk_from_vllm([[{1: Logprob(-0.1)}, {2: "x"}]])
    with pytest.raises(TypeError, match=r"\(logprob, token_id, text\) tuples"):
        topk_from_sglang([[[("x", 1, None)]]])
    with pytest.raises(TypeError, match="expected a sequence of per-completion"):
        topk_from_vllm({"a": 1})
    with pytest.raises(ValueError, match="lengths: expected non-negative token counts summing to 2"):
        topk_from_dense(np.zeros((2, 3)) - 1, lengths=[1, 2])


def test_entropy_bounds_are_exact_when_the_whole_vocabulary_is_reported() -> None:
    p = np.array([0.5, 0.3, 0.2])
    low, high, tail = topk_entropy_bounds(np.log(p)[None, :], vocab_size=3)
    assert low[0] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12) and high[0] == pytest.approx(low[0], abs=1e-12)
    assert tail[0] == pytest.approx(0.0, abs=1e-12)


@given(st.integers(2, 60), st.integers(1, 60), st.floats(0.05, 8.0), st.integers(0, 2**31 - 1))
def test_entropy_bounds_bracket_the_true_entropy(vocab: int, k: int, scale: float, seed: int) -> None:
    k = min(k, vocab)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=vocab) * scale
    logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    p = np.exp(logp)
    truth = -(p * logp).sum()
    top = np.sort(logp)[::-1][:k]
    low, high, tail = topk_entropy_bounds(top[None, :], vocab_size=vocab)
    assert low[0] <= truth + 1e-9 and truth <= high[0] + 1e-9
    assert tail[0] == pytest.approx(max(0.0, 1 - np.exp(top).sum()), abs=1e-12)
    assert 0 <= topk_margin_uncertainty(top[None, :])[0] <= 1 or k < 2


def test_entropy_upper_bound_needs_the_vocabulary() -> None:
    low, high, _ = topk_entropy_bounds(np.log([[0.5, 0.2]]))
    assert np.isfinite(low).all() and np.isnan(high).all()
    with pytest.raises(ValueError, match="vocab_size: expected an int >= 2"):
        topk_entropy_bounds(np.log([[0.5, 0.2]]), vocab_size=1)


def test_deepconf_confidence_formula() -> None:
    logp = np.array([np.log([0.5, 0.25, 0.125, 0.0625]), [np.log(0.9), np.log(0.05), -np.inf, -np.inf]])
    got = deepconf_confidence(logp, k=3)
    assert got[0] == pytest.approx(-(np.log(0.5) + np.log(0.25) + np.log(0.125)) / 3)
    assert got[1] == pytest.approx(-(np.log(0.9) + np.log(0.05)) / 2)  # only two entries reported
    u = deepconf_uncertainty(logp, k=3)
    assert ((u >= 0) & (u <= 1)).all()
    assert deepconf_uncertainty(np.log([[0.25] * 4]), k=4)[0] == pytest.approx(1.0)
    assert deepconf_uncertainty(np.log([[1 - 1e-9, 1e-9]]), k=2)[0] < 1e-3
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        deepconf_confidence(logp, k=0)


@given(st.lists(st.lists(st.floats(-30, 0), min_size=0, max_size=7), min_size=0, max_size=12))
def test_margin_uncertainty_is_in_the_unit_interval(rows: list[list[float]]) -> None:
    topk = topk_from_dense([np.array(r, dtype=float).reshape(1, -1) if r else np.zeros((0, 1)) for r in rows])
    u = topk_margin_uncertainty(topk)
    finite = u[~np.isnan(u)]
    assert ((finite >= 0) & (finite <= 1)).all()
    assert (np.isnan(u) == (topk.counts < 2)).all()


def test_container_helpers() -> None:
    topk = topk_from_dense([np.log([[0.5, 0.5], [0.9, 0.1]]), np.zeros((0, 2)), np.log([[0.6, 0.4]])])
    assert isinstance(topk, TopKLogprobs) and topk.offsets.tolist() == [0, 2, 2]
    parts = topk.split(np.arange(3.0))
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [], [2.0]]
    values, mask = topk.padded(np.arange(3.0))
    assert mask.tolist() == [[True, True], [False, False], [True, False]]
    assert values[0].tolist() == [0.0, 1.0] and values[2, 0] == 2.0


def test_reported_minus_infinity_counts_as_probability_zero() -> None:
    data = [[{1: Logprob(-0.1, 1), 2: Logprob(-np.inf, 2)}, {}, {3: Logprob(-0.5, 1), 4: Logprob(-1.0, 2)}], [{}]]
    topk = topk_from_vllm(data)
    assert topk.counts.tolist() == [2, 0, 2, 0]
    u = topk_margin_uncertainty(topk)  # as the official code: p2 = exp(-inf) = 0 is a value
    assert u[0] == pytest.approx(1 - np.exp(-0.1)) and np.isnan(u[1]) and np.isnan(u[3])
    assert u[2] == pytest.approx(1 - (np.exp(-0.5) - np.exp(-1.0)))
    dense = topk_from_dense([np.array([[-0.1, -np.inf]])])  # in dense arrays -inf is padding
    assert dense.counts.tolist() == [1] and np.isnan(topk_margin_uncertainty(dense)[0])
