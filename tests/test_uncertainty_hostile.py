"""Hostile numbers for the uncertainty paths: finite logits spread wider than float32 (or float64) holds, float64
logits beyond float32's range, a tiny temperature, and bfloat16 / complex tensors in a per-token column (issue 17).
Every finite input gets finite statistics equal to a float64 textbook reference; what cannot be read names itself."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adaptive_length_reward import RewardBatch  # noqa: E402
from adaptive_length_reward.uncertainty import (  # noqa: E402
    UncertaintyEstimator,
    logprob_uncertainty,
    sequence_uncertainty,
    token_statistics,
)

torch.set_num_threads(1)
ALL = ("entropy", "margin", "self_certainty", "nll")
F32_MAX = float(torch.finfo(torch.float32).max)


def reference(z: torch.Tensor, ids: torch.Tensor) -> dict[str, list[float]]:
    """float64 textbook values of already scaled logits ``z`` ([N, V], finite float64, spread within float64);
    self-certainty and NLL saturate at float32's largest value, as documented."""
    logp = torch.log_softmax(z.double(), dim=-1)
    p = logp.exp()
    top = p.topk(2, dim=-1).values
    vocab = z.shape[-1]
    return {
        "entropy": torch.where(p > 0, -p * logp, 0.0).sum(-1).tolist(),
        "margin": (top[:, 0] - top[:, 1]).tolist(),
        "self_certainty": (-math.log(vocab) - logp.mean(-1)).clamp(0, F32_MAX).tolist(),
        "nll": (-logp.gather(1, ids[:, None]).squeeze(1)).clamp(0, F32_MAX).tolist(),
    }


