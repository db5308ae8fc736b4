"""The adaptive-length experiment (benchmarks/adaptive_length/): task generator, scoring, tokenizer, rewards,
report arithmetic, the whole pipeline end to end in ``--quick`` mode, and the committed results.

Everything is real: the tiny Qwen2 policy is built from a config, trained by the experiment's own SFT loop and by
TRL's GRPOTrainer through the library's TRL adapter; no test doubles.
"""

from __future__ import annotations

import doctest
import json
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adaptive_length_reward import ConfigError, RewardBatch, ThinkingFormatReward, WhitespaceWords  # noqa: E402
from adaptive_length_reward.config import validated  # noqa: E402
from benchmarks.adaptive_length import evaluation, report, task, variants  # noqa: E402
from benchmarks.adaptive_length.task import (  # noqa: E402
    LABELS,
    MODULUS,
    ChainAnswerAccuracy,
    ChainProblem,
    TaskSettings,
    make_problem,
    parse_answer,
    problems,
    reasoning_token_count,
    sample_trace,
    tier_names,
)

DOCS = ROOT / "docs" / "experiments"


# ------------------------------------------------------------------------------------------------------------
# Task generator
# ------------------------------------------------------------------------------------------------------------


def test_problems_are_a_pure_function_of_seed_split_and_index() -> None:
    assert make_problem(3, "train", 17) == make_problem(3, "train", 17)
    assert problems(3, "train", 30)[17] == make_problem(3, "train", 17)
    draws = {make_problem(seed, split, 17) for seed in (0, 1, 2) for split in ("sft", "train", "eval")}
    assert len(draws) >= 8  # seeds and splits give different problems (a collision of 9 draws is very unlikely)


def test_difficulty_cycles_through_every_step_count() -> None:
    settings = TaskSettings()
    got = [p.steps for p in problems(0, "eval", 2 * settings.levels)]
    assert got == list(range(1, 10)) * 2
    assert all(1 <= v <= settings.max_operand for p in problems(0, "sft", 90) for _, v in p.operations)


@given(
    start=st.integers(0, 9),
    ops=st.lists(st.tuples(st.sampled_from("+-"), st.integers(0, 9)), min_size=1, max_size=len(LABELS)),
    rechecks=st.integers(0, 8),
)
def test_answer_trace_and_token_count(start: int, ops: list[tuple[str, int]], rechecks: int) -> None:
    problem = ChainProblem(start=start, operations=tuple(ops))
    signed = sum(v if op == "+" else -v for op, v in ops)
    assert problem.answer == (start + signed) % MODULUS  # independent of the running-value loop
    completion = problem.completion(rechecks)
    reasoning = completion.split("<think>")[1].split("</think>")[0].split()
    assert len(reasoning) == reasoning_token_count(len(ops), rechecks) == 1 + 5 * len(ops) + 6 * rechecks
    assert WhitespaceWords(span="reasoning")(RewardBatch([completion])).tolist() == [len(reasoning)]
    assert ThinkingFormatReward()(completions=[completion]).tolist() == [1.0]
    assert parse_answer(completion) == problem.answer
    # every step restates the running value: "label op value = result"
    steps = [reasoning[1 + 5 * j : 6 + 5 * j] for j in range(len(ops))]
    assert [s[0] for s in steps] == list(LABELS[: len(ops)])
    assert [int(s[4]) for s in steps] == list(problem.results)


def test_prompt_and_reference_completion_read_as_documented() -> None:
    problem = ChainProblem(start=3, operations=(("+", 4), ("-", 2), ("+", 5)))
    assert problem.prompt() == "solve 3 a + 4 b - 2 c + 5 ?"
    assert problem.completion(1) == (
        "<think> 3 a + 4 = 7 b - 2 = 5 c + 5 = 0 check c + 5 = 0 </think> <answer> 0 </answer>"
    )


