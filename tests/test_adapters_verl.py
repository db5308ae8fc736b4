"""verl adapter against verl 0.9.1 itself: ``compute_score``, the reward manager's ``run_single`` on real
``verl.DataProto`` batches, verl's own loaders and registries, the agent loop, and the ``verl.plugins`` entry point.

verl is installed CPU-only with ``pip install --no-deps verl==0.9.1`` plus the imports it needs (docs/verl.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

verl = pytest.importorskip(
    "verl", reason="the verl adapter needs verl: pip install --no-deps verl==0.9.1 plus its imports (docs/verl.md)")
torch = pytest.importorskip("torch", reason="verl needs torch")

from adapter_fixtures import GROUND_TRUTH, PERFECT_ANSWER, build_text_lm, build_tokenizer  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402

from adaptive_length_reward import MissingContextError  # noqa: E402
from adaptive_length_reward.adapters import verl as verl_adapter  # noqa: E402
from adaptive_length_reward.adapters.scoring import AdapterSettings  # noqa: E402
from adaptive_length_reward.adapters.token_spans import reasoning_token_mask  # noqa: E402
from adaptive_length_reward.adapters.verl import (  # noqa: E402
    AdaptiveLengthRewardManager,
    UncertaintySingleTurnAgentLoop,
    VerlComputeScore,
    attach_rollout_logprobs,
    compute_score,
    uncertainty_from_logprobs,
)

torch.set_num_threads(1)


def _answer(words: int) -> str:
    text = "<think>" + " ".join(["w"] * (words - 10)) + "</think>" + PERFECT_ANSWER
    assert len(text.split()) == words
    return text


def _expected(words: int, budget: float, accuracy: float = 5.0) -> float:
    """PixelThink: accuracy * clip(1 - max(0, L - B) / 500, 0, 1)."""
    return accuracy * min(1.0, max(0.0, 1 - max(0.0, words - budget) / 500))


# ------------------------------------------------------------------------------------------------------------
# compute_score
# ------------------------------------------------------------------------------------------------------------


def test_compute_score_reads_difficulty_and_uncertainty_from_extra_info() -> None:
    cases = [(2.0, None, 96.0), (4.0, None, math.inf), (7.0, 0.4, 256 + 25 * 0.4)]
    for difficulty, uncertainty, budget in cases:
        info = {"difficulty": difficulty, "index": 3}
        if uncertainty is not None:
            info["uncertainty"] = uncertainty
        out = compute_score("refcocog", _answer(400), GROUND_TRUTH, info)
        assert out["score"] == pytest.approx(_expected(400, budget))
        assert out["budget"] == budget and out["length"] == 400.0 and out["difficulty"] == difficulty
        assert out["tier"] == {2.0: 0.0, 4.0: 1.0, 7.0: 2.0}[difficulty]  # the index in the budget's tier names
        assert out["uncertainty"] == uncertainty if uncertainty is not None else math.isnan(out["uncertainty"])
        assert out["segmentation_accuracy"] == 5.0


def test_compute_score_takes_uncertainty_from_rollout_logprobs() -> None:
    logprobs = [-0.1, -2.0, -0.5, 0.0]
    u = float(np.mean(1 - np.exp(logprobs)))
    out = compute_score("refcocog", _answer(400), GROUND_TRUTH, {"difficulty": 9.0, "rollout_logprobs": logprobs})
    assert out["uncertainty"] == pytest.approx(u)
    assert out["budget"] == pytest.approx(256 + 25 * u)
    assert out["score"] == pytest.approx(_expected(400, 256 + 25 * u))
    given = compute_score("refcocog", _answer(400), GROUND_TRUTH,
                          {"difficulty": 9.0, "rollout_logprobs": logprobs, "uncertainty": 0.9})
    assert given["uncertainty"] == 0.9  # a precomputed uncertainty wins
    assert uncertainty_from_logprobs([]) == 0.0
    with pytest.raises(ValueError, match="logprobs: expected log-probabilities <= 0"):
        uncertainty_from_logprobs([0.5])


def test_every_sample_returns_the_same_keys_and_malformed_responses_score_zero() -> None:
    responses = [_answer(50), "", "<think>unclosed", "no tags {not json}", "<answer>{\"bbox\": [1]}</answer>"]
    results = [compute_score("refcocog", r, GROUND_TRUTH, {"difficulty": 2.0}) for r in responses]
    keys = [tuple(r) for r in results]
    assert len(set(keys)) == 1
    assert keys[0][:6] == ("score", "length", "budget", "tier", "difficulty", "uncertainty")
    assert results[0]["score"] == 5.0
    assert [r["score"] for r in results[1:]] == [0.0, 0.0, 0.0, 0.0]
    assert all(math.isfinite(r[k]) for r in results for k in ("score", "length", "budget", "tier", "over_budget"))


def test_configured_by_reward_kwargs_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "reward.yaml"
    config.write_text("kind: soft_length_penalty\nbeta: 0.01\nbudget: {kind: tiered_budget}\n")
    out = compute_score("d", "a b c " * 40, None, {"level": 2.0}, reward_config=str(config), difficulty_key="level",
                        reward_router_address=None)
    assert out["score"] == pytest.approx(1 - 0.01 * (120 - 96))
    # no components (a single reward): the fixed diagnostics only
    assert set(out) == {"score", "length", "budget", "tier", "difficulty", "uncertainty", "over_budget"}
    monkeypatch.setenv("ALR_REWARD_CONFIG", str(config))
    monkeypatch.setenv("ALR_DIFFICULTY_KEY", "level")
    np.testing.assert_equal(compute_score("d", "a b c " * 40, None, {"level": 2.0}), out)  # NaN == NaN here
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(
        {"reward": {"kind": "soft_length_penalty", "budget": {"kind": "fixed_budget", "budget": 1}}}))
    monkeypatch.delenv("ALR_REWARD_CONFIG")
    monkeypatch.setenv("ALR_SETTINGS", str(settings_file))
    assert compute_score("d", "a b c", None, {})["score"] == pytest.approx(1 - 2 / 500)


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(MissingContextError, match="difficulty"):
        compute_score("refcocog", _answer(50), GROUND_TRUTH, {})  # PixelThink needs a difficulty (no guessing)
    with pytest.raises(TypeError, match="extra_info\\['difficulty'\\]: expected a number or None"):
        compute_score("refcocog", _answer(50), GROUND_TRUTH, {"difficulty": "hard"})
    with pytest.raises(TypeError, match="solution_str: expected str"):
        compute_score("refcocog", None, GROUND_TRUTH, {})
    with pytest.raises(ValueError, match="reward_config"):
        compute_score("d", "x", None, {}, reward_config="/does/not/exist.yaml")


def test_scorer_cache_follows_what_changes_a_score() -> None:
    # Rewards that differ only in an in-memory tokenizer (same configuration) are different components: no cache
    # keyed on a reward (the adapters' settings -> reward cache, a scorer per reward) may hand one the other's
    # scorer
    from adaptive_length_reward import FixedBudget, SoftLengthPenalty, TokenCount

    small, large = build_tokenizer(), build_tokenizer(vocab_size=300)
    text = "<think> the red square is on the left </think>"
    assert len(small.encode(text, add_special_tokens=False)) != len(large.encode(text, add_special_tokens=False))

    def penalty(tokenizer: Any) -> Any:
        return SoftLengthPenalty(length=TokenCount(tokenizer), budget=FixedBudget(0))

    a, a_again, b = penalty(small), penalty(small), penalty(large)
    assert a == a_again and hash(a) == hash(a_again) and a != b
    for reward, tokenizer in ((a, small), (b, large), (a_again, small)):
        tokens = len(tokenizer.encode(text, add_special_tokens=False))
        out = VerlComputeScore(reward)("d", text, None, {})
        assert out["length"] == tokens and out["score"] == pytest.approx(1 - tokens / 500)


def test_compute_score_object_is_picklable_and_named() -> None:
    scorer = VerlComputeScore(settings=AdapterSettings(difficulty_key="level"))
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.__name__ == "pixelthink"
    np.testing.assert_equal(clone("d", _answer(200), GROUND_TRUTH, {"level": 2.0}),
                            scorer("d", _answer(200), GROUND_TRUTH, {"level": 2.0}))


# ------------------------------------------------------------------------------------------------------------
# The reward manager on real DataProto batches
# ------------------------------------------------------------------------------------------------------------


def _data_proto(tokenizer: Any, responses: list[str], extra_infos: list[dict[str, Any]],
                logprobs: bool = True, prompt_width: int = 64, response_width: int = 256) -> Any:
    """A batch shaped like verl's rollout output: left-padded prompts, right-padded responses (with EOS)."""
    pad = tokenizer.pad_token_id
    n = len(responses)
    prompts = torch.full((n, prompt_width), pad)
    out = torch.full((n, response_width), pad)
    attention = torch.zeros((n, prompt_width + response_width), dtype=torch.long)
    logps = torch.zeros((n, response_width))
    for i, text in enumerate(responses):
        p = tokenizer.apply_chat_template([{"role": "user", "content": "Find it."}], add_generation_prompt=True)
        p = p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p
        r = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
        prompts[i, prompt_width - len(p):] = torch.tensor(p)
        out[i, :len(r)] = torch.tensor(r)
        attention[i, prompt_width - len(p):prompt_width + len(r)] = 1
        logps[i, :len(r)] = -0.25 * (1 + torch.arange(len(r)) % 3)
    tensors = {"prompts": prompts, "responses": out, "attention_mask": attention,
               "response_mask": attention[:, prompt_width:].clone()}
    if logprobs:
        tensors["rollout_log_probs"] = logps
    non_tensors = {
        "data_source": np.array(["refcocog"] * n, dtype=object),
        "reward_model": np.array([{"ground_truth": GROUND_TRUTH, "style": "rule"} for _ in range(n)], dtype=object),
        "extra_info": np.array(extra_infos, dtype=object),
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def _manager_config(**reward_kwargs: Any) -> Any:
    return OmegaConf.create({"reward": {
        "custom_reward_function": {"path": "pkg://adaptive_length_reward.adapters.verl", "name": "compute_score",
                                   "reward_kwargs": reward_kwargs},
        "reward_manager": {"source": "register", "name": "adaptive_length", "module": {"path": None, "name": None}},
    }})


def _run(manager: Any, data: Any) -> list[dict[str, Any]]:
    async def score_all() -> list[dict[str, Any]]:
        return [await manager.run_single(data[i:i + 1]) for i in range(len(data))]

    return asyncio.run(score_all())


def test_reward_manager_counts_tokens_from_response_ids_without_retokenising() -> None:
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = build_tokenizer()
    responses = [_answer(60), "<think> a b c d e f </think>" + PERFECT_ANSWER]
    data = _data_proto(tokenizer, responses, [{"difficulty": 2.0}, {"difficulty": 9.0}], logprobs=True)
    # verl's own loader: registry name "adaptive_length", compute_score loaded by pkg:// path with reward_kwargs
    manager = load_reward_manager(_manager_config(), tokenizer)
    assert isinstance(manager, AdaptiveLengthRewardManager)
    results = _run(manager, data)

    valid = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:].sum(-1).tolist()
    logps = data.batch["rollout_log_probs"]
    for i, result in enumerate(results):
        info = result["reward_extra_info"]
        assert info["length"] == valid[i]  # response tokens including EOS, straight from the mask
        u = float(np.mean(1 - np.exp(logps[i, :valid[i]].numpy())))
        assert info["uncertainty"] == pytest.approx(u, abs=1e-6)
        budget = 96.0 if i == 0 else 256 + 25 * u
        assert info["budget"] == pytest.approx(budget) and info["tier"] == [0.0, 2.0][i]  # PixelThink's logs
        assert result["reward_score"] == pytest.approx(_expected(valid[i], budget))
        assert set(info) == set(results[0]["reward_extra_info"])
    # the scores written where verl puts them: on the last valid token
    scores = AdaptiveLengthRewardManager.assemble_rm_scores(data, [r["reward_score"] for r in results])
    assert scores[0, valid[0] - 1] == results[0]["reward_score"] and scores.sum() == pytest.approx(
        sum(r["reward_score"] for r in results))


