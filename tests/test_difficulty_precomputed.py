"""Precomputed difficulty: the official lookup-table shape, missing-key policies, dataset columns, and the
1..10 scale with its tiers."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import difficulty_st

from adaptive_length_reward import (
    ColumnReward,
    ConfigError,
    MissingContextError,
    Product,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
    WithContext,
    build,
)
from adaptive_length_reward.difficulty import (
    ColumnDifficulty,
    LookupDifficulty,
    load_difficulty_table,
    tier_histogram,
    tier_names,
    tier_value,
    unit_to_scale,
)
from adaptive_length_reward.difficulty.scale import check_on_scale, describe_histogram, resolve_missing, tier_index

# The shape of the official refcoco_train_labeled_merged.json (other fields are carried along and ignored).
OFFICIAL = [
    {"image_id": "COCO_train2014_000000000009_0", "problem": "the bowl of broccoli", "difficulty_score_model": 2.0},
    {
        "image_id": "COCO_train2014_000000000025_1",
        "problem": "giraffe behind the other",
        "difficulty_score_model": 6.333,
    },
    {"image_id": "COCO_train2014_000000000030_0", "problem": "white vase", "difficulty_score_model": 4},
    {"image_id": "COCO_train2014_000000000034_0", "problem": "zebra", "difficulty_score_model": None},
]


def batch_with_ids(ids: list[object]) -> RewardBatch:
    return RewardBatch.from_completions(["<think>x</think>"] * len(ids), id=ids)


@pytest.fixture
def official_file(tmp_path):
    path = tmp_path / "refcoco_train_labeled_merged.json"
    path.write_text(json.dumps(OFFICIAL), encoding="utf-8")
    return path


def test_loader_accepts_the_official_json_shape(official_file) -> None:
    table = load_difficulty_table(official_file)
    assert table == {
        "COCO_train2014_000000000009_0": 2.0,
        "COCO_train2014_000000000025_1": 6.333,
        "COCO_train2014_000000000030_0": 4.0,
        "COCO_train2014_000000000034_0": None,
    }


def test_loader_accepts_jsonl_plain_objects_and_aspect_scores(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in OFFICIAL[:2]) + "\n\n", encoding="utf-8")
    assert load_difficulty_table(path) == load_difficulty_table(OFFICIAL[:2])
    assert load_difficulty_table({1: 3.0, "2": None}) == {"1": 3.0, "2": None}
    records = [{"id": 5, "d": {"scene": 9, "seg": 6, "language": 3}}]
    assert load_difficulty_table(records, id_field="id", score_field="d") == {"5": 6.0}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([{"problem": "no id"}], r"record 0: expected an object with 'image_id'"),
        (
            [{"image_id": 1, "difficulty_score_model": 11}],
            r"image_id=1: difficulty_score_model: expected a number "
            r"in \[1, 10\]",
        ),
        ([{"image_id": 1, "difficulty_score_model": "hard"}], "expected a number in"),
        ([{"image_id": 1, "difficulty_score_model": True}], "expected a number in"),
        ([{"image_id": 1, "difficulty_score_model": {"scene": 3}}], "aspect scores with keys"),
        (
            [{"image_id": 1, "difficulty_score_model": 2}, {"image_id": "1", "difficulty_score_model": 3}],
            "listed twice",
        ),
        ("not a list", "expected a list of records"),
    ],
)
def test_loader_rejects_malformed_tables_naming_the_record(source: object, message: str, tmp_path) -> None:
    if isinstance(source, str):
        path = tmp_path / "t.json"
        path.write_text(json.dumps(source), encoding="utf-8")
        source = path
    with pytest.raises(ValueError, match=message):
        load_difficulty_table(source)  # type: ignore[arg-type]


def test_loader_duplicate_and_invalid_policies(tmp_path) -> None:
    records = [
        {"image_id": 1, "difficulty_score_model": 2},
        {"image_id": 1, "difficulty_score_model": 3},
        {"image_id": 2, "difficulty_score_model": 42},
    ]
    assert load_difficulty_table(records, on_duplicate="first", on_invalid="missing") == {"1": 2.0, "2": None}
    assert load_difficulty_table(records, on_duplicate="last", on_invalid="missing") == {"1": 3.0, "2": None}
    with pytest.raises(FileNotFoundError, match="not found"):
        load_difficulty_table(tmp_path / "missing.json")


def test_lookup_error_policy_names_the_missing_ids(official_file) -> None:
    scorer = LookupDifficulty(official_file)
    ids = ["COCO_train2014_000000000009_0", "unknown-1", "COCO_train2014_000000000034_0"]
    with pytest.raises(
        MissingContextError,
        match=r"no difficulty for 2 of 3 samples \(first: \['unknown-1', "
        r"'COCO_train2014_000000000034_0'\]\); set missing=",
    ):
        scorer(batch_with_ids(ids))


@pytest.mark.parametrize(("missing", "fill"), [(3.0, 3.0), ("easy", 2.25), ("medium", 4.25), ("hard", 7.5)])
def test_lookup_default_value_and_tier_policies_count_fallbacks(official_file, missing: object, fill: float) -> None:
    scorer = LookupDifficulty(official_file, missing=missing)
    ids = ["COCO_train2014_000000000025_1", "unknown", "COCO_train2014_000000000034_0", "COCO_train2014_000000000030_0"]
    values = scorer(batch_with_ids(ids))
    assert values.tolist() == [6.333, fill, fill, 4.0]
    assert scorer.stats == {"scored": 4, "fell_back": 2} and scorer.fallback_count == 2
    scorer(batch_with_ids(["unknown"]))
    assert scorer.fallback_count == 3
    scorer.reset_stats()
    assert scorer.stats == {"scored": 0, "fell_back": 0}
    if isinstance(missing, str):
        assert tier_names(values)[1] == missing  # the fallback lands in the named tier


def test_lookup_nan_policy_leaves_the_decision_to_the_budget(official_file) -> None:
    scorer = LookupDifficulty(official_file, missing="nan")
    values = scorer(batch_with_ids(["COCO_train2014_000000000009_0", "unknown"]))
    assert values[0] == 2.0 and math.isnan(values[1]) and scorer.fallback_count == 1


def test_lookup_matches_ids_by_their_string_form() -> None:
    scorer = LookupDifficulty({42: 9.0, "7": 2.0}, missing="nan")
    assert scorer(batch_with_ids([42, "42", 7, np.int64(7), None])).tolist()[:4] == [9.0, 9.0, 2.0, 2.0]
    assert math.isnan(scorer.lookup([None])[0])  # a row without an id has no score


def test_lookup_fills_the_difficulty_column_for_pixelthink_reward(official_file) -> None:
    scorer = LookupDifficulty(official_file, missing="easy")
    reward = WithContext(Product([ColumnReward("accuracy"), SoftLengthPenalty(budget=TieredBudget())]), [scorer])
    long = "x " * 200  # 200 words: over the easy budget (96) by 104 -> s = 1 - 104/500
    values = reward(
        completions=[long, long, long],
        accuracy=[5.0, 5.0, 5.0],
        id=["COCO_train2014_000000000009_0", "COCO_train2014_000000000030_0", "unknown"],
    )
    assert values.tolist() == pytest.approx([5 * (1 - 104 / 500), 5.0, 5 * (1 - 104 / 500)])
    assert reward.requires == {"accuracy", "id"}


def test_lookup_config_round_trip_and_pickling(official_file) -> None:
    scorer = LookupDifficulty(official_file, missing="hard", key_column="image_id")
    data = scorer.to_config().model_dump()
    assert data["table"] == str(official_file)
    rebuilt = build(json.loads(json.dumps(data)))
    assert rebuilt == scorer and len(rebuilt) == 4
    inline = LookupDifficulty({"a": 2.0})
    assert build(inline.to_config().model_dump()).lookup(["a"]).tolist() == [2.0]
    batch = RewardBatch.from_completions(["a"], image_id=["unknown"])
    assert pickle.loads(pickle.dumps(scorer))(batch).tolist() == [7.5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"missing": "impossible"},
            r"LookupDifficulty: missing: expected one of \['error', 'nan', 'easy', "
            r"'medium', 'hard'\]",
        ),
        ({"missing": 11.0}, r"missing: expected a number in \[1, 10\], got 11.0"),
        ({"thresholds": (5.0, 3.5)}, "thresholds: expected finite, strictly increasing"),
        ({"tier_names": ("a", "b")}, "tier_names: expected 3 distinct"),
        ({"on_duplicate": "merge"}, "on_duplicate"),
    ],
)
def test_lookup_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LookupDifficulty({"a": 2.0}, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------


def test_column_difficulty_passes_scale_values_and_maps_other_ranges() -> None:
    batch = RewardBatch.from_completions(["a"] * 3, score=[1.0, 5.5, 10.0], pass_rate=[1.0, 0.5, 0.0])
    assert ColumnDifficulty("score")(batch).tolist() == [1.0, 5.5, 10.0]
    mapped = ColumnDifficulty("pass_rate", source_range=(0.0, 1.0), invert=True)(batch)
    assert mapped.tolist() == [1.0, 5.5, 10.0]


def test_column_difficulty_missing_and_bad_values() -> None:
    batch = RewardBatch.from_completions(["a"] * 3, score=[2.0, None, float("nan")])
    with pytest.raises(MissingContextError, match="no difficulty for 2 of 3"):
        ColumnDifficulty("score")(batch)
    scorer = ColumnDifficulty("score", missing="medium")
    assert scorer(batch).tolist() == [2.0, 4.25, 4.25] and scorer.fallback_count == 2
    with pytest.raises(ValueError, match=r"expected values in source_range \[1, 10\], got \[0.5\]"):
        ColumnDifficulty("score")(RewardBatch.from_completions(["a"], score=[0.5]))
    with pytest.raises(TypeError, match=r"column 'score'\[0\]: expected a number or None, got 'hard'"):
        ColumnDifficulty("score")(RewardBatch.from_completions(["a"], score=["hard"]))
    with pytest.raises(MissingContextError, match="ColumnDifficulty needs the batch column 'score'"):
        ColumnDifficulty("score")(RewardBatch.from_completions(["a"]))
    with pytest.raises(ConfigError, match=r"source_range: expected \(low, high\) with finite low < high"):
        ColumnDifficulty("score", source_range=(1.0, 1.0))


# ------------------------------------------------------------------------------------------------------------
# The scale and its tiers
# ------------------------------------------------------------------------------------------------------------


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=difficulty_st))
def test_tiers_match_the_budget_that_training_uses(values: np.ndarray) -> None:
    batch = RewardBatch(completions=("",) * values.size, difficulty=values, uncertainty=np.zeros(values.size))
    assert tier_names(values).tolist() == TieredBudget().tiers(batch).tolist()


def test_tier_edges_histogram_and_values() -> None:
    values = np.array([1.0, 3.49, 3.5, 4.99, 5.0, 10.0, np.nan])
    assert tier_index(values).tolist() == [0, 0, 1, 1, 2, 2, -1]
    assert tier_histogram(values) == {"easy": 2, "medium": 2, "hard": 2, "missing": 1}
    assert [tier_value(t) for t in ("easy", "medium", "hard")] == [2.25, 4.25, 7.5]
    assert tier_value("b", thresholds=(2.0,), names=("a", "b")) == 6.0
    lines = describe_histogram(tier_histogram(values), (3.5, 5.0), ("easy", "medium", "hard"))
    assert lines[0].startswith("easy") and "[1, 3.5)" in lines[0] and "[5, 10]" in lines[2] and "missing" in lines[3]
    with pytest.raises(ValueError, match="tier: expected one of"):
        tier_value("extreme")


def test_unit_mapping_and_range_check() -> None:
    assert unit_to_scale([0.0, 1.0, np.nan])[:2].tolist() == [1.0, 10.0]
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\], got \[1.5\]"):
        unit_to_scale([1.5])
    with pytest.raises(ValueError, match=r"Owner: difficulty: expected values in \[1, 10\].*\[0.0\] for samples \[1\]"):
        check_on_scale([2.0, 0.0], owner="Owner")
    values, fell_back = resolve_missing(np.array([np.nan, 2.0]), 9.0, owner="x")
    assert values.tolist() == [9.0, 2.0] and fell_back.tolist() == [True, False]
