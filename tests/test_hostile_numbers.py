"""Hostile numbers and configs: strict numeric config fields, nested config errors, ground-truth boxes in the
wrong form, and logits or log-prob columns beyond float32 (issue 17's numeric and config edge cases)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_length_reward import ConfigError, RewardBatch, SoftLengthPenalty, build
from adaptive_length_reward.segmentation import BoxIoUReward, PointMatchReward, parse_ground_truth

ANSWER = '<think>x</think><answer>{"bbox": [1, 2, 30, 40], "points_1": [5, 6], "points_2": [7, 8]}</answer>'


# -- config: numbers are numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, np.bool_(True), "0.5", "1", b"1"])
def test_a_bool_or_a_string_is_not_a_number_in_a_config(value: object) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"SoftLengthPenalty: beta: expected a number, got {type(value).__name__}|"
        r"SoftLengthPenalty: beta: expected a number, got .* \(a (bool|str|bytes)",
    ):
        build({"kind": "soft_length_penalty", "beta": value})
    with pytest.raises(ConfigError, match=r"SoftLengthPenalty: beta: expected a number"):
        SoftLengthPenalty(beta=value)  # type: ignore[arg-type]


def test_int_params_and_numbers_inside_sequences_are_strict_too() -> None:
    with pytest.raises(ConfigError, match=r"TieredBudget: budgets\.0: expected a number, got '96' \(a str\)"):
        build({"kind": "tiered_budget", "budgets": ["96", None, 256]})
    with pytest.raises(ConfigError, match=r"thresholds\.1: expected a number, got True \(a bool\)"):
        build({"kind": "tiered_budget", "thresholds": [3.5, True]})


@pytest.mark.parametrize("value", [1, 0.5, np.float32(0.5), np.int64(2), np.float64(0.25)])
def test_json_and_numpy_numbers_still_load(value: object) -> None:
    built = build({"kind": "soft_length_penalty", "beta": value})
    assert built.beta == pytest.approx(float(value))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": []}, r"^config: kind: expected one of \[.*\], got \[\]$"),
        (
            {"kind": "product", "terms": [{"kind": ["x"]}]},
            r"^Product: terms\.0: config: kind: expected one of .*got \['x'\]$",
        ),
        (
            {"kind": "product", "terms": [{"kind": "soft_length_penalty", "budget": {"kind": {}}}]},
            r"^Product: terms\.0: SoftLengthPenalty: budget: config: kind: expected one of .*, got \{\}$",
        ),
        (
            {"kind": "product", "terms": [{"kind": "soft_length_penalty", "beta": "0.5"}]},
            r"^Product: terms\.0: SoftLengthPenalty: beta: expected a number, got '0\.5' \(a str\)$",
        ),
        (
            {
                "kind": "product",
                "terms": [{"kind": "soft_length_penalty", "budget": {"kind": "fixed_budget", "budget": True}}],
            },
            r"^Product: terms\.0: SoftLengthPenalty: budget: FixedBudget: budget: expected a number, "
            r"got True \(a bool\)$",
        ),
    ],
)
def test_a_nested_bad_config_is_a_config_error_naming_the_field_path(config: dict[str, object], message: str) -> None:
    # One line per real problem: pydantic's "tuple should have at least 1 item" echo of the failed entry is dropped.
    with pytest.raises(ConfigError, match=message):
        build(config)


# -- segmentation: a ground-truth part in the wrong form says what was expected and got ---------------------------


def test_a_negative_ground_truth_coordinate_names_the_box_expected_and_got() -> None:
    truth = "<box>(-1,2),(30,40)</box><points>(5,6),(7,8)</points>"
    with pytest.raises(
        ValueError,
        match=r"^ground_truth\[0\]: bbox: expected '<box>\(x1,y1\),\(x2,y2\)</box>' with "
        r"non-negative integer coordinates, got '<box>\(-1,2\),\(30,40\)</box>'$",
    ):
        BoxIoUReward()(RewardBatch.from_completions([ANSWER], ground_truth=[truth]))
    with pytest.raises(ValueError, match=r"ground_truth: points: expected '<points>.*got '<points>\(5,-6\),"):
        parse_ground_truth("<box>(1,2),(30,40)</box><points>(5,-6),(7,8)</points>")
    # A long malformed part is cut, not echoed whole.
    with pytest.raises(ValueError, match=r"got '<box>\(-1,2{71}\.\.\.'$"):
        parse_ground_truth("<box>(-1,2" + "2" * 10_000 + ")</box>")


def test_well_formed_truths_still_score() -> None:
    good = "<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>"
    batch = RewardBatch.from_completions([ANSWER], ground_truth=[good])
    assert BoxIoUReward()(batch).tolist() == [1.0]
    assert PointMatchReward()(batch).tolist() == [1.0]
    # The mapping form takes any finite numbers (negative ones too), as before.
    assert parse_ground_truth({"bbox": [-1, 2, 30, 40]}).bbox == (-1, 2, 30, 40)
