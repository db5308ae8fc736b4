"""verl adapter against verl 0.9.1 itself: ``compute_score``, the reward managers' ``run_single`` on real
``verl.DataProto`` batches, verl's own loaders, registries (reward loop and legacy), naive and rate-limited managers,
validation metrics and the agent loops.

Runs in the verl venv (``make test-verl``: verl 0.9.1 at its own pins, docs/verl.md's install); skipped elsewhere.
The plugin's laziness and verl's RewardLoopManager on Ray: tests/test_verl_plugin.py, tests/test_verl_reward_loop.py.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

verl = pytest.importorskip("verl", reason="the verl adapter needs verl: make test-verl (docs/verl.md, 'Install')")
torch = pytest.importorskip("torch", reason="verl needs torch")

from adapter_fixtures import GROUND_TRUTH, PERFECT_ANSWER, build_text_lm, build_tokenizer  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402

from adaptive_length_reward import ConfigError, MissingContextError  # noqa: E402
from adaptive_length_reward.adapters import verl as verl_adapter  # noqa: E402
from adaptive_length_reward.adapters.scoring import AdapterSettings  # noqa: E402
from adaptive_length_reward.adapters.token_spans import reasoning_token_mask  # noqa: E402
from adaptive_length_reward.adapters.verl import (  # noqa: E402
    AdaptiveLengthLegacyRewardManager,
    AdaptiveLengthRateLimitedRewardManager,
    AdaptiveLengthRewardManager,
    VerlComputeScore,
    VerlOptions,
    compute_score,
    uncertainty_from_logprobs,
)
from adaptive_length_reward.adapters.verl_agent_loop import (  # noqa: E402
    MarginSingleTurnAgentLoop,
    UncertaintySingleTurnAgentLoop,
    attach_rollout_logprobs,
    response_margin_uncertainty,
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
        # logged finite (verl averages them): no budget is logged as 0 with budgeted 0, no uncertainty as 0
        assert out["budget"] == (budget if math.isfinite(budget) else 0.0)
        assert out["budgeted"] == float(math.isfinite(budget))
        assert out["length"] == 400.0 and out["difficulty"] == difficulty
        assert out["tier"] == {2.0: 0.0, 4.0: 1.0, 7.0: 2.0}[difficulty]  # the index in the budget's tier names
        assert out["uncertainty"] == (uncertainty or 0.0)
        assert out["segmentation_accuracy"] == 5.0
        assert all(math.isfinite(v) for v in out.values())


def test_sampled_token_logprobs_give_u_only_with_measure_nll() -> None:
    logprobs = [-0.1, -2.0, -0.5, 0.0]
    u = float(np.mean(1 - np.exp(logprobs)))
    info = {"difficulty": 9.0, "rollout_logprobs": logprobs, "index": 17}
    out = compute_score("refcocog", _answer(400), GROUND_TRUTH, info, uncertainty_measure="nll")
    assert out["uncertainty"] == pytest.approx(u)
    assert out["budget"] == pytest.approx(256 + 25 * u)
    assert out["score"] == pytest.approx(_expected(400, 256 + 25 * u))
    # the default measure is PixelThink's margin: sampled-token log-probs are not silently used as 1 - p_sampled
    with pytest.raises(MissingContextError) as caught:
        compute_score("refcocog", _answer(400), GROUND_TRUTH, info)
    message = str(caught.value)
    assert "data_source='refcocog', extra_info['index']=17" in message
    assert "uncertainty_measure='nll'" in message and "adaptive_length_margin" in message
    # samples that do not need U score as usual under the margin default
    assert compute_score("refcocog", _answer(50), GROUND_TRUTH, {**info, "difficulty": 2.0})["score"] == 5.0
    given = compute_score("refcocog", _answer(400), GROUND_TRUTH, {**info, "uncertainty": 0.9})
    assert given["uncertainty"] == 0.9  # a precomputed (margin) uncertainty wins
    assert uncertainty_from_logprobs([]) == 0.0
    with pytest.raises(ValueError, match="logprobs: expected log-probabilities <= 0"):
        uncertainty_from_logprobs([0.5])


def test_every_sample_returns_the_same_keys_and_malformed_responses_score_zero() -> None:
    responses = [_answer(50), "", "<think>unclosed", "no tags {not json}", '<answer>{"bbox": [1]}</answer>']
    results = [compute_score("refcocog", r, GROUND_TRUTH, {"difficulty": 2.0}) for r in responses]
    keys = [tuple(r) for r in results]
    assert len(set(keys)) == 1
    assert keys[0][:6] == ("score", "length", "budget", "tier", "difficulty", "uncertainty")
    assert "budgeted" in keys[0]
    assert results[0]["score"] == 5.0
    assert [r["score"] for r in results[1:]] == [0.0, 0.0, 0.0, 0.0]
    assert all(math.isfinite(r[k]) for r in results for k in ("score", "length", "budget", "tier", "over_budget"))


def test_configured_by_reward_kwargs_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "reward.yaml"
    config.write_text("kind: soft_length_penalty\nbeta: 0.01\nbudget: {kind: tiered_budget}\n")
    out = compute_score(
        "d",
        "a b c " * 40,
        None,
        {"level": 2.0},
        reward_config=str(config),
        difficulty_key="level",
        reward_router_address=None,
    )
    assert out["score"] == pytest.approx(1 - 0.01 * (120 - 96))
    # no components (a single reward): the fixed diagnostics only
    assert set(out) == {"score", "length", "budget", "tier", "difficulty", "uncertainty", "over_budget", "budgeted"}
    monkeypatch.setenv("ALR_REWARD_CONFIG", str(config))
    monkeypatch.setenv("ALR_DIFFICULTY_KEY", "level")
    np.testing.assert_equal(compute_score("d", "a b c " * 40, None, {"level": 2.0}), out)  # NaN == NaN here
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(
        json.dumps({"reward": {"kind": "soft_length_penalty", "budget": {"kind": "fixed_budget", "budget": 1}}})
    )
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
    with pytest.raises(ConfigError, match="uncertainty_measure"):
        compute_score("d", "x", None, {}, uncertainty_measure="entropy")
    with pytest.raises(ConfigError, match="fallback_score: .*expected a finite number"):
        compute_score("d", "x", None, {}, on_error="fallback")
    with pytest.raises(ConfigError, match="fallback_score: .*expected None unless"):
        compute_score("d", "x", None, {}, fallback_score=0.0)


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
    np.testing.assert_equal(
        clone("d", _answer(200), GROUND_TRUTH, {"level": 2.0}), scorer("d", _answer(200), GROUND_TRUTH, {"level": 2.0})
    )


# ------------------------------------------------------------------------------------------------------------
# The reward manager on real DataProto batches
# ------------------------------------------------------------------------------------------------------------


def _data_proto(
    tokenizer: Any,
    responses: list[str],
    extra_infos: list[dict[str, Any]],
    logprobs: bool = True,
    prompt_width: int = 64,
    response_width: int | None = None,
) -> Any:
    """A batch shaped like verl's rollout output: left-padded prompts, right-padded responses (with EOS)."""
    pad = tokenizer.pad_token_id
    if response_width is None:
        response_width = max(len(tokenizer.encode(text, add_special_tokens=False)) for text in responses) + 8
    n = len(responses)
    prompts = torch.full((n, prompt_width), pad)
    out = torch.full((n, response_width), pad)
    attention = torch.zeros((n, prompt_width + response_width), dtype=torch.long)
    logps = torch.zeros((n, response_width))
    for i, text in enumerate(responses):
        p = tokenizer.apply_chat_template([{"role": "user", "content": "Find it."}], add_generation_prompt=True)
        p = p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p
        r = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
        prompts[i, prompt_width - len(p) :] = torch.tensor(p)
        out[i, : len(r)] = torch.tensor(r)
        attention[i, prompt_width - len(p) : prompt_width + len(r)] = 1
        logps[i, : len(r)] = -0.25 * (1 + torch.arange(len(r)) % 3)
    tensors = {
        "prompts": prompts,
        "responses": out,
        "attention_mask": attention,
        "response_mask": attention[:, prompt_width:].clone(),
    }
    if logprobs:
        tensors["rollout_log_probs"] = logps
    non_tensors = {
        "data_source": np.array(["refcocog"] * n, dtype=object),
        "reward_model": np.array([{"ground_truth": GROUND_TRUTH, "style": "rule"} for _ in range(n)], dtype=object),
        "extra_info": np.array(extra_infos, dtype=object),
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def _manager_config(
    manager: str = "adaptive_length", reward: dict[str, Any] | None = None, **reward_kwargs: Any
) -> Any:
    return OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://adaptive_length_reward.adapters.verl",
                    "name": "compute_score",
                    "reward_kwargs": reward_kwargs,
                },
                "reward_manager": {"source": "register", "name": manager, "module": {"path": None, "name": None}},
                **(reward or {}),
            }
        }
    )


