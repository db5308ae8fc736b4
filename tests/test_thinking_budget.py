"""The inference-time thinking cap (adapters/thinking_budget.py): budgets from a policy, the processor's rules on
scripted logits, and transformers ``generate`` with real tiny models built from configs (no hub downloads).

The "still yields a parseable answer" tests train a tiny Llama for a few seconds (module-scoped fixture) on
completions ``<think> ...long reasoning... </think><answer>{...}</answer>``, then cap its reasoning far below what it
writes unaided. vLLM cannot run here (CUDA-only wheels): its part is checked against a stand-in of its
``SamplingParams`` with the real field name, and says so.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any

import numpy as np
import pytest
from text_fixtures import tiny_tokenizer

from adaptive_length_reward import FixedBudget, LinearBudget, RewardBatch, TieredBudget
from adaptive_length_reward.adapters.thinking_budget import (
    ThinkingBudgetProcessor,
    tag_ids,
    thinking_budgets,
    token_caps,
    vllm_sampling_kwargs,
)
from adaptive_length_reward.errors import MissingContextError
from adaptive_length_reward.length import TokenIdCount
from adaptive_length_reward.segmentation import parse_answer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

ANSWER = '<answer>{"bbox": [1, 2, 3, 4], "points_1": [5, 6], "points_2": [7, 8]}</answer>'
WORDS = "the red square is left of blue circle".split()
PROMPTS = ["Find the object.<think>", "Find it.<think>", "Find the object and output its bounding box.<think>"]


# --- budgets -------------------------------------------------------------------------------------------------------


def test_token_caps_floor_finite_budgets_and_map_inf_and_none_to_no_cap() -> None:
    assert token_caps([96, 271.9, math.inf, None, 0, np.float64(3.5)]) == [96, 271, None, None, 0, 3]
    for bad in (-1, math.nan, "x", True):
        with pytest.raises((ValueError, TypeError), match=r"budgets\[0\]"):
            token_caps([bad])


def test_thinking_budgets_are_the_training_policy_s_budgets() -> None:
    difficulty, uncertainty = [1.0, 3.4, 3.5, 4.9, 5.0, 9.0], [0.0, 0.9, 0.5, 0.5, 0.2, 0.4]
    # TieredBudget's defaults (PixelThink): 96 below 3.5, none in [3.5, 5), 256 + 25 U from 5.
    assert thinking_budgets(TieredBudget(), difficulty=difficulty, uncertainty=uncertainty) == [
        96,
        96,
        None,
        None,
        261,
        266,
    ]
    linear = LinearBudget()
    expected = token_caps(np.clip(32 + 32 * np.array(difficulty) + 25 * np.array(uncertainty), 32, 512))
    assert thinking_budgets(linear, difficulty=difficulty, uncertainty=uncertainty) == expected
    assert thinking_budgets(FixedBudget(40), difficulty=[1, 2]) == [40, 40]
    with pytest.raises(MissingContextError, match="uncertainty"):
        thinking_budgets(TieredBudget(), difficulty=[6.0])
    with pytest.raises(ValueError, match="one length"):
        thinking_budgets(TieredBudget(), difficulty=[6.0, 1.0], uncertainty=[0.1])
    with pytest.raises(ValueError, match="at least one context column"):
        thinking_budgets(TieredBudget())


# --- vLLM (stand-in: vLLM cannot be installed here) ----------------------------------------------------------------


@dataclasses.dataclass
class SamplingParams:
    """Stand-in for ``vllm.SamplingParams`` (vLLM cannot be installed here): the fields used, with the names and
    defaults of ``vllm/sampling_params.py``, and its check of ``thinking_token_budget`` (``__post_init__`` via
    ``validate_thinking_token_budget``): an int >= 0, or -1 / None for no limit; a bool or a float is refused."""

    max_tokens: int | None = 16
    temperature: float = 1.0
    seed: int | None = None
    thinking_token_budget: int | None = None

    def __post_init__(self) -> None:
        value = self.thinking_token_budget
        if value is None or value == -1:
            self.thinking_token_budget = None
        elif isinstance(value, (bool, float)) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`thinking_token_budget` must be a non-negative integer or -1, got {value!r}")


def test_vllm_kwargs_build_one_sampling_params_per_request_with_the_policy_s_caps() -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        SamplingParams(thinking_token_budget=96.0)  # type: ignore[arg-type]  # checked as vLLM checks it
    budgets = TieredBudget()(RewardBatch([""] * 3, difficulty=[2.0, 4.0, 6.0], uncertainty=[0.1, 0.2, 0.4]))
    assert budgets.dtype == np.float64  # float budgets (inf = none) as the policy gives them
    params = [SamplingParams(max_tokens=512, **kw) for kw in vllm_sampling_kwargs(budgets)]
    assert [p.thinking_token_budget for p in params] == [96, None, 266]
    assert all(type(p.thinking_token_budget) in (int, type(None)) for p in params)


# --- the processor's rules, on scripted logits ---------------------------------------------------------------------


def run_scripted(
    processor: ThinkingBudgetProcessor, prompts: list[list[int]], scripts: list[list[int]], vocab: int, pad: int
) -> list[list[int]]:
    """Greedy decoding of a scripted "model" whose logits at step t point at ``script[t]`` (independent of the
    ids so far), through ``processor``; prompts are left-padded. Returns the generated ids per row."""
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    for step in range(max(map(len, scripts))):
        scores = torch.zeros(len(prompts), vocab)
        for row, script in enumerate(scripts):
            scores[row, script[min(step, len(script) - 1)]] = 5.0
        scores = processor(ids, scores)
        ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
    return ids[:, width:].tolist()


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


def test_the_scores_passed_in_are_never_modified(tok: Any) -> None:
    """generate(output_logits=True) keeps the tensor it hands the processors as the step's raw logits: forcing a
    row must write into a copy (a real evaluation read -inf "raw logits" before this was so)."""
    close = tag_ids(tok, "</think>")
    vocab = len(tok)
    processor = ThinkingBudgetProcessor(tok, [1, None], opened_in_prompt=True)
    ids = torch.tensor([[1, 2, 3], [1, 2, 3]])
    processor(ids, torch.zeros(2, vocab))  # first call: the prompt
    scores = torch.zeros(2, vocab)
    forced = processor(torch.cat([ids, torch.tensor([[4], [4]])], dim=1), scores)
    assert torch.equal(scores, torch.zeros(2, vocab))  # untouched
    assert int(forced[0].argmax()) == close[0] and int(torch.isinf(forced[0]).sum()) == vocab - 1
    assert torch.equal(forced[1], scores[1])


def test_generated_opening_tag_starts_the_count_and_a_multi_token_closing_tag_is_forced_in_order(tok: Any) -> None:
    open_ids, close_ids = tag_ids(tok, "<reason>"), tag_ids(tok, "</reason>")
    assert len(open_ids) > 1 and len(close_ids) > 1
    word = tok.encode("red", add_special_tokens=False)[0]
    script = [word, word, *open_ids, *[word] * 30]
    processor = ThinkingBudgetProcessor(tok, [4, 0, None], open_tag="<reason>", close_tag="</reason>")
    prompt = tok.encode("Find it.", add_special_tokens=False)
    out = run_scripted(processor, [prompt] * 3, [script] * 3, len(tok), tok.pad_token_id)
    begin = 2 + len(open_ids)
    assert out[0][: begin + 4] == script[: begin + 4]
    assert out[0][begin + 4 : begin + 4 + len(close_ids)] == close_ids
    assert out[0][begin + 4 + len(close_ids) :] == script[begin + 4 + len(close_ids) :]  # then left alone
    assert out[1][begin : begin + len(close_ids)] == close_ids  # a budget of 0 closes at once
    assert out[2] == script  # no cap: untouched
    assert processor.capped.tolist() == [True, True, False]
    lengths = processor.reasoning_lengths(torch.tensor([prompt + row for row in out]))
    assert lengths.tolist() == [4, 0, len(script) - begin]
    counter = TokenIdCount(span="reasoning", open_ids=open_ids, close_ids=close_ids)
    batch = RewardBatch([""] * 3, token_ids=out)
    assert counter(batch).tolist() == lengths.tolist()  # the library's count on the generated ids


def test_a_closing_tag_the_model_began_at_the_cap_is_completed_not_restarted(tok: Any) -> None:
    close_ids = tag_ids(tok, "</reason>")
    word = tok.encode("red", add_special_tokens=False)[0]
    # the model writes 3 words, then the first two tokens of the tag, then words again (never finishing it)
    script = [word] * 3 + close_ids[:2] + [word] * 20
    processor = ThinkingBudgetProcessor(tok, [4], open_tag="<think>", close_tag="</reason>")
    prompt = tok.encode("Find it.<think>", add_special_tokens=False)
    out = run_scripted(processor, [prompt], [script], len(tok), tok.pad_token_id)[0]
    assert out[: 3 + len(close_ids)] == [word] * 3 + close_ids  # the tag's start kept and completed
    assert processor.capped.tolist() == [True]
    assert processor.reasoning_lengths(torch.tensor([prompt + out])).tolist() == [3]


def test_rows_that_stop_or_close_before_the_cap_are_untouched(tok: Any) -> None:
    word, close = tok.encode("red", add_special_tokens=False)[0], tag_ids(tok, "</think>")
    eos = tok.eos_token_id
    scripts = [[word] * 2 + [eos] * 12, [word] * 3 + close + [word] * 10, [word] * 14]
    processor = ThinkingBudgetProcessor(tok, [5, 5, 5])
    prompt = tok.encode("Find it.<think>", add_special_tokens=False)
    out = run_scripted(processor, [prompt] * 3, scripts, len(tok), tok.pad_token_id)
    assert out[:2] == scripts[:2]
    assert out[2][: 5 + len(close)] == [word] * 5 + close
    assert processor.capped.tolist() == [False, False, True]


def test_where_the_reasoning_opens_is_read_from_each_prompt_or_set(tok: Any) -> None:
    word = tok.encode("red", add_special_tokens=False)[0]
    closed = tok.encode("Example:<think> a</think> done. Now:", add_special_tokens=False)
    reopened = tok.encode("Example:<think> a</think> done. Now:<think>", add_special_tokens=False)
    scripts = [[word] * 8] * 2
    detect = ThinkingBudgetProcessor(tok, [3])
    out = run_scripted(detect, [closed, reopened], scripts, len(tok), tok.pad_token_id)
    assert detect.capped.tolist() == [False, True]  # only the prompt left open is in its reasoning
    assert out[1][3] == tag_ids(tok, "</think>")[0]
    forced_open = ThinkingBudgetProcessor(tok, [3], opened_in_prompt=True)
    run_scripted(forced_open, [closed, reopened], scripts, len(tok), tok.pad_token_id)
    assert forced_open.capped.tolist() == [True, True]
    never = ThinkingBudgetProcessor(tok, [3], opened_in_prompt=False)
    run_scripted(never, [closed, reopened], scripts, len(tok), tok.pad_token_id)
    assert never.capped.tolist() == [False, False]


def test_budgets_per_prompt_expand_to_the_returned_sequences_and_mismatches_raise(tok: Any) -> None:
    processor = ThinkingBudgetProcessor(tok, [1, 2])
    processor(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, len(tok)))
    assert processor._row_caps == [1, 1, 2, 2]  # num_return_sequences=2: rows come prompt by prompt
    processor(torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, len(tok)))  # the next step
    with pytest.raises(ValueError, match="expected the generation this processor started"):
        processor(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, len(tok)))  # other rows
    with pytest.raises(ValueError, match="new processor for each generate call"):
        processor(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, len(tok)))  # a new generation
    with pytest.raises(ValueError, match="the same prompts"):
        processor(torch.ones(4, 5, dtype=torch.long), torch.zeros(4, len(tok)))  # other prompts
    processor.reset()
    processor(torch.ones(4, 5, dtype=torch.long), torch.zeros(4, len(tok)))  # after reset(): a new generation
    with pytest.raises(ValueError, match="per prompt"):
        ThinkingBudgetProcessor(tok, [1, 2])(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, len(tok)))
    with pytest.raises(ValueError, match="none"):
        ThinkingBudgetProcessor(tok, [])
    with pytest.raises(ValueError, match="at least one token"):
        ThinkingBudgetProcessor(tok, [1], close_tag="")


# --- transformers generate with real tiny models -------------------------------------------------------------------


def _sample_completion(rng: random.Random) -> str:
    text = " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30)))
    if rng.random() < 0.5:  # reasoning cut anywhere, even mid-word, is followed by the closing tag and the answer
        text = text[: rng.randint(1, len(text))]
    return text + "</think>" + ANSWER + "<|im_end|>"


def _llama(tok: Any, hidden: int) -> Any:
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=192,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def trained(tok: Any) -> Any:
    """A tiny Llama trained for a few seconds (150 steps of 16) on prompt + ``...</think><answer>{...}</answer>``."""
    torch.manual_seed(0)
    rng = random.Random(0)
    model = _llama(tok, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    started = time.perf_counter()
    for _ in range(150):
        texts = [rng.choice(PROMPTS) + _sample_completion(rng) for _ in range(16)]
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        loss = model(**batch, labels=batch.input_ids.masked_fill(batch.attention_mask == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"trained in {time.perf_counter() - started:.1f} s, last loss {loss.item():.3f}")
    return model.eval()


def generate(
    model: Any,
    tok: Any,
    budgets: list[Any] | None,
    *,
    sample: bool,
    seed: int = 1,
    max_new_tokens: int = 90,
    min_new_tokens: int = 0,
    **options: Any,
) -> tuple[Any, ThinkingBudgetProcessor | None, int]:
    batch = tok(PROMPTS, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    processor = None if budgets is None else ThinkingBudgetProcessor(tok, budgets, **options)
    processors = transformers.LogitsProcessorList([] if processor is None else [processor])
    torch.manual_seed(seed)
    # Greedy decoding of the tiny model loops on one word; a repetition penalty lets it close its reasoning itself.
    decoding = {"temperature": 0.7} if sample else {"repetition_penalty": 1.5}
    out = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        do_sample=sample,
        logits_processor=processors,
        pad_token_id=tok.pad_token_id,
        **decoding,
    )
    return out, processor, batch.input_ids.shape[1]


def _reasoning_lengths(tok: Any, out: Any, width: int) -> list[int]:
    """The reasoning tokens of each row as the library counts them on the model's turn: from the prompt's last
    token (the opening tag every prompt ends with) on, padding and EOS not counted."""
    counter = TokenIdCount(
        span="reasoning",
        open_ids=tag_ids(tok, "<think>"),
        close_ids=tag_ids(tok, "</think>"),
        ignore_ids=(tok.pad_token_id, tok.eos_token_id),
    )
    return counter(RewardBatch([""] * len(out), token_ids=out[:, width - 1 :].tolist())).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_cap_bounds_each_left_padded_row_and_leaves_rows_within_budget_as_they_were(
    trained: Any, tok: Any, sample: bool
) -> None:
    free, _, width = generate(trained, tok, None, sample=sample)
    free_lengths = _reasoning_lengths(tok, free, width)
    assert min(free_lengths) > 3, free_lengths  # the model reasons longer than the caps below unaided
    budgets = [2, 3, max(free_lengths) + 5]  # the last row closes by itself before its budget
    out, processor, _ = generate(trained, tok, budgets, sample=sample)
    assert processor is not None
    lengths = _reasoning_lengths(tok, out, width)
    assert lengths[:2] == budgets[:2], lengths  # capped at exactly the budget...
    close = tag_ids(tok, "</think>")
    for row in range(2):  # ...and the closing tag right after the reasoning
        assert out[row, width + lengths[row] : width + lengths[row] + len(close)].tolist() == close
    assert processor.capped.tolist() == [True, True, False]
    assert processor.reasoning_lengths(out).tolist() == lengths
    assert torch.equal(out[2], free[2])  # untouched: same ids as the uncapped run under the same seed
    none, processor_none, _ = generate(trained, tok, [None, 10_000, math.inf], sample=sample)
    assert torch.equal(none, free) and not processor_none.capped.any()  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_capped_reasoning_still_yields_a_parseable_answer(trained: Any, tok: Any, sample: bool) -> None:
    free, _, width = generate(trained, tok, None, sample=sample, seed=3)
    budgets = [1, 2, 4]
    assert min(_reasoning_lengths(tok, free, width)) > max(budgets)
    out, processor, _ = generate(trained, tok, budgets, sample=sample, seed=3)
    assert processor is not None and processor.capped.all()
    assert _reasoning_lengths(tok, out, width) == budgets
    for row, text in enumerate(tok.batch_decode(out[:, width - 1 :], skip_special_tokens=True)):
        answer = parse_answer(text)  # the prompt's last token is the opening tag: the model's turn starts there
        assert answer.thinking_format and answer.segmentation_format, (row, text)
        assert answer.bbox == (1, 2, 3, 4) and answer.points == ((5, 6), (7, 8)), (row, text)
    # The control: stopping generation at the budget (max_new_tokens) instead of closing leaves no answer.
    cut, _, _ = generate(trained, tok, None, sample=sample, seed=3, max_new_tokens=max(budgets))
    cut_texts = tok.batch_decode(cut[:, width - 1 :], skip_special_tokens=True)
    assert not any(parse_answer(t).segmentation_format for t in cut_texts), cut_texts


@pytest.mark.slow
def test_untrained_model_multi_token_tags_implicit_opening(tok: Any) -> None:
    """A random model never writes the tags: with the reasoning opened implicitly, each row is closed at its cap
    with the multi-token tag, whatever it would have written."""
    torch.manual_seed(0)
    model = _llama(tok, 32).eval()
    close = tag_ids(tok, "</reason>")
    budgets = [0, 4, 9]
    out, processor, width = generate(
        model,
        tok,
        budgets,
        sample=True,
        max_new_tokens=16,
        min_new_tokens=16,
        opened_in_prompt=True,
        open_tag="<reason>",
        close_tag="</reason>",
    )
    assert processor is not None and processor.capped.all()
    for row, cap in enumerate(budgets):
        assert out[row, width + cap : width + cap + len(close)].tolist() == close
    assert processor.reasoning_lengths(out).tolist() == budgets


@pytest.mark.slow
def test_beam_search_and_several_sequences_per_prompt_are_bounded_per_returned_sequence(tok: Any) -> None:
    torch.manual_seed(0)
    model = _llama(tok, 32).eval()
    batch = tok(PROMPTS, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    width, close = batch.input_ids.shape[1], tag_ids(tok, "</think>")
    caps = [2, 5, 0]
    for options in ({"num_beams": 3, "num_return_sequences": 2}, {"do_sample": True, "num_return_sequences": 2}):
        processor = ThinkingBudgetProcessor(tok, caps)  # one budget per prompt, for each of its rows
        out = model.generate(
            **batch,
            max_new_tokens=12,
            min_new_tokens=12,
            pad_token_id=tok.pad_token_id,
            logits_processor=transformers.LogitsProcessorList([processor]),
            **options,
        )
        lengths = processor.reasoning_lengths(out).tolist()
        assert len(lengths) == 6 and processor.capped.any(), options
        for row, length in enumerate(lengths):
            cap = caps[row // 2]
            assert length <= cap, (options, lengths)
            assert out[row, width + length : width + length + len(close)].tolist() == close, (options, row)
