"""The baselines run (``examples/pixelthink_baselines.py``, ``make baselines``): its command line, the Pareto
front, the efficiency scores, and one small real run of two variants (tiny Qwen2.5-VL, TRL, GrabCut) that checks
the shared start, the files and the table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPT = str(EXAMPLES / "pixelthink_baselines.py")
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import pixelthink_baselines  # noqa: E402
from example_fixtures import SMALLEST  # noqa: E402
from pixelthink.baselines import pareto_front, plot_pareto, report_markdown  # noqa: E402
from pixelthink.prompts import CONCISE_INSTRUCTION  # noqa: E402
from pixelthink.scenes import SceneGenerator  # noqa: E402
from pixelthink.training import training_rows  # noqa: E402

from adaptive_length_reward.rscore import efficiency_scores  # noqa: E402


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tiny", "--variants", "seg_zero,l2"], "--variants: expected names from seg_zero, prompt"),
        (["--tiny", "--variants", "seg_zero,seg_zero"], "--variants: expected each name once"),
        (["--tiny", "--", "--length-reward", "none"], "flags after --: --length-reward are set per variant"),
        ([], "expected --tiny (CPU) or, after --, the example's --policy DIR --segmenter DIR"),
        (["--tiny", "--rscore", "judge"], "--rscore judge: expected --rscore-url"),
        (["--tiny", "--", "--steps", "0"], "--steps: expected an int >= 1, got 0"),
        (["--tiny", "--cap-sweep", "0.5,-1"], "--cap-sweep: expected comma-separated numbers > 0"),
        (["--tiny", "--", "--thinking-cap-scales", "x"], "--thinking-cap-scales: expected comma-separated numbers > 0"),
    ],
)
def test_argument_errors_exit_2_before_anything_runs(tmp_path: Path, argv: list[str], message: str) -> None:
    result = _run("--output-dir", str(tmp_path / "out"), *argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pareto_front_keeps_exactly_the_undominated_points() -> None:
    points = [(90.0, 60.0), (60.0, 62.0), (65.0, 40.0), (47.0, 63.0), (47.0, 50.0), (100.0, 70.0)]
    # (47, 63) beats (60, 62), (90, 60), (65, 40) and (47, 50); (100, 70) has the best gIoU
    assert pareto_front(points) == [3, 5]
    assert pareto_front([(10.0, 1.0)]) == [0]
    assert pareto_front([(10.0, 1.0), (10.0, 1.0)]) == [0, 1]  # equal points do not dominate each other


def test_variants_on_the_same_point_share_one_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    texts: list[str] = []
    original = matplotlib.axes.Axes.annotate
    monkeypatch.setattr(
        matplotlib.axes.Axes, "annotate", lambda ax, text, *a, **k: texts.append(text) or original(ax, text, *a, **k)
    )
    row = {"mean_reasoning_tokens": {"all": 78.08}, "giou": 0.0383}
    other = {"mean_reasoning_tokens": {"all": 45.9}, "giou": 0.031}
    result = {"variants": {"seg_zero": row, "l1_max": dict(row), "pixelthink": other}}
    plot_pareto(result, tmp_path / "pareto.png")
    assert sorted(texts) == ["PixelThink", "Seg-Zero = +L1-Max"]


def test_efficiency_scores_use_giou_as_a_fraction_and_the_fitted_forms() -> None:
    row = pixelthink_baselines._combined_scores(0.6381, 7.0, 46.98)
    assert row == efficiency_scores(rscore=7.0, giou=0.6381, mean_tokens=46.98)
    assert math.isclose(row["sat"], 0.6381 * math.sqrt(200 / 46.98), rel_tol=1e-12)
    assert math.isclose(row["urss"], 0.7 * row["sat"] + 0.3 * 0.7 * math.sqrt(200 / 46.98), rel_tol=1e-12)
    assert pixelthink_baselines._combined_scores(0.5, None, 40.0)["urss"] is None
    assert pixelthink_baselines._combined_scores(0.5, 5.0, 0.0) == {"sat": None, "rst": None, "urss": None}


def test_reductions_are_against_seg_zero() -> None:
    rows = {
        name: {
            "latency_s_per_sample": lat,
            "end_to_end_s_per_sample": 2 * lat,
            "mean_reasoning_tokens": {"all": tokens},
        }
        for name, lat, tokens in (("seg_zero", 0.2, 90.0), ("pixelthink", 0.1, 45.0))
    }
    pixelthink_baselines._reductions(rows)
    assert rows["pixelthink"]["token_reduction"] == pytest.approx(0.5)
    assert rows["pixelthink"]["latency_reduction"] == pytest.approx(0.5)
    assert rows["seg_zero"]["token_reduction"] == pytest.approx(0.0)


def test_the_prompt_variant_asks_for_concise_reasoning() -> None:
    samples = SceneGenerator(seed=0, image_size=128).samples(2)
    plain, concise = training_rows(samples), training_rows(samples, CONCISE_INSTRUCTION)
    text = concise[0]["prompt"][0]["content"][1]["text"]
    assert text == plain[0]["prompt"][0]["content"][1]["text"] + CONCISE_INSTRUCTION


def test_two_variants_share_the_start_and_write_the_table(tmp_path: Path) -> None:
    out = tmp_path / "baselines"
    result = pixelthink_baselines.main(
        [
            "--tiny",
            "--output-dir",
            str(out),
            "--variants",
            "seg_zero,pixelthink",
            "--cap-sweep",
            "0.5",
            "--no-progress",
            "--",
            *SMALLEST,
            "--eval-samples",
            "3",
            "--warmup-steps",
            "2",
        ]
    )
    stored = json.loads((out / "baselines.json").read_text())
    assert set(stored["variants"]) == {"seg_zero", "pixelthink"} == set(result["variants"])
    for row in stored["variants"].values():
        assert set(row["mean_reasoning_tokens"]) == {"all", "easy", "medium", "hard"}
        for key in ("giou", "ciou", "latency_s_per_sample", "end_to_end_s_per_sample", "rscore"):
            assert row[key] is not None and row[key] >= 0, key
        assert row["end_to_end_s_per_sample"] >= row["latency_s_per_sample"]
        assert row["rscore_method"] == "reference_overlap (not an LLM judge)"
    # the second variant starts from the first's warm-started policy, trains with its own reward
    first = json.loads((out / "seg_zero" / "config.json").read_text())
    second = json.loads((out / "pixelthink" / "config.json").read_text())
    assert first["args"]["init_policy"] is None and first["args"]["warmup_steps"] == 2
    assert second["args"]["init_policy"] == str(out / "seg_zero" / "reference-policy")
    assert second["args"]["warmup_steps"] == 0
    assert (first["reward"]["length_reward"], second["reward"]["length_reward"]) == ("none", "pixelthink")
    # the same evaluation samples, in the same order
    ids = [
        [json.loads(line)["id"] for line in (out / v / "eval_after.jsonl").read_text().splitlines()]
        for v in ("seg_zero", "pixelthink")
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 3
    # the capped evaluation: every variant, each sample's budget from its difficulty, never exceeded
    assert set(stored["thinking_cap"]) == {"seg_zero", "pixelthink"}
    for variant in ("seg_zero", "pixelthink"):
        cap = json.loads((out / variant / "metrics.json").read_text())["thinking_cap"]["cap"]
        records = [json.loads(line) for line in (out / variant / "eval_capped.jsonl").read_text().splitlines()]
        assert len(cap["caps"]) == len(records) == len(cap["capped"]) == 3
        for budget, record in zip(cap["caps"], records):
            assert budget is None or record["reasoning_tokens"] <= budget
        assert stored["thinking_cap"][variant]["cap"] == cap
    # the sweep: PixelThink's variant only, budgets x 1 (the cap above) and x 0.5
    sweep = stored["thinking_cap_sweep"]
    assert [(r["variant"], r["scale"]) for r in sweep] == [("pixelthink", 1.0), ("pixelthink", 0.5)]
    half = json.loads((out / "pixelthink" / "metrics.json").read_text())["thinking_cap_sweep"][1]["cap"]
    full = stored["thinking_cap"]["pixelthink"]["cap"]
    assert half["caps"] == [None if c is None else int(c * 0.5) for c in full["caps"]]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| Seg-Zero |" in report and "| PixelThink |" in report and "not an LLM judge" in report
    assert report == report_markdown(stored)