def test_reward_manager_reasoning_span_and_settings_from_reward_kwargs() -> None:
    tokenizer = build_tokenizer()
    response = "<think> a b c d e f </think>" + PERFECT_ANSWER
    data = _data_proto(tokenizer, [response], [{"level": 2.0}], logprobs=False)
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(_manager_config(length_span="reasoning", difficulty_key="level"), tokenizer)
    assert manager.settings.length_span == "reasoning"
    result = _run(manager, data)[0]
    ids = tokenizer.encode(response, add_special_tokens=False)
    span = int(reasoning_token_mask(ids, tokenizer).sum())
    assert 6 <= span < len(ids)
    assert result["reward_extra_info"]["length"] == span
    assert math.isnan(result["reward_extra_info"]["uncertainty"])  # no log-probs anywhere: no uncertainty
    assert result["reward_score"] == 5.0


def test_reward_manager_with_a_users_compute_score() -> None:
    tokenizer = build_tokenizer()
    seen: list[dict[str, Any]] = []

    def my_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any],
                 **kwargs: Any) -> float:
        seen.append(dict(kwargs, solution_str=solution_str))
        return 0.5

    data = _data_proto(tokenizer, ["plain text answer"], [{"difficulty": 2.0}])
    result = _run(AdaptiveLengthRewardManager(_manager_config(), tokenizer, my_score), data)[0]
    assert result == {"reward_score": 0.5, "reward_extra_info": {"acc": 0.5}}
    assert seen[0]["solution_str"] == "plain text answer"
    assert seen[0]["response_length"] == len(seen[0]["response_ids"]) == len(
        tokenizer.encode("plain text answer", add_special_tokens=False)) + 1