def _run(manager: Any, data: Any) -> list[dict[str, Any]]:
    """``run_single`` on each sample, concurrently, on the manager's loop (verl's managers run executors there)."""

    async def score_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data)))))

    return manager.loop.run_until_complete(score_all())  # type: ignore[no-any-return]


def test_reward_manager_counts_tokens_from_response_ids_without_retokenising() -> None:
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = build_tokenizer()
    responses = [_answer(60), "<think> a b c d e f </think>" + PERFECT_ANSWER]
    data = _data_proto(tokenizer, responses, [{"difficulty": 2.0}, {"difficulty": 9.0}], logprobs=True)
    # verl's own loader: registry name "adaptive_length", compute_score loaded by pkg:// path with reward_kwargs
    manager = load_reward_manager(_manager_config(uncertainty_measure="nll"), tokenizer)
    assert isinstance(manager, AdaptiveLengthRewardManager)
    results = _run(manager, data)

    valid = data.batch["attention_mask"][:, data.batch["prompts"].shape[1] :].sum(-1).tolist()
    logps = data.batch["rollout_log_probs"]
    for i, result in enumerate(results):
        info = result["reward_extra_info"]
        assert info["length"] == valid[i]  # response tokens including EOS, straight from the mask
        u = float(np.mean(1 - np.exp(logps[i, : valid[i]].numpy())))
        assert info["uncertainty"] == pytest.approx(u, abs=1e-6)
        budget = 96.0 if i == 0 else 256 + 25 * u
        assert info["budget"] == pytest.approx(budget) and info["tier"] == [0.0, 2.0][i]  # PixelThink's logs
        assert result["reward_score"] == pytest.approx(_expected(valid[i], budget))
        assert set(info) == set(results[0]["reward_extra_info"])
    # the scores written where verl puts them: on the last valid token
    scores = AdaptiveLengthRewardManager.assemble_rm_scores(data, [r["reward_score"] for r in results])
    assert scores[0, valid[0] - 1] == results[0]["reward_score"] and scores.sum() == pytest.approx(
        sum(r["reward_score"] for r in results)
    )


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
    assert result["reward_extra_info"]["uncertainty"] == 0.0  # no log-probs anywhere: none, logged as 0
    assert result["reward_score"] == 5.0


