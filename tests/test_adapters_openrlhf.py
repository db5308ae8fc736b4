"""OpenRLHF adapter: the reward file loaded by OpenRLHF's own ``SingleTurnAgentExecutor``, and the ``/get_reward``
HTTP server on 127.0.0.1 queried with OpenRLHF's HTTP client; every malformed input with the field and message the
user sees (RewardInputError in Python, HTTP 422 from the server, FatalRewardError through OpenRLHF's loop).

OpenRLHF is installed CPU-only with ``pip install --no-deps openrlhf==0.11.2`` plus ``aiohttp pylatexenc``
(docs/openrlhf.md). Its vLLM engine cannot run here; a stand-in engine returns chosen token ids (said below), and a
stand-in ``vllm`` module (only the three names OpenRLHF imports) lets OpenRLHF's own ``SamplesGenerator`` turn the
executor's output into ``Experience`` metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from adapter_fixtures import GROUND_TRUTH, PERFECT_ANSWER, build_tokenizer, free_port

from adaptive_length_reward import (
    ColumnReward,
    ConfigError,
    FatalRewardError,
    Reward,
    RewardBatch,
    RewardInputError,
    SoftLengthPenalty,
    WhitespaceWords,
)
from adaptive_length_reward.adapters import openrlhf_reward_file
from adaptive_length_reward.adapters.openrlhf import OpenRLHFReward, reward_func, split_response
from adaptive_length_reward.adapters.scoring import (
    AdapterSettings,
    finite_metrics,
    load_settings,
    settings_from_env,
)
from adaptive_length_reward.errors import MissingExtraError, field_path

REWARD_FILE = openrlhf_reward_file.__file__
LOGGER = "adaptive_length_reward.adapters"


def _answer(words: int) -> str:
    text = "<think>" + " ".join(["w"] * (words - 10)) + "</think>" + PERFECT_ANSWER
    assert len(text.split()) == words
    return text


def _expected(words: int, budget: float) -> float:
    """PixelThink with all five accuracy terms: 5 * clip(1 - max(0, L - B) / 500, 0, 1)."""
    return 5.0 * min(1.0, max(0.0, 1 - max(0.0, words - budget) / 500))


def _chat_prompt(text: str = "Find the red square.") -> str:
    """The ChatML prompt OpenRLHF passes as ``prompts`` (the fixture tokenizer's template renders exactly this)."""
    return (
        f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


PROMPT = _chat_prompt()
QUERY = PROMPT + _answer(300) + "<|im_end|>"
LABEL = {"ground_truth": GROUND_TRUTH, "difficulty": 2.0}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ALR_"):
            monkeypatch.delenv(key)


# ------------------------------------------------------------------------------------------------------------
# Every input that cannot be scored: one table for the function, the reward file, the server and OpenRLHF's loop
# ------------------------------------------------------------------------------------------------------------

# (id, request body overrides, field (the HTTP name: "query"), message fragment)
MALFORMED: list[tuple[str, dict[str, Any], tuple[Any, ...], str]] = [
    (
        "no labels",
        {"labels": None},
        ("labels",),
        "missing: the reward 'pixelthink' reads ['difficulty', 'ground_truth'] from the labels",
    ),
    (
        "label without difficulty",
        {"labels": [{"ground_truth": GROUND_TRUTH}]},
        ("labels", 0, "difficulty"),
        "missing: the reward 'pixelthink' needs a difficulty per label; add it to the label, or set missing_difficulty "
        "(ALR_MISSING_DIFFICULTY",
    ),
    (
        "JSON label without difficulty",
        {"labels": [json.dumps({"ground_truth": GROUND_TRUTH})]},
        ("labels", 0, "difficulty"),
        "needs a difficulty per label",
    ),
    (
        "plain-string label",
        {"labels": [GROUND_TRUTH]},
        ("labels", 0),
        "needs a difficulty per label; a plain label gives only the ground truth",
    ),
    (
        "one label of two without difficulty",
        {"query": [QUERY, QUERY], "prompts": [PROMPT, PROMPT], "labels": [LABEL, {"ground_truth": GROUND_TRUTH}]},
        ("labels", 1, "difficulty"),
        "needs a difficulty per label",
    ),
    (
        "difficulty not a number",
        {"labels": [{**LABEL, "difficulty": "hard"}]},
        ("labels", 0, "difficulty"),
        "expected a number, got 'hard'",
    ),
    (
        "difficulty a bool",
        {"labels": [{**LABEL, "difficulty": True}]},
        ("labels", 0, "difficulty"),
        "expected a number, got True",
    ),
    (
        "difficulty a list",
        {"labels": [{**LABEL, "difficulty": [2.0]}]},
        ("labels", 0, "difficulty"),
        "expected a number, got [2.0]",
    ),
    (
        "uncertainty not a number",
        {"labels": [{**LABEL, "uncertainty": "low"}]},
        ("labels", 0, "uncertainty"),
        "expected a number, got 'low'",
    ),
    (
        "uncertainty negative",
        {"labels": [{**LABEL, "uncertainty": -5}]},
        ("labels", 0, "uncertainty"),
        "expected a number >= 0, got -5.0",
    ),
    (
        "hard tier without uncertainty",
        {"labels": [{**LABEL, "difficulty": 7.0}]},
        ("labels", 0, "uncertainty"),
        "missing: TieredBudget needs 'uncertainty', which is missing (NaN) for samples [0]",
    ),
    (
        "no ground truth",
        {"labels": [{"difficulty": 2.0}]},
        ("labels", 0, "ground_truth"),
        "missing: the reward 'pixelthink' needs a ground truth per label",
    ),
    (
        "malformed ground truth",
        {"labels": [{**LABEL, "ground_truth": "(1,2)"}]},
        ("labels", 0, "ground_truth"),
        "expected '<box>(x1,y1),(x2,y2)</box>' and/or",
    ),
    (
        "ground truth not text",
        {"labels": [{**LABEL, "ground_truth": 3}]},
        ("labels", 0, "ground_truth"),
        "expected the official string, a mapping or a sequence, got int",
    ),
    ("fewer prompts", {"prompts": [PROMPT, PROMPT]}, ("prompts",), "expected 1 entries (one per query), got 2"),
    ("fewer labels", {"labels": [LABEL, LABEL]}, ("labels",), "expected 1 entries (one per query), got 2"),
    (
        "query without its prompt",
        {"query": ["unrelated text"]},
        ("query", 0),
        "expected each query to start with its prompt or to contain the response marker (ALR_RESPONSE_MARKER",
    ),
]
MALFORMED_IDS = [case[0] for case in MALFORMED]


def _body(overrides: dict[str, Any]) -> dict[str, Any]:
    return {"query": [QUERY], "prompts": [PROMPT], "labels": [LABEL], **overrides}


def _python_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The field as the reward function names it (its first argument is ``queries``)."""
    return ("queries", *loc[1:]) if loc[0] == "query" else loc


@pytest.mark.parametrize(("case", "overrides", "loc", "message"), MALFORMED, ids=MALFORMED_IDS)
def test_every_malformed_input_names_its_field(
    case: str, overrides: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    body = _body(overrides)
    reward = OpenRLHFReward(settings=AdapterSettings())
    with pytest.raises(RewardInputError) as raised:
        reward.score(body["query"], body["prompts"], body["labels"])
    assert raised.value.loc == _python_loc(loc)
    assert message in raised.value.message
    assert str(raised.value).startswith(field_path(_python_loc(loc)) + ": ")


@pytest.mark.parametrize(("case", "overrides", "loc", "message"), MALFORMED, ids=MALFORMED_IDS)
def test_reward_file_raises_through_openrlhfs_catch_all(
    case: str, overrides: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    """OpenRLHF wraps the reward call in ``except Exception`` (INFO log, reward None): FatalRewardError passes."""
    pytest.importorskip("torch", reason="the reward file returns torch tensors")
    body = _body(overrides)
    with pytest.raises(FatalRewardError) as raised:
        reward_func(body["query"], body["prompts"], body["labels"])
    assert not isinstance(raised.value, Exception)
    assert isinstance(raised.value.__cause__, RewardInputError)
    assert f"{field_path(_python_loc(loc))}: " in str(raised.value) and message in str(raised.value)


class NanForEmpty(Reward):
    """A user's reward documented to return NaN (for an empty completion; 1.0 otherwise)."""

    may_return_nan = True

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def _evaluate(self, batch: RewardBatch) -> Any:
        return np.array([np.nan if not text else 1.0 for text in batch.completions])


def test_a_reward_that_is_not_finite_is_an_error() -> None:
    """OpenRLHF trains on every reward it gets: a NaN would poison the batch, so it is an error, not a value."""
    reward = OpenRLHFReward(NanForEmpty(), settings=AdapterSettings())
    assert reward.score(["pa"], ["p"], [None])["rewards"] == [1.0]
    with pytest.raises(
        RewardInputError,
        match=r"labels\[1\]: the reward 'nan_for_empty' returned nan for this "
        "sample; OpenRLHF needs a finite reward",
    ):
        reward.score(["pa", "p"], ["p", "p"], [None, None])


# ------------------------------------------------------------------------------------------------------------
# Scoring rules
# ------------------------------------------------------------------------------------------------------------


def test_response_is_split_from_the_query_and_end_markers_are_stripped() -> None:
    settings = AdapterSettings(response_marker="<|im_start|>assistant\n")
    prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    assert split_response(prompt + "a b<|im_end|><|endoftext|>", prompt, settings) == "a b"
    assert split_response(prompt + "a b\n<|im_end|>", prompt, settings) == "a b\n"  # like skip_special_tokens
    truncated = prompt[10:]  # a left-truncated prompt no longer prefixes the query: the marker finds the response
    assert split_response("xx" + truncated[2:] + "<think>t</think><|im_end|>", prompt, settings) == "<think>t</think>"
    with pytest.raises(RewardInputError, match="queries: expected each query to start with its prompt"):
        split_response("unrelated", prompt, AdapterSettings())


@pytest.mark.parametrize("marker", ["<|im_start|>assistant\n", r"<|im_start|>assistant\n", "<|im_start|>assistant"])
def test_response_marker_as_documented_keeps_every_reward_term(marker: str) -> None:
    """docs/openrlhf.md's ALR_RESPONSE_MARKER='<|im_start|>assistant\\n' reaches Python as a backslash and an n:
    decoded; a marker without the newline skips the prompt's newline too. Either way a query whose prompt was
    truncated scores 5.0, like the untruncated one (before: the thinking-format term was lost, 5.0 -> 4.0)."""
    settings = settings_from_env({"ALR_RESPONSE_MARKER": marker})
    assert settings.response_marker in PROMPT
    reward = OpenRLHFReward(settings=settings)
    query = PROMPT + _answer(60) + "<|im_end|>"
    full = reward.score([query], [PROMPT], [LABEL])["rewards"]
    truncated = reward.score([query[30:]], [PROMPT], [LABEL])["rewards"]  # OpenRLHF cut the prompt's start
    assert full == truncated == [5.0]


def test_a_response_marker_missing_from_the_prompt_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reward = OpenRLHFReward(settings=AdapterSettings(response_marker="<|im_start|>model\n"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            assert reward.score([QUERY], [PROMPT], [LABEL])["rewards"] == [pytest.approx(_expected(300, 96.0))]
    warnings = [r for r in caplog.records if "does not occur in the prompt" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].name == "adaptive_length_reward.adapters.openrlhf"


def test_label_numbers_of_any_real_type_and_nan_as_missing() -> None:
    reward = OpenRLHFReward(settings=AdapterSettings(missing_uncertainty=0.0))
    labels = [{**LABEL, "difficulty": np.int64(2)}, {**LABEL, "difficulty": np.float32(7.0), "uncertainty": math.nan}]
    out = reward.score([QUERY, QUERY], [PROMPT, PROMPT], labels)
    assert out["rewards"] == pytest.approx([_expected(300, 96.0), _expected(300, 256.0)])
    with pytest.raises(RewardInputError, match=r"labels\[0\]\.difficulty: expected a finite number, got inf"):
        reward.score([QUERY], [PROMPT], [{**LABEL, "difficulty": math.inf}])


def test_labels_give_ground_truth_difficulty_and_uncertainty() -> None:
    prompt = _chat_prompt()
    reward = OpenRLHFReward(settings=AdapterSettings())
    labels = [
        {"ground_truth": GROUND_TRUTH, "difficulty": 2.0},
        json.dumps({"ground_truth": GROUND_TRUTH, "difficulty": 7.0, "uncertainty": 0.4}),
        {"ground_truth": GROUND_TRUTH, "difficulty": 4.0},
    ]
    queries = [prompt + _answer(400) + "<|im_end|>"] * 3
    out = reward.score(queries, [prompt] * 3, labels)
    budgets = [96.0, 256 + 25 * 0.4, math.inf]
    assert out["rewards"] == pytest.approx([_expected(400, b) for b in budgets])
    assert out["scores"] == pytest.approx([_expected(400, b) / 5 for b in budgets])
    logs = out["extra_logs"]
    assert logs["length"] == [400.0] * 3 and logs["difficulty"] == [2.0, 7.0, 4.0]
    assert logs["over_budget"] == pytest.approx([400 - 96, 400 - 266, 0.0])
    assert logs["segmentation_accuracy"] == [5.0] * 3 and logs["segmentation_accuracy/box_iou"] == [1.0] * 3
    assert logs["soft_length_penalty"] == pytest.approx([_expected(400, b) / 5 for b in budgets])
    # what RewardOutput reports reaches the logs, though PixelThink does not require an uncertainty; OpenRLHF
    # averages each key, so what is not finite (no budget: medium tier; no uncertainty) is logged as 0, and
    # ``budgeted`` says which samples had a budget
    assert logs["uncertainty"] == [0.0, 0.4, 0.0] and logs["tier"] == [0.0, 2.0, 1.0]
    assert logs["budget"] == pytest.approx([96.0, 256 + 25 * 0.4, 0.0]) and logs["budgeted"] == [1.0, 1.0, 0.0]
    assert all(math.isfinite(v) for values in logs.values() for v in values)


def test_finite_metrics_is_the_shared_rule() -> None:
    logs = {
        "budget": np.array([96.0, np.inf, 266.0]),
        "tier": np.array([0.0, 1.0, np.nan]),
        "x": np.array([np.nan, -np.inf, 1.5]),
    }
    metrics = finite_metrics(logs)
    assert {k: v.tolist() for k, v in metrics.items()} == {
        "budget": [96.0, 0.0, 266.0],
        "tier": [0.0, 1.0, 0.0],
        "x": [0.0, 0.0, 1.5],
        "budgeted": [1.0, 0.0, 1.0],
    }
    assert np.isinf(logs["budget"][1])  # the input is not changed


def test_malformed_completions_score_zero_with_the_same_keys() -> None:
    prompt = _chat_prompt()
    reward = OpenRLHFReward(settings=AdapterSettings())
    label = {"ground_truth": GROUND_TRUTH, "difficulty": 2.0}
    keys = set()
    for response in ["", "<think>never closed", '{"bbox": 3}', "\x00\ufffd garbage"]:
        out = reward.score([prompt + response + "<|im_end|>"], [prompt], [label])
        assert out["rewards"] == [0.0] and out["scores"] == [0.0]
        keys.add(tuple(out["extra_logs"]))
    assert len(keys) == 1


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="score_range: expected \\(low, high\\)"):
        OpenRLHFReward(ColumnReward("x"), settings=AdapterSettings())
    unbounded = OpenRLHFReward(ColumnReward("x"), settings=AdapterSettings(score_range=(0.0, 10.0)))
    assert unbounded.score(["p7"], ["p"], [{"x": 7.0}])["scores"] == [0.7]
    with pytest.raises(RewardInputError, match="labels: expected 2 entries"):
        unbounded.score(["pa", "pb"], ["p", "p"], [{"x": 1.0}])
    with pytest.raises(ConfigError, match=r"AdapterSettings: score_range: expected finite \(low, high\) with low <"):
        settings_from_env({}, score_range=(1.0, 1.0))
    with pytest.raises(ConfigError, match="AdapterSettings: difficulty_column: unknown field"):
        settings_from_env({}, difficulty_column="x")


def test_settings_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        "difficulty_key: level\nscore_range: [0, 10]\nreward: {kind: column, column: x}\nresponse_marker: 'A:\\n'\n"
    )
    settings = load_settings(path, ground_truth_key="answer")
    assert (settings.difficulty_key, settings.ground_truth_key, settings.score_range) == ("level", "answer", (0, 10))
    assert settings.response_marker == "A:\n"  # single-quoted YAML keeps the backslash: decoded
    assert OpenRLHFReward(settings=settings).score(["q5"], ["q"], [{"x": 5.0}])["scores"] == [0.5]
    with pytest.raises(ConfigError, match="adapter settings: expected an existing YAML or JSON file"):
        load_settings(tmp_path / "missing.yaml")


def test_yaml_settings_without_pyyaml_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("difficulty_key: level\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(MissingExtraError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert "needs the optional package 'yaml', which is not installed: pip install pyyaml" in message
    assert f"(or write {str(path)!r} as JSON)" in message and "[dev]" not in message
    config = tmp_path / "reward.yaml"
    config.write_text("kind: column\ncolumn: x\n")
    with pytest.raises(
        MissingExtraError,
        match="Reading reward_config from YAML needs the optional package 'yaml', "
        "which is not installed: pip install pyyaml$",
    ):
        OpenRLHFReward(settings=settings_from_env({"ALR_REWARD_CONFIG": str(config)}))


# ------------------------------------------------------------------------------------------------------------
# Settings for a missing difficulty or uncertainty (environment variables; the server's flags below)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "budget"), [("medium", math.inf), ("3.0", 96.0), ("easy", 96.0), ("7", 256.0)])
def test_plain_string_labels_with_a_missing_difficulty_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, rule: str, budget: float
) -> None:
    torch = pytest.importorskip("torch", reason="the reward file returns torch tensors")
    monkeypatch.setenv("ALR_MISSING_DIFFICULTY", rule)
    monkeypatch.setenv("ALR_MISSING_UNCERTAINTY", "0")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = reward_func([QUERY], [PROMPT], [GROUND_TRUTH])  # a plain label: the ground truth only
    assert isinstance(out["rewards"], torch.Tensor)
    assert out["rewards"].tolist() == [pytest.approx(_expected(300, budget))]
    assert out["extra_logs"]["budgeted"].tolist() == [float(math.isfinite(budget))]
    messages = [r.getMessage() for r in caplog.records]
    value = rule if rule.isalpha() else float(rule)
    assert f"reward 'pixelthink': 1 of 1 samples without difficulty: missing_difficulty={value!r} applies" in messages


def test_missing_uncertainty_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the reward file returns torch tensors")
    hard = {"ground_truth": GROUND_TRUTH, "difficulty": 7.0}
    monkeypatch.setenv("ALR_MISSING_UNCERTAINTY", "0.0")
    assert reward_func([QUERY], [PROMPT], [hard])["rewards"].tolist() == [pytest.approx(_expected(300, 256.0))]
    monkeypatch.setenv("ALR_MISSING_UNCERTAINTY", "0.4")
    assert reward_func([QUERY], [PROMPT], [hard])["rewards"].tolist() == [pytest.approx(_expected(300, 266.0))]


def test_bad_missing_context_settings_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the reward file returns torch tensors")
    with pytest.raises(
        ConfigError,
        match=r"missing_difficulty: expected 'error', a tier name \['easy', 'medium', "
        r"'hard'\] or a number, got 'huge'",
    ):
        OpenRLHFReward(settings=settings_from_env({"ALR_MISSING_DIFFICULTY": "huge"}))
    with pytest.raises(
        ConfigError,
        match=r"AdapterSettings: missing_uncertainty.literal\['error'\]: expected 'error', "
        "got 'low'",
    ):
        settings_from_env({"ALR_MISSING_UNCERTAINTY": "low"})
    with pytest.raises(
        ConfigError,
        match="missing_difficulty: expected a reward with a budget policy that reads "
        "difficulty, got 'medium' for the reward 'x', which has none",
    ):
        OpenRLHFReward(
            settings=AdapterSettings(
                reward={"kind": "column", "column": "x"}, score_range=(0, 1), missing_difficulty="medium"
            )
        )
    monkeypatch.setenv("ALR_MISSING_DIFFICULTY", "huge")  # the reward file: one error, through OpenRLHF's catch-all
    with pytest.raises(FatalRewardError, match="OpenRLHF reward file: the ALR_\\* settings: .*missing_difficulty"):
        reward_func([QUERY], [PROMPT], [GROUND_TRUTH])


def test_reward_func_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the reward file returns torch tensors")
    config = tmp_path / "reward.json"
    config.write_text(json.dumps(SoftLengthPenalty(length=WhitespaceWords()).to_config().model_dump(mode="json")))
    monkeypatch.setenv("ALR_REWARD_CONFIG", str(config))
    monkeypatch.setenv("ALR_DIFFICULTY_KEY", "level")
    out = reward_func(["P: a b c"], ["P: "], [{"level": 2.0}])
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].dtype == torch.float32
    assert out["rewards"].tolist() == [1.0] and out["scores"].tolist() == [1.0]
    assert set(out["extra_logs"]) == {
        "length",
        "budget",
        "budgeted",
        "tier",
        "difficulty",
        "uncertainty",
        "over_budget",
    }


# ------------------------------------------------------------------------------------------------------------
# Through OpenRLHF itself
# ------------------------------------------------------------------------------------------------------------


class ChosenTokensEngine:
    """Stands in for OpenRLHF's vLLM engine (vLLM cannot run here): ``generate`` returns the token ids of a
    chosen completion plus EOS in vLLM's ``RequestOutput`` shape, so the expected reward is known exactly."""

    def __init__(self, tokenizer: Any, completion: str) -> None:
        self.ids = [*tokenizer.encode(completion, add_special_tokens=False), tokenizer.eos_token_id]
        self.text = completion

    async def generate(self, prompt_token_ids: list[int], sampling_params: Any, multi_modal_data: Any = None) -> Any:
        output = SimpleNamespace(token_ids=list(self.ids), text=self.text, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


def _execute(executor: Any, tokenizer: Any, completion: str, label: Any) -> dict[str, Any]:
    params = SimpleNamespace(max_tokens=512, logprobs=None)  # the fields OpenRLHF reads of vLLM's SamplingParams
    return asyncio.run(
        executor.execute(_chat_prompt(), label, params, 2048, tokenizer, ChosenTokensEngine(tokenizer, completion))
    )


def _openrlhf_agent() -> Any:
    return pytest.importorskip(
        "openrlhf.utils.agent",
        reason="needs openrlhf: pip install --no-deps openrlhf==0.11.2 aiohttp pylatexenc (docs/openrlhf.md)",
    )


def test_reward_file_through_openrlhf_single_turn_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _openrlhf_agent()
    tokenizer = build_tokenizer()
    assert (
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "Find the red square."}], add_generation_prompt=True, tokenize=False
        )
        == _chat_prompt()
    )
    executor = agent.SingleTurnAgentExecutor(REWARD_FILE)  # OpenRLHF loads the file by path, as --reward.remote_url
    assert executor.reward_func is not None
    for words, difficulty, budget in [(60, 2.0, 96.0), (300, 2.0, 96.0), (300, 4.5, math.inf)]:
        out = _execute(executor, tokenizer, _answer(words), {"ground_truth": GROUND_TRUTH, "difficulty": difficulty})
        reward = float(out["reward"].reshape(-1)[0])
        assert reward == pytest.approx(_expected(words, budget))
        assert float(out["scores"].reshape(-1)[0]) == pytest.approx(reward / 5)
        assert float(out["extra_logs"]["length"].reshape(-1)[0]) == words
        assert float(out["extra_logs"]["difficulty"].reshape(-1)[0]) == difficulty
    # PixelThink's diagnostics reach OpenRLHF's logs (uncertainty too, though TieredBudget does not require it)
    out = _execute(
        executor, tokenizer, _answer(300), {"ground_truth": GROUND_TRUTH, "difficulty": 7.0, "uncertainty": 0.4}
    )
    logs = {key: float(value.reshape(-1)[0]) for key, value in out["extra_logs"].items()}
    assert (logs["length"], logs["tier"]) == (300.0, 2.0)
    assert (logs["budget"], logs["uncertainty"]) == (pytest.approx(266.0), pytest.approx(0.4))


