"""The RScore judge against a real chat-completions HTTP server on 127.0.0.1 answering from a script (scores
derived from the sample number in the reasoning, or a fixed sequence of faults), not from a model: requests,
faults (HTTP 500, malformed replies, out-of-range scores, timeouts), the SQLite cache and resume."""

from __future__ import annotations

import math

import pytest
from difficulty_fixtures import Reply, ScriptedJudgeServer, Status, scripted_backend, sequence, user_text
from rscore_fixtures import LONG, SHORT, expected_rscore, rscore_by_sample, rscore_sample

from adaptive_length_reward.difficulty import JudgeReplyError, JudgeRequestError, JudgmentCache
from adaptive_length_reward.rscore import (
    RSCORE_PROMPT_VERSION,
    RSCORE_V1,
    RScoreJudge,
    RScorePrompt,
    RScoreSample,
    parse_rscore_reply,
)


def test_scores_follow_the_judge_and_requests_are_text_only_with_both_references() -> None:
    samples = [rscore_sample(n) for n in range(6)]
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        judge = RScoreJudge(scripted_backend(server))
        scores = judge.score_many(samples)
    assert scores == [expected_rscore(n) for n in range(6)]
    assert len(server.requests) == 6
    body = server.requests[0]
    assert all(isinstance(m["content"], str) for m in body["messages"])  # no image part
    text = user_text(body)
    assert SHORT in text and LONG in text and "sample-" in text and '{"score": 7}' in text
    assert judge.settings["prompt_version"] == RSCORE_PROMPT_VERSION == "rscore-v1"
    assert judge.settings["task"] == "rscore" and judge.method == "llm_judge"


def test_tuples_are_scored_in_order_with_their_position_as_id() -> None:
    items = [(f"reasoning of sample-{n}", SHORT, LONG) for n in (4, 1, 9)]
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        judgments = RScoreJudge(scripted_backend(server)).judgments(items)
    assert [RScoreJudge.rscore(j) for j in judgments] == [expected_rscore(n) for n in (4, 1, 9)]
    assert [j.sample_id.split("#")[0] for j in judgments] == ["0", "1", "2"]


def test_http_500_is_retried_then_scored() -> None:
    script = sequence(Status(500), Status(503), then=rscore_by_sample())
    with ScriptedJudgeServer(script) as server:
        backend = scripted_backend(server, concurrency=1)
        judgment = RScoreJudge(backend).judge(rscore_sample(3))
    assert judgment.ok and RScoreJudge.rscore(judgment) == expected_rscore(3)
    assert backend.requests_made == 3 and judgment.attempts == 1


@pytest.mark.parametrize(
    "bad",
    [
        '{"score": }',
        '{"sc0re": 7}',
        "I would say it is pretty good.",
        '{"score": 11}',
        '{"score": -1}',
        '{"score": "high"}',
        '{"score": 3, "rating": 4}',
    ],
)
def test_an_unreadable_reply_is_asked_again_with_a_reminder(bad: str) -> None:
    script = sequence(Reply(bad), then=rscore_by_sample())
    with ScriptedJudgeServer(script) as server:
        judgment = RScoreJudge(scripted_backend(server, concurrency=1)).judge(rscore_sample(5))
    assert judgment.ok and RScoreJudge.rscore(judgment) == expected_rscore(5) and judgment.attempts == 2
    repair = server.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad} and "could not be read" in repair[-1]["content"]


def test_a_judge_that_never_answers_readably_gives_a_defined_failed_verdict(tmp_path) -> None:
    cache = tmp_path / "rscore.sqlite"
    with ScriptedJudgeServer(lambda body, i: Reply('{"score": 12}')) as server:
        judge = RScoreJudge(scripted_backend(server), cache=cache, parse_retries=2)
        [score] = judge.score_many([rscore_sample(1)])
        assert math.isnan(score) and len(server.requests) == 3
        [verdict] = judge.judgments([rscore_sample(1)])  # cached as unparseable: not asked again
        assert verdict.status == "unparseable" and verdict.cached and "0 to 10" in (verdict.error or "")
        assert len(server.requests) == 3
        judge.judgments([rscore_sample(1)], retry_failed=True)
        assert len(server.requests) == 6


def test_a_timeout_is_a_transport_error_that_is_not_cached(tmp_path) -> None:
    cache = tmp_path / "rscore.sqlite"
    script = sequence(Reply('{"score": 4}', delay=1.5), then=rscore_by_sample())
    with ScriptedJudgeServer(script) as server:
        judge = RScoreJudge(scripted_backend(server, timeout=0.3, max_retries=0, concurrency=1), cache=cache)
        [first] = judge.judgments([rscore_sample(2)])
        assert first.status == "transport_error" and "timeout" in (first.error or "")
        assert math.isnan(RScoreJudge.rscore(first))
        [second] = judge.judgments([rscore_sample(2)])  # nothing was stored: asked again, answered now
    assert second.ok and RScoreJudge.rscore(second) == expected_rscore(2) and not second.cached


def test_a_rejected_request_raises_instead_of_scoring() -> None:
    with ScriptedJudgeServer(lambda body, i: Status(400, '{"error": "unknown model"}')) as server:
        with pytest.raises(JudgeRequestError, match="HTTP 400"):
            RScoreJudge(scripted_backend(server)).score_many([rscore_sample(0)])