def test_trace_choices_follow_the_documented_laws() -> None:
    settings = TaskSettings()
    draws = [sample_trace(0, i, settings) for i in range(4000)]
    direct = np.array([d for d, _ in draws])
    rechecks = np.array([r for d, r in draws if not d])
    assert abs(direct.mean() - settings.direct_fraction) < 0.02
    assert all(r == 0 for d, r in draws if d)
    assert rechecks.min() == 0 and rechecks.max() == settings.max_rechecks
    c, cap = settings.recheck_continue, settings.max_rechecks
    expected_mean = sum(c**j for j in range(1, cap + 1))  # E[r] = sum_j P(r >= j)
    assert abs(rechecks.mean() - expected_mean) < 0.1
    assert abs(np.mean(rechecks == 0) - (1 - c)) < 0.03
    assert [sample_trace(0, i, settings) for i in range(50)] == draws[:50]
    # independent of the difficulty: the direct share is the same on short and long chains
    steps = np.array([make_problem(0, "sft", i, settings).steps for i in range(4000)])
    assert abs(direct[steps <= 3].mean() - direct[steps >= 7].mean()) < 0.05


def test_direct_completion_has_an_empty_reasoning_span() -> None:
    problem = make_problem(0, "eval", 4)
    direct = problem.completion(direct=True)
    assert direct == f"<think> </think> <answer> {problem.answer} </answer>"
    assert task.reasoning_lengths([direct]).tolist() == [0] and parse_answer(direct) == problem.answer
    assert ThinkingFormatReward()(completions=[direct]).tolist() == [1.0]
    with pytest.raises(ValueError, match="rechecks: expected 0 with direct=True"):
        problem.completion(2, direct=True)


def test_tiers_follow_the_thresholds() -> None:
    assert tier_names([1, 3, 3.5, 4, 6, 6.5, 7, 9], (3.5, 6.5)).tolist() == [
        "easy",
        "easy",
        "medium",
        "medium",
        "medium",
        "hard",
        "hard",
        "hard",
    ]


def test_bad_settings_and_problems_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="TaskSettings: max_steps: expected >= min_steps \\(5\\), got 3"):
        validated("TaskSettings", TaskSettings, min_steps=5, max_steps=3)
    with pytest.raises(ConfigError, match="TaskSettings: max_steps: expected <= 9, got 10"):
        validated("TaskSettings", TaskSettings, max_steps=len(LABELS) + 1)
    with pytest.raises(ValueError, match="operations\\[1\\]"):
        ChainProblem(start=1, operations=(("+", 1), ("*", 2)))
    with pytest.raises(ValueError, match="start"):
        ChainProblem(start=10, operations=(("+", 1),))
    with pytest.raises(ValueError, match="split"):
        make_problem(0, "test", 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think> 3 </think> <answer> 7 </answer>", 7),
        ("<answer>7</answer>", 7),
        ("<think> 3 </think> <answer> 17 </answer>", None),
        ("<think> 3 </think> <answer> x </answer>", None),
        ("<think> 3 </think> <answer> </answer>", None),
        ("<think> 3 a + 4 = 7", None),
        ("", None),
    ],
)
def test_parse_answer(text: str, expected: int | None) -> None:
    assert parse_answer(text) == expected


@given(st.text(max_size=200))
def test_parse_answer_never_raises(text: str) -> None:
    value = parse_answer(text)
    assert value is None or 0 <= value <= 9


def test_answer_accuracy_scores_malformed_completions_zero_and_rejects_bad_truth() -> None:
    reward = ChainAnswerAccuracy()
    completions = [
        "<think> 1 </think> <answer> 4 </answer>",
        "<think> 1 </think> <answer> 5 </answer>",
        "<think> 1 a + 3 = 4",
        "garbage",
        "<answer> 4 </answer> trailing",
    ]
    assert reward(completions=completions, ground_truth=[4, 4, 4, 4, "4"]).tolist() == [1, 0, 0, 0, 1]
    with pytest.raises(TypeError, match=r"ground_truth\[1\]: expected the answer digit"):
        reward(completions=completions[:2], ground_truth=[4, "four"])
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "correct" and clone(completions=completions[:1], ground_truth=[4]).tolist() == [1.0]