# ------------------------------------------------------------------------------------------------------------
# Agent loop: the rollout's log-probs reach the reward
# ------------------------------------------------------------------------------------------------------------


class GenerateServer:
    """Stands in for verl's vLLM/SGLang server manager, which cannot run here: generates with a tiny HF model and
    returns verl's own ``TokenOutput`` with the sampled tokens' log-probs."""

    def __init__(self, model: Any) -> None:
        self.model = model

    async def generate(self, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt_ids]), max_new_tokens=16, do_sample=True,
                                      output_scores=True, return_dict_in_generate=True)
        new = out.sequences[0, len(prompt_ids):].tolist()
        logps = [float(torch.log_softmax(s[0], -1)[t]) for s, t in zip(out.scores, new)]
        return TokenOutput(token_ids=new, log_probs=logps if sampling_params.get("logprobs", True) else None)


class RewardWorkerHandle:
    """Stands in for the Ray actor handle of verl's reward-loop worker (no Ray cluster in unit tests):
    ``handle.compute_score.remote(data)`` awaits our manager's ``run_single`` on the DataProto verl built."""

    def __init__(self, manager: Any) -> None:
        self.compute_score = SimpleNamespace(remote=manager.run_single)


@pytest.mark.slow
def test_agent_loop_puts_rollout_logprobs_where_the_streaming_reward_reads_them() -> None:
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, DictConfigWrap, _agent_loop_registry
    from verl.utils.dataset.rl_dataset import RLHFDataset

    assert _agent_loop_registry["adaptive_length_single_turn"]["_target_"].endswith("UncertaintySingleTurnAgentLoop")
    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 64, "response_length": 32}},
                               "data": {}})
    row = {"data_source": "refcocog", "reward_model": {"ground_truth": GROUND_TRUTH},
           "extra_info": {"difficulty": 8.0}, "raw_prompt": [{"role": "user", "content": "Find the red square."}]}

    async def rollout_and_score() -> Any:
        loop = UncertaintySingleTurnAgentLoop(
            trainer_config=DictConfigWrap(config), server_manager=GenerateServer(model), tokenizer=tokenizer,
            processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data))
        output = await loop.run({}, **row)
        # verl's own streaming-reward path (AgentLoopWorker._compute_score) builds the DataProto from the output
        worker = object.__new__(AgentLoopWorker)
        worker.processor, worker.tokenizer = None, tokenizer
        worker.reward_loop_worker_handles = [RewardWorkerHandle(AdaptiveLengthRewardManager(
            _manager_config(), tokenizer, verl_adapter.compute_score))]
        await worker._compute_score([output], kwargs=row)
        return output

    output = asyncio.run(rollout_and_score())
    generated = [lp for lp, m in zip(output.response_logprobs, output.response_mask) if m]
    assert output.extra_fields["rollout_logprobs"] == generated
    info = output.extra_fields["reward_extra_info"]
    u = float(np.mean(1 - np.exp(generated)))
    assert 0 < info["uncertainty"] < 1 and info["uncertainty"] == pytest.approx(u)
    assert info["budget"] == pytest.approx(256 + 25 * u)
    assert output.reward_score == info["score"]


