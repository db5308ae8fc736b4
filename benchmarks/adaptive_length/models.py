"""The policy: a word-level tokenizer over the task's closed vocabulary and a tiny Qwen2 causal LM from a config.

Nothing is downloaded. The tokenizer is a ``tokenizers`` ``WordLevel`` model split on whitespace, so one word of
the task language is one token and ``decode`` joins tokens with single spaces: reasoning tokens counted on decoded
text (whitespace words) equal the policy's generated tokens exactly. The model is ``Qwen2ForCausalLM`` with random
weights drawn from ``torch.manual_seed(seed)``; its size is set by :class:`ModelSettings` (the defaults train in
about a minute on one CPU thread; a GPU run can pass a larger one unchanged).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from adaptive_length_reward import ComponentConfig
from adaptive_length_reward.errors import import_optional

from .task import LABELS, MODULUS

__all__ = ["EOS", "PAD", "VOCABULARY", "ModelSettings", "build_model", "build_tokenizer"]

PAD = "<pad>"
EOS = "<eos>"
#: Every token of the task language, in a fixed order (the ids are stable across runs and machines).
VOCABULARY = (
    PAD,
    EOS,
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "solve",
    "check",
    "?",
    "+",
    "-",
    "=",
    *(str(d) for d in range(MODULUS)),
    *LABELS,
)


class ModelSettings(ComponentConfig):
    """Size of the tiny Qwen2 policy."""

    kind: Literal["chain_model_settings"] = "chain_model_settings"
    hidden_size: int = Field(96, ge=8)
    num_layers: int = Field(3, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(256, ge=8)
    max_positions: int = Field(256, ge=32)


def build_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over :data:`VOCABULARY` (word level, whitespace split, left padding)."""
    tokenizers = import_optional("tokenizers", extra="example", purpose="the adaptive-length experiment")
    transformers = import_optional("transformers", extra="example", purpose="the adaptive-length experiment")
    vocab = {token: i for i, token in enumerate(VOCABULARY)}
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token=PAD))
    model.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    return fast


def build_model(tokenizer: Any, settings: ModelSettings | None = None, *, seed: int = 0) -> Any:
    """A random-weight ``Qwen2ForCausalLM`` sized by ``settings``, EOS/pad set for generation."""
    torch = import_optional("torch", extra="example", purpose="the adaptive-length experiment")
    transformers = import_optional("transformers", extra="example", purpose="the adaptive-length experiment")
    s = settings or ModelSettings()
    if s.hidden_size % s.num_heads or s.num_heads % s.num_kv_heads:
        raise ValueError(
            f"ModelSettings: expected hidden_size divisible by num_heads and num_heads by num_kv_heads, got "
            f"{s.hidden_size}/{s.num_heads}/{s.num_kv_heads}"
        )
    pad, eos = tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(EOS)
    config = transformers.Qwen2Config(
        vocab_size=len(VOCABULARY),
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        num_key_value_heads=s.num_kv_heads,
        max_position_embeddings=s.max_positions,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = eos
    return model