def test_reward_manager_with_a_users_compute_score() -> None:
    tokenizer = build_tokenizer()
    seen: list[dict[str, Any]] = []

    def my_score(
        data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any], **kwargs: Any
    ) -> float:
        seen.append(dict(kwargs, solution_str=solution_str))
        return 0.5

    data = _data_proto(tokenizer, ["plain text answer"], [{"difficulty": 2.0}])
    result = _run(AdaptiveLengthRewardManager(_manager_config(), tokenizer, my_score), data)[0]
    assert result == {"reward_score": 0.5, "reward_extra_info": {"acc": 0.5}}
    assert seen[0]["solution_str"] == "plain text answer"
    assert (
        seen[0]["response_length"]
        == len(seen[0]["response_ids"])
        == len(tokenizer.encode("plain text answer", add_special_tokens=False)) + 1
    )


# ------------------------------------------------------------------------------------------------------------
# Agent loop: the rollout's log-probs reach the reward
# ------------------------------------------------------------------------------------------------------------


class GenerateServer:
    """Stands in for verl's vLLM/SGLang server manager, which cannot run here: generates with a tiny HF model and
    returns verl's own ``TokenOutput`` with the sampled tokens' log-probs."""

    def __init__(self, model: Any) -> None:
        self.model = model

    async def generate(
        self, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs: Any
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        with torch.no_grad():
            out = self.model.generate(
                torch.tensor([prompt_ids]),
                max_new_tokens=16,
                do_sample=True,
                output_scores=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[0, len(prompt_ids) :].tolist()
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
    config = OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 64, "response_length": 32}}, "data": {}}
    )
    row = {
        "data_source": "refcocog",
        "reward_model": {"ground_truth": GROUND_TRUTH},
        "extra_info": {"difficulty": 8.0},
        "raw_prompt": [{"role": "user", "content": "Find the red square."}],
    }

    async def rollout_and_score() -> Any:
        loop = UncertaintySingleTurnAgentLoop(
            trainer_config=DictConfigWrap(config),
            server_manager=GenerateServer(model),
            tokenizer=tokenizer,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
        )
        output = await loop.run({}, **row)
        # verl's own streaming-reward path (AgentLoopWorker._compute_score) builds the DataProto from the output
        worker = object.__new__(AgentLoopWorker)
        worker.processor, worker.tokenizer = None, tokenizer
        worker.reward_loop_worker_handles = [
            RewardWorkerHandle(
                AdaptiveLengthRewardManager(
                    _manager_config(),
                    tokenizer,
                    functools.partial(verl_adapter.compute_score, uncertainty_measure="nll"),
                )
            )
        ]
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

    output = AgentLoopOutput(
        prompt_ids=[1],
        response_ids=[5, 6, 7, 8],
        response_mask=[1, 0, 0, 1],
        response_logprobs=[-0.1, 0.0, 0.0, -0.3],
        metrics=AgentLoopMetrics(),
        extra_fields={},
    )
    assert attach_rollout_logprobs(output).extra_fields["rollout_logprobs"] == [-0.1, -0.3]
    output.response_logprobs = None
    with pytest.raises(ValueError, match="calculate_log_probs=True"):
        attach_rollout_logprobs(output)
    with pytest.raises(TypeError, match="expected an AgentLoopOutput"):
        attach_rollout_logprobs({"response_logprobs": []})