@pytest.mark.parametrize(
    ("case", "label", "field"),
    [
        ("no difficulty", {"ground_truth": GROUND_TRUTH}, "labels[0].difficulty: missing"),
        ("plain-string label", GROUND_TRUTH, "labels[0]: missing"),
        (
            "hard tier without uncertainty",
            {"ground_truth": GROUND_TRUTH, "difficulty": 7.0},
            "labels[0].uncertainty: missing",
        ),
    ],
)
def test_openrlhf_loop_stops_with_the_error_instead_of_a_none_reward(case: str, label: Any, field: str) -> None:
    """OpenRLHF 0.11.2 wraps the reward file in ``except Exception`` (INFO log; ``reward`` None, then
    ``Experience.rewards`` None): the adapter's FatalRewardError leaves ``execute`` with the field and message."""
    agent = _openrlhf_agent()
    executor = agent.SingleTurnAgentExecutor(REWARD_FILE)
    with pytest.raises(FatalRewardError) as raised:
        _execute(executor, build_tokenizer(), _answer(60), label)
    assert field in str(raised.value) and isinstance(raised.value.__cause__, RewardInputError)


def test_openrlhf_loop_with_plain_labels_and_the_missing_difficulty_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _openrlhf_agent()
    monkeypatch.setenv("ALR_MISSING_DIFFICULTY", "3.0")  # the official loader's fallback: the easy tier
    executor = agent.SingleTurnAgentExecutor(REWARD_FILE)
    out = _execute(executor, build_tokenizer(), _answer(300), GROUND_TRUTH)
    assert float(out["reward"].reshape(-1)[0]) == pytest.approx(_expected(300, 96.0))
    assert float(out["extra_logs"]["budget"].reshape(-1)[0]) == 96.0


