"""Full-logits uncertainty: accuracy against float64, invariances, masking, errors, chunking, compiled path."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from adaptive_length_reward.uncertainty import logits as logits_module  # noqa: E402
from adaptive_length_reward.uncertainty import (  # noqa: E402
    reasoning_span_mask,
    rows_per_chunk,
    sequence_uncertainty,
    token_entropy,
    token_margin,
    token_nll,
    token_self_certainty,
    token_statistics,
)

torch.set_num_threads(1)
ALL = ("entropy", "margin", "self_certainty", "nll")


def reference(logits: torch.Tensor, token_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """float64 ground truth, computed the textbook way on the exact input values."""
    z = logits.double().reshape(-1, logits.shape[-1])
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    top = p.topk(2, dim=-1).values
    out = {
        "entropy": -(p * logp).sum(-1),
        "margin": top[:, 0] - top[:, 1],
        "self_certainty": -math.log(z.shape[-1]) - logp.mean(-1),
    }
    if token_ids is not None:
        out["nll"] = -logp.gather(1, token_ids.reshape(-1, 1)).squeeze(1)
    return {k: v.reshape(logits.shape[:-1]) for k, v in out.items()}


def random_logits(n: int, vocab: int, kind: str, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "flat":
        x = torch.randn(n, vocab, generator=g) * 0.05
    else:  # peaked: a language model's typical token, a few large logits over a spread
        x = torch.randn(n, vocab, generator=g) * 2.0
        hot = torch.randint(0, vocab, (n, 3), generator=g)
        x.scatter_add_(1, hot, torch.tensor([[25.0, 18.0, 12.0]]).expand(n, 3))
    return x.to(dtype)


@pytest.mark.parametrize("vocab", [32000, 151936])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kind", ["peaked", "flat"])
def test_accuracy_against_float64(vocab: int, dtype: torch.dtype, kind: str) -> None:
    x = random_logits(12, vocab, kind, dtype, seed=vocab % 97)
    ids = torch.randint(0, vocab, (12,), generator=torch.Generator().manual_seed(1))
    got = token_statistics(x, token_ids=ids)
    want = reference(x, ids)
    errors = {k: float((got[k].double() - want[k]).abs().max()) for k in ALL}
    assert errors["entropy"] < 1e-4 and errors["self_certainty"] < 1e-4, errors
    assert errors["margin"] < 1e-6, errors
    assert errors["nll"] < 1e-4, errors


def test_exact_values_on_a_hand_computed_case() -> None:
    x = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    out = token_statistics(x, token_ids=torch.tensor([1]))
    assert out["entropy"].item() == pytest.approx(1.75 * math.log(2), abs=1e-6)
    assert out["margin"].item() == pytest.approx(0.25, abs=1e-7)
    want_sc = -math.log(4) - math.log(0.5 * 0.25 * 0.125 * 0.125) / 4
    assert out["self_certainty"].item() == pytest.approx(want_sc, abs=1e-6)
    assert out["nll"].item() == pytest.approx(math.log(4), abs=1e-6)


def test_shapes_devices_and_dtype() -> None:
    x = random_logits(6, 300, "peaked", torch.float16).reshape(2, 3, 300)
    out = token_statistics(x)
    assert set(out) == {"entropy", "margin", "self_certainty"}
    for values in out.values():
        assert values.shape == (2, 3) and values.dtype == torch.float32 and values.device == x.device
    flat = token_statistics(x.reshape(6, 300))
    for name in out:
        torch.testing.assert_close(out[name].reshape(6), flat[name], rtol=0, atol=0)


def test_non_contiguous_input_is_read_in_place() -> None:
    x = random_logits(2 * 9, 500, "peaked", torch.bfloat16).reshape(2, 9, 500)
    shifted = x[:, :-1]  # TRL/verl drop the last position: not viewable as [N, V]
    assert not shifted.is_contiguous()
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    got = token_statistics(shifted, mask=mask)
    want = token_statistics(shifted.contiguous(), mask=mask)
    for name in got:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


@pytest.mark.parametrize("chunk_rows", [1, 3, 64])
def test_chunking_does_not_change_results(chunk_rows: int) -> None:
    x = random_logits(10, 5000, "peaked", torch.bfloat16)
    ids = torch.arange(10) * 7
    base = token_statistics(x, token_ids=ids, chunk_rows=10)
    got = token_statistics(x, token_ids=ids, chunk_rows=chunk_rows)
    for name in base:
        torch.testing.assert_close(got[name], base[name], rtol=0, atol=2e-7)


def test_memory_budget_sets_the_chunk() -> None:
    assert rows_per_chunk(151936, 2, memory_budget_bytes=10 * 151936) == 1
    assert rows_per_chunk(151936, 2, memory_budget_bytes=40 * 151936, device="cuda") == 4
    assert rows_per_chunk(151936, 2, memory_budget_bytes=2**40) == 6  # CPU cache cap: two 4 MiB buffers
    assert rows_per_chunk(1000, 4, memory_budget_bytes=2**40, device="cuda", compiled=True) == 2**40 // 4000
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        rows_per_chunk(10, 2, memory_budget_bytes=0)


def test_temperature_divides_the_logits() -> None:
    x = random_logits(4, 700, "peaked", torch.float32)
    ids = torch.tensor([0, 1, 2, 3])
    got = token_statistics(x, token_ids=ids, temperature=0.7)
    want = reference(x.double() / 0.7, ids)
    for name in ALL:
        assert float((got[name].double() - want[name]).abs().max()) < 1e-5, name


def test_wrappers_match_token_statistics() -> None:
    x = random_logits(5, 400, "peaked", torch.float32)
    ids = torch.tensor([3, 1, 4, 1, 5])
    full = token_statistics(x, token_ids=ids)
    torch.testing.assert_close(token_entropy(x), full["entropy"])
    torch.testing.assert_close(token_margin(x), full["margin"])
    torch.testing.assert_close(token_self_certainty(x), full["self_certainty"])
    torch.testing.assert_close(token_nll(x, ids), full["nll"])


def test_masked_rows_are_never_read() -> None:
    x = random_logits(6, 1000, "peaked", torch.float32)
    mask = torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.bool)
    poisoned = x.clone()
    poisoned[1] = float("nan")
    poisoned[4, 3] = float("inf")
    poisoned[5, 0] = -float("inf")
    got = token_statistics(poisoned, mask=mask)  # would raise if the NaN/inf rows were read
    want = token_statistics(x[mask])
    for name in got:
        torch.testing.assert_close(got[name][mask], want[name], rtol=0, atol=0)
        assert (got[name][~mask] == 0.0).all()


def test_empty_mask_gives_the_fill_value() -> None:
    x = torch.full((2, 3, 50), float("nan"))
    out = token_statistics(x, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert all((v == 0.0).all() for v in out.values())
    out = token_statistics(x, mask=torch.zeros(2, 3, dtype=torch.bool), fill_value=float("nan"))
    assert all(v.isnan().all() for v in out.values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_logits_raise_naming_the_position(bad: float) -> None:
    x = random_logits(4, 300, "peaked", torch.float32).reshape(2, 2, 300)
    x[1, 0, 17] = bad
    name = "nan" if math.isnan(bad) else ("+inf" if bad > 0 else "-inf")
    pattern = rf"logits: expected finite values, got {re.escape(name)} at position \(1, 0\)"
    with pytest.raises(ValueError, match=pattern):
        token_statistics(x, stats=("margin",))


def test_bad_arguments_name_what_was_expected() -> None:
    x = torch.zeros(3, 10)
    with pytest.raises(TypeError, match="logits: expected a torch.Tensor"):
        token_statistics(np.zeros((3, 10)))
    with pytest.raises(TypeError, match="floating-point"):
        token_statistics(torch.zeros(3, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"logits: expected shape \[N, V\]"):
        token_statistics(torch.zeros(10))
    with pytest.raises(ValueError, match="vocabulary of at least 2"):
        token_statistics(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"temperature: expected a finite number > 0, got 0"):
        token_statistics(x, temperature=0)
    with pytest.raises(ValueError, match="stats: expected a non-empty selection"):
        token_statistics(x, stats=("entropy", "perplexity"))
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\)"):
        token_statistics(x, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask: expected booleans or 0/1"):
        token_statistics(x, mask=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="token_ids: expected the sampled token ids"):
        token_statistics(x, stats=("nll",))
    with pytest.raises(ValueError, match=r"token_ids: expected ids in \[0, 10\), got 10 at position \(2,\)"):
        token_statistics(x, token_ids=torch.tensor([0, 9, 10]))
    with pytest.raises(TypeError, match="token_ids: expected an integer tensor"):
        token_statistics(x, token_ids=torch.zeros(3))
    with pytest.raises(ValueError, match="chunk_rows: expected an int >= 1"):
        token_statistics(x, chunk_rows=0)


def test_integer_masks_and_masked_token_ids_out_of_range_are_fine() -> None:
    x = random_logits(3, 20, "peaked", torch.float32)
    out = token_statistics(x, mask=[1, 0, 1], token_ids=torch.tensor([0, -100, 19]))  # -100: ignore_index padding
    assert out["nll"][1] == 0.0 and out["nll"][0] > 0


def test_sequence_uncertainty_reduces_per_sequence() -> None:
    x = random_logits(8, 64, "peaked", torch.float32).reshape(2, 4, 64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    margin = token_statistics(x, stats=("margin",))["margin"].double().numpy()
    got = sequence_uncertainty(x, mask=mask)
    np.testing.assert_allclose(got, [np.mean(1 - margin[0, :3]), 1 - margin[1, 0]], rtol=1e-12)
    entropy = token_statistics(x, stats=("entropy",))["entropy"].double().numpy()
    got = sequence_uncertainty(x, mask=mask, measure="entropy", reduction="max")
    np.testing.assert_allclose(got, [entropy[0, :3].max() / math.log(64), entropy[1, 0] / math.log(64)], rtol=1e-12)
    ids = torch.tensor([[1, 5, 6, 2], [5, 5, 5, 5]])
    span = reasoning_span_mask(ids.numpy(), open_ids=[1], close_ids=[2])
    got = sequence_uncertainty(x, mask=torch.as_tensor(span), measure="nll", token_ids=ids)
    nll = token_statistics(x, token_ids=ids, stats=("nll",))["nll"].double().numpy()
    np.testing.assert_allclose(got, [np.mean(1 - np.exp(-nll[0, 1:3])), 0.0], rtol=1e-12)  # row 2: empty span


def test_importing_the_subpackage_does_not_import_torch() -> None:
    code = "import sys, adaptive_length_reward.uncertainty; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# -- properties ---------------------------------------------------------------------------------------------

grid_logits = st.integers(1, 5).flatmap(
    lambda n: st.integers(2, 80).flatmap(
        lambda v: st.lists(st.integers(-160, 160), min_size=n * v, max_size=n * v).map(
            lambda xs, n=n, v=v: torch.tensor(xs, dtype=torch.float32).reshape(n, v) / 8
        )
    )
)


@given(grid_logits, st.integers(-1000, 1000))
def test_invariant_to_adding_a_constant(x: torch.Tensor, shift: int) -> None:
    # Values on a 1/8 grid plus an integer are exact in float32, so the shifted input is exactly x + c.
    ids = torch.zeros(x.shape[0], dtype=torch.int64)
    a = token_statistics(x, token_ids=ids)
    b = token_statistics(x + shift, token_ids=ids)
    for name in ("entropy", "margin", "nll"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    torch.testing.assert_close(a["self_certainty"], b["self_certainty"], rtol=0, atol=1e-4)


@given(st.integers(1, 4), st.integers(2, 200), st.floats(0.01, 60.0), st.integers(0, 2**31 - 1))
def test_ranges(n: int, vocab: int, scale: float, seed: int) -> None:
    x = torch.randn(n, vocab, generator=torch.Generator().manual_seed(seed)) * scale
    out = token_statistics(x, token_ids=torch.zeros(n, dtype=torch.int64))
    assert ((out["margin"] >= 0) & (out["margin"] <= 1)).all()
    assert ((out["entropy"] >= 0) & (out["entropy"] <= math.log(vocab))).all()
    assert (out["self_certainty"] >= 0).all() and (out["nll"] >= 0).all()
    want = reference(x)
    assert float((out["entropy"].double() - want["entropy"]).abs().max()) < 1e-5


@given(st.integers(2, 6), st.integers(2, 60), st.integers(0, 2**31 - 1), st.data())
def test_masked_out_rows_never_influence_results(n: int, vocab: int, seed: int, data: st.DataObject) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, vocab, generator=g) * 4
    keep = torch.tensor(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    junk = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -3.0]))
    noisy = x.clone()
    noisy[~keep] = junk
    a = token_statistics(x, mask=keep, chunk_rows=2)
    b = token_statistics(noisy, mask=keep, chunk_rows=2)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(2, 40), st.data())
def test_any_non_finite_logit_raises_naming_its_position(b: int, t: int, vocab: int, data: st.DataObject) -> None:
    x = torch.randn(b, t, vocab, generator=torch.Generator().manual_seed(b * 100 + t))
    position = (data.draw(st.integers(0, b - 1)), data.draw(st.integers(0, t - 1)))
    x[(*position, data.draw(st.integers(0, vocab - 1)))] = data.draw(
        st.sampled_from([float("nan"), float("inf"), -float("inf")])
    )
    stats = data.draw(st.sampled_from([("entropy",), ("margin",), ("self_certainty",), ALL[:3]]))
    with pytest.raises(ValueError, match=re.escape(f"at position {position}")):
        token_statistics(x, stats=stats)


# -- compiled path --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("vocab", "dtype"), [(151936, torch.bfloat16), (32000, torch.float32)])
def test_compiled_path_matches_float64(vocab: int, dtype: torch.dtype) -> None:
    x = random_logits(9, vocab, "peaked", dtype, seed=3)
    x[4:] = random_logits(5, vocab, "flat", dtype, seed=4)
    ids = torch.arange(9) * 11
    mask = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a silent fallback to eager would hide a broken compile
        got = token_statistics(x, mask=mask, token_ids=ids, compile=True)
    want = reference(x, ids)
    errors = {k: float((got[k][mask].double() - want[k][mask]).abs().max()) for k in ALL}
    assert errors["entropy"] < 1e-4 and errors["self_certainty"] < 1e-4 and errors["nll"] < 1e-4, errors
    assert errors["margin"] < 1e-6, errors
    assert (got["entropy"][~mask] == 0).all()


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: a broken C++ toolchain cannot be produced for real here. The error type lives in the
    # inductor package, as real compiler failures do.
    CompileError = type("CppCompileError", (RuntimeError,), {"__module__": "torch._inductor.exc"})

    def broken(*args: object) -> None:
        raise CompileError("no C++ compiler")

    monkeypatch.setitem(logits_module._COMPILED, "kernel", broken)
    x = random_logits(3, 100, "peaked", torch.float32)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = token_statistics(x, compile=True)
    want = token_statistics(x)
    for name in got:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


def test_errors_inside_the_compiled_kernel_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(*args: object) -> None:
        raise IndexError("a programming error")

    monkeypatch.setitem(logits_module._COMPILED, "kernel", buggy)
    with pytest.raises(IndexError, match="a programming error"):
        token_statistics(torch.zeros(2, 10), compile=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    x = random_logits(33, 32000, "peaked", torch.bfloat16)
    ids = torch.arange(33)
    cpu = token_statistics(x, token_ids=ids)
    gpu = token_statistics(x.cuda(), token_ids=ids.cuda())
    for name in cpu:
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=2e-6)