def check(logits: torch.Tensor, ids: torch.Tensor, expected: dict[str, list[float]], **options: object) -> None:
    got = token_statistics(logits, token_ids=ids, stats=ALL, **options)  # type: ignore[arg-type]
    for name in ALL:
        values = got[name].reshape(-1).tolist()
        assert all(math.isfinite(v) for v in values), (name, values)
        np.testing.assert_allclose(values, expected[name], rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_finite_logits_spread_wider_than_float32_give_finite_statistics(dtype: torch.dtype) -> None:
    # z - max(z) = -6e38 overflows float32: the float32 pass computed 0 * -inf = NaN for the entropy.
    logits = torch.tensor([[3e38, -3e38, 3e38, -3e38], [1.0, 2.0, 3.0, 4.0], [3e38, 3e38, 3e38, -3e38]]).to(dtype)
    ids = torch.tensor([0, 3, 3])
    check(logits, ids, reference(logits.double(), ids))
    assert token_statistics(logits, stats=("entropy",))["entropy"][0].item() == pytest.approx(math.log(2))


def test_the_compiled_path_recovers_the_same_rows() -> None:
    logits = torch.tensor([[3e38, -3e38, 3e38, -3e38], [1.0, 2.0, 3.0, 4.0]])
    ids = torch.tensor([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a failed compilation falls back to eager (also checked)
        check(logits, ids, reference(logits.double(), ids), compile=True)


@pytest.mark.parametrize("scale", [1e39, 1e100, 1e300])
def test_float64_logits_beyond_float32_are_computed_in_float64(scale: float) -> None:
    logits = torch.tensor(
        [[scale, 0.0, -scale, 5.0], [scale, scale, 0.0, 1.0], [0.5, 0.25, 0.0, -1.0]], dtype=torch.float64
    )
    ids = torch.tensor([2, 1, 0])
    check(logits, ids, reference(logits, ids))


def test_a_spread_beyond_float64_saturates() -> None:
    logits = torch.tensor([[1e308, -1e308, 0.0]], dtype=torch.float64)  # 1e308 - (-1e308) overflows float64
    out = token_statistics(logits, token_ids=torch.tensor([1]), stats=ALL)
    assert out["entropy"].item() == 0.0 and out["margin"].item() == 1.0
    assert out["self_certainty"].item() == out["nll"].item() == F32_MAX


def test_a_tiny_temperature_and_non_contiguous_masked_logits() -> None:
    base = torch.tensor([[[1e37, 0.0, -1e37, 2.0, 9.0], [0.1, 0.2, 0.3, 0.4, 9.0], [math.nan] * 5]])
    logits, mask = base[:, :, :-1], torch.tensor([[True, True, False]])  # not viewable as [N, V]; NaN masked out
    ids = torch.tensor([[3, 0, 0]])
    expected = reference(logits[0, :2].double() / 0.01, ids[0, :2])
    got = token_statistics(logits, mask=mask, token_ids=ids, temperature=0.01, stats=ALL, fill_value=-1.0)
    for name in ALL:
        np.testing.assert_allclose(got[name][0, :2].tolist(), expected[name], rtol=1e-6, atol=1e-6, err_msg=name)
        assert got[name][0, 2].item() == -1.0


def test_non_finite_logits_still_raise_naming_the_position() -> None:
    logits = torch.tensor([[3e38, -3e38, 0.0], [1.0, math.inf, 0.0]])
    with pytest.raises(ValueError, match=r"logits: expected finite values, got \+inf at position \(1,\)"):
        token_statistics(logits)
    with pytest.raises(
        ValueError,
        match=r"logits: expected finite values, got values whose quotient by the "
        r"temperature overflows float64 at position \(0,\)",
    ):
        token_statistics(torch.tensor([[1e307, 0.0]], dtype=torch.float64), temperature=1e-3)


def test_sequence_uncertainty_of_hostile_logits_is_in_the_unit_interval() -> None:
    logits = torch.tensor([[[3e38, -3e38, 3e38, -3e38], [0.0, 0.0, 0.0, 0.0]]])
    ids = torch.tensor([[0, 1]])
    # entropy ln 2 and ln 4 (of ln 4); margins 0 and 0; NLLs ln 2 and ln 4 (1 - p_y: 1/2, 3/4)
    expected = {"entropy": 0.75, "margin": 1.0, "nll": 0.625}
    for measure, want in expected.items():
        value = sequence_uncertainty(logits, measure=measure, token_ids=ids)  # type: ignore[arg-type]
        assert float(value[0]) == pytest.approx(want, abs=1e-6), measure


# -- per-token columns in dtypes numpy lacks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "measure", "row"),
    [
        ("sampled_logprobs", "nll", [-0.5, -1.0, -0.125]),
        ("token_values", "value", [0.5, 0.25, 0.75]),
        ("topk_array", "margin", [[-0.5, -1.0], [-0.125, -3.0], [-0.75, -0.75]]),
    ],
)
def test_a_bfloat16_column_reads_like_float32(source: str, measure: str, row: list[object]) -> None:
    estimator = UncertaintyEstimator(column="lp", source=source, measure=measure)  # type: ignore[arg-type]
    exact = torch.tensor(row).bfloat16()  # these values are exact in bfloat16
    want = estimator(RewardBatch.from_completions(["a"], lp=[exact.float()]))
    np.testing.assert_array_equal(estimator(RewardBatch.from_completions(["a"], lp=[exact])), want)
    assert logprob_uncertainty(torch.tensor([-0.5]).bfloat16()).tolist() == pytest.approx([1 - math.exp(-0.5)])


def test_a_complex_column_raises_naming_the_column() -> None:
    estimator = UncertaintyEstimator(column="lp", source="sampled_logprobs", measure="nll")
    with pytest.raises(TypeError, match=r"'lp'\[0\]: expected real numbers, got a tensor of dtype torch.complex64"):
        estimator(RewardBatch.from_completions(["a"], lp=[torch.tensor([-0.5 + 1j])]))
    with pytest.raises(TypeError, match=r"column 'lp'\[0\]: expected real numbers, got an array of dtype complex128"):
        estimator(RewardBatch.from_completions(["a"], lp=[np.array([-0.5 + 1j])]))
