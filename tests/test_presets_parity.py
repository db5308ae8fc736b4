"""Parity: the presets equal an independent implementation of the official formula, exactly, on 12,000 generated
cases (valid answers, answers on every threshold, malformed and truncated ones, long reasoning) and on whatever
hypothesis generates.

The reference (``test_segmentation_official.py``) mirrors the official per-sample code; it was itself compared
with the official ``seg_pixelthink.py`` on 20,000 cases from the same generator (0 differences).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_segmentation import ANY_COMPLETION, TRUTHS
from test_segmentation_official import (
    generate_cases,
    ref_accuracy,
    ref_box_iou,
    ref_box_l1,
    ref_pixelthink,
    ref_point_match,
    ref_segmentation_format,
    ref_thinking_format,
)

from adaptive_length_reward import RewardBatch
from adaptive_length_reward.presets import pixelthink, pixelthink_score, seg_zero
from adaptive_length_reward.segmentation import parse_ground_truth

N_CASES = 12_000


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, str, float, float]]:
    return generate_cases(N_CASES, seed=2024)


def test_the_generated_cases_cover_every_outcome(cases: list[tuple[str, str, float, float]]) -> None:
    # Not a vacuous comparison: every accuracy value 0..5, every tier, and threshold hits on both sides occur.
    totals = {ref_accuracy(c, g) for c, g, _, _ in cases[:3000]}
    assert totals == {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    difficulty = np.array([c[2] for c in cases])
    assert (difficulty < 3.5).any() and ((difficulty >= 3.5) & (difficulty < 5)).any() and (difficulty >= 5).any()
    assert {3.5, 5.0} <= set(difficulty.tolist())


@pytest.mark.slow
def test_pixelthink_preset_equals_the_official_formula_exactly(cases: list[tuple[str, str, float, float]]) -> None:
    texts, truths, difficulty, uncertainty = (list(x) for x in zip(*cases))
    batch = RewardBatch(
        tuple(texts), ground_truth=tuple(truths), difficulty=np.array(difficulty), uncertainty=np.array(uncertainty)
    )
    out = pixelthink().evaluate(batch)
    expected = np.array([ref_pixelthink(c, g, uncertainty=u, difficulty=d) for c, g, d, u in cases])
    mismatches = np.flatnonzero(out.rewards != expected)
    assert mismatches.size == 0, [(texts[i][:200], truths[i], out.rewards[i], expected[i]) for i in mismatches[:5]]
    # Each of the five terms separately, and the shaped values actually vary (length penalty bites).
    for name, reference in (
        ("thinking_format", lambda c, g: ref_thinking_format(c)),
        ("segmentation_format", lambda c, g: ref_segmentation_format(c)),
        ("box_iou", ref_box_iou),
        ("point_match", ref_point_match),
        ("box_l1", ref_box_l1),
    ):
        term = np.array([reference(c, g) for c, g in zip(texts, truths)])
        np.testing.assert_array_equal(out.components[f"segmentation_accuracy/{name}"], term, err_msg=name)
    assert len(set(out.rewards.tolist())) > 100
    assert ((out.components["soft_length_penalty"] > 0) & (out.components["soft_length_penalty"] < 1)).sum() > 100


def test_seg_zero_preset_equals_the_official_accuracy(cases: list[tuple[str, str, float, float]]) -> None:
    texts, truths = [c[0] for c in cases], [c[1] for c in cases]
    got = seg_zero()(RewardBatch(tuple(texts), ground_truth=tuple(truths)))
    expected = np.array([ref_accuracy(c, g) for c, g in zip(texts, truths)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_per_sample_score_equals_the_official_formula(cases: list[tuple[str, str, float, float]]) -> None:
    for i, (text, truth, difficulty, uncertainty) in enumerate(cases[:1500]):
        length = None if i % 3 else i % 700  # the given length replaces the word count
        expected = ref_pixelthink(text, truth, uncertainty=uncertainty, difficulty=difficulty, length=length)
        got = pixelthink_score(text, truth, difficulty=difficulty, uncertainty=uncertainty, length=length)
        assert got == expected, (text[:200], truth, difficulty, uncertainty, length)


def test_structured_ground_truth_gives_the_same_scores(cases: list[tuple[str, str, float, float]]) -> None:
    subset = cases[:2000]
    mappings = []
    for _, truth, _, _ in subset:
        target = parse_ground_truth(truth)
        mappings.append(
            {
                "bbox": list(target.bbox),
                "points_1": list(target.points[0]),  # type: ignore[index, arg-type]
                "points_2": list(target.points[1]),
            }
        )  # type: ignore[index]
    columns = {"difficulty": np.array([c[2] for c in subset]), "uncertainty": np.array([c[3] for c in subset])}
    texts = tuple(c[0] for c in subset)
    from_strings = pixelthink()(RewardBatch(texts, ground_truth=tuple(c[1] for c in subset), **columns))
    from_mappings = pixelthink()(RewardBatch(texts, ground_truth=tuple(mappings), **columns))
    np.testing.assert_array_equal(from_strings, from_mappings)


@given(
    st.lists(st.tuples(ANY_COMPLETION, TRUTHS, st.floats(0, 10), st.floats(0, 1)), min_size=1, max_size=8),
)
def test_any_output_gives_a_finite_shaped_reward_in_range_equal_to_the_reference(
    rows: list[tuple[str, str, float, float]],
) -> None:
    texts, truths, difficulty, uncertainty = (list(x) for x in zip(*rows))
    got = pixelthink()(completions=texts, ground_truth=truths, difficulty=difficulty, uncertainty=uncertainty)
    assert np.isfinite(got).all() and ((got >= 0) & (got <= 5)).all()
    expected = [ref_pixelthink(c, g, uncertainty=u, difficulty=d) for c, g, d, u in rows]
    assert got.tolist() == expected