def test_tokenizer_round_trips_and_counts_one_token_per_word() -> None:
    pytest.importorskip("transformers")
    from benchmarks.adaptive_length.models import EOS, VOCABULARY, build_tokenizer

    tokenizer = build_tokenizer()
    problem = make_problem(0, "sft", 8)
    completion = problem.completion(3)
    ids = tokenizer(completion)["input_ids"]
    assert tokenizer.decode(ids) == completion
    assert len(ids) == len(completion.split())
    assert tokenizer.pad_token_id not in ids  # every word is in the vocabulary (the unknown token is the pad)
    assert tokenizer.convert_ids_to_tokens(tokenizer(EOS)["input_ids"]) == [EOS]
    assert len(VOCABULARY) == len(set(VOCABULARY)) == len(tokenizer)


def test_evaluate_completions_and_summary() -> None:
    probs = [ChainProblem(1, (("+", 1),)), ChainProblem(1, (("+", 1),) * 5), ChainProblem(1, (("+", 1),) * 8)]
    completions = [
        probs[0].completion(0),
        probs[0].completion(2).replace("<answer> 2", "<answer> 3"),
        probs[1].completion(1),
        "<think> 1 a + 1",
        probs[2].completion(direct=True),
    ]
    index = [0, 0, 1, 1, 2]
    scored = evaluation.evaluate_completions(completions, probs, index, (3.5, 6.5))
    assert scored.tier.tolist() == ["easy", "easy", "medium", "medium", "hard"]
    assert scored.reasoning_tokens.tolist() == [6, 18, 32, 4, 0]
    assert scored.rechecks.tolist() == [0, 2, 1, 0, 0]
    assert scored.correct.tolist() == [1, 0, 1, 0, 1] and scored.format_ok.tolist() == [1, 1, 1, 0, 1]
    result = evaluation.DecodeResult(
        problem=np.array(index),
        tier=scored.tier,
        reasoning_tokens=scored.reasoning_tokens,
        rechecks=scored.rechecks,
        correct=scored.correct,
        format_ok=scored.format_ok,
        generated_tokens=scored.reasoning_tokens + 6,
        wall_s=0.0,
        completions=completions,
    )
    summary = evaluation.summarize(result)
    assert summary["easy"].mean_reasoning_tokens == 12.0 and summary["easy"].accuracy == 0.5
    assert summary["easy"].mean_rechecks == 1.0 and summary["hard"].direct_rate == 1.0
    assert summary["medium"].format_rate == 0.5 and summary["all"].count == 5


# ------------------------------------------------------------------------------------------------------------
# Rewards of the variants
# ------------------------------------------------------------------------------------------------------------


def _reference_batch(cases: list[tuple[ChainProblem, int]], uncertainty: float = 0.5) -> RewardBatch:
    completions = [p.completion(r) for p, r in cases]
    return RewardBatch.from_completions(
        completions,
        difficulty=[p.difficulty for p, _ in cases],
        ground_truth=[p.answer for p, _ in cases],
        uncertainty=[uncertainty] * len(cases),
        group_ids=[0] * len(cases),
        token_ids=[[0] * (len(c.split()) + 1) for c in completions],
    )


def test_pixelthink_reward_matches_the_hand_computed_soft_penalty() -> None:
    budgets = variants.Budgets()
    assert (budgets.easy, budgets.hard, budgets.uniform) == (16.0, 64.0, 16.0)  # 1+5*3, 1+5*9+3*6, the easy one
    easy, medium, hard = (make_problem(0, "eval", k - 1) for k in (3, 5, 9))
    batch = _reference_batch([(easy, 0), (easy, 2), (medium, 6), (hard, 6)])
    rewards = variants.pixelthink_reward(budgets)(batch)
    # easy, L = 16 <= 16: 2 * 1;  easy, L = 28: 2 * (1 - (28 - 16) / 80) = 1.7;  medium: no penalty;
    # hard, L = 82, B = 64 + 6 * 0.5 = 67: 2 * (1 - 15 / 80) = 1.625
    np.testing.assert_allclose(rewards, [2.0, 1.7, 2.0, 1.625])
    wrong = RewardBatch.from_completions(
        [easy.completion(0)], difficulty=[3.0], ground_truth=[(easy.answer + 1) % 10], uncertainty=[0.0]
    )
    assert variants.pixelthink_reward(budgets)(wrong).tolist() == [1.0]  # format only


