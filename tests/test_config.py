"""Configuration: every component builds from a plain dict (YAML/JSON) and dumps back identically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import adaptive_length_reward as alr
from adaptive_length_reward import ConfigError, build, load_config

PIXELTHINK_YAML = """
kind: product
name: pixelthink
terms:
  - kind: column
    column: accuracy
    low: 0
    high: 5
  - kind: soft_length_penalty
    beta: 0.002
    length: {kind: whitespace_words, span: response}
    budget:
      kind: tiered_budget
      thresholds: [3.5, 5.0]
      names: [easy, medium, hard]
      budgets: [96, null, 256]
      uncertainty_scales: [0, 0, 25]
      missing_difficulty: 3.0
"""

COMPONENTS = [
    alr.WhitespaceWords(span="reasoning", open_tag="<reasoning>", close_tag="</reasoning>"),
    alr.TokenIdCount(span="reasoning", open_ids=[1, 2], close_ids=[3], ignore_ids=[0]),
    alr.PrecomputedLength(),
    alr.TieredBudget(
        thresholds=(4.0,),
        names=("lo", "hi"),
        budgets=(None, 300.0),
        uncertainty_scales=(0.0, 50.0),
        missing_difficulty="hi",
        missing_uncertainty=0.5,
    ),
    alr.LinearBudget(intercept=10, difficulty_slope=5, uncertainty_slope=0, min_budget=0, max_budget=100),
    alr.FixedBudget(128),
    alr.ColumnBudget("budget_tokens"),
    alr.ConstantSchedule(0.3),
    alr.LinearSchedule(start=1, end=0, begin_step=5, end_step=50),
    alr.CosineSchedule(start=0, end=2, begin_step=0, end_step=10),
    alr.StepSchedule(boundaries=(10,), values=(0.0, 1.0)),
    alr.WeightedSum([alr.ColumnReward("accuracy"), alr.KimiLengthReward()], [1.0, alr.StepSchedule()], name="total"),
]


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: type(c).__name__)
def test_round_trip(component: object) -> None:
    config = component.to_config()  # type: ignore[attr-defined]
    data = json.loads(config.model_dump_json())
    rebuilt = build(data)
    assert type(rebuilt) is type(component)
    assert rebuilt.to_config().model_dump() == config.model_dump()
    assert rebuilt == component


def test_every_registered_kind_builds_from_its_config() -> None:
    # Kinds without required fields build from {"kind": ...}; a config with required fields says which.
    for kind in alr.registered_kinds():
        if kind == "opaque":
            continue
        try:
            component = build({"kind": kind})
        except ConfigError as error:
            assert "expected a value, got nothing (the field is required)" in str(error), kind
            continue
        assert build(component.to_config().model_dump()).to_config() == component.to_config()


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "reward.yaml"
    path.write_text(PIXELTHINK_YAML)
    reward = load_config(path)
    assert reward.__name__ == "pixelthink"
    out = reward(completions=["w " * 346, "w " * 346], accuracy=[5.0, 5.0], difficulty=[None, 4.0])
    assert out.tolist() == [2.5, 5.0]  # missing difficulty -> 3.0 (easy: 96) -> 5 * 0.5; medium: no penalty
    json_path = tmp_path / "reward.json"
    json_path.write_text(reward.to_config().model_dump_json())
    assert load_config(json_path).to_config() == reward.to_config()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "soft_length_penalty", "beta": 0}, "SoftLengthPenalty: beta: expected > 0, got 0"),
        (
            {"kind": "soft_length_penalty", "budget": {"kind": "tiered_budget", "thresholds": [5, 1]}},
            "SoftLengthPenalty: budget: TieredBudget: thresholds: expected finite, strictly increasing numbers",
        ),
        ({"kind": "product", "terms": [{"kind": "nope"}]}, "kind: expected one of"),
        ({"kind": "fixed_budget", "budget": 3, "extra": 1}, "FixedBudget: extra: unknown field"),
        (
            {"kind": "whitespace_words", "span": "thinking"},
            "WhitespaceWords: span: expected 'response' or 'reasoning', got 'thinking'",
        ),
        ([1, 2], "config: expected a mapping with a 'kind', got list"),
    ],
)
def test_invalid_configs_name_field_expected_and_got(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(data)  # type: ignore[arg-type]


def test_configs_are_frozen() -> None:
    config = alr.FixedBudget(3).to_config()
    with pytest.raises(Exception, match="frozen"):
        config.budget = 4  # type: ignore[misc]