# ------------------------------------------------------------------------------------------------------------
# Missing context, verl's naive and rate-limited managers, the opt-in fallback
# ------------------------------------------------------------------------------------------------------------


def test_naive_manager_hard_tier_without_uncertainty_names_the_sample_and_the_documented_fix() -> None:
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = build_tokenizer()
    data = _data_proto(tokenizer, [_answer(300)], [{"difficulty": 8.0, "index": 41}], logprobs=False)
    manager = load_reward_manager(_manager_config("naive"), tokenizer)  # compute_score only: verl's naive manager
    assert type(manager).__name__ == "NaiveRewardManager"
    with pytest.raises(MissingContextError) as caught:
        _run(manager, data)
    message = str(caught.value)
    assert "the verl sample data_source='refcocog', extra_info['index']=41" in message
    assert "verl scores one sample per call: 'samples [0]' is this sample" in message
    assert "extra_info['uncertainty']" in message and "adaptive_length_margin" in message
    assert "missing_uncertainty" in message and "docs/verl.md, 'Missing context'" in message
    # the documented fallback: missing_uncertainty in reward_kwargs (PixelThink's official default U = 0)
    manager = load_reward_manager(_manager_config("naive", missing_uncertainty=0.0), tokenizer)
    info = _run(manager, data)[0]["reward_extra_info"]
    assert info["budget"] == 256.0 and info["score"] == pytest.approx(_expected(300, 256.0))
    # and a missing difficulty names the sample and its setting
    data = _data_proto(tokenizer, [_answer(30)], [{"index": 2}], logprobs=False)
    with pytest.raises(MissingContextError, match=r"extra_info\['index'\]=2.*missing_difficulty"):
        _run(load_reward_manager(_manager_config("naive"), tokenizer), data)


def test_verls_rate_limited_manager_swallows_errors_ours_raises() -> None:
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = build_tokenizer()
    data = _data_proto(
        tokenizer, [_answer(30), _answer(300)], [{"difficulty": 2.0}, {"difficulty": 8.0, "index": 5}], logprobs=False
    )
    # verl's own: score 0 and extra info without "score" (why this adapter has its own rate-limited manager)
    swallowed = _run(load_reward_manager(_manager_config("rate_limited"), tokenizer), data)
    assert swallowed[1]["reward_score"] == 0.0 and "score" not in swallowed[1]["reward_extra_info"]
    ours = load_reward_manager(_manager_config("adaptive_length_rate_limited"), tokenizer)
    assert isinstance(ours, AdaptiveLengthRateLimitedRewardManager) and ours._semaphore is not None
    with pytest.raises(MissingContextError, match=r"extra_info\['index'\]=5"):
        _run(ours, data)