def test_every_variant_scores_reference_traces_and_dumps_its_config() -> None:
    budgets = variants.Budgets(uncertainty_reference=0.1)
    specs = variants.main_variants(budgets) + variants.sweep_variants(budgets)
    names = [s.name for s in specs]
    assert names[: len(variants.MAIN_VARIANTS)] == list(variants.MAIN_VARIANTS) and len(set(names)) == len(names)
    problem = make_problem(0, "eval", 1)  # 2 steps: essential 11 tokens
    batch = _reference_batch([(problem, r) for r in (0, 1, 3, 6)], uncertainty=0.05)
    batch = batch.replace(problem_id=[7] * 4, reference_accuracy=[0.5] * 4)  # the columns the runner adds
    by_name = {s.name: s for s in specs}
    scores = {s.name: s.reward(batch) for s in specs}
    assert scores["none"].tolist() == [2.0] * 4
    for name in ("pixelthink", "uniform", "difficulty_only", "l1_max", "kimi"):
        assert np.all(np.diff(scores[name]) <= 0) and scores[name][0] > scores[name][-1], name  # longer scores less
    # reasoning tokens 11, 17, 29, 47; the easy (and uniform) budget is 16
    expected = [2.0, 2 * (1 - 1 / 80), 2 * (1 - 13 / 80), 2 * (1 - 31 / 80)]
    np.testing.assert_allclose(scores["pixelthink"], expected)
    np.testing.assert_allclose(scores["uniform"], expected)
    np.testing.assert_allclose(scores["l1_max"], [1 + min(1.0, 0.5 + (16 - L) / 80) for L in (11, 17, 29, 47)])
    np.testing.assert_allclose(scores["kimi"], [2 + 0.5 - (L - 11) / 36 for L in (11, 17, 29, 47)])
    # uncertainty_only: B = clip(16 + 48 * 0.05 / 0.1, 16, 64) = 40 -> only the 6-recheck trace (47) is over
    np.testing.assert_allclose(scores["uncertainty_only"], [2.0, 2.0, 2.0, 2 * (1 - 7 / 80)])
    assert scores["dapo"].tolist() == [2.0] * 4  # the longest completion (53 tokens with EOS) is under 96 - 19.2
    lengths = np.array([11, 17, 29, 47])  # every trace is correct: GRPO-LEAD's z-score over all four
    np.testing.assert_allclose(scores["grpo_lead"], 1 + np.exp(-0.5 * (lengths - lengths.mean()) / lengths.std()))
    assert scores["laser_d"].tolist() == [2.5, 2.0, 2.0, 2.0]  # solve rate 1 (easy): target = the shortest, 11
    assert scores["hapo"].tolist() == [2.0] * 4  # no history yet: no length term
    assert scores["adaptthink"].tolist() == [1.5] * 4  # 1 + 1 - 0.5; every trace thinks
    assert by_name["pixelthink"].uncertainty and not by_name["difficulty_only"].uncertainty
    for spec in specs:
        config = spec.config()
        json.dumps(config)
        assert config["name"] == spec.name
        pickle.loads(pickle.dumps(spec.reward))


# ------------------------------------------------------------------------------------------------------------
# Report arithmetic
# ------------------------------------------------------------------------------------------------------------


def test_paired_bootstrap_intervals_contain_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    reference = rng.uniform(20, 40, 200)
    lengths = reference * 0.6 + rng.normal(0, 1, 200)
    correct, reference_correct = rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float)
    out = report.paired_bootstrap(lengths, reference, correct, reference_correct, samples=500)
    low, high = out["token_reduction_ci95"]
    point = 1 - lengths.mean() / reference.mean()
    assert low < point < high and high - low < 0.05
    low, high = out["accuracy_change_points_ci95"]
    assert low < 100 * (correct.mean() - reference_correct.mean()) < high
    with pytest.raises(ValueError, match="equal, non-zero size"):
        report.paired_bootstrap(lengths, reference[:5], correct, reference_correct)


def _variant(easy: float, hard: float, accuracy_points: float) -> dict[str, Any]:
    tiers = {
        t: {"token_reduction_vs_none": r, "accuracy_change_vs_none_points": accuracy_points}
        for t, r in (("easy", easy), ("medium", (easy + hard) / 2), ("hard", hard))
    }
    return {
        **tiers,
        "all": {"token_reduction_vs_none": (easy + hard) / 2, "accuracy_change_vs_none_points": accuracy_points},
    }


