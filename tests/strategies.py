"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

lengths_st = st.integers(min_value=0, max_value=100_000)
budgets_st = st.one_of(st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False), st.just(np.inf))
difficulty_st = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
uncertainty_st = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
correct_st = st.integers(min_value=0, max_value=1)


@st.composite
def group_batches(draw: st.DrawFn, max_groups: int = 6, max_size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct, lengths, dense group index) for a batch of GRPO groups."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_groups))
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n = groups.size
    correct = draw(hnp.arrays(np.int64, n, elements=correct_st))
    lengths = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 50_000)))
    order = draw(st.permutations(range(n)))  # groups need not be contiguous
    order = np.asarray(order)
    return correct[order], lengths[order], groups[order]


words_st = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc")), min_size=1, max_size=6), max_size=40
)


@st.composite
def completions(draw: st.DrawFn) -> str:
    """Realistic-ish completions: optional think tags, words, an answer, arbitrary unicode."""
    think = " ".join(draw(words_st))
    answer = " ".join(draw(words_st))
    form = draw(st.sampled_from(["full", "no_close", "no_open", "none", "raw"]))
    if form == "full":
        return f"<think>{think}</think><answer>{answer}</answer>"
    if form == "no_close":
        return f"<think>{think}"
    if form == "no_open":
        return f"{think}</think>{answer}"
    if form == "none":
        return answer
    return draw(st.text(max_size=200))
