"""The worked example's GPU precision settings learn at PixelThink's learning rate.

On CUDA the example trains float32 weights under bfloat16 autocast (TRL's ``bf16=True``, accelerate's mixed
precision). One AdamW step moves every weight by about ``lr`` (Adam's first step is ``lr * g / |g|``); at
``lr = 1e-6`` that is far below the spacing of bfloat16 numbers near a typical weight (``|w| / 256``), so pure
bfloat16 weights hardly change, and a run with them would barely learn, silently. That is why the default is
``--param-dtype float32`` and bfloat16 weights need an explicit flag.

The step runs on CPU with ``torch.autocast("cpu", dtype=torch.bfloat16)``, the optimizer built the way
transformers' ``Trainer`` (and so TRL's ``GRPOTrainer``) builds it from the example's ``GRPOConfig``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")

from pixelthink import prompts  # noqa: E402
from pixelthink.models import build_tiny_policy  # noqa: E402
from pixelthink.scenes import SceneGenerator  # noqa: E402
from pixelthink.training import TrainSettings, grpo_config_kwargs, policy_image  # noqa: E402

LR = 1e-6


@pytest.fixture(scope="module")
def policy_and_batch() -> tuple[Any, dict[str, Any]]:
    """The tiny policy as ``--tiny`` builds it, and one batch: a prompt with its image and reference answer,
    followed by every other text token of the vocabulary (so every embedding row gets a gradient)."""
    torch.set_num_threads(1)
    policy = build_tiny_policy(prompts.QUESTION_TEMPLATE, seed=0)
    sample = SceneGenerator(seed=0, image_size=128).samples(1)[0]
    processor = policy.processor
    text = processor.apply_chat_template(prompts.conversation(sample.query), add_generation_prompt=True, tokenize=False)
    text += prompts.reference_completion(prompts.warmup_reasoning(sample.query), sample.bbox, sample.points)
    batch = processor(text=[text], images=[policy_image(sample.image, sample.frame)], return_tensors="pt")
    config = policy.model.config
    media = {config.image_token_id, config.video_token_id}
    rest = torch.tensor([[i for i in range(len(policy.tokenizer)) if i not in media]])
    length = batch["input_ids"].shape[1]
    for key in [k for k, v in batch.items() if k != "input_ids" and v.dim() == 2 and v.shape == (1, length)]:
        batch[key] = torch.cat([batch[key], torch.full_like(rest, 1 if key == "attention_mask" else 0)], dim=1)
    batch["input_ids"] = torch.cat([batch["input_ids"], rest], dim=1)
    return policy, dict(batch)


def _one_step(policy: Any, batch: dict[str, Any], *, param_dtype: Any) -> float:
    """One optimizer step at lr 1e-6 with the example's GPU settings; the share of trainable elements changed."""
    model = policy.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.to(param_dtype).train()
        settings = TrainSettings(steps=1, learning_rate=LR, bf16=True)  # the official optimizer settings
        kwargs = grpo_config_kwargs(settings, "unused", cuda=True)
        assert kwargs["bf16"] is True and kwargs["learning_rate"] == LR
        args = trl.GRPOConfig(**{**kwargs, "use_cpu": True, "bf16": False, "model_init_kwargs": None})
        optimizer_cls, optimizer_kwargs = transformers.Trainer.get_optimizer_cls_and_kwargs(args, model)
        decay = set(transformers.Trainer.get_decay_parameter_names(None, model))  # as Trainer groups them
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for n, p in model.named_parameters() if p.requires_grad and n in decay],
                "weight_decay": args.weight_decay,
            },
            {
                "params": [p for n, p in model.named_parameters() if p.requires_grad and n not in decay],
                "weight_decay": 0.0,
            },
        ]
        optimizer = optimizer_cls(groups, **optimizer_kwargs)
        before = [p.detach().clone() for p in params]
        labels = batch["input_ids"].clone()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        changed = sum(int((p.detach() != b).sum()) for p, b in zip(params, before))
        return changed / sum(p.numel() for p in params)
    finally:
        model.to(torch.float32)
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        model.eval()


def test_float32_weights_under_bf16_autocast_change_at_lr_1e_6(policy_and_batch: tuple[Any, dict[str, Any]]) -> None:
    policy, batch = policy_and_batch
    assert next(policy.model.parameters()).dtype == torch.float32  # the example's default (--param-dtype)
    assert _one_step(policy, batch, param_dtype=torch.float32) >= 0.99


def test_pure_bfloat16_weights_mostly_do_not_change(policy_and_batch: tuple[Any, dict[str, Any]]) -> None:
    """Why float32 is the default: the same step on bfloat16 weights rounds most updates away."""
    policy, batch = policy_and_batch
    share = _one_step(policy, batch, param_dtype=torch.bfloat16)
    assert share < 0.10, share  # 2.1 % measured: the weights with |w| below about 256 x lr
