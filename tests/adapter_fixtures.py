"""Offline fixtures for the adapter tests: a byte-level BPE tokenizer trained in-process, a Qwen2.5-VL processor
without torchvision, and tiny random-weight policies (a Qwen2.5-VL and a text-only Qwen2) built from configs.

Nothing is downloaded. Written after the shared recipe ``tiny_qwen.py`` (not imported): same construction, with
``<think>``/``</think>`` in the training corpus and a text-only model added.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# ChatML: string content, or a list of {"type": "image"} / {"type": "text"} parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "<think> the red square is on the left of the blue one </think>",
    '<answer>{"bbox": [1, 2, 3, 4], "points_1": [5, 6], "points_2": [7, 8]}</answer>',
    "Find the red square and output its bounding box. What colour is the square?",
    "0 1 2 3 4 5 6 7 8 9 , . : [ ] { } \" ' ( ) < > / box points",
]

#: The PixelThink answer of a sample whose ground truth is :data:`GROUND_TRUTH` (all five accuracy terms pass).
PERFECT_ANSWER = '<answer>{"bbox": [10, 10, 40, 40], "points_1": [20, 20], "points_2": [30, 30]}</answer>'
GROUND_TRUTH = "<box>(10,10),(40,40)</box><points>(20,20),(30,30)</points>"


def train_tokenizer(corpus: list[str], vocab_size: int, chat_template: str) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` in-process, with Qwen's special tokens,
    ``chat_template`` and left padding (the test fixtures' shared tokenizer builder)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainer=trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
        padding_side="left",
    )
    fast.chat_template = chat_template
    return fast


@lru_cache(maxsize=1)
def build_tokenizer(vocab_size: int = 420) -> Any:
    """A ``PreTrainedTokenizerFast`` with Qwen's special tokens, ChatML template, left padding."""
    return train_tokenizer(CORPUS, vocab_size, CHAT_TEMPLATE)


def cpu_grpo_config(output_dir: Any, **values: Any) -> Any:
    """TRL's ``GRPOConfig`` for a test run on the CPU: float32, no checkpoints, no reporting; ``values`` (batch,
    generations, lengths, steps...) as each test needs them."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(output_dir), use_cpu=True, bf16=False, save_strategy="no", report_to="none", **values
    )


def build_processor(tokenizer: Any) -> Any:
    """A Qwen2.5-VL processor with the PIL image processor and no video processor (no torchvision here)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    class OfflineQwenProcessor(Qwen2_5_VLProcessor):  # the stock check rejects video_processor=None
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            return None if argument is None else super().check_argument_for_proper_class(argument_name, argument)

    images = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    return OfflineQwenProcessor(image_processor=images, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def _special_ids(tokenizer: Any) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }


def _sharpen(model: Any, logit_scale: float) -> None:
    """Scale the output head so the random policy is confident on some tokens and unsure on others (a
    default random init gives near-uniform next-token distributions, where every uncertainty is about 1)."""
    import torch

    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(logit_scale)


def build_vlm(
    tokenizer: Any,
    *,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    logit_scale: float = 1.0,
    max_position_embeddings: int = 2048,
) -> Any:
    """A tiny random Qwen2.5-VL (about 200k parameters), in eval mode, EOS/pad set for generation."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    heads = 4
    head_dim = hidden // heads
    special = _special_ids(tokenizer)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=max_position_embeddings,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1e6,  # sections sum to head_dim / 2
                "mrope_section": [head_dim // 8, head_dim * 3 // 16, head_dim * 3 // 16],
            },
            **special,
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=hidden,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _sharpen(model, logit_scale)
    model.generation_config.pad_token_id = special["pad_token_id"]
    model.generation_config.eos_token_id = special["eos_token_id"]
    return model


def build_text_lm(tokenizer: Any, *, hidden: int = 64, layers: int = 2, seed: int = 0, logit_scale: float = 1.0) -> Any:
    """A tiny random text-only Qwen2 causal LM sharing the tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    special = _special_ids(tokenizer)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        **special,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    _sharpen(model, logit_scale)
    model.generation_config.pad_token_id = special["pad_token_id"]
    model.generation_config.eos_token_id = special["eos_token_id"]
    return model


def square_image(colour: str, offset: int = 0) -> Any:
    """A 64x64 white image with a coloured square (shifted by ``offset`` pixels)."""
    from PIL import Image

    image = Image.new("RGB", (64, 64), "white")
    image.paste(colour, (8 + offset, 8, 40 + offset, 40))
    return image


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the test servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