def test_attach_rollout_logprobs_keeps_model_tokens_and_needs_logprobs() -> None:
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput

    output = AgentLoopOutput(prompt_ids=[1], response_ids=[5, 6, 7, 8], response_mask=[1, 0, 0, 1],
                             response_logprobs=[-0.1, 0.0, 0.0, -0.3], metrics=AgentLoopMetrics(), extra_fields={})
    assert attach_rollout_logprobs(output).extra_fields["rollout_logprobs"] == [-0.1, -0.3]
    output.response_logprobs = None
    with pytest.raises(ValueError, match="calculate_log_probs=True"):
        attach_rollout_logprobs(output)
    with pytest.raises(TypeError, match="expected an AgentLoopOutput"):
        attach_rollout_logprobs({"response_logprobs": []})


# ------------------------------------------------------------------------------------------------------------
# verl.plugins entry point
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_verl_plugins_entry_point_registers_at_import_verl(tmp_path: Path) -> None:
    """A throwaway distribution declares the entry point the package's pyproject declares; ``import verl`` in a
    fresh interpreter must then register the manager and the agent loop."""
    dist = tmp_path / "alr_verl_plugin_check-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: alr-verl-plugin-check\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[verl.plugins]\nadaptive_length_reward_check = adaptive_length_reward.adapters.verl\n")
    code = textwrap.dedent("""
        import sys
        import verl
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
        print(get_reward_manager_cls("adaptive_length").__qualname__,
              "adaptive_length_single_turn" in _agent_loop_registry,
              "adaptive_length_reward.adapters.verl" in sys.modules)
    """)
    env = {"PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-3:] == ["AdaptiveLengthRewardManager", "True", "True"]


def test_docs_snippet_runs() -> None:
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "verl.md").read_text()
    block = re.search(r"## Snippet\n\n```python\n(.*?)```", page, re.S).group(1)  # type: ignore[union-attr]
    namespace: dict[str, Any] = {"print": lambda *a: namespace.setdefault("printed", a)}
    exec(compile(block, "docs/verl.md", "exec"), namespace)
    out = namespace["printed"][0]
    u = float(np.mean(1 - np.exp([-0.1, -0.7])))
    assert out["score"] == 5.0 and out["uncertainty"] == pytest.approx(u)
    assert out["budget"] == pytest.approx(256 + 25 * u)