def test_rate_limited_timeout_raises_naming_the_sample() -> None:
    import time

    tokenizer = build_tokenizer()

    def slow(**kwargs: Any) -> float:
        time.sleep(0.5)
        return 1.0

    manager = AdaptiveLengthRateLimitedRewardManager(_manager_config(reward={"timeout": 0.05}), tokenizer, slow)
    data = _data_proto(tokenizer, [_answer(30)], [{"difficulty": 2.0, "index": 9}], logprobs=False)
    with pytest.raises(TimeoutError, match=r"extra_info\['index'\]=9.*reward.timeout=0.05"):
        _run(manager, data)


@pytest.mark.parametrize("manager_name", ["adaptive_length", "adaptive_length_rate_limited", "rate_limited", "naive"])
def test_opt_in_fallback_keeps_every_key_and_logs_a_warning(
    manager_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = build_tokenizer()
    config = _manager_config(manager_name, on_error="fallback", fallback_score=-1.0)
    for order in ((0, 1), (1, 0)):  # the failing sample first too: its keys come from the reward, not a neighbour
        rows = [({"difficulty": 2.0}, _answer(30)), ({"difficulty": 8.0, "index": 5}, _answer(300))]
        rows = [rows[i] for i in order]
        data = _data_proto(tokenizer, [r for _, r in rows], [i for i, _ in rows], logprobs=False)
        verl_adapter._compute_score_for.cache_clear()  # a fresh scorer: nothing learnt from earlier samples
        with caplog.at_level("WARNING", logger="adaptive_length_reward.adapters.verl"):
            results = _run(load_reward_manager(config, tokenizer), data)
        infos = [r["reward_extra_info"] for r in results]
        failed = order.index(1)
        assert list(infos[0]) == list(infos[1]) and "reward_error" in infos[0]
        assert [info["reward_error"] for info in infos] == [float(i == failed) for i in range(2)]
        assert results[failed]["reward_score"] == infos[failed]["score"] == -1.0
        assert results[1 - failed]["reward_score"] == 5.0
        assert all(math.isfinite(v) for info in infos for v in info.values())
        assert "on_error='fallback': scoring -1.0" in caplog.text and "extra_info['index']=5" in caplog.text
        caplog.clear()
        # verl's assembly (RewardLoopManager.compute_rm_score) takes the keys of the first sample for all
        keys = list(infos[0])
        assert {key: np.array([info[key] for info in infos]) for key in keys}


def test_options_are_validated() -> None:
    assert VerlOptions().uncertainty_measure == "margin" and VerlOptions().on_error == "raise"
    with pytest.raises(ValueError, match="fallback_score"):
        VerlOptions(on_error="fallback", fallback_score=math.nan)


# ------------------------------------------------------------------------------------------------------------
# verl's legacy registry and validation metrics
# ------------------------------------------------------------------------------------------------------------


def test_legacy_registry_has_adaptive_length_with_the_legacy_interface() -> None:
    from verl.workers.reward_manager import get_reward_manager_cls

    cls = get_reward_manager_cls("adaptive_length")
    assert cls is AdaptiveLengthLegacyRewardManager
    tokenizer = build_tokenizer()
    data = _data_proto(tokenizer, [_answer(60), _answer(20)], [{"difficulty": 2.0}, {"difficulty": 9.0}])
    legacy = cls(
        tokenizer=tokenizer, num_examine=0, compute_score=None, reward_fn_key="data_source", uncertainty_measure="nll"
    )
    out = legacy(data, return_dict=True)
    current = _run(AdaptiveLengthRewardManager(_manager_config(uncertainty_measure="nll"), tokenizer), data)
    expected = AdaptiveLengthRewardManager.assemble_rm_scores(data, [r["reward_score"] for r in current])
    assert torch.equal(out["reward_tensor"], expected) and out["reward_tensor"].sum() > 0
    assert out["reward_extra_info"] == {
        key: [r["reward_extra_info"][key] for r in current] for key in current[0]["reward_extra_info"]
    }
    assert torch.equal(legacy(data), expected)


def test_validation_metrics_are_finite_through_verls_process_validation_metrics() -> None:
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    rows = [(2.0, None), (4.0, None), (4.0, None), (8.0, 0.3), (8.0, 0.6), (2.0, None)]  # medium: budget inf
    results = [
        compute_score(
            "refcocog",
            _answer(150 + 40 * i),
            GROUND_TRUTH,
            {"difficulty": d, **({} if u is None else {"uncertainty": u})},
        )
        for i, (d, u) in enumerate(rows)
    ]
    infos = {key: [r[key] for r in results] for key in results[0]}
    metrics = process_validation_metrics(["refcocog"] * len(rows), [f"p{i // 2}" for i in range(len(rows))], infos)
    values = [(var, name, v) for var, stats in metrics["refcocog"].items() for name, v in stats.items()]
    assert values and all(math.isfinite(v) for _, _, v in values), [x for x in values if not math.isfinite(x[2])]
    means = {var: stats["mean@2"] for var, stats in metrics["refcocog"].items()}
    budgets = [r["budget"] for r in results]
    assert means["budget"] == pytest.approx(np.mean(budgets)) and budgets[1] == budgets[2] == 0.0
    assert means["budgeted"] == pytest.approx(4 / 6)


# ------------------------------------------------------------------------------------------------------------
# The margin agent loop: PixelThink's U from the rollout server's top-k
# ------------------------------------------------------------------------------------------------------------


def _verl_extract_prompt_logprobs() -> Any:
    """verl's own ``extract_prompt_logprobs`` (verl/workers/rollout/vllm_rollout/utils.py); its module imports vLLM,
    which cannot be installed here, so the function's source is compiled on its own."""
    import ast
    from typing import Optional

    path = Path(verl.__file__).parent / "workers" / "rollout" / "vllm_rollout" / "utils.py"
    tree = ast.parse(path.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "extract_prompt_logprobs")
    namespace: dict[str, Any] = {"Optional": Optional, "RequestOutput": Any}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["extract_prompt_logprobs"]


class TopKServer(GenerateServer):
    """:class:`GenerateServer` that also answers ``prompt_logprobs=k`` as verl's vLLM server does: per prompt
    position the top-k tokens by rank, plus the prompt's own token with its rank when it is not among them
    (vLLM's ``Logprob`` stand-in from benchmarks/vllm_standins.py), passed through verl's own
    ``extract_prompt_logprobs`` into ``extra_fields``. ``prompt_logprobs=False`` answers without them (like a
    backend that cannot)."""

    def __init__(self, model: Any, prompt_logprobs: bool = True) -> None:
        super().__init__(model)
        self.prompt_logprobs = prompt_logprobs
        self.requests: list[dict[str, Any]] = []

    async def generate(
        self, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs: Any
    ) -> Any:
        self.requests.append(dict(sampling_params))
        k = sampling_params.get("prompt_logprobs")
        if k is None:
            return await super().generate(request_id, prompt_ids, sampling_params, **kwargs)
        from verl.workers.rollout.replica import TokenOutput

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
        from vllm_standins import Logprob

        with torch.no_grad():
            logps = torch.log_softmax(self.model(torch.tensor([prompt_ids])).logits[0].double(), -1)
        rows: list[Any] = [None]
        for i in range(1, len(prompt_ids)):
            order = torch.argsort(logps[i - 1], descending=True).tolist()
            entry = {t: Logprob(float(logps[i - 1, t]), rank=r + 1) for r, t in enumerate(order[:k])}
            entry.setdefault(prompt_ids[i], Logprob(float(logps[i - 1, prompt_ids[i]]), order.index(prompt_ids[i]) + 1))
            rows.append(entry)
        extra: dict[str, Any] = {}
        if self.prompt_logprobs:
            _verl_extract_prompt_logprobs()(SimpleNamespace(prompt_logprobs=rows), k, extra)
        return TokenOutput(token_ids=[int(logps[-1].argmax())], log_probs=None, extra_fields=extra)


def _agent_loop(cls: type, server: Any, tokenizer: Any) -> Any:
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 64, "response_length": 32}}, "data": {}}
    )
    return cls(
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
    )


