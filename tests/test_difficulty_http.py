"""The OpenAI-compatible backend and the judge against a real HTTP server on 127.0.0.1.

Every server here answers from a *script* (tests/difficulty_fixtures.py: scores derived from the sample number
in the expression, or a fixed sequence of errors and replies), not from a model; the model-backed server is in
test_difficulty_local.py.
"""

from __future__ import annotations

import json
import math
import pickle
import time

import pytest
from difficulty_fixtures import (
    Raw,
    Reply,
    ScriptedJudgeServer,
    Status,
    expected_aspects,
    judge_sample,
    scores_by_sample,
    scripted_backend,
    sequence,
    square_image,
    user_text,
)

from adaptive_length_reward import ConfigError, RewardBatch, SoftLengthPenalty, TieredBudget, WithContext, build
from adaptive_length_reward.difficulty import (
    DifficultyJudge,
    JudgeInputError,
    JudgeRequestError,
    JudgeSample,
    JudgeTransportError,
    JudgmentCache,
    OpenAICompatibleBackend,
)

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "rate sample-3"}]}]


def test_request_carries_the_image_and_the_generation_settings() -> None:
    with ScriptedJudgeServer() as server:
        client = scripted_backend(server, max_tokens=77, temperature=0.3, seed=5, json_mode=True)
        reply = client.complete(MESSAGES, square_image(3))
    assert json.loads(reply.split("```json\n")[1].split("\n```")[0]) == expected_aspects(3)
    body = server.requests[0]
    assert body["model"] == "scripted-judge" and body["max_tokens"] == 77 and body["temperature"] == 0.3
    assert body["seed"] == 5 and body["response_format"] == {"type": "json_object"}
    image_part = body["messages"][0]["content"][0]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert user_text(body) == "rate sample-3"


def test_server_errors_are_retried_with_backoff_then_succeed() -> None:
    script = sequence(Status(500), Status(503), Status(429, headers={"Retry-After": "0"}))
    with ScriptedJudgeServer(script) as server:
        client = scripted_backend(server)
        reply = client.complete(MESSAGES, square_image(3))
    assert "scene" in reply
    assert len(server.requests) == 4 and client.requests_made == 4


def test_retries_exhausted_raise_transport_error_naming_the_last_error() -> None:
    with ScriptedJudgeServer(lambda body, i: Status(502, '{"error": "bad gateway"}')) as server:
        with pytest.raises(JudgeTransportError, match=r"no reply after 3 attempts.*HTTP 502"):
            scripted_backend(server, max_retries=2).complete(MESSAGES, square_image(3))
        assert len(server.requests) == 3


def test_client_errors_are_not_retried() -> None:
    with ScriptedJudgeServer(lambda body, i: Status(400, '{"error": "unknown model"}')) as server:
        with pytest.raises(JudgeRequestError, match=r"HTTP 400.*unknown model"):
            scripted_backend(server).complete(MESSAGES, square_image(3))
        assert len(server.requests) == 1


def test_wrong_path_is_a_request_error() -> None:
    with ScriptedJudgeServer() as server:
        client = OpenAICompatibleBackend(base_url=server.base_url.removesuffix("/v1"), model="m", max_retries=3)
        with pytest.raises(JudgeRequestError, match="HTTP 404"):
            client.complete(MESSAGES, square_image(3))


def test_timeout_is_retried() -> None:
    script = sequence(Reply("too late", delay=3.0))
    with ScriptedJudgeServer(script) as server:
        started = time.monotonic()
        reply = scripted_backend(server, timeout=0.3).complete(MESSAGES, square_image(3))
        elapsed = time.monotonic() - started
    assert "scene" in reply and len(server.requests) == 2
    assert 0.3 <= elapsed < 2.5  # gave up on the slow reply after the timeout instead of waiting for it


def test_malformed_response_bodies_are_retried() -> None:
    script = sequence(Raw(b"<html>proxy error</html>"), Raw(b'{"choices": []}'), Raw(b'{"id": "x"}'))
    with ScriptedJudgeServer(script) as server:
        assert "scene" in scripted_backend(server).complete(MESSAGES, square_image(3))
        assert len(server.requests) == 4
    with ScriptedJudgeServer(lambda body, i: Raw(b"not json")) as server:
        with pytest.raises(JudgeTransportError, match="malformed response"):
            scripted_backend(server, max_retries=1).complete(MESSAGES, square_image(3))


