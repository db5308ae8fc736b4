"""Uncertainty measured where the tokens are sampled: what UncertaintyGRPOTrainer records during TRL's own
``generate`` call equals a separate forward pass at the sampling temperature (tiny Qwen2 and Qwen2.5-VL, prompts
of different lengths, left padding, sampled decoding), and the ``"sampler"`` distribution equals the scores
``generate`` samples from."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

trl = pytest.importorskip("trl", reason="needs the trl extra")
torch = pytest.importorskip("torch", reason="needs torch")

from adapter_fixtures import (  # noqa: E402
    build_processor,
    build_text_lm,
    build_tokenizer,
    build_vlm,
    cpu_grpo_config,
    square_image,
)

from adaptive_length_reward import SoftLengthPenalty  # noqa: E402
from adaptive_length_reward.adapters.trl import TRLReward, UncertaintyGRPOTrainer  # noqa: E402
from adaptive_length_reward.uncertainty import (  # noqa: E402
    SAMPLING_STATISTICS,
    SamplingRecorder,
    generate_with_statistics,
    token_statistics,
)

torch.set_num_threads(1)
TEMPERATURE = 0.7
TEXTS = ["Find it.", "Find the red square and output its bounding box. What colour is the square?", "box"]


def _args(tmp_path: Any, **overrides: Any) -> Any:
    values: dict[str, Any] = dict(
        per_device_train_batch_size=6,
        num_generations=2,
        max_completion_length=20,
        max_steps=1,
        learning_rate=1e-4,
        logging_steps=1,
        seed=0,
        temperature=TEMPERATURE,
    )
    values.update(overrides)
    return cpu_grpo_config(tmp_path, **values)


def _trainer(tmp_path: Any, vlm: bool, **kwargs: Any) -> tuple[Any, Any, list[Any]]:
    """A trainer on a tiny policy and its 6 prompts (3 texts of different lengths, each twice: one GRPO group)."""
    from datasets import Dataset
    from trl.data_utils import prepare_multimodal_messages

    tokenizer = build_tokenizer()
    if vlm:
        processing, model = build_processor(tokenizer), build_vlm(tokenizer, logit_scale=20.0)
        images = [[square_image(c, i * 4)] for i, c in enumerate(["red", "blue", "green"])]
        messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}] for t in TEXTS]
        prompts = [prepare_multimodal_messages(m, images=im) for m, im in zip(messages, images)]
        rows = [{"prompt": m, "image": im[0]} for m, im in zip(messages, images)]
    else:
        processing, model = tokenizer, build_text_lm(tokenizer, hidden=64, layers=2, logit_scale=20.0)
        prompts = [[{"role": "user", "content": t}] for t in TEXTS]
        rows = [{"prompt": p} for p in prompts]
    # Every 12th token id also ends a completion (TRL reads the model's EOS ids): lengths differ within the batch.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *range(7, len(tokenizer), 12)]
    trainer = UncertaintyGRPOTrainer(
        model=model,
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=_args(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=processing,
        **kwargs,
    )
    return trainer, processing, [p for p in prompts for _ in range(2)]


def _reference(
    trainer: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]], images: list[Any] | None
) -> dict[str, list[np.ndarray]]:
    """Per completion, unpadded, one forward pass over prompt + completion; statistics at the sampling temperature."""
    model = trainer.model
    out: dict[str, list[np.ndarray]] = {name: [] for name in SAMPLING_STATISTICS}
    for i, (prompt, completion) in enumerate(zip(prompt_ids, completion_ids)):
        ids = torch.tensor(prompt + completion)[None]
        extra: dict[str, Any] = {}
        if images is not None:
            fields = trainer.processing_class.image_processor(images=images[i], return_tensors="pt")
            types = (ids == model.config.image_token_id).long()
            extra = dict(
                pixel_values=fields["pixel_values"], image_grid_thw=fields["image_grid_thw"], mm_token_type_ids=types
            )
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0]
        stats = token_statistics(
            logits[len(prompt) - 1 : -1],
            token_ids=torch.tensor(completion),
            temperature=TEMPERATURE,
            stats=SAMPLING_STATISTICS,
        )
        for name in SAMPLING_STATISTICS:
            out[name].append(stats[name].double().numpy())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("vlm", [False, True], ids=["qwen2", "qwen2_5_vl"])
def test_statistics_recorded_at_sampling_equal_a_separate_forward_pass(tmp_path: Any, vlm: bool) -> None:
    trainer, _, prompts = _trainer(tmp_path, vlm)
    model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    recorder = SamplingRecorder(temperature=TEMPERATURE)
    torch.manual_seed(3)
    prompt_ids, images, fields = trainer._tokenize_prompts(prompts)
    with recorder.attached(model):  # TRL's own generate call (the sampling route wraps exactly this)
        completion_ids, _ = trl.GRPOTrainer._generate_single_turn(trainer, prompt_ids, images, fields, 1)
    assert len({len(p) for p in prompt_ids}) == 3  # different prompt lengths: left padding in the batch
    assert len({len(c) for c in completion_ids}) > 1 and min(len(c) for c in completion_ids) > 0
    recorded = recorder.per_completion(completion_ids)
    reference = _reference(trainer, prompt_ids, completion_ids, images)
    for name in SAMPLING_STATISTICS:
        worst = max(float(np.abs(a - b).max()) for a, b in zip(recorded[name], reference[name]))
        assert worst <= 1e-5, (name, worst)
    assert np.ptp(np.concatenate(recorded["margin"])) > 0.1  # the statistics vary: the comparison has teeth


@pytest.mark.slow
@pytest.mark.parametrize("vlm", [False, True], ids=["qwen2", "qwen2_5_vl"])
@pytest.mark.parametrize("measure", ["margin", "entropy", "nll"])
def test_trainer_default_route_equals_the_forward_route(tmp_path: Any, vlm: bool, measure: str) -> None:
    """The trainer's default (measured at sampling) against its forward route over micro-batches of 4 padded
    completions, at the sampling temperature: one U per completion, equal to 1e-5."""
    trainer, _, prompts = _trainer(tmp_path, vlm, uncertainty_measure=measure, uncertainty_batch_size=4)
    torch.manual_seed(5)
    prompt_ids, completion_ids, tool_mask, _, _, extra, images, _ = trainer._generate(prompts)
    sampled = np.asarray(extra["uncertainty"])
    forward = trainer._uncertainty_from_forward(prompt_ids, completion_ids, tool_mask, images)
    assert sampled.shape == (6,) and np.isfinite(sampled).all()
    assert np.abs(sampled - forward).max() <= 1e-5, (sampled, forward)
    assert np.unique(np.round(sampled, 5)).size > 1
    mode = "train" if trainer.model.training else "eval"
    assert trainer._metrics[mode]["uncertainty/mean"][-1] == pytest.approx(sampled.mean())


@pytest.mark.slow
def test_sampler_distribution_equals_the_scores_generate_samples_from() -> None:
    """``distribution="sampler"``: after temperature, top-k and top-p, as transformers' own warpers compute them;
    checked against ``generate(output_scores=True)`` (the processed scores) on the same draw."""
    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    options = dict(max_new_tokens=16, do_sample=True, temperature=TEMPERATURE, top_k=8, top_p=0.9)
    torch.manual_seed(11)
    sequences, stats = generate_with_statistics(model, dict(enc), distribution="sampler", **options)
    torch.manual_seed(11)
    again = model.generate(**enc, output_scores=True, return_dict_in_generate=True, **options)
    assert torch.equal(sequences, again.sequences)
    scores = torch.stack(again.scores, dim=1)  # [B, steps, V], -inf outside the kept support
    width = enc["input_ids"].shape[1]
    for i, completion in enumerate(stats["nll"]):
        n = len(completion)
        logp = torch.log_softmax(scores[i, :n].double(), -1)
        p = logp.exp()
        top = p.topk(2, -1).values
        ids = sequences[i, width : width + n]
        np.testing.assert_allclose(stats["margin"][i], (top[:, 0] - top[:, 1]).numpy(), atol=1e-5, rtol=0)
        entropy = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
        np.testing.assert_allclose(stats["entropy"][i], entropy.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(stats["nll"][i], -logp.gather(1, ids[:, None]).squeeze(1).numpy(), atol=1e-5, rtol=0)
        assert np.isnan(stats["self_certainty"][i]).all()  # infinite on a truncated support: not recorded
    model_stats = generate_with_statistics(model, dict(enc), **options)[1]
    assert not np.isnan(np.concatenate(model_stats["self_certainty"])).any()


def test_recorder_refuses_bad_settings_and_unrecorded_results() -> None:
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0, got 0"):
        SamplingRecorder(temperature=0)
    with pytest.raises(ValueError, match="distribution: expected 'model' or 'sampler', got 'raw'"):
        SamplingRecorder(distribution="raw")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        SamplingRecorder().per_completion([[1]])


def test_sampler_distribution_refuses_settings_it_cannot_replay(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="cannot replay generation setting repetition_penalty=1.2"):
        _trainer_with(tmp_path, repetition_penalty=1.2, uncertainty_distribution="sampler")
    with pytest.raises(ValueError, match="uncertainty_temperature: expected None or the sampling temperature"):
        _trainer_with(tmp_path, uncertainty_distribution="sampler", uncertainty_temperature=1.0)


def _trainer_with(tmp_path: Any, repetition_penalty: float = 1.0, **kwargs: Any) -> Any:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    return UncertaintyGRPOTrainer(
        model=build_text_lm(tokenizer),
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=_args(tmp_path, repetition_penalty=repetition_penalty),
        train_dataset=Dataset.from_list([{"prompt": "q"}] * 6),
        processing_class=tokenizer,
        **kwargs,
    )


def test_device_check_helper_agrees_with_the_forward_pass_on_a_tiny_model() -> None:
    """``benchmarks/sampling_check.py::sampling_route_check`` (what the GPU check calls) on CPU: recording does not
    change the draws, and the recorded statistics equal the forward pass's."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.sampling_check import sampling_route_check

    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    inputs = tokenizer(TEXTS, return_tensors="pt", padding=True)
    result = sampling_route_check(model, dict(inputs), temperature=TEMPERATURE, max_new_tokens=8, repeats=1)
    assert result["same_tokens_with_and_without_recording"] and result["tokens"] > 0
    assert max(result["max_abs_diff_vs_forward"].values()) <= 1e-5, result
