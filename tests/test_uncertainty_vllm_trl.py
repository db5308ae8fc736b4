"""UncertaintyGRPOTrainer with vLLM: PixelThink's margin from top-k log-probs, never a silent 1 - p_y.

vLLM cannot be installed here (CUDA-only wheels), so the trainer's ``vllm_generation`` is replaced by a stand-in
that returns what ``trl.generation.vllm_generation.VLLMGeneration.generate`` returns: it builds vLLM-shaped outputs
(the project's stand-ins of ``RequestOutput`` / ``CompletionOutput`` / ``Logprob``: per token the top-N by rank plus
the sampled token when it is outside them) and runs them through TRL's own ``extract_logprobs``. Everything else
(the trainer, TRL's ``_generate``, the tokenizer) is real.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

trl = pytest.importorskip("trl", reason="needs the trl extra")
torch = pytest.importorskip("torch", reason="needs torch")

from adapter_fixtures import build_text_lm, build_tokenizer, cpu_grpo_config  # noqa: E402

from adaptive_length_reward import SoftLengthPenalty  # noqa: E402
from adaptive_length_reward.adapters.trl import TRLReward, UncertaintyGRPOTrainer  # noqa: E402
from adaptive_length_reward.uncertainty import sampled_token_logprobs, topk_from_ranked  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.vllm_standins import CompletionOutput, Logprob, RequestOutput  # noqa: E402

torch.set_num_threads(1)


class StandInVLLMGeneration:
    """``VLLMGeneration`` as the trainer uses it: ``logprobs`` (N), ``sync_weights()``, ``generate(...)``."""

    def __init__(self, vocab: int, logprobs: int = 0, seed: int = 0) -> None:
        self.vocab, self.logprobs = vocab, logprobs
        self.rng = np.random.default_rng(seed)
        self.requests: list[RequestOutput] = []
        self.synced = 0

    def sync_weights(self) -> None:
        self.synced += 1

    def _completion(self, index: int) -> CompletionOutput:
        ids, tokens = [], []
        for _ in range(int(self.rng.integers(1, 12))):
            logits = self.rng.normal(size=self.vocab) * self.rng.uniform(0.5, 6.0)
            logp = logits - np.log(np.exp(logits).sum())
            order = np.argsort(-logp)
            sampled = int(self.rng.choice(self.vocab, p=np.exp(logp)))
            rank = {int(t): r + 1 for r, t in enumerate(order)}
            entry = {sampled: Logprob(float(logp[sampled]), rank[sampled])}  # vLLM lists the sampled token first
            entry.update({int(order[r]): Logprob(float(logp[order[r]]), r + 1) for r in range(self.logprobs)})
            ids.append(sampled)
            tokens.append(entry)
        return CompletionOutput(index=index, text="", token_ids=ids, cumulative_logprob=None, logprobs=tokens)

    def generate(self, prompts: list[list[int]], images: Any, num_generations: int, profiler: Any = None) -> Any:
        from trl.generation.vllm_generation import extract_logprobs

        outputs = [
            RequestOutput(request_id=str(i), prompt=None, prompt_token_ids=list(p), outputs=[self._completion(0)])
            for i, p in enumerate(prompts)
        ]
        self.requests = outputs
        logprobs, token_ids = extract_logprobs(outputs)  # TRL's own conversion (sorted by rank)
        return ([o.prompt_token_ids for o in outputs], [o.outputs[0].token_ids for o in outputs], logprobs, token_ids)


def official_completion(tokens: list[dict[int, Logprob]]) -> float:
    """PixelThink's official loop (``vllm_rollout_spmd.py``): per token the two entries of lowest rank, torch
    float32 ``clamp(1 - (exp(l1) - exp(l2)), 0, 1)``, mean over the completion (tokens with < 2 entries skipped;
    0.0 if none)."""
    values = []
    for entry in tokens:
        if len(entry) < 2:
            continue
        first, second = sorted(entry.values(), key=lambda lp: lp.rank)[:2]
        p1, p2 = torch.exp(torch.tensor(first.logprob)), torch.exp(torch.tensor(second.logprob))
        values.append(float(torch.clamp(1.0 - (p1 - p2), 0.0, 1.0).item()))
    return sum(values) / len(values) if values else 0.0


def _trainer(tmp_path: Any, logprobs: int = 0, **kwargs: Any) -> Any:
    """A real trainer whose generation backend is the vLLM stand-in (set as TRL sets it with ``use_vllm=True``)."""
    from datasets import Dataset

    tokenizer = build_tokenizer()
    temperature = kwargs.pop("temperature", 1.0)
    args = cpu_grpo_config(
        tmp_path,
        per_device_train_batch_size=6,
        num_generations=3,
        max_completion_length=16,
        max_steps=1,
        temperature=temperature,
    )
    trainer = UncertaintyGRPOTrainer(
        model=build_text_lm(tokenizer),
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": "q"}] * 6),
        processing_class=tokenizer,
        **kwargs,
    )
    trainer.use_vllm = True
    trainer.vllm_generation = StandInVLLMGeneration(len(tokenizer) - 8, logprobs=logprobs)  # no special tokens
    trainer._alr_check_route()  # what __init__ does when use_vllm is set
    return trainer


PROMPTS = ["Find the red square.", "Find the red square.", "Find the red square.", "Where?", "Where?", "Where?"]


def test_margin_from_vllm_top_k_equals_the_official_per_token_loop(tmp_path: Any) -> None:
    trainer = _trainer(tmp_path)
    generation = trainer.vllm_generation
    assert generation.logprobs == 5  # TRL asks for 0; the margin route asks for PixelThink's 5
    _, _, _, _, logprobs, extra, _, _ = trainer._generate(PROMPTS)
    official = [official_completion(r.outputs[0].logprobs) for r in generation.requests]
    np.testing.assert_allclose(extra["uncertainty"], official, rtol=0, atol=1e-6)
    assert np.unique(np.round(official, 4)).size > 1
    # TRL's importance sampling gets the sampled token's log-prob (TRL itself would keep the top-1 entry)
    sampled = [
        [r.outputs[0].logprobs[t][token].logprob for t, token in enumerate(r.outputs[0].token_ids)]
        for r in generation.requests
    ]
    assert logprobs == sampled
    assert generation.synced == 1


def test_margin_with_only_the_sampled_token_raises_naming_the_fix(tmp_path: Any) -> None:
    trainer = _trainer(tmp_path)
    trainer.vllm_generation.logprobs = 0  # e.g. a backend that can only give the sampled token's log-prob
    with pytest.raises(
        ValueError,
        match=r"uncertainty_measure='margin' needs the top-2 log-probs per token, got "
        r"only the sampled token's .*uncertainty_top_logprobs",
    ):
        trainer._generate(PROMPTS)


def test_nll_uses_the_sampled_token_and_entropy_is_refused(tmp_path: Any) -> None:
    trainer = _trainer(tmp_path, uncertainty_measure="nll")
    assert trainer.vllm_generation.logprobs == 0  # nothing more is asked for
    _, _, _, _, _, extra, _, _ = trainer._generate(PROMPTS)
    expected = [
        np.mean([1 - np.exp(d[t].logprob) for d, t in zip(r.outputs[0].logprobs, r.outputs[0].token_ids)])
        for r in trainer.vllm_generation.requests
    ]
    np.testing.assert_allclose(extra["uncertainty"], expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="uncertainty_measure='entropy' needs the full distribution"):
        _trainer(tmp_path, uncertainty_measure="entropy")


def test_model_distribution_at_another_temperature_is_refused(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="set uncertainty_distribution='sampler', or uncertainty_source='forward'"):
        _trainer(tmp_path, temperature=0.7)
    trainer = _trainer(tmp_path, temperature=0.7, uncertainty_distribution="sampler")
    assert trainer.vllm_generation.logprobs == 5


def test_logprobs_source_is_only_the_nll_measure(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="uncertainty_source='logprobs' gives the sampled token's 1 - p_y only"):
        _trainer(tmp_path, uncertainty_source="logprobs")


def test_ranked_readers() -> None:
    ranked = [[[-0.1, -2.5, None], [-0.7]]]
    topk = topk_from_ranked(ranked)
    assert topk.counts.tolist() == [2, 1] and topk.lengths.tolist() == [2]
    assert sampled_token_logprobs([[5]], [[[-0.2]]], None) == [[-0.2]]
    with pytest.raises(ValueError, match="logprob_token_ids: expected the token ids"):
        sampled_token_logprobs([[5]], [[[-0.2, -0.3]]], None)
    with pytest.raises(ValueError, match="expected one entry list per token"):
        sampled_token_logprobs([[5, 6]], [[[-0.2]]], None)
