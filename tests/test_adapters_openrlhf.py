"""OpenRLHF adapter: the reward file loaded by OpenRLHF's own ``SingleTurnAgentExecutor``, and the ``/get_reward``
HTTP server on 127.0.0.1 queried with OpenRLHF's HTTP client.

OpenRLHF is installed CPU-only with ``pip install --no-deps openrlhf==0.11.2`` plus ``aiohttp pylatexenc``
(docs/openrlhf.md). Its vLLM engine cannot run here; a stand-in engine returns chosen token ids (said below).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from adapter_fixtures import GROUND_TRUTH, PERFECT_ANSWER, build_tokenizer

from adaptive_length_reward import ConfigError, SoftLengthPenalty, WhitespaceWords
from adaptive_length_reward.adapters import openrlhf_reward_file
from adaptive_length_reward.adapters.openrlhf import OpenRLHFReward, reward_func, split_response
from adaptive_length_reward.adapters.scoring import AdapterSettings, load_settings, settings_from_env

REWARD_FILE = openrlhf_reward_file.__file__


def _answer(words: int) -> str:
    text = "<think>" + " ".join(["w"] * (words - 10)) + "</think>" + PERFECT_ANSWER
    assert len(text.split()) == words
    return text


def _expected(words: int, budget: float) -> float:
    """PixelThink with all five accuracy terms: 5 * clip(1 - max(0, L - B) / 500, 0, 1)."""
    return 5.0 * min(1.0, max(0.0, 1 - max(0.0, words - budget) / 500))


def _chat_prompt(text: str = "Find the red square.") -> str:
    """The ChatML prompt OpenRLHF passes as ``prompts`` (the fixture tokenizer's template renders exactly this)."""
    return (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
            "<|im_start|>assistant\n")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ALR_"):
            monkeypatch.delenv(key)


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
    with pytest.raises(ValueError, match="queries: expected each query to start with its prompt"):
        split_response("unrelated", prompt, AdapterSettings())


def test_labels_give_ground_truth_difficulty_and_uncertainty() -> None:
    prompt = _chat_prompt()
    reward = OpenRLHFReward(settings=AdapterSettings())
    labels = [{"ground_truth": GROUND_TRUTH, "difficulty": 2.0},
              json.dumps({"ground_truth": GROUND_TRUTH, "difficulty": 7.0, "uncertainty": 0.4}),
              {"ground_truth": GROUND_TRUTH, "difficulty": 4.0}]
    queries = [prompt + _answer(400) + "<|im_end|>"] * 3
    out = reward.score(queries, [prompt] * 3, labels)
    budgets = [96.0, 256 + 25 * 0.4, math.inf]
    assert out["rewards"] == pytest.approx([_expected(400, b) for b in budgets])
    assert out["scores"] == pytest.approx([_expected(400, b) / 5 for b in budgets])
    logs = out["extra_logs"]
    assert logs["length"] == [400.0] * 3 and logs["difficulty"] == [2.0, 7.0, 4.0]
    assert logs["over_budget"] == pytest.approx([400 - 96, 400 - 266, 0.0])
    assert logs["segmentation_accuracy"] == [5.0] * 3
    # what RewardOutput reports reaches the logs, though PixelThink does not require an uncertainty; OpenRLHF
    # averages each key, so what is not finite (no budget: medium tier; no uncertainty) is logged as 0
    assert logs["uncertainty"] == [0.0, 0.4, 0.0] and logs["tier"] == [0.0, 2.0, 1.0]
    assert logs["budget"] == pytest.approx([96.0, 256 + 25 * 0.4, 0.0])
    assert all(math.isfinite(v) for values in logs.values() for v in values)


def test_malformed_completions_score_zero_with_the_same_keys() -> None:
    prompt = _chat_prompt()
    reward = OpenRLHFReward(settings=AdapterSettings())
    label = {"ground_truth": GROUND_TRUTH, "difficulty": 2.0}
    keys = set()
    for response in ["", "<think>never closed", "{\"bbox\": 3}", "\x00\ufffd garbage"]:
        out = reward.score([prompt + response + "<|im_end|>"], [prompt], [label])
        assert out["rewards"] == [0.0] and out["scores"] == [0.0]
        keys.add(tuple(out["extra_logs"]))
    assert len(keys) == 1


def test_configuration_errors_are_clear() -> None:
    from adaptive_length_reward import ColumnReward

    with pytest.raises(ConfigError, match="score_range: expected \\(low, high\\)"):
        OpenRLHFReward(ColumnReward("x"), settings=AdapterSettings())
    unbounded = OpenRLHFReward(ColumnReward("x"), settings=AdapterSettings(score_range=(0.0, 10.0)))
    assert unbounded.score(["p7"], ["p"], [{"x": 7.0}])["scores"] == [0.7]
    with pytest.raises(ValueError, match="labels: expected 2 entries"):
        unbounded.score(["pa", "pb"], ["p", "p"], [{"x": 1.0}])
    with pytest.raises(ConfigError, match=r"AdapterSettings: score_range: expected finite \(low, high\) with low <"):
        settings_from_env({}, score_range=(1.0, 1.0))
    with pytest.raises(ConfigError, match="AdapterSettings: difficulty_column: unknown field"):
        settings_from_env({}, difficulty_column="x")


def test_settings_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("difficulty_key: level\nscore_range: [0, 10]\nreward: {kind: column, column: x}\n")
    settings = load_settings(path, ground_truth_key="answer")
    assert (settings.difficulty_key, settings.ground_truth_key, settings.score_range) == ("level", "answer", (0, 10))
    assert OpenRLHFReward(settings=settings).score(["q5"], ["q"], [{"x": 5.0}])["scores"] == [0.5]
    with pytest.raises(ConfigError, match="adapter settings: expected an existing YAML or JSON file"):
        load_settings(tmp_path / "missing.yaml")


def test_reward_func_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the reward file returns torch tensors")
    config = tmp_path / "reward.json"
    config.write_text(json.dumps(SoftLengthPenalty(length=WhitespaceWords()).to_config().model_dump(
        mode="json")))
    monkeypatch.setenv("ALR_REWARD_CONFIG", str(config))
    monkeypatch.setenv("ALR_DIFFICULTY_KEY", "level")
    out = reward_func(["P: a b c"], ["P: "], [{"level": 2.0}])
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].dtype == torch.float32
    assert out["rewards"].tolist() == [1.0] and out["scores"].tolist() == [1.0]
    assert set(out["extra_logs"]) == {"length", "budget", "tier", "difficulty", "uncertainty", "over_budget"}


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
    return asyncio.run(executor.execute(_chat_prompt(), label, params, 2048, tokenizer,
                                        ChosenTokensEngine(tokenizer, completion)))


