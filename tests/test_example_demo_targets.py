"""The worked example checks and reports what its demo is meant to show (issue 12): parse rate, gIoU and its
paired bootstrap interval, one segmenter call per parsed answer, easy-tier reduction larger than the hard tier's,
and the wall time; plus the vLLM generation option and the GPU check script's CPU path.

No GRPO run here except the GPU check's smoke pipeline (2 steps of the tiny policy); the evaluation helpers run
on small samples with a whitespace tokenizer and a box-filling segmenter as stand-ins.
"""

from __future__ import annotations

import copy
import json
import subprocess
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

import pixelthink_grpo  # noqa: E402
from example_fixtures import BoxSegmenter, WordTokenizer  # noqa: E402
from pixelthink.evaluation import bootstrap_interval, paired_difference_interval, score_completions  # noqa: E402
from pixelthink.report import demo_targets, write_report  # noqa: E402
from pixelthink.rewards import RewardSettings, build_reward  # noqa: E402
from pixelthink.scenes import SegSample  # noqa: E402
from pixelthink.training import TrainSettings, grpo_config_kwargs, vllm_sampling_kwargs  # noqa: E402

GOOD = '<think>a b c</think><answer>{"bbox": [10, 10, 29, 29], "points_1": [12, 12], "points_2": [14, 14]}</answer>'
BROKEN = '<think>a b c</think><answer>{"bbox": [10, 10]}</answer>'


def _sample(name: str) -> SegSample:
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:30, 10:30] = True
    return SegSample(
        id=name,
        image=Image.new("RGB", (100, 100), (200, 200, 200)),
        query="the box",
        bbox=(10, 10, 29, 29),
        points=((12, 12), (14, 14)),
        frame=100,
        mask=mask,
        difficulty=2.0,
    )


def test_segmenter_calls_equal_parsed_answers_and_the_summary_says_so() -> None:
    samples = [_sample(f"s{i}") for i in range(5)]
    completions = [GOOD, BROKEN, GOOD, "no answer at all", GOOD]
    segmenter = BoxSegmenter()
    settings = RewardSettings(uncertainty="none")
    result = score_completions(
        samples,
        completions,
        [0.0] * 5,
        segmenter,
        tokenizer=WordTokenizer(),
        train_reward=build_reward(settings, None),
        reward_settings=settings,
    )
    summary = result.summary()
    assert summary["parsed_answers"] == 3 and summary["segmenter_calls"] == 3
    assert summary["parse_rate"] == pytest.approx(0.6)
    assert len(segmenter.calls) == 3 + 5  # the policy's parsed answers, plus one ground-truth (oracle) call per sample
    assert list(result.ious) == [1.0, 0.0, 1.0, 0.0, 1.0]
    low, high = summary["giou_ci95"]
    assert summary["giou"] == pytest.approx(0.6)
    assert 0.0 <= low < summary["giou"] < high <= 1.0


def test_bootstrap_intervals() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.random(20), rng.random(2000)
    a, b = bootstrap_interval(small), bootstrap_interval(large)
    assert a[0] < small.mean() < a[1] and b[0] < large.mean() < b[1]
    assert b[1] - b[0] < a[1] - a[0]  # more samples, a narrower interval
    assert bootstrap_interval([0.5]) is None
    assert bootstrap_interval(small) == bootstrap_interval(small)  # seeded
    before = rng.random(200)
    low, high = paired_difference_interval(before + 0.1, before)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)  # paired: a constant shift has no spread
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference_interval([1.0, 2.0], [1.0])


def _metrics() -> dict[str, Any]:
    run = {
        "samples": 24,
        "giou": 0.40,
        "parse_rate": 0.9,
        "segmenter_calls": 21,
        "parsed_answers": 21,
        "mean_reasoning_tokens": {"all": 40.0, "easy": 30.0, "medium": 40.0, "hard": 50.0},
        "tier_counts": {"easy": 8, "medium": 8, "hard": 8},
        "giou_by_tier": {},
        "ciou_by_tier": {},
        "budget_adherence_by_tier": {},
        "ciou": 0.4,
        "budget_adherence": 0.5,
        "timings": {
            "prefill_s": 1.0,
            "decode_s": 1.0,
            "prefill_ms_per_sample": 1.0,
            "decode_ms_per_sample": 1.0,
            "decode_tokens_per_s": 1.0,
            "sam_s": 1.0,
            "sam_ms_per_call": 1.0,
            "sam_oracle_s": 1.0,
        },
    }
    before = copy.deepcopy(run)
    before["mean_reasoning_tokens"] = {"all": 80.0, "easy": 60.0, "medium": 80.0, "hard": 60.0}
    return {
        "before": before,
        "after": run,
        "giou_change": -0.01,
        "giou_change_ci95": [-0.05, 0.03],
        "timings": {"total_s": 200.0},
        "train_steps": 1,
        "run": {"name": "t", "policy": "p", "segmenter": "s", "data": "d", "device": "cpu"},
        "config": {"reward": {"length_reward": "pixelthink", "difficulty": "dataset", "uncertainty": "margin"}},
    }


def _met(metrics: dict[str, Any]) -> dict[str, bool | None]:
    return {
        row["target"].split(" ")[0] + " " + row["target"].split(" ")[1]: row["met"] for row in demo_targets(metrics)
    }