@pytest.mark.parametrize(
    ("easy", "hard", "points", "met"),
    [
        (0.35, 0.10, -1.5, True),
        (0.25, 0.10, 0.0, False),  # easy reduction short of 30%
        (0.40, 0.10, -2.5, False),  # accuracy outside 2 points
        (0.40, 0.45, 0.0, False),  # hard reduced more than easy
    ],
)
def test_target_verdict(easy: float, hard: float, points: float, met: bool) -> None:
    verdict = report.target_verdict({"none": _variant(0, 0, 0), "pixelthink": _variant(easy, hard, points)})
    assert verdict["met"] is met
    assert report.target_verdict({"none": _variant(0, 0, 0)})["met"] is None


def test_module_doctests() -> None:
    for module in (task, report):
        failures, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert failures == 0, module.__name__


# ------------------------------------------------------------------------------------------------------------
# End to end (quick mode) and the committed results
# ------------------------------------------------------------------------------------------------------------


def _check_results_layout(data: dict[str, Any], *, quick: bool) -> None:
    assert data["quick"] is quick and isinstance(data["seed"], int)
    assert data["command"].startswith("python -m benchmarks.adaptive_length.run")
    names = set(data["variants"])
    assert {"none", "pixelthink"} <= names
    assert set(variants.MAIN_VARIANTS) <= names
    for name, entry in data["variants"].items():
        for tier in ("easy", "medium", "hard", "all"):
            block = entry[tier]
            assert block["mean_reasoning_tokens"] >= 0 and 0 <= block["accuracy"] <= 1, (name, tier)
            assert "token_reduction_vs_none" in block and "accuracy_change_vs_none_points" in block
            assert tier in entry["greedy"]
        assert entry["wall_clock_per_step_s"] > 0 and len(entry["training_curve"]) == data["config"]["grpo"]["steps"]
        assert entry["reward"]["name"] == name
    assert data["variants"]["none"]["easy"]["token_reduction_vs_none"] in (0, None)  # None: `none` wrote no tokens
    assert set(data["sweeps"]) == {"thresholds", "beta", "budgets"}
    for group, members in data["sweeps"].items():
        assert "pixelthink" in members and all(m in names for m in members)
        key = {"thresholds": "tau2", "beta": "beta", "budgets": "scale"}[group]
        values = [data["variants"][m]["varies"][key] for m in members if m != "pixelthink"]
        assert values == sorted(values), group  # points in the order of the swept value
    assert data["target"]["met"] in (True, False)