@pytest.mark.slow
def test_fatal_reward_error_reaches_the_ray_driver() -> None:
    """OpenRLHF runs ``execute`` inside an async Ray actor (``RolloutRayActor.generate_responses``, which needs vLLM):
    an actor with the same ``generate_responses`` body and the stand-in engine, on a local Ray cluster bound to
    127.0.0.1. The driver's ``ray.get`` raises the reward's error; the actor keeps serving."""
    agent = _openrlhf_agent()
    ray = pytest.importorskip("ray")
    tokenizer = build_tokenizer()
    ids = ChosenTokensEngine(tokenizer, _answer(60)).ids
    reward_file = REWARD_FILE

    @ray.remote
    class Rollout:
        def __init__(self) -> None:
            self.executor = agent.SingleTurnAgentExecutor(reward_file)

        async def generate(
            self, prompt_token_ids: list[int], sampling_params: Any, multi_modal_data: Any = None
        ) -> Any:
            output = SimpleNamespace(token_ids=list(ids), text="", finish_reason="stop", logprobs=None)
            return SimpleNamespace(outputs=[output])

        async def generate_responses(
            self,
            prompt: str,
            label: Any,
            sampling_params: Any,
            max_length: int,
            hf_tokenizer: Any,
            num_samples: int = 1,
        ) -> Any:  # OpenRLHF 0.11.2's body
            return await asyncio.gather(
                *[
                    self.executor.execute(
                        prompt=prompt,
                        label=label,
                        sampling_params=sampling_params,
                        max_length=max_length,
                        hf_tokenizer=hf_tokenizer,
                        llm_engine=self,
                    )
                    for _ in range(num_samples)
                ]
            )

    ray.init(num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        actor = Rollout.remote()  # type: ignore[attr-defined]
        params = SimpleNamespace(max_tokens=512, logprobs=None)
        with pytest.raises(FatalRewardError) as raised:
            ray.get(actor.generate_responses.remote(PROMPT, {"ground_truth": GROUND_TRUTH}, params, 2048, tokenizer, 2))
        assert "labels[0].difficulty: missing: the reward 'pixelthink' needs a difficulty per label" in str(
            raised.value
        )
        done = ray.get(actor.generate_responses.remote(PROMPT, LABEL, params, 2048, tokenizer, 2))
        assert [float(out["reward"].reshape(-1)[0]) for out in done] == [5.0, 5.0]
    finally:
        ray.shutdown()


def _samples_generator() -> Any:
    """OpenRLHF's ``SamplesGenerator`` module, imported with a stand-in ``vllm`` (vLLM cannot install here): only the
    names its imports bind (``SamplingParams``, ``inputs.TokensPrompt``, ``utils.random_uuid``); the code under test,
    ``_process_response_into_experience`` and ``Experience.concat_experiences``, uses none of them."""
    pytest.importorskip("ray", reason="OpenRLHF's trainer modules import ray")
    if "vllm" not in sys.modules:
        stand_in = types.ModuleType("vllm")
        stand_in.SamplingParams = SimpleNamespace  # type: ignore[attr-defined]
        stand_in.__version__ = "0.0.0-stand-in"  # type: ignore[attr-defined]
        inputs, utils = types.ModuleType("vllm.inputs"), types.ModuleType("vllm.utils")
        inputs.TokensPrompt = dict  # type: ignore[attr-defined]
        utils.random_uuid = lambda: "0"  # type: ignore[attr-defined]
        stand_in.inputs, stand_in.utils = inputs, utils  # type: ignore[attr-defined]
        sys.modules.update({"vllm": stand_in, "vllm.inputs": inputs, "vllm.utils": utils})
    from openrlhf.trainer.ppo_utils import samples_generator

    return samples_generator


def test_every_logged_value_reaches_openrlhfs_metrics_finite() -> None:
    """The executor's output through OpenRLHF's own ``_process_response_into_experience`` (``extra_logs`` ->
    ``Experience.info``) and ``Experience.concat_experiences``: the components and the columns (uncertainty,
    budget, tier, length) are there for every sample, finite, so OpenRLHF's batch means are finite too."""
    agent = _openrlhf_agent()
    generator = _samples_generator()
    tokenizer = build_tokenizer()
    executor = agent.SingleTurnAgentExecutor(REWARD_FILE)
    labels = [
        {"ground_truth": GROUND_TRUTH, "difficulty": 2.0},
        {"ground_truth": GROUND_TRUTH, "difficulty": 4.0},  # medium: no budget (inf before logging)
        {"ground_truth": GROUND_TRUTH, "difficulty": 7.0, "uncertainty": 0.4},
    ]
    experiences = [
        generator.SamplesGenerator._process_response_into_experience(
            None, _execute(executor, tokenizer, _answer(300), label), max_len=2048
        )
        for label in labels
    ]
    merged = experiences[0].concat_experiences(experiences, tokenizer.pad_token_id)
    info = {key: value.tolist() for key, value in merged.info.items()}
    for key in (
        "length",
        "budget",
        "budgeted",
        "tier",
        "difficulty",
        "uncertainty",
        "over_budget",
        "segmentation_accuracy",
        "segmentation_accuracy/box_iou",
        "soft_length_penalty",
    ):
        assert len(info[key]) == 3 and all(math.isfinite(v) for v in info[key]), (key, info.get(key))
    assert info["budget"] == pytest.approx([96.0, 0.0, 266.0]) and info["budgeted"] == [1.0, 0.0, 1.0]
    assert info["tier"] == [0.0, 1.0, 2.0] and info["uncertainty"] == pytest.approx([0.0, 0.0, 0.4])
    assert info["reward"] == pytest.approx([_expected(300, 96.0), 5.0, _expected(300, 266.0)])
    assert all(math.isfinite(float(np.mean(values))) for values in info.values())


# ------------------------------------------------------------------------------------------------------------
# The HTTP server
# ------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _serving(reward: OpenRLHFReward) -> Iterator[str]:
    """``create_app(reward)`` under uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    uvicorn = pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    pytest.importorskip("fastapi", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    from adaptive_length_reward.adapters.openrlhf_server import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(reward), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with _serving(OpenRLHFReward(settings=AdapterSettings())) as url:
        yield url


def _post(url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_server_answers_openrlhfs_client(server_url: str) -> None:
    prompt = _chat_prompt()
    label = {"ground_truth": GROUND_TRUTH, "difficulty": 2.0}
    query = prompt + _answer(300) + "<|im_end|>"
    try:
        from openrlhf.utils.agent import SingleTurnAgentExecutor
    except ImportError:  # OpenRLHF's client is unavailable: the same JSON contract through a plain HTTP client
        status, out = _post(server_url + "/get_reward", {"query": [query], "prompts": [prompt], "labels": [label]})
        assert status == 200
        result = out
    else:  # OpenRLHF's own HTTP client function, as used for --reward.remote_url http://.../get_reward
        tokenizer = build_tokenizer()
        executor = SingleTurnAgentExecutor(server_url + "/get_reward")
        result = asyncio.run(executor._fetch_rewards_via_http([query], [prompt], [label]))[0]
        full = _execute(executor, tokenizer, _answer(300), label)  # and end to end through execute()
        assert full["reward"] == [pytest.approx(_expected(300, 96.0))]
        assert full["extra_logs"]["budget"] == [96.0] and full["extra_logs"]["budgeted"] == [1.0]
    assert result["rewards"] == [pytest.approx(_expected(300, 96.0))]
    assert result["scores"] == [pytest.approx(_expected(300, 96.0) / 5)]
    assert result["extra_logs"]["length"] == [300.0] and result["extra_logs"]["over_budget"] == [204.0]


@pytest.mark.parametrize(("case", "overrides", "loc", "message"), MALFORMED, ids=MALFORMED_IDS)
def test_http_server_answers_each_malformed_request_with_422(
    server_url: str, case: str, overrides: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    status, out = _post(server_url + "/get_reward", _body(overrides))
    assert status == 422, out
    [detail] = out["detail"]
    assert detail["loc"] == ["body", *loc] and message in detail["msg"]


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"prompts": [PROMPT], "labels": [LABEL]}, ["body", "query"], "Field required"),
        ({"query": QUERY, "prompts": [PROMPT], "labels": [LABEL]}, ["body", "query"], "Input should be a valid list"),
        (
            {"query": [QUERY], "prompts": [7], "labels": [LABEL]},
            ["body", "prompts", 0],
            "Input should be a valid string",
        ),
        ({"query": [QUERY], "prompts": [PROMPT], "labels": "x"}, ["body", "labels"], "Input should be a valid list"),
        (b"{not json", ["body", 1], "JSON decode error"),
    ],
)
def test_http_server_rejects_bodies_of_the_wrong_shape(
    server_url: str, body: Any, loc: list[Any], message: str
) -> None:
    status, out = _post(server_url + "/get_reward", body)
    assert status == 422 and out["detail"][0]["loc"] == loc and message in out["detail"][0]["msg"]


def test_http_server_health(server_url: str) -> None:
    with urllib.request.urlopen(server_url + "/health", timeout=10) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok" and health["reward"] == "pixelthink" and health["config"]["kind"] == "product"


class BrokenReward(OpenRLHFReward):
    """A reward with a bug: an unexpected error is an HTTP 500 whose body says what it was."""

    def score(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in the reward")


def test_http_server_reports_an_unexpected_error_as_500_with_its_message() -> None:
    with _serving(BrokenReward(settings=AdapterSettings())) as url:
        status, out = _post(url + "/get_reward", _body({}))
    assert (status, out) == (500, {"detail": "RuntimeError: a bug in the reward"})


@pytest.mark.slow
def test_openrlhfs_client_on_a_422_and_the_servers_log(server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """OpenRLHF's HTTP client retries a failed request 5 times (1 s apart), then ``execute`` leaves the reward None
    (OpenRLHF 0.11.2 behaviour the server cannot change): the reason is in the server's log, at WARNING."""
    agent = _openrlhf_agent()
    executor = agent.SingleTurnAgentExecutor(server_url + "/get_reward")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = _execute(executor, build_tokenizer(), _answer(60), {"ground_truth": GROUND_TRUTH})
    assert out["reward"] is None
    logged = [r.getMessage() for r in caplog.records if r.name == "adaptive_length_reward.adapters.openrlhf_server"]
    assert len(logged) == 5 and all("422 labels[0].difficulty: missing" in m for m in logged)


def test_server_command_line_bad_settings_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    from adaptive_length_reward.adapters.openrlhf_server import main

    cases = {
        "reward: {kind: nope}\n": "AdapterSettings: reward: config: kind: expected one of",
        "reward: {kind: soft_length_penalty, beta: -1}\n": "beta",
        "difficulty_key: 3\nscore_range: [2, 1]\n": "AdapterSettings: difficulty_key",
        "- a list\n": "ConfigError: ALR_SETTINGS: expected a mapping",
    }
    for i, (text, fragment) in enumerate(cases.items()):
        settings = tmp_path / f"bad{i}.yaml"
        settings.write_text(text)
        monkeypatch.setattr(os, "environ", dict(os.environ))  # main() sets ALR_SETTINGS for its workers
        with pytest.raises(SystemExit) as exited:
            main(["--settings", str(settings), "--port", "1"])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1, err
        assert err.startswith("alr-openrlhf-server: error: ") and fragment in err and "Traceback" not in err
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("ALR_")})
    with pytest.raises(SystemExit):
        main(["--missing-difficulty", "huge", "--port", "1"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--missing-difficulty: expected 'error', a tier name" in err


@pytest.mark.slow
def test_server_command_line_starts_with_a_settings_file_and_flags(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    settings = tmp_path / "settings.yaml"
    settings.write_text("difficulty_key: level\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALR_")} | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_length_reward.adapters.openrlhf_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--settings",
            str(settings),
            "--missing-difficulty",
            "medium",
            "--response-marker",
            r"A:\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode()[-2000:] if process.stdout else ""
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/get_reward"
        status, out = _post(
            url,
            {
                "query": ["...A:\n" + _answer(60)],
                "prompts": ["Q: x\nA:\n"],
                "labels": [{"ground_truth": GROUND_TRUTH, "level": 2.0}],
            },
        )
        assert status == 200 and out["rewards"] == [5.0]
        status, out = _post(
            url, {"query": ["Q: x\nA:\n" + _answer(300)], "prompts": ["Q: x\nA:\n"], "labels": [GROUND_TRUTH]}
        )  # a plain label: --missing-difficulty medium applies
        assert status == 200 and out["rewards"] == [5.0] and out["extra_logs"]["budgeted"] == [0.0]
        status, out = _post(url, {"query": ["nothing"], "prompts": ["Q"], "labels": [GROUND_TRUTH]})
        assert status == 422 and out["detail"][0]["loc"] == ["body", "query", 0]
    finally:
        process.terminate()
        log = process.communicate(timeout=20)[0].decode()
    assert "reward 'pixelthink': missing_difficulty='medium' set on its budget policies" in log
    assert "WARNING adaptive_length_reward.adapters.openrlhf_server: POST /get_reward: 422 query[0]:" in log


def test_adapters_package_imports_no_framework() -> None:
    heavy = ("torch", "transformers", "trl", "verl", "openrlhf", "ray", "fastapi", "uvicorn")
    code = (
        "import sys, adaptive_length_reward.adapters as a, adaptive_length_reward.adapters.openrlhf, "
        "adaptive_length_reward.adapters.openrlhf_reward_file; a.AdapterSettings; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"heavy modules imported: {loaded}"
    import adaptive_length_reward.adapters as adapters

    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        adapters.Nope


def test_group_reward_groups_the_samples_of_each_prompt() -> None:
    """A batch of n samples per prompt (``n_samples_per_prompt`` consecutive rows, as the /get_reward server or a
    direct ``score`` call receives them): the group keys are the runs of equal prompts, so ShorterBetter's optimal
    length is the shortest correct one of each prompt's own samples, the same as scoring each prompt alone."""
    from adaptive_length_reward import ShorterBetterReward

    reward = ShorterBetterReward()
    scorer = OpenRLHFReward(reward, AdapterSettings(score_range=(-1.0, 2.0)))
    first, second = _chat_prompt("Find the red square."), _chat_prompt("Find the blue circle.")
    words = [40, 80, 20, 60, 90, 30]
    prompts = [first] * 3 + [second] * 3
    queries = [p + _answer(n) + "<|im_end|>" for p, n in zip(prompts, words)]
    labels = [{"ground_truth": GROUND_TRUTH, "correct": c} for c in (1, 1, 0, 1, 0, 1)]

    batch = scorer.build_batch(queries, prompts, labels)
    assert batch.group_ids == (0, 0, 0, 1, 1, 1)
    rewards = scorer.score(queries, prompts, labels)["rewards"]
    # ShorterBetter (arXiv 2504.21370, Eq. 3): alpha*c - beta*|L - L_SOL|, L_SOL the group's shortest correct length
    expected = [2 * c - 0.001 * abs(n - sol) for n, c, sol in zip(words, (1, 1, 0, 1, 0, 1), (40,) * 3 + (30,) * 3)]
    np.testing.assert_allclose(rewards, expected, rtol=1e-9)
    alone = [scorer.score(queries[i : i + 3], prompts[i : i + 3], labels[i : i + 3])["rewards"] for i in (0, 3)]
    np.testing.assert_allclose(rewards, alone[0] + alone[1], rtol=1e-9)
    # one batch with one group: every row scored against the shortest correct length of all six
    pooled = scorer.score([first + _answer(n) + "<|im_end|>" for n in words], [first] * 6, labels)["rewards"]
    np.testing.assert_allclose(pooled, [2 * c - 0.001 * abs(n - 30) for n, c in zip(words, (1, 1, 0, 1, 0, 1))])


def test_group_keys_without_prompts_are_absent() -> None:
    """Without prompts there is nothing to group by: a group reward names the missing column."""
    from adaptive_length_reward import ShorterBetterReward

    settings = AdapterSettings(score_range=(-1.0, 2.0), response_marker="<|im_start|>assistant\n")
    scorer = OpenRLHFReward(ShorterBetterReward(), settings)
    assert scorer.build_batch([QUERY], None, [{"correct": 1}]).group_ids is None
    with pytest.raises(RewardInputError, match="group_ids"):
        scorer.score([QUERY], None, [{"correct": 1}])


def test_group_reward_one_sample_per_call_raises() -> None:
    """OpenRLHF 0.11.2's reward_func gets one sample per call: a group reward would score each sample against
    itself (ShorterBetter: always alpha for a correct one), so it raises FatalRewardError naming the cause."""
    pytest.importorskip("torch", reason="OpenRLHF's reward_func returns torch tensors (the 'torch' extra)")
    from adaptive_length_reward import ShorterBetterReward

    scorer = OpenRLHFReward(ShorterBetterReward(), AdapterSettings(score_range=(-1.0, 2.0)))
    with pytest.raises(FatalRewardError, match="group-relative.*one sample per call"):
        scorer([QUERY], [PROMPT], [{"correct": 1}])
    # two samples of one prompt in one call are a group
    assert scorer.score([QUERY, QUERY], [PROMPT, PROMPT], [{"correct": 1}, {"correct": 0}])["rewards"] == [2.0, 0.0]
