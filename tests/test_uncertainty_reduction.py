"""Per-completion reductions, the reasoning-span mask (same policy as length.reasoning_span), normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adaptive_length_reward import reasoning_span
from adaptive_length_reward.uncertainty import (
    margin_uncertainty,
    normalized_entropy,
    normalized_nll,
    pad_ragged,
    reasoning_span_mask,
    reduce_ragged,
    reduce_tokens,
)

values_st = st.floats(-10, 10, allow_nan=False)


@st.composite
def padded_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    b, t = draw(st.integers(1, 6)), draw(st.integers(0, 9))
    values = draw(hnp.arrays(np.float64, (b, t), elements=st.one_of(values_st, st.just(np.nan))))
    mask = draw(hnp.arrays(np.bool_, (b, t)))
    return values, mask


def reference(values: np.ndarray, mask: np.ndarray, how: str, q: float, empty: float) -> list[float]:
    out = []
    for row, keep in zip(values, mask):
        usable = row[keep & ~np.isnan(row)]
        if usable.size == 0:
            out.append(empty)
        elif how == "mean":
            out.append(float(np.mean(usable)))
        elif how == "max":
            out.append(float(usable.max()))
        elif how == "min":
            out.append(float(usable.min()))
        else:
            out.append(float(np.quantile(usable, q)))
    return out


@given(
    padded_batches(),
    st.sampled_from(["mean", "max", "min", "quantile"]),
    st.floats(0, 1),
    st.sampled_from([0.0, -1.0, np.nan]),
)
def test_reductions_match_numpy(batch: tuple[np.ndarray, np.ndarray], how: str, q: float, empty: float) -> None:
    values, mask = batch
    got = reduce_tokens(values, mask, how=how, q=q, empty_value=empty)  # type: ignore[arg-type]
    want = reference(values, mask, how, q, empty)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@given(padded_batches(), st.sampled_from(["mean", "max", "min", "quantile"]))
def test_masked_out_and_nan_tokens_never_influence_results(batch: tuple[np.ndarray, np.ndarray], how: str) -> None:
    values, mask = batch
    noisy = np.where(mask, values, 1e6)
    np.testing.assert_array_equal(reduce_tokens(values, mask, how=how), reduce_tokens(noisy, mask, how=how))  # type: ignore[arg-type]


def test_empty_rows_get_the_documented_value() -> None:
    values = np.array([[0.5, 0.7], [np.nan, np.nan], [1.0, 1.0]])
    mask = np.array([[True, True], [True, True], [False, False]])
    assert reduce_tokens(values, mask).tolist() == [0.6, 0.0, 0.0]
    assert np.isnan(reduce_tokens(values, mask, empty_value=np.nan)[1:]).all()
    assert reduce_tokens(np.zeros((2, 0))).tolist() == [0.0, 0.0]


def test_reduction_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"values: expected a \[B, T\] array"):
        reduce_tokens([1.0, 2.0])
    with pytest.raises(ValueError, match="how: expected one of"):
        reduce_tokens([[1.0]], how="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"q: expected a number in \[0, 1\]"):
        reduce_tokens([[1.0]], how="quantile", q=1.5)
    with pytest.raises(ValueError, match="values: expected finite numbers"):
        reduce_tokens([[np.inf]])
    with pytest.raises(ValueError, match=r"mask: expected shape \(1, 2\)"):
        reduce_tokens([[1.0, 2.0]], [[True]])


def test_torch_tensors_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    got = reduce_tokens(torch.tensor([[0.25, 0.75]]), torch.tensor([[True, True]]))
    assert got.tolist() == [0.5]


def test_ragged_helpers() -> None:
    values, mask = pad_ragged([[1.0], [], [2.0, 3.0]])
    assert values.shape == (3, 2) and mask.sum() == 3
    assert reduce_ragged([[1.0], [], [2.0, 4.0]], how="max").tolist() == [1.0, 0.0, 4.0]
    assert reduce_ragged([]).shape == (0,)


# -- reasoning span ---------------------------------------------------------------------------------------------

ids_st = st.lists(st.integers(0, 5), max_size=14)
tag_st = st.lists(st.integers(0, 5), min_size=1, max_size=2)


@given(st.lists(ids_st, min_size=1, max_size=6), tag_st, tag_st)
def test_span_mask_follows_the_core_span_policy(
    rows: list[list[int]], open_ids: list[int], close_ids: list[int]
) -> None:
    mask = reasoning_span_mask(rows, open_ids, close_ids)
    for row, got in zip(rows, mask):
        begin, end = reasoning_span(row, open_ids, close_ids)
        want = np.zeros(mask.shape[1], dtype=bool)
        want[begin:end] = True
        np.testing.assert_array_equal(got, want, err_msg=f"{row} open={open_ids} close={close_ids}")


@given(st.lists(ids_st, min_size=1, max_size=6), tag_st, tag_st)
def test_span_mask_on_padded_arrays_matches_ragged(
    rows: list[list[int]], open_ids: list[int], close_ids: list[int]
) -> None:
    width = max(len(r) for r in rows) + 2
    ids = np.full((len(rows), width), 3, dtype=np.int64)  # padding with a real-looking id
    valid = np.zeros_like(ids, dtype=bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        valid[i, : len(r)] = True
    padded = reasoning_span_mask(ids, open_ids, close_ids, mask=valid)
    ragged = reasoning_span_mask(rows, open_ids, close_ids)
    np.testing.assert_array_equal(padded[:, : ragged.shape[1]], ragged)
    assert not padded[:, ragged.shape[1] :].any()


def test_span_mask_cases_by_hand() -> None:
    think, end = [10, 11], [12]
    rows = [[1, 10, 11, 5, 6, 12, 7], [5, 6, 12, 7], [10, 11, 5, 6], [5, 6, 7], [10, 12, 10, 11, 4]]
    got = reasoning_span_mask(rows, think, end).astype(int).tolist()
    assert got == [
        [0, 0, 0, 1, 1, 0, 0],  # tags excluded
        [1, 1, 0, 0, 0, 0, 0],  # closing tag only: everything before it
        [0, 0, 1, 1, 0, 0, 0],  # opening tag only (truncated): everything after it
        [0, 0, 0, 0, 0, 0, 0],  # no tags: empty
        [0, 0, 0, 0, 1, 0, 0],  # a lone first token of the tag is not the tag
    ]
    with pytest.raises(ValueError, match="open_ids and close_ids: expected non-empty"):
        reasoning_span_mask(rows, [], end)


# -- normalisation ---------------------------------------------------------------------------------------------


def test_normalisations() -> None:
    np.testing.assert_allclose(margin_uncertainty([1.0, 0.25, 0.0, np.nan]), [0.0, 0.75, 1.0, np.nan])
    np.testing.assert_allclose(normalized_entropy([0.0, math.log(8) / 2, math.log(8)], vocab_size=8), [0, 0.5, 1])
    np.testing.assert_allclose(normalized_entropy([0.0, 1.0, 3.0], cap=2.0), [0, 0.5, 1])
    np.testing.assert_allclose(normalized_nll([0.0, math.log(4)]), [0.0, 0.75])
    np.testing.assert_allclose(normalized_nll([0.0, 1.0, 9.0], cap=2.0), [0, 0.5, 1])
    with pytest.raises(ValueError, match="exactly one of vocab_size and cap"):
        normalized_entropy([1.0])
    with pytest.raises(ValueError, match="cap: expected a finite number > 0"):
        normalized_nll([1.0], cap=0.0)


@given(hnp.arrays(np.float64, st.integers(0, 20), elements=st.floats(0, 1e6)))
def test_normalised_values_are_in_the_unit_interval(values: np.ndarray) -> None:
    for out in (
        normalized_entropy(values, vocab_size=151936),
        normalized_entropy(values, cap=3.0),
        normalized_nll(values),
        normalized_nll(values, cap=5.0),
        margin_uncertainty(np.minimum(values, 1)),
    ):
        assert ((out >= 0) & (out <= 1)).all()