def test_connection_refused_is_a_transport_error() -> None:
    with ScriptedJudgeServer() as server:
        url = server.base_url
    client = OpenAICompatibleBackend(base_url=url, model="m", max_retries=1, backoff=0.0, timeout=1.0)
    with pytest.raises(JudgeTransportError, match="connection failed"):
        client.complete(MESSAGES, square_image(3))


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedJudgeServer() as server:
        client = scripted_backend(server, api_key_env="ALR_TEST_KEY")
        with pytest.raises(JudgeRequestError, match="ALR_TEST_KEY"):
            client.complete(MESSAGES, square_image(3))
        monkeypatch.setenv("ALR_TEST_KEY", "secret-123")
        client.complete(MESSAGES, square_image(3))
    assert server.headers[-1]["Authorization"] == "Bearer secret-123"
    assert "secret-123" not in json.dumps(client.to_config().model_dump())


def test_concurrency_limit_is_respected_and_used() -> None:
    with ScriptedJudgeServer(scores_by_sample(delay=0.15)) as server:
        judge = DifficultyJudge(scripted_backend(server, concurrency=3))
        verdicts = list(judge.judge_many(judge_sample(n) for n in range(9)))
    assert len(verdicts) == 9 and all(v.ok for v in verdicts)
    assert server.max_in_flight == 3


def test_judge_reads_scores_and_combines_them() -> None:
    with ScriptedJudgeServer() as server:
        judge = DifficultyJudge(scripted_backend(server), aggregate="mean")
        verdict = judge.ask(judge_sample(7))
    assert verdict.ok and verdict.aspects == expected_aspects(7) and verdict.attempts == 1
    assert judge.difficulty(verdict) == pytest.approx(sum(expected_aspects(7).values()) / 3)
    prompt = user_text(server.requests[0])
    assert "sample-7" in prompt and "covers 10% of the image" in prompt and "bounding box spans" in prompt


def test_unreadable_reply_is_re_asked_with_a_reminder_then_scored() -> None:
    script = sequence(Reply("The scene looks moderately complex."), Reply('{"scene": 12, "seg": 3, "language": 2}'))
    with ScriptedJudgeServer(script) as server:
        verdict = DifficultyJudge(scripted_backend(server), parse_retries=2).ask(judge_sample(4))
    assert verdict.ok and verdict.attempts == 3 and verdict.aspects == expected_aspects(4)
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "The scene looks moderately complex."}
    assert "could not be read" in second[-1]["content"]
    assert "score from 1 to 10" in server.requests[2]["messages"][-1]["content"]  # says why 12 was refused


def test_reply_that_stays_unreadable_is_recorded_as_failed_never_scored(tmp_path) -> None:
    with ScriptedJudgeServer(lambda body, i: Reply("difficulty: quite hard")) as server:
        judge = DifficultyJudge(scripted_backend(server), cache=tmp_path / "c.sqlite", parse_retries=2)
        verdict = judge.judge(judge_sample(1))
        assert verdict.status == "unparseable" and verdict.aspects is None and verdict.attempts == 3
        assert math.isnan(judge.difficulty(verdict)) and "no JSON object" in verdict.error
        assert len(server.requests) == 3
        again = judge.judge(judge_sample(1))  # cached as failed: not asked again ...
        assert again.cached and again.status == "unparseable" and len(server.requests) == 3
        judge.judge(judge_sample(1), retry_failed=True)  # ... unless asked to
        assert len(server.requests) == 6
    row = judge.cache.get(judge.settings_hash, "s1")
    assert row.status == "unparseable" and row.reply == "difficulty: quite hard"


def test_empty_content_counts_as_unreadable() -> None:
    with ScriptedJudgeServer(lambda body, i: Reply(None)) as server:
        verdict = DifficultyJudge(scripted_backend(server), parse_retries=1).ask(judge_sample(1))
    assert verdict.status == "unparseable" and verdict.error == "empty reply" and len(server.requests) == 2