def test_demo_targets_all_met() -> None:
    assert all(row["met"] is True for row in demo_targets(_metrics()))


@pytest.mark.parametrize(
    "change, missed",
    [
        (lambda m: m["after"].update(parse_rate=0.79), "parse rate"),
        (lambda m: m["after"].update(giou=0.29), "gIoU after >= 30%"),
        (lambda m: m.update(giou_change=-0.03), "GRPO start - 2 points"),
        (lambda m: m["after"].update(segmenter_calls=20), "segmenter calls"),
        (lambda m: m["after"]["mean_reasoning_tokens"].update(easy=37.0), "easy-tier tokens"),
        (lambda m: m["after"]["mean_reasoning_tokens"].update(hard=10.0), "hard tier reduced less"),
        (lambda m: m["timings"].update(total_s=301.0), "under 5 minutes"),
    ],
)
def test_each_missed_target_is_reported(tmp_path: Path, change: Any, missed: str) -> None:
    metrics = _metrics()
    change(metrics)
    rows = demo_targets(metrics)
    failed = [row["target"] for row in rows if row["met"] is False]
    assert len(failed) == 1 and missed in failed[0], failed
    metrics["targets"] = rows
    text = write_report(tmp_path / "report.md", metrics, plots=[], notes=[]).read_text()
    assert f"**Missed:** {failed[0]}." in text and "**NO**" in text


def test_targets_without_an_evaluation_before_are_unknown_not_met() -> None:
    metrics = _metrics()
    metrics["before"] = None
    metrics.pop("giou_change")
    rows = {row["target"]: row["met"] for row in demo_targets(metrics)}
    assert rows["gIoU after >= GRPO start - 2 points"] is None
    assert rows["easy-tier tokens after <= 60% of the GRPO start"] is None


# ------------------------------------------------------------------------------------------------------------
# vLLM generation (TRL's use_vllm): settings only; vLLM itself needs a GPU
# ------------------------------------------------------------------------------------------------------------


def test_vllm_settings_reach_trl() -> None:
    settings = TrainSettings(steps=1, vllm_mode="colocate", vllm_gpu_memory_utilization=0.4)
    kwargs = grpo_config_kwargs(settings, "out", cuda=True, generation_kwargs={"min_new_tokens": 8})
    assert kwargs["use_vllm"] is True and kwargs["vllm_mode"] == "colocate"
    assert kwargs["vllm_gpu_memory_utilization"] == 0.4
    assert kwargs["generation_kwargs"] == {"min_tokens": 8}  # vLLM SamplingParams' name
    plain = grpo_config_kwargs(TrainSettings(steps=1), "out", cuda=True, generation_kwargs={"min_new_tokens": 8})
    assert "use_vllm" not in plain and plain["generation_kwargs"] == {"min_new_tokens": 8}
    server = grpo_config_kwargs(TrainSettings(steps=1, vllm_mode="server"), "out", cuda=True)
    assert server["vllm_mode"] == "server" and "vllm_gpu_memory_utilization" not in server


def test_vllm_settings_errors() -> None:
    with pytest.raises(ValueError, match="suppress_tokens"):
        vllm_sampling_kwargs({"suppress_tokens": [1, 2]})
    with pytest.raises(ValueError, match="vllm_mode: expected one of"):
        TrainSettings(steps=1, vllm_mode="remote")
    with pytest.raises(ValueError, match=r"vllm_gpu_memory_utilization: expected a number in \(0, 1\]"):
        TrainSettings(steps=1, vllm_gpu_memory_utilization=1.5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tiny", "--use-vllm"], "--use-vllm: expected --policy DIR (a local checkpoint vLLM can load), got --tiny"),
        (
            ["--policy", "random:qwen2.5-vl-3b", "--segmenter", "grabcut", "--use-vllm"],
            "got --policy random:qwen2.5-vl-3b",
        ),
    ],
)
def test_use_vllm_needs_a_checkpoint(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pixelthink_grpo.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_use_vllm_without_cuda_is_an_argument_error(tmp_path: Path) -> None:
    policy = tmp_path / "qwen"
    policy.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "pixelthink_grpo.py"),
            "--policy",
            str(policy),
            "--segmenter",
            "grabcut",
            "--use-vllm",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--use-vllm: expected a CUDA device, got 'cpu'" in result.stderr


# ------------------------------------------------------------------------------------------------------------
# benchmarks/gpu_check.py: refuses without CUDA; its pipeline runs on the CPU with --smoke
# ------------------------------------------------------------------------------------------------------------


def test_gpu_check_refuses_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "expected a CUDA device, found none" in result.stderr


def test_gpu_check_smoke_pipeline_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--smoke",
            "--skip-estimators",
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    grpo = data["grpo"]
    assert grpo["steps"] == 2 and grpo["step_s_median"] > 0 and grpo["peak_memory_mb"] > 0
    assert 0 <= grpo["reward_share"] < 1 and 0 <= grpo["uncertainty_share"] < 1
    assert data["weight_check"]["dtype"] == "torch.float32" and data["weight_check"]["changed_share"] >= 0.99
    route = data["sampling_route"]
    assert route["same_tokens_with_and_without_recording"] and route["tokens"] > 0
    assert max(route["max_abs_diff_vs_forward"].values()) <= 1e-4