def _on_verl_loop(coroutine: Any) -> Any:
    """Run on verl's event loop (its agent loops run executors on it, ``verl.utils.ray_utils.get_event_loop``)."""
    from verl.utils.ray_utils import get_event_loop

    return get_event_loop().run_until_complete(coroutine)


_ROW = {
    "data_source": "refcocog",
    "reward_model": {"ground_truth": GROUND_TRUTH},
    "extra_info": {"difficulty": 8.0},
    "raw_prompt": [{"role": "user", "content": "Find the red square."}],
}


@pytest.mark.slow
def test_margin_agent_loop_gives_pixelthinks_u_from_the_servers_topk() -> None:
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, _agent_loop_registry

    assert _agent_loop_registry["adaptive_length_margin"]["_target_"].endswith("MarginSingleTurnAgentLoop")
    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    torch.manual_seed(0)
    server = TopKServer(model)

    async def rollout_and_score() -> Any:
        output = await _agent_loop(MarginSingleTurnAgentLoop, server, tokenizer).run({}, **_ROW)
        worker = object.__new__(AgentLoopWorker)  # verl's own streaming-reward path builds the DataProto
        worker.processor, worker.tokenizer = None, tokenizer
        worker.reward_loop_worker_handles = [
            RewardWorkerHandle(AdaptiveLengthRewardManager(_manager_config(), tokenizer, verl_adapter.compute_score))
        ]
        await worker._compute_score([output], kwargs=_ROW)
        return output

    output = _on_verl_loop(rollout_and_score())
    assert server.requests[-1] == {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 5}
    # independently: one forward pass over prompt + response, top-2 probabilities of each response position
    ids = output.prompt_ids + output.response_ids
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    p = len(output.prompt_ids)
    top2 = probs[p - 1 : p - 1 + len(output.response_ids)].topk(2, dim=-1).values
    u = float((1 - (top2[:, 0] - top2[:, 1])).clamp(0, 1).mean())
    assert 0 < u < 1 and output.extra_fields["uncertainty"] == pytest.approx(u, abs=1e-9)
    info = output.extra_fields["reward_extra_info"]
    assert info["uncertainty"] == pytest.approx(u) and info["budget"] == pytest.approx(256 + 25 * u)
    assert output.reward_score == info["score"]


