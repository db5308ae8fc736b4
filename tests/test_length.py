"""Length counters and the reasoning-span policy."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import completions
from text_fixtures import tiny_tokenizer

from adaptive_length_reward import (
    ConfigError,
    DAPOOverlongPenalty,
    FixedBudget,
    MissingContextError,
    PrecomputedLength,
    RewardBatch,
    SoftLengthPenalty,
    TokenCount,
    TokenIdCount,
    WeightedSum,
    WhitespaceWords,
    build,
    extract_reasoning,
    reasoning_span,
)
from adaptive_length_reward.length import IN_MEMORY_TOKENIZER, count_words
from adaptive_length_reward.spans import reasoning_piece_mask, reasoning_span_mask, reasoning_text_span, span_texts

RESPONSE = '<think>the red one is left</think> <answer>{"bbox": [1, 2, 3, 4]}</answer>'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a b c</think><answer>x</answer>", "a b c"),  # rule 2: between the tags
        ("<think>cut off", "cut off"),  # rule 3: truncated, no closing tag
        ("template put the tag in the prompt</think>answer", "template put the tag in the prompt"),  # rule 4
        ("no tags", ""),  # rule 5
        ("<think>a</think> <think>b</think>", "a"),  # first span only
        ("x </think> <think>y", "y"),  # an opening tag after a stray closing tag: from it to the end
    ],
)
def test_extract_reasoning_policy(text: str, expected: str) -> None:
    assert extract_reasoning(text) == expected


def test_whitespace_words_pixelthink_default_counts_whole_response() -> None:
    # PixelThink: len(text.split()) of the whole decoded response, tags and JSON included.
    batch = RewardBatch([RESPONSE, "", "   "])
    assert WhitespaceWords()(batch).tolist() == [len(RESPONSE.split()), 0, 0]
    assert WhitespaceWords(span="reasoning")(batch).tolist() == [5, 0, 0]


def test_reasoning_field_of_chat_message_wins() -> None:
    # A parsed message may carry reasoning_content / thinking separately from content (TRL conversational).
    completions_ = [
        [{"role": "assistant", "content": "<answer>1</answer>", "reasoning_content": "one two three"}],
        [{"role": "assistant", "content": "<think>a b</think><answer>1</answer>"}],
        {"role": "assistant", "content": "ok", "thinking": "four words right here"},
    ]
    batch = RewardBatch.from_completions(completions_)
    assert WhitespaceWords(span="reasoning")(batch).tolist() == [3, 2, 4]
    assert WhitespaceWords()(batch).tolist() == [1, 2, 1]  # "<think>a", "b</think><answer>1</answer>"


def test_custom_tags() -> None:
    batch = RewardBatch(["<reasoning>a b c d</reasoning> done"])
    assert WhitespaceWords(span="reasoning", open_tag="<reasoning>", close_tag="</reasoning>")(batch).tolist() == [4]


def test_token_count_matches_tokenizer_without_special_tokens() -> None:
    tok = tiny_tokenizer()
    batch = RewardBatch([RESPONSE, "<think>left of</think>", ""])
    expected = [
        len(tok(RESPONSE, add_special_tokens=False)["input_ids"]),
        len(tok("<think>left of</think>", add_special_tokens=False)["input_ids"]),
        0,
    ]
    assert TokenCount(tok)(batch).tolist() == expected
    reasoning = TokenCount(tok, span="reasoning")(batch).tolist()
    assert reasoning == [
        len(tok("the red one is left", add_special_tokens=False)["input_ids"]),
        len(tok("left of", add_special_tokens=False)["input_ids"]),
        0,
    ]
    assert pickle.loads(pickle.dumps(TokenCount(tok)))(batch).tolist() == expected


def test_token_count_loads_a_local_path(tmp_path: object) -> None:
    tok = tiny_tokenizer()
    path = str(tmp_path)
    tok.save_pretrained(path)
    counter = TokenCount(path)
    assert counter.to_config().tokenizer == path
    assert counter(RewardBatch([RESPONSE])).tolist() == TokenCount(tok)(RewardBatch([RESPONSE])).tolist()


def test_token_id_count_uses_ids_without_retokenising() -> None:
    tok = tiny_tokenizer()
    texts = [RESPONSE, "<think>truncated reasoning", "no tags"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    open_ids = tok("<think>", add_special_tokens=False)["input_ids"]
    close_ids = tok("</think>", add_special_tokens=False)["input_ids"]
    batch = RewardBatch(texts, token_ids=ids)
    assert TokenIdCount()(batch).tolist() == [len(i) for i in ids]
    by_ids = TokenIdCount(span="reasoning", open_ids=open_ids, close_ids=close_ids)(batch).tolist()
    by_text = TokenCount(tok, span="reasoning")(batch).tolist()
    assert by_ids == by_text
    pad = tok.pad_token_id
    padded = RewardBatch(texts, token_ids=[[*i, pad, pad] for i in ids])
    assert TokenIdCount(ignore_ids=[pad])(padded).tolist() == [len(i) for i in ids]
    with pytest.raises(MissingContextError, match="'token_ids'"):
        TokenIdCount().__call__(RewardBatch(["a"]))
    with pytest.raises(ConfigError, match="open_ids and close_ids"):
        TokenIdCount(span="reasoning")


@pytest.mark.parametrize(
    ("ids", "open_ids", "close_ids", "expected"),
    [
        ([7, 1, 5, 5, 2, 9], [1], [2], (2, 4)),  # between the tags
        ([7, 1, 5, 5], [1], [2], (2, 4)),  # truncated: to the end
        ([5, 5, 2, 9], [1], [2], (0, 2)),  # closing tag only: from the start
        ([5, 5], [1], [2], (0, 0)),  # no tags: empty
        ([], [1], [2], (0, 0)),
        ([3, 4, 8, 3, 4, 1, 9, 4, 4], [3, 4], [9], (2, 6)),  # first opening tag, first closing tag after it
    ],
)
def test_reasoning_span_on_ids(
    ids: list[int], open_ids: list[int], close_ids: list[int], expected: tuple[int, int]
) -> None:
    assert reasoning_span(ids, open_ids, close_ids) == expected


def test_reasoning_span_multi_token_tags() -> None:
    ids = [9, 3, 4, 10, 11, 12, 5, 6, 1]
    assert reasoning_span(ids, [3, 4], [5, 6]) == (3, 6)
    assert reasoning_span([3, 5, 6], [3, 4], [5, 6]) == (0, 1)  # partial open tag is not a tag


@given(completions())
def test_span_length_never_exceeds_response(text: str) -> None:
    batch = RewardBatch([text])
    assert 0 <= WhitespaceWords(span="reasoning")(batch)[0] <= WhitespaceWords()(batch)[0] + 1


def test_precomputed_length() -> None:
    batch = RewardBatch(["a", "b"], lengths=[12, 0])
    np.testing.assert_array_equal(PrecomputedLength()(batch), [12.0, 0.0])
    with pytest.raises(MissingContextError, match="'lengths'"):
        PrecomputedLength()(RewardBatch(["a"]))


@given(st.lists(st.one_of(st.text(), st.text(alphabet=st.characters(max_codepoint=127)), completions()), max_size=30))
def test_count_words_equals_str_split(texts: list[str]) -> None:
    # Exactly len(t.split()) for any text: ASCII control characters, unicode whitespace, empty strings.
    assert count_words(texts).tolist() == [len(t.split()) for t in texts]


def test_count_words_every_ascii_character() -> None:
    texts = [f"a{chr(i)}b" for i in range(128)] + [chr(i) for i in range(128)]
    assert count_words(texts).tolist() == [len(t.split()) for t in texts]


# ------------------------------------------------------------------------------------------------------------
# One span policy, three views
# ------------------------------------------------------------------------------------------------------------


@given(st.lists(st.sampled_from(["<think>", "</think>", "a", " ", "b c"]), max_size=8))
def test_text_id_and_mask_views_agree(parts: list[str]) -> None:
    # Each part stands for one token: the text view, the id view and both mask views find the same span.
    ids = [{"<think>": 1, "</think>": 2}.get(p, 7) for p in parts]
    text = "".join(parts)
    begin, end = reasoning_span(ids, [1], [2])
    assert extract_reasoning(text) == "".join(parts[begin:end]) == text[slice(*reasoning_text_span(text))]
    expected = [begin <= i < end for i in range(len(parts))]
    assert reasoning_span_mask([ids], [1], [2]).tolist() == [expected]
    # A piece overlapping the span counts; an empty piece never does (it has no character).
    assert reasoning_piece_mask(parts).tolist() == [m and bool(p) for m, p in zip(expected, parts)]


def test_span_mask_skips_padding_and_masked_tags() -> None:
    ids = np.array([[1, 5, 5, 2, 0, 0], [5, 1, 5, 5, 0, 0]])
    real = ids != 0
    assert reasoning_span_mask(ids, [1], [2], mask=real).astype(int).tolist() == [
        [0, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],  # truncated: to the last real token, never into padding
    ]
    hidden = real.copy()
    hidden[0, 0] = False  # a masked-out opening tag is no tag: the closing tag alone bounds the span
    assert reasoning_span_mask(ids, [1], [2], mask=hidden)[0].astype(int).tolist() == [0, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="open_ids and close_ids: expected non-empty id sequences"):
        reasoning_span_mask(ids, [], [2])
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 6\)"):
        reasoning_span_mask(ids, [1], [2], mask=real[:, :3])


def test_span_texts_prefers_the_separate_reasoning_field() -> None:
    batch = RewardBatch(["<think>a</think> b", "<think>c</think>"], reasoning=("separate", None))
    assert span_texts(batch, "reasoning") == ["separate", "c"]
    assert span_texts(batch, "response") == list(batch.completions)


# ------------------------------------------------------------------------------------------------------------
# Counters are nodes: identity, configs, one count per evaluation
# ------------------------------------------------------------------------------------------------------------


def test_token_count_equality_covers_the_tokenizer_object() -> None:
    tok = tiny_tokenizer()
    other = copy.deepcopy(tok)
    assert TokenCount(tok) == TokenCount(tok) and hash(TokenCount(tok)) == hash(TokenCount(tok))
    assert TokenCount(tok) != TokenCount(other)  # same (empty) config, another tokenizer object
    assert TokenCount(tok) != TokenCount(tok, span="reasoning")
    assert TokenCount("some/path") == TokenCount("some/path") != TokenCount("other/path")


def test_token_count_of_an_in_memory_tokenizer_writes_a_marked_config_that_refuses_to_build() -> None:
    config = TokenCount(tiny_tokenizer(), span="reasoning").to_config()
    assert config.tokenizer == IN_MEMORY_TOKENIZER
    with pytest.raises(ConfigError, match="the config of an in-memory tokenizer cannot be rebuilt"):
        build(config)
    with pytest.raises(ConfigError, match="cannot be rebuilt"):
        build(json.loads(SoftLengthPenalty(length=TokenCount(tiny_tokenizer())).to_config().model_dump_json()))
    with pytest.raises(TypeError, match="TokenCount: tokenizer: expected a tokenizer or a local path, got int"):
        TokenCount(3)


def test_a_saved_tokenizer_round_trips_by_path(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    counter = TokenCount(loaded, span="reasoning")
    rebuilt = build(json.loads(counter.to_config().model_dump_json()))
    assert rebuilt.to_config().tokenizer == str(tmp_path) and rebuilt != counter  # another tokenizer object
    batch = RewardBatch([RESPONSE, "<think>cut"])
    assert rebuilt(batch).tolist() == counter(batch).tolist()


def test_a_counter_counts_once_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = WhitespaceWords._count
    monkeypatch.setattr(WhitespaceWords, "_count", lambda self, batch: seen.append(1) or original(self, batch))
    words = WhitespaceWords()
    reward = WeightedSum([SoftLengthPenalty(length=words, budget=FixedBudget(3)), DAPOOverlongPenalty(length=words)])
    reward.evaluate(RewardBatch(["a b c d", "e"]))
    assert len(seen) == 1
    words(RewardBatch(["a"]))  # outside an evaluation: counts every call
    words(RewardBatch(["a"]))
    assert len(seen) == 3