def test_transport_failures_are_reported_but_not_cached(tmp_path) -> None:
    with ScriptedJudgeServer(lambda body, i: Status(500)) as server:
        judge = DifficultyJudge(scripted_backend(server, max_retries=1), cache=tmp_path / "c.sqlite")
        verdict = judge.judge(judge_sample(2))
    assert verdict.status == "transport_error" and "HTTP 500" in verdict.error
    assert judge.cache.count() == 0
    with ScriptedJudgeServer() as server:  # the server is back: the sample is asked again and cached
        judge = DifficultyJudge(scripted_backend(server), cache=tmp_path / "c.sqlite")
        assert judge.judge(judge_sample(2)).ok and judge.cache.count(status="ok") == 1


def test_cached_verdicts_are_not_asked_again_and_settings_change_the_key(tmp_path) -> None:
    cache = tmp_path / "c.sqlite"
    with ScriptedJudgeServer() as server:
        first = DifficultyJudge(scripted_backend(server), cache=cache)
        assert all(v.ok and not v.cached for v in first.judge_many(judge_sample(n) for n in range(4)))
        assert len(server.requests) == 4
        again = DifficultyJudge(scripted_backend(server, timeout=9.0, concurrency=1, max_retries=0), cache=cache)
        assert again.settings_hash == first.settings_hash  # transport settings do not change replies
        verdicts = list(again.judge_many(judge_sample(n) for n in [0, 1, 2, 3, 4]))
        assert len(server.requests) == 5 and sum(v.cached for v in verdicts) == 4
        other = DifficultyJudge(scripted_backend(server, temperature=0.7), cache=cache)
        assert other.settings_hash != first.settings_hash
        list(other.judge_many([judge_sample(0)]))
        assert len(server.requests) == 6
    store = JudgmentCache(cache, readonly=True)
    assert store.count(first.settings_hash) == 5 and store.count(other.settings_hash) == 1
    assert store.settings()[first.settings_hash]["judge"]["model"] == "scripted-judge"


def test_a_bad_sample_aborts_but_verdicts_in_flight_are_kept(tmp_path) -> None:
    with ScriptedJudgeServer(scores_by_sample(delay=0.1)) as server:
        judge = DifficultyJudge(scripted_backend(server, concurrency=2), cache=tmp_path / "c.sqlite")
        bad = JudgeSample(sample_id="bad", image=tmp_path / "missing.png", expression="the square")
        with pytest.raises(JudgeInputError, match="sample 'bad': FileNotFoundError"):
            list(judge.judge_many([judge_sample(0), bad, judge_sample(2), judge_sample(3)]))
    assert judge.cache.get(judge.settings_hash, "s0").status == "ok"  # was in flight: waited for and stored
    assert judge.cache.count() == 1 and len(server.requests) == 1  # nothing new was started after the error


def test_stopping_early_keeps_the_verdicts_in_flight(tmp_path) -> None:
    with ScriptedJudgeServer(scores_by_sample(delay=0.05)) as server:
        judge = DifficultyJudge(scripted_backend(server, concurrency=2), cache=tmp_path / "c.sqlite")
        verdicts = judge.judge_many(judge_sample(n) for n in range(6))
        first = next(verdicts)
        verdicts.close()
    assert first.ok and judge.cache.count() == 2 and len(server.requests) == 2


def test_judge_difficulty_scorer_config_and_pickling(tmp_path) -> None:
    from adaptive_length_reward.difficulty import JudgedDifficulty

    with ScriptedJudgeServer() as server:
        scorer = JudgedDifficulty(scripted_backend(server), cache=str(tmp_path / "c.sqlite"), aggregate="max")
        batch = RewardBatch.from_completions(
            ["x"] * 2, id=["s1", "s4"], image=[square_image(1), square_image(4)], problem=["sample-1", "sample-4"]
        )
        assert scorer(batch).tolist() == [max(expected_aspects(1).values()), max(expected_aspects(4).values())]
        with pytest.raises(FileNotFoundError, match="existing cache file"):
            JudgedDifficulty(scripted_backend(server), cache=str(tmp_path / "typo.sqlite"), ask_missing=False)
        reader = JudgedDifficulty(
            scripted_backend(server), cache=str(tmp_path / "c.sqlite"), ask_missing=False, aggregate="max"
        )
        assert reader(batch).tolist() == scorer(batch).tolist() and reader.judge.cache.readonly
        rebuilt = build(json.loads(json.dumps(scorer.to_config().model_dump())))
        copy = pickle.loads(pickle.dumps(rebuilt))
        assert copy(batch).tolist() == scorer(batch).tolist() and len(server.requests) == 2  # from the cache