def test_a_rerun_asks_nothing_for_cached_rows_and_only_the_rest_otherwise(tmp_path) -> None:
    cache = tmp_path / "rscore.sqlite"
    samples = [rscore_sample(n) for n in range(8)]
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        first = RScoreJudge(scripted_backend(server), cache=cache).score_many(samples[:5])
        assert len(server.requests) == 5
        judge = RScoreJudge(scripted_backend(server), cache=JudgmentCache(cache))  # a new run on the same file
        everything = judge.judgments(samples)
        assert len(server.requests) == 8 and judge.backend.requests_made == 3
        again = RScoreJudge(scripted_backend(server), cache=cache)
        assert again.score_many(samples) == [expected_rscore(n) for n in range(8)]
        assert len(server.requests) == 8 and again.backend.requests_made == 0
    assert first == [expected_rscore(n) for n in range(5)]
    assert [j.cached for j in everything] == [True] * 5 + [False] * 3


def test_the_cache_key_holds_the_texts_so_another_variant_of_a_sample_is_asked(tmp_path) -> None:
    cache = tmp_path / "rscore.sqlite"
    baseline = rscore_sample(3, reasoning="a long chain about sample-3")
    shorter = rscore_sample(3, reasoning="short: sample-3")
    assert baseline.sample_id == shorter.sample_id and baseline.key != shorter.key
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        RScoreJudge(scripted_backend(server), cache=cache).score_many([baseline])
        RScoreJudge(scripted_backend(server), cache=cache).score_many([baseline, shorter])
    assert len(server.requests) == 2


def test_the_prompt_version_and_text_are_in_the_cache_key() -> None:
    edited = RScorePrompt(
        version=RSCORE_V1.version,
        system=RSCORE_V1.system + " Be brief.",
        template=RSCORE_V1.template,
        repair=RSCORE_V1.repair,
    )
    with ScriptedJudgeServer() as server:
        backend = scripted_backend(server)
        assert RScoreJudge(backend).settings_hash != RScoreJudge(backend, prompt=edited).settings_hash
    with pytest.raises(ValueError, match=r"placeholders \$reasoning and \$reference_short and \$reference_long"):
        RScorePrompt(version="x", system="", template="$reasoning only", repair="$error")


def test_samples_refuse_missing_references_and_non_text() -> None:
    with pytest.raises(ValueError, match="at least one non-empty reference"):
        RScoreSample("a", "some reasoning", "", None)
    with pytest.raises(ValueError, match="reasoning: expected a string or None, got int"):
        RScoreSample("a", 3, SHORT, LONG)
    assert RScoreSample("a", None, float("nan"), LONG).reference_short is None  # a pandas null


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 7}', 7.0),
        ('Sure.\n```json\n{"rscore": "6/10"}\n```', 6.0),
        ('<think>{"score": 2}</think> {"Score": 9.5}', 9.5),
        ("Reasoning score: 4", 4.0),
        ('{"result": {"score": 3}} then {"score": 8}', 8.0),
        ('{"score": 0}', 0.0),
        ('{"score": 10}', 10.0),
        ('{"score": 7', 7.0),  # truncated JSON: its score line
    ],
)
def test_replies_are_read(reply: str, score: float) -> None:
    assert parse_rscore_reply(reply) == score


@pytest.mark.parametrize(
    "reply",
    [
        "",
        '<think>{"score": 5}</think>',
        '{"score": 10.5}',
        '{"score": true}',
        "score: 3 and later score: 4",
        '{"score": NaN}',
        "[" * 200_000,
        '{"score": ' + "9" * 5000 + "}",
    ],
)
def test_unreadable_replies_raise_only_judge_reply_error(reply: str) -> None:
    with pytest.raises(JudgeReplyError):
        parse_rscore_reply(reply)


@pytest.mark.slow
def test_a_local_tiny_vlm_judges_text_only_and_its_garbage_is_a_failed_verdict(tmp_path) -> None:
    """The local backend with a tiny random Qwen2.5-VL built from a config (tests/difficulty_fixtures.py): the
    text-only conversation (no image) reaches the model and generates; random weights write garbage, which is
    recorded as unparseable after the re-asks, never scored and never raised."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from difficulty_fixtures import load_processor, save_tiny_vlm

    from adaptive_length_reward.difficulty import TransformersBackend

    torch.set_num_threads(1)
    model_dir = save_tiny_vlm(tmp_path / "tiny")
    backend = TransformersBackend(model_dir, processor=load_processor(model_dir), max_new_tokens=8)
    messages = RSCORE_V1.chat(rscore_sample(1))
    inputs, text = backend.encode(messages, None)
    assert "pixel_values" not in inputs and "Short reference reasoning" in text
    judge = RScoreJudge(backend, cache=tmp_path / "c.sqlite", parse_retries=1)
    [verdict] = judge.judgments([rscore_sample(1)])
    if verdict.ok:  # a random model could write a readable score: then it must be in range
        assert 0 <= RScoreJudge.rscore(verdict) <= 10
    else:
        assert verdict.status == "unparseable" and verdict.attempts == 2 and math.isnan(RScoreJudge.rscore(verdict))
    assert backend.requests_made == verdict.attempts