@pytest.mark.slow
def test_margin_agent_loop_raises_where_the_server_gives_no_topk() -> None:
    tokenizer = build_tokenizer()
    server = TopKServer(build_text_lm(tokenizer, logit_scale=20.0), prompt_logprobs=False)
    with pytest.raises(RuntimeError, match="no prompt_logprobs.*uncertainty_measure='nll'"):
        _on_verl_loop(_agent_loop(MarginSingleTurnAgentLoop, server, tokenizer).run({}, **_ROW))


def test_response_margin_uncertainty_reads_the_rows_after_the_prompt() -> None:
    import math as m

    prompt = [[0.0], [m.log(0.9), m.log(0.05)], [m.log(0.6), m.log(0.3)], [m.log(0.5), m.log(0.5)], [0.0, 0.0]]
    # prompt of 2 tokens: response token 0 reads row 1, token 1 row 2, token 2 row 3; the last row is verl's pad
    assert response_margin_uncertainty(prompt, 2, [1, 1, 1]) == pytest.approx(np.mean([0.15, 0.7, 1.0]))
    assert response_margin_uncertainty(prompt, 2, [1, 0, 1]) == pytest.approx(np.mean([0.15, 1.0]))
    assert response_margin_uncertainty(prompt, 2, [0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="top-2"):
        response_margin_uncertainty([[0.0], [-0.1], [-0.2]], 1, [1, 1])
    with pytest.raises(ValueError, match="a row for each of the 5 response tokens"):
        response_margin_uncertainty(prompt, 2, [1, 1, 1, 1, 1])


def _group_data(tokenizer: Any) -> tuple[Any, list[int], list[str], list[int]]:
    """Six responses of two prompts, interleaved (verl's ``uid`` groups need not be adjacent), with correct flags."""
    words = [60, 120, 30, 200, 90, 45]
    uids = ["p0", "p1", "p0", "p1", "p0", "p1"]
    correct = [1, 1, 0, 1, 1, 0]
    infos = [{"difficulty": 2.0, "index": int(u[1]), "correct": c} for u, c in zip(uids, correct)]
    data = _data_proto(tokenizer, [_answer(n) for n in words], infos)
    data.non_tensor_batch["uid"] = np.array(uids, dtype=object)
    data.meta_info["global_steps"] = 7
    return data, words, uids, correct


def test_group_reward_scored_on_the_whole_data_proto_by_verls_batch_manager_api() -> None:
    """ShorterBetter through verl's legacy registry (``adaptive_length_batch``, the whole-batch interface): the
    values equal ``reward.evaluate`` on the same batch, and ShorterBetter's Eq. 3 computed by hand per uid."""
    from verl.workers.reward_manager import get_reward_manager_cls

    from adaptive_length_reward import PrecomputedLength, RewardBatch, ShorterBetterReward

    tokenizer = build_tokenizer()
    data, _, uids, correct = _group_data(tokenizer)
    reward = ShorterBetterReward(length=PrecomputedLength())
    cls = get_reward_manager_cls("adaptive_length_batch")
    assert cls is verl_adapter.AdaptiveLengthBatchRewardManager
    manager = cls(tokenizer=tokenizer, num_examine=0, compute_score=None, reward_fn_key="data_source", reward=reward)
    out = manager(data, return_dict=True)

    width = data.batch["prompts"].shape[1]
    valid = data.batch["attention_mask"][:, width:].sum(-1)
    tensor = out["reward_tensor"]
    rows = torch.arange(len(data))
    assert torch.count_nonzero(tensor[rows, valid - 1] - tensor.sum(-1)) == 0  # all on the last valid token
    lengths = data.batch["response_mask"].sum(-1).double().numpy()
    texts = [
        tokenizer.decode(data.batch["responses"][i, : valid[i]].tolist(), skip_special_tokens=True)
        for i in range(len(data))
    ]
    batch = RewardBatch.from_completions(texts, group_ids=uids, lengths=lengths, correct=correct, step=7)
    expected = reward.evaluate(batch).rewards
    np.testing.assert_allclose(tensor.sum(-1).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(out["reward_extra_info"]["score"], expected, rtol=1e-12)
    # ShorterBetter (arXiv 2504.21370, Eq. 3): 2*c - 0.001*|L - L_SOL|, L_SOL the shortest correct length of the uid
    sol = {u: min(L for L, v, c in zip(lengths, uids, correct) if v == u and c) for u in set(uids)}
    np.testing.assert_allclose(expected, [2 * c - 0.001 * abs(L - sol[u]) for L, u, c in zip(lengths, uids, correct)])
    # the groups matter: one uid for all six rows gives other values
    data.non_tensor_batch["uid"] = np.array(["p"] * 6, dtype=object)
    assert not np.allclose(manager(data).sum(-1).numpy(), expected)


def test_batch_manager_reads_groups_steps_and_problem_ids() -> None:
    tokenizer = build_tokenizer()
    data, _, uids, _ = _group_data(tokenizer)
    from adaptive_length_reward import HAPOReward, PrecomputedLength

    manager = verl_adapter.AdaptiveLengthBatchRewardManager(tokenizer, reward=HAPOReward(length=PrecomputedLength()))
    batch = manager.build_batch(data)
    assert batch.group_ids == tuple(uids) and batch.step == 7
    assert batch.extra["problem_id"] == tuple(f"refcocog/{u[1]}" for u in uids)  # data_source/extra_info index
    assert np.isfinite(manager(data).sum(-1).numpy()).all()
    data.non_tensor_batch["extra_info"][0]["split"] = "train"
    data.non_tensor_batch["extra_info"][1]["problem_id"] = "mine"
    assert manager.build_batch(data).extra["problem_id"][:2] == ("refcocog/train/0", "mine")
    del data.non_tensor_batch["uid"]
    from adaptive_length_reward import ShorterBetterReward

    grouped = verl_adapter.AdaptiveLengthBatchRewardManager(tokenizer, reward=ShorterBetterReward())
    with pytest.raises(ValueError, match=r"non_tensor_batch\['uid'\]"):
        grouped(data)
    with pytest.raises(ConfigError, match="compute_score"):
        verl_adapter.AdaptiveLengthBatchRewardManager(tokenizer, compute_score=lambda **kw: 0.0)


def test_group_reward_scored_per_sample_raises_naming_the_batch_manager() -> None:
    """verl's reward loop scores one sample per call: a group reward there raises (never a group of one)."""
    from adaptive_length_reward import PrecomputedLength, ShorterBetterReward

    tokenizer = build_tokenizer()
    data, *_ = _group_data(tokenizer)
    scorer = VerlComputeScore(reward=ShorterBetterReward(length=PrecomputedLength()))
    manager = AdaptiveLengthRewardManager(_manager_config(), tokenizer, compute_score=scorer)
    with pytest.raises(ConfigError, match="group-relative.*'adaptive_length_batch'"):
        _run(manager, data)
    with pytest.raises(ConfigError, match="adaptive_length_batch"):
        scorer("refcocog", _answer(30), GROUND_TRUTH, {"correct": 1})