def test_with_context_asks_the_judge_only_about_rows_without_a_difficulty() -> None:
    from adaptive_length_reward.difficulty import JudgedDifficulty

    with ScriptedJudgeServer() as server:
        scorer = JudgedDifficulty(scripted_backend(server))
        reward = WithContext(SoftLengthPenalty(budget=TieredBudget()), [scorer])
        ids = [1, 2, 3, 4, 5]
        batch = RewardBatch.from_completions(
            ["x " * 150] * 5,
            id=[f"s{n}" for n in ids],
            image=[square_image(n) for n in ids],
            problem=[f"sample-{n}" for n in ids],
            difficulty=[2.0, None, 7.0, None, 9.0],
            uncertainty=[0.0] * 5,
        )
        output = reward.evaluate(batch)
        assert len(server.requests) == 2 and dict(server.per_sample) == {2: 1, 4: 1}  # only rows 1 and 3 miss one
        assert scorer.stats == {"scored": 2, "fell_back": 0}
        judged = [sum(expected_aspects(n).values()) / 3 for n in (2, 4)]
        assert output.columns["difficulty"].tolist() == pytest.approx([2.0, judged[0], 7.0, judged[1], 9.0])


def test_judge_scorer_scores_a_batch_once_per_evaluation() -> None:
    from adaptive_length_reward.difficulty import JudgedDifficulty
    from adaptive_length_reward.evaluation import scope

    with ScriptedJudgeServer() as server:
        scorer = JudgedDifficulty(scripted_backend(server))
        batch = RewardBatch.from_completions(["x"], id=["s1"], image=[square_image(1)], problem=["sample-1"])
        with scope():
            first, second = scorer(batch), scorer(batch)
        assert first is second and scorer.stats["scored"] == 1 and len(server.requests) == 1


def test_old_names_still_import_with_a_deprecation_warning() -> None:
    import adaptive_length_reward.difficulty as difficulty
    from adaptive_length_reward.difficulty import JudgedDifficulty, Judgment

    with pytest.warns(DeprecationWarning, match="JudgeDifficulty is deprecated; use JudgedDifficulty"):
        assert difficulty.JudgeDifficulty is JudgedDifficulty
    with pytest.warns(DeprecationWarning, match="CachedJudgment is deprecated; use Judgment"):
        from adaptive_length_reward.difficulty.cache import CachedJudgment
    assert CachedJudgment is Judgment


def test_duplicate_ids_are_judged_once() -> None:
    with ScriptedJudgeServer() as server:
        judge = DifficultyJudge(scripted_backend(server))
        verdicts = list(judge.judge_many([judge_sample(1), judge_sample(1), judge_sample(2)]))
    assert sorted(v.sample_id for v in verdicts) == ["s1", "s2"] and len(server.requests) == 2


def test_backend_config_round_trip_and_pickling() -> None:
    with ScriptedJudgeServer() as server:
        client = scripted_backend(server, concurrency=3)
        rebuilt = build(client.to_config().model_dump())
        assert rebuilt == client and rebuilt.max_concurrency == 3
        copy = pickle.loads(pickle.dumps(client))
        assert "scene" in copy.complete(MESSAGES, square_image(3))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("base_url", "127.0.0.1:8000", "OpenAICompatibleBackend: base_url: expected an http:// or https:// URL"),
        ("timeout", 0, "OpenAICompatibleBackend: timeout: expected > 0, got 0"),
        ("concurrency", 0, "OpenAICompatibleBackend: concurrency: expected >= 1, got 0"),
        ("max_retries", -1, "OpenAICompatibleBackend: max_retries: expected >= 0, got -1"),
    ],
)
def test_backend_validation_names_the_field(field: str, value: object, message: str) -> None:
    settings: dict[str, object] = {"base_url": "http://127.0.0.1:1/v1", "model": "m", field: value}
    with pytest.raises(ConfigError, match=message):
        OpenAICompatibleBackend(**settings)  # type: ignore[arg-type]
