"""The worked example's evaluation tiers come from the training's difficulty source (issue 12).

``dataset`` / ``judge``: the samples' own values; ``heuristic``: the training's HeuristicDifficulty scorer;
``online``: none for held-out samples. A sample without a difficulty from the source is tiered at the fallback
``missing_difficulty``, and the pass says so (``tiers_valid`` False, a note in the summary, the printed table and
report.md). No model and no GRPO run: the evaluation helpers are called on tiny samples, with a whitespace
tokenizer and a segmenter that fills the prompt box as stand-ins.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

pytest.importorskip("torch")

from example_fixtures import BoxSegmenter, WordTokenizer  # noqa: E402
from pixelthink.evaluation import eval_difficulty, score_completions  # noqa: E402
from pixelthink.report import summary_table, tiers_marking, write_report  # noqa: E402
from pixelthink.rewards import RewardSettings, build_reward  # noqa: E402
from pixelthink.scenes import SceneGenerator, SegSample  # noqa: E402

from adaptive_length_reward import RewardBatch  # noqa: E402
from adaptive_length_reward.difficulty import HeuristicDifficulty  # noqa: E402

ANSWER = '<think>a b c</think><answer>{"bbox": [10, 10, 39, 29], "points_1": [20, 20], "points_2": [30, 20]}</answer>'


def _sample(name: str, difficulty: float, *, side: int = 20, query: str = "the box") -> SegSample:
    mask = np.zeros((100, 100), dtype=bool)
    mask[10 : 10 + side, 10 : 10 + side] = True
    return SegSample(
        id=name,
        image=Image.new("RGB", (100, 100), (200, 200, 200)),
        query=query,
        bbox=(10, 10, 9 + side, 9 + side),
        points=((12, 12), (14, 14)),
        frame=100,
        mask=mask,
        difficulty=difficulty,
    )


def _score(samples: list[SegSample], settings: RewardSettings) -> Any:
    return score_completions(
        samples,
        [ANSWER] * len(samples),
        [0.1] * len(samples),
        BoxSegmenter(),
        tokenizer=WordTokenizer(),
        train_reward=build_reward(settings, None),
        reward_settings=settings,
    )


def _metrics(summary: dict[str, Any], settings: RewardSettings) -> dict[str, Any]:
    """The parts of metrics.json that the report reads, as the example writes them."""
    return {
        "difficulty_source": summary["difficulty_source"],
        "tiers_valid": summary["tiers_valid"],
        "after": summary,
        "before": summary,
        "train_steps": 0,
        "timings": {},
        "run": {"name": "t", "policy": "p", "segmenter": "s", "data": "d", "device": "cpu"},
        "config": {"reward": settings.to_dict()},
    }


def test_dataset_source_uses_the_samples_values() -> None:
    settings = RewardSettings(difficulty="dataset", uncertainty="none")
    result = _score([_sample("e", 2.0), _sample("m", 4.0), _sample("h", 8.0)], settings)
    assert [r["tier"] for r in result.records] == ["easy", "medium", "hard"]
    assert [r["difficulty"] for r in result.records] == [2.0, 4.0, 8.0]
    summary = result.summary()
    assert summary["difficulty_source"] == "dataset" and summary["tiers_valid"] is True
    assert summary["difficulty_fallbacks"] == 0 and summary["tiers_note"] is None
    assert summary["tier_counts"] == {"easy": 1, "medium": 1, "hard": 1}
    metrics = _metrics(summary, settings)
    assert tiers_marking(metrics) is None and "*" not in summary_table(metrics)


def test_heuristic_source_applies_the_training_scorer_to_eval_samples() -> None:
    settings = RewardSettings(difficulty="heuristic", uncertainty="none")
    long_query = "the small grey square that sits near the top left corner of the picture behind everything else"
    samples = [_sample("big", 9.0, side=60, query="the box"), _sample("tiny", 2.0, side=4, query=long_query)]
    tiering = eval_difficulty(samples, settings)
    scorer = HeuristicDifficulty(area_column="mask_area_ratio", expression_column="query")
    batch = RewardBatch.from_completions(["", ""], mask_area_ratio=[0.36, 0.0016], query=["the box", long_query])
    expected = scorer(batch)
    assert tiering.values == pytest.approx(expected) and tiering.valid and tiering.note is None
    result = _score(samples, settings)
    # the dataset values (9 and 2) are not the training's source: a large plain target is easy, a tiny one hard
    assert [r["tier"] for r in result.records] == ["easy", "hard"]
    assert [r["difficulty"] for r in result.records] == pytest.approx(list(expected))
    assert result.summary()["tiers_valid"] is True and result.summary()["difficulty_source"] == "heuristic"


def test_judge_source_uses_the_judged_scores_and_marks_failed_verdicts() -> None:
    settings = RewardSettings(difficulty="judge", missing_difficulty=3.0)
    tiering = eval_difficulty([_sample("a", 6.5), _sample("b", math.nan)], settings)  # NaN: the judge failed
    assert list(tiering.values) == [6.5, 3.0] and list(tiering.fell_back) == [False, True]
    assert not tiering.valid and "'judge'" in (tiering.note or "") and "1 of 2 samples" in (tiering.note or "")


def test_missing_dataset_difficulty_marks_the_tiers(tmp_path: Path) -> None:
    settings = RewardSettings(difficulty="dataset", uncertainty="none", missing_difficulty=3.0)
    result = _score([_sample("known", 8.0), _sample("unknown", math.nan), _sample("also", math.nan)], settings)
    assert [r["tier"] for r in result.records] == ["hard", "easy", "easy"]
    assert [r["difficulty_fallback"] for r in result.records] == [False, True, True]
    assert result.records[1]["difficulty"] is None
    summary = result.summary()
    assert summary["tiers_valid"] is False and summary["difficulty_fallbacks"] == 2
    assert summary["fallback_difficulty"] == 3.0
    assert "fallback difficulty 3 for 2 of 3 samples" in summary["tiers_note"]
    assert any(note.startswith("tiers not valid:") for note in result.notes)
    metrics = _metrics(summary, settings)
    table = summary_table(metrics)
    assert "easy*" in table and "hard*" in table and "all*" not in table
    assert table.splitlines()[-1].startswith("* tiers not valid: per-tier rows use the fallback difficulty 3 for 2")
    report = write_report(tmp_path / "report.md", metrics, plots=[], notes=[]).read_text()
    assert "**Tiers not valid** (rows marked *): per-tier rows use the fallback difficulty 3 for 2 of 3" in report
    assert "| easy* | 2 |" in report and "| all | 3 |" in report


def test_online_source_has_no_eval_difficulty_and_is_marked() -> None:
    settings = RewardSettings(difficulty="online", length_reward="kimi", uncertainty="none", missing_difficulty=4.0)
    result = _score([_sample("a", 2.0), _sample("b", 8.0)], settings)  # dataset values are not the source
    assert [r["tier"] for r in result.records] == ["medium", "medium"]  # the fallback 4.0, for both
    summary = result.summary()
    assert summary["tiers_valid"] is False and summary["difficulty_source"] == "online"
    assert "for 2 of 2 samples" in summary["tiers_note"] and "greedy answer" in summary["tiers_note"]
    assert "medium*" in summary_table(_metrics(summary, settings))


def test_tiny_demo_scenes_give_valid_tiers_with_the_default_source() -> None:
    samples = SceneGenerator(seed=1, image_size=128).samples(24)
    tiering = eval_difficulty(samples, RewardSettings())  # the demo's default: --difficulty dataset
    assert tiering.valid and np.all((tiering.values >= 1) & (tiering.values <= 10))
    assert tiering.values == pytest.approx([s.difficulty for s in samples])


def test_report_reads_metrics_without_the_new_fields() -> None:
    """A metrics.json written before tiers_valid existed (e.g. a resumed run's stored pass) is not marked."""
    assert tiers_marking({"after": {"samples": 1}, "before": None}) is None
