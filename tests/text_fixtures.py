"""An offline byte-level BPE tokenizer trained in-process (no hub), for tests of token-based counters."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

CORPUS = [
    "<think> the red square is left of the blue circle </think>",
    '<answer>{"bbox": [1, 2, 3, 4], "points_1": [5, 6], "points_2": [7, 8]}</answer>',
    "Find the object and output its bounding box. 0 1 2 3 4 5 6 7 8 9 , . : [ ] { }",
]


@lru_cache(maxsize=1)
def tiny_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` with ``<think>``/``</think>`` as single added tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_end|>"]
    tok.train_from_iterator(
        CORPUS,
        trainer=trainers.BpeTrainer(
            vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_tokens(["<think>", "</think>"])
    return fast