def test_reward_file_through_openrlhf_single_turn_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = pytest.importorskip(
        "openrlhf.utils.agent",
        reason="needs openrlhf: pip install --no-deps openrlhf==0.11.2 aiohttp pylatexenc (docs/openrlhf.md)")
    tokenizer = build_tokenizer()
    assert tokenizer.apply_chat_template([{"role": "user", "content": "Find the red square."}],
                                         add_generation_prompt=True, tokenize=False) == _chat_prompt()
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
    out = _execute(executor, tokenizer, _answer(300), {"ground_truth": GROUND_TRUTH, "difficulty": 7.0,
                                                       "uncertainty": 0.4})
    logs = {key: float(value.reshape(-1)[0]) for key, value in out["extra_logs"].items()}
    assert (logs["length"], logs["tier"]) == (300.0, 2.0)
    assert (logs["budget"], logs["uncertainty"]) == (pytest.approx(266.0), pytest.approx(0.4))
    # OpenRLHF catches reward exceptions and leaves the reward empty; ours say what is wrong when called directly
    missing = _execute(executor, tokenizer, _answer(60), {"ground_truth": GROUND_TRUTH})
    assert missing["reward"] is None
    with pytest.raises(Exception, match="difficulty"):
        prompt = _chat_prompt()
        executor.reward_func([prompt + "x"], [prompt], [{"ground_truth": GROUND_TRUTH}])


# ------------------------------------------------------------------------------------------------------------
# The HTTP server
# ------------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_url() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    pytest.importorskip("fastapi", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    from adaptive_length_reward.adapters.openrlhf_server import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(OpenRLHFReward(settings=AdapterSettings())), host="127.0.0.1",
                                           port=port, log_level="warning"))
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


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
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
    assert result["rewards"] == [pytest.approx(_expected(300, 96.0))]
    assert result["scores"] == [pytest.approx(_expected(300, 96.0) / 5)]
    assert result["extra_logs"]["length"] == [300.0] and result["extra_logs"]["over_budget"] == [204.0]


def test_http_server_rejects_malformed_requests_with_a_message(server_url: str) -> None:
    status, out = _post(server_url + "/get_reward", {"prompts": ["p"]})
    assert status == 422 and "query" in json.dumps(out)
    status, out = _post(server_url + "/get_reward", {"query": ["pa", "pb"], "prompts": ["p"], "labels": [1, 2]})
    assert status == 422 and "prompts: expected 2 entries" in out["detail"]
    with urllib.request.urlopen(server_url + "/health", timeout=10) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok" and health["reward"] == "pixelthink" and health["config"]["kind"] == "product"


@pytest.mark.slow
def test_server_command_line_starts_with_a_settings_file(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    settings = tmp_path / "settings.yaml"
    settings.write_text("difficulty_key: level\nresponse_marker: 'A: '\n")
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "adaptive_length_reward.adapters.openrlhf_server", "--host",
                                "127.0.0.1", "--port", str(port), "--settings", str(settings)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
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
        status, out = _post(f"http://127.0.0.1:{port}/get_reward",
                            {"query": ["...A: " + _answer(60)], "prompts": ["Q: x"],
                             "labels": [{"ground_truth": GROUND_TRUTH, "level": 2.0}]})
        assert status == 200 and out["rewards"] == [5.0]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_docs_snippet_runs() -> None:
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "openrlhf.md").read_text()
    block = re.search(r"## Snippet\n\n```python\n(.*?)```", page, re.S).group(1)  # type: ignore[union-attr]
    namespace: dict[str, Any] = {"print": lambda *a: namespace.setdefault("printed", a)}
    exec(compile(block, "docs/openrlhf.md", "exec"), namespace)
    out = namespace["printed"][0]
    assert out["rewards"] == [5.0] and out["scores"] == [1.0] and out["extra_logs"]["length"] == [11.0]


def test_adapters_package_imports_no_framework() -> None:
    heavy = ("torch", "transformers", "trl", "verl", "openrlhf", "ray", "fastapi", "uvicorn")
    code = ("import sys, adaptive_length_reward.adapters as a, adaptive_length_reward.adapters.openrlhf, "
            "adaptive_length_reward.adapters.openrlhf_reward_file; a.AdapterSettings; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"heavy modules imported: {loaded}"
    import adaptive_length_reward.adapters as adapters

    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        adapters.Nope