@pytest.mark.slow
def test_quick_mode_runs_end_to_end_and_is_deterministic(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from benchmarks.adaptive_length import run

    first = tmp_path / "first"
    assert run.main(["--quick", "--seed", "1", "--out", str(first)]) == 0
    data = json.loads((first / "adaptive_length.json").read_text())
    _check_results_layout(data, quick=True)
    curve = data["sft"]["loss_curve"]
    assert curve[-1][1] < curve[0][1]  # SFT learns something even in 20 steps
    markdown = (first / "adaptive_length.md").read_text()
    assert "## Verdict against the issue's target" in markdown and "QUICK" in markdown
    for png in ("tiers", "sweeps", "tradeoff", "training"):
        path = first / f"adaptive_length_{png}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"adaptive_length_{png}.png" in markdown

    second = tmp_path / "second"
    assert (
        run.main(["--quick", "--seed", "1", "--out", str(second), "--variants", "none,pixelthink", "--no-sweeps"]) == 0
    )
    again = json.loads((second / "adaptive_length.json").read_text())
    assert set(again["variants"]) == {"none", "pixelthink"} and again["sweeps"] == {}
    for name in ("none", "pixelthink"):
        for tier in ("easy", "medium", "hard"):
            for key in ("mean_reasoning_tokens", "accuracy"):
                assert again["variants"][name][tier][key] == data["variants"][name][tier][key], (name, tier, key)
        assert (
            again["variants"][name]["training_curve"][0]["reward"]
            == data["variants"][name]["training_curve"][0]["reward"]
        )


def test_bad_variant_names_are_rejected(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from benchmarks.adaptive_length import run

    config = run.ExperimentConfig.smoke().model_copy(
        update={"variants": ("none", "pixelthnk"), "sft": run.SFTSettings(steps=1, batch_size=2, warmup_steps=0)}
    )
    with pytest.raises(ValueError, match="unknown \\['pixelthnk'\\]"):
        run.run_experiment(config, seed=0, command="test")


def test_committed_results_have_every_variant_tier_and_the_verdict() -> None:
    path = DOCS / "adaptive_length.json"
    data = json.loads(path.read_text())
    _check_results_layout(data, quick=False)
    assert data["seed"] == 0 and data["total_wall_s"] < 30 * 60
    markdown = (DOCS / "adaptive_length.md").read_text()
    assert data["command"] in markdown
    for name in data["main_variants"]:
        assert f"`{name}`" in markdown
    for png in ("tiers", "sweeps", "tradeoff", "training"):
        assert (DOCS / f"adaptive_length_{png}.png").is_file() and f"adaptive_length_{png}.png" in markdown
    verdict = data["target"]
    easy = data["variants"]["pixelthink"]["easy"]["token_reduction_vs_none"]
    assert verdict["criteria"]["easy_tokens_reduced_by_at_least_30_percent"]["met"] == (easy >= 0.30)
    assert ("Target met" in markdown) == bool(verdict["met"])
    assert not math.isnan(data["variants"]["none"]["all"]["accuracy"])


# ------------------------------------------------------------------------------------------------------------
# Variants added later (issue 16) and the merge of a later run
# ------------------------------------------------------------------------------------------------------------


def test_method_variants_read_the_columns_they_declare() -> None:
    from benchmarks.adaptive_length.grpo import grpo_rows

    specs = {s.name: s for s in variants.method_variants()}
    assert list(specs) == ["grpo_lead", "laser_d", "hapo", "adaptthink"]
    assert specs["hapo"].columns == (variants.PROBLEM_ID,)
    assert specs["adaptthink"].columns == (variants.REFERENCE_ACCURACY,)
    for spec in specs.values():
        declared = set(spec.columns) | {"ground_truth", "group_ids"}
        assert spec.reward.requires <= declared, (spec.name, spec.reward.requires)
    chain = problems(0, "train", 3)
    rows = grpo_rows(chain, {variants.PROBLEM_ID: [0, 1, 2], variants.REFERENCE_ACCURACY: [0.5, 1.0, 0.0]})
    assert [r[variants.PROBLEM_ID] for r in rows] == [0, 1, 2] and rows[1][variants.REFERENCE_ACCURACY] == 1.0
    assert "problem_id" not in grpo_rows(chain)[0]  # the other variants' rows are unchanged
    with pytest.raises(ValueError, match="expected 3 values"):
        grpo_rows(chain, {variants.PROBLEM_ID: [0]})


def _committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / "adaptive_length.json").read_text())
    return data


def test_merge_adds_variants_only_from_the_same_experiment() -> None:
    from benchmarks.adaptive_length import merge

    base = _committed()
    added = {s.name for s in variants.method_variants()}
    base["variants"] = {k: v for k, v in base["variants"].items() if k not in added}
    new = json.loads(json.dumps(base))
    new["variants"] = {"none": base["variants"]["none"], "extra": dict(base["variants"]["kimi"])}
    new["config"] = {**base["config"], "variants": ["none", "extra"], "sweeps": False}
    merged = merge.merge_results(base, new, command="python -m benchmarks.adaptive_length.run --variants none,extra")
    assert merged["variants"]["extra"] == base["variants"]["kimi"]
    assert merged["added_runs"][-1]["variants"] == ["extra"]
    assert merged["variants"]["none"] == base["variants"]["none"] and merged["target"] == base["target"]
    for change, message in [
        (lambda d: d.update(seed=1), "seed/quick"),
        (lambda d: d["config"].update(eval_samples=2), "config.eval_samples"),
        (lambda d: d["sft"]["easy"].update(accuracy=0.5), "sft: "),
        (lambda d: d["variants"]["none"]["all"].update(mean_reasoning_tokens=1.0), "variants.none"),
    ]:
        bad = json.loads(json.dumps(new))
        change(bad)
        with pytest.raises(ValueError, match=message):
            merge.merge_results(base, bad)
