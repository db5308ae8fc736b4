"""The judge against a hostile or broken judge server and against faults: deadlines, size caps, unreadable
replies, several annotators on one cache.

Every server here is the scripted chat-completions server of tests/difficulty_fixtures.py on 127.0.0.1 (a real
``http.server``; its replies come from a script, not a model). The kill -9 and resume test is
test_difficulty_cli.py::test_killed_run_resumes_without_asking_twice (claims of the killed process are taken over
at once: the resumed run's time is checked there too).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from difficulty_fixtures import (
    Drip,
    Flood,
    Raw,
    Reply,
    ScriptedJudgeServer,
    Status,
    expected_aspects,
    judge_args,
    judge_sample,
    sample_number,
    scores_by_sample,
    scripted_backend,
    square_image,
    write_jsonl_dataset,
)

from adaptive_length_reward.difficulty import (
    DifficultyJudge,
    JudgeSample,
    JudgeTransportError,
    Judgment,
    JudgmentCache,
    OpenAICompatibleBackend,
)
from adaptive_length_reward.difficulty.cli import main

REPO = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "rate sample-3"}]}]


def backend(server: ScriptedJudgeServer, **overrides: Any) -> OpenAICompatibleBackend:
    return scripted_backend(server, **{"max_retries": 0, "max_backoff": 0.02, **overrides})  # type: ignore[no-any-return]


def sample(n: int) -> JudgeSample:
    return judge_sample(n, box=None)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------------------
# Deadline and size cap
# ------------------------------------------------------------------------------------------------------------


def test_a_reply_dripping_one_byte_per_half_second_ends_at_the_deadline() -> None:
    # The body (~260 bytes) would take over two minutes; every single read returns within 0.5 s, so a per-read
    # timeout of 1 s never fires. The whole-request deadline ends it.
    with ScriptedJudgeServer(lambda body, i: Drip(json.dumps(expected_aspects(3)), interval=0.5)) as server:
        started = time.monotonic()
        with pytest.raises(JudgeTransportError, match=r"no complete reply within the 1 s deadline"):
            backend(server, timeout=1.0).complete(MESSAGES, square_image(3))
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 2.0, elapsed


def test_a_slow_reply_that_finishes_within_the_deadline_is_read() -> None:
    with ScriptedJudgeServer(lambda body, i: Drip(json.dumps(expected_aspects(3)), interval=0.002)) as server:
        reply = backend(server, timeout=10.0).complete(MESSAGES, square_image(3))
    assert json.loads(reply) == expected_aspects(3)


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "until-close"])
def test_an_oversized_reply_is_capped_and_recorded_as_unparseable(declare_length: bool) -> None:
    flood = Flood(50 * 1024 * 1024, declare_length=declare_length)
    with ScriptedJudgeServer(lambda body, i: flood) as server:
        judge = DifficultyJudge(backend(server, max_response_bytes=1024 * 1024), parse_retries=0)
        tracemalloc.start()
        try:
            verdict = judge.ask(sample(3))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        deadline = time.monotonic() + 5
        while not flood.written and time.monotonic() < deadline:  # the server notices the client has gone
            time.sleep(0.01)
    assert verdict.status == "unparseable" and "max_response_bytes" in (verdict.error or "")
    assert verdict.reply is None
    assert peak < 8 * 1024 * 1024, peak  # never more than the cap (and read buffers) in memory
    assert flood.written and flood.written[0] < 20 * 1024 * 1024  # the client stopped reading long before 50 MB


def test_an_error_body_is_read_only_as_far_as_it_is_quoted() -> None:
    with ScriptedJudgeServer(lambda body, i: Status(503, "x" * (20 * 1024 * 1024))) as server:
        with pytest.raises(JudgeTransportError, match="HTTP 503") as caught:
            backend(server).complete(MESSAGES, square_image(3))
    assert str(caught.value).count("x") <= 300 + 10


# ------------------------------------------------------------------------------------------------------------
# Hostile replies: recorded as unparseable, the run completes
# ------------------------------------------------------------------------------------------------------------


def hostile(body: dict[str, Any], index: int) -> Any:
    n = sample_number(body)
    replies = {
        0: Reply('{"a":' * 3000),  # RecursionError in the old parser
        1: Reply('{"scene": ' + "9" * 5000 + ', "seg": 4, "language": 2}'),  # int-digits ValueError before
        2: Raw(json.dumps({"choices": [{"message": {"content": [{"type": "text", "text": 5}]}}]}).encode()),
        3: Reply("<think>" * 16000),  # 11 s in the old parser
        4: Reply("a" + " " * 20000),  # cubic in the old parser
    }
    return replies.get(n if n is not None else -1, scores_by_sample()(body, index))


def test_hostile_replies_are_recorded_as_unparseable_and_the_cli_run_completes(tmp_path: Path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 7)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    with ScriptedJudgeServer(hostile) as server:
        started = time.monotonic()
        status = main(
            judge_args(
                data, out, server, "--max-retries", "0", "--parse-retries", "1", "--cache", str(cache), "--details"
            )
        )
        elapsed = time.monotonic() - started
    assert status == 1  # some rows without a score: a normal outcome, not an error
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["difficulty_status"] for r in rows] == ["unparseable"] * 5 + ["ok"] * 2
    assert rows[6]["difficulty_scene"] == expected_aspects(6)["scene"]
    with JudgmentCache(cache, readonly=True) as store:
        assert store.count(status="unparseable") == 5 and store.count(status="ok") == 2
    assert "content[0].text: expected a string, got int" in capsys.readouterr().out
    assert elapsed < 15, elapsed  # 63.5 s for 5 samples before


# ------------------------------------------------------------------------------------------------------------
# Several annotators on one cache
# ------------------------------------------------------------------------------------------------------------


def first_answer_then_garbage(delay: float) -> Any:
    """A judge that answers each sample's first request well and every later request with garbage (what made a
    second annotator overwrite ``ok`` verdicts with ``unparseable`` ones)."""
    seen: set[int] = set()
    lock = threading.Lock()

    def respond(body: dict[str, Any], index: int) -> Any:
        n = sample_number(body)
        with lock:
            first = n not in seen
            seen.add(n if n is not None else -1)
        return scores_by_sample(delay)(body, index) if first else Reply("no idea", delay=delay)

    return respond


def test_an_ok_verdict_is_never_overwritten_by_a_failure(tmp_path: Path) -> None:
    cache = JudgmentCache(tmp_path / "c.sqlite")
    good = Judgment("a", "ok", aspects=expected_aspects(1), reply="{...}", attempts=1)
    cache.put("h", good)
    cache.put("h", Judgment("a", "unparseable", reply="??", error="no JSON object", attempts=3))
    assert cache.get("h", "a") == good
    cache.put("h", Judgment("b", "unparseable", reply="??", error="no JSON object", attempts=3))
    cache.put("h", Judgment("b", "ok", aspects=expected_aspects(2), reply="{...}", attempts=1))
    assert cache.get("h", "b").ok  # a failure is replaced by a later ok


def test_claims_are_exclusive_and_a_dead_owner_is_taken_over(tmp_path: Path) -> None:
    cache = JudgmentCache(tmp_path / "c.sqlite")
    assert cache.claim("h", "a", "me", lease=60) is True
    assert cache.claim("h", "a", "someone-elsewhere:1:x", lease=60) is False  # another host: trusted until expiry
    assert cache.claim("h", "a", "me", lease=60) is True  # one's own claim again
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cache.claim("h", "b", f"{socket.gethostname()}:{dead.stdout.strip()}:x", lease=60)
    assert cache.claim("h", "b", "me", lease=60) is True  # that process has exited
    cache.claim("h", "c", "other:1:x", lease=0.01)
    time.sleep(0.02)
    assert cache.claim("h", "c", "me", lease=60) is True  # lease ran out
    cache.put("h", Judgment("a", "ok", aspects=expected_aspects(1), attempts=1))
    stored = cache.claim("h", "a", "other:1:x", lease=60)
    assert isinstance(stored, Judgment) and stored.ok  # done by someone: the verdict, no claim


ANNOTATOR = """
import sys
from difficulty_fixtures import square_image
from adaptive_length_reward.difficulty import DifficultyJudge, JudgeSample, OpenAICompatibleBackend
url, cache, n, order = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
backend = OpenAICompatibleBackend(base_url=url, model="m", max_retries=0, concurrency=2, timeout=30)
judge = DifficultyJudge(backend, cache=cache, parse_retries=0)
ids = range(n) if order == "up" else reversed(range(n))
samples = [JudgeSample(sample_id=f"s{i}", image=square_image(i), expression=f"sample-{i}", area_ratio=0.1) for i in ids]
verdicts = list(judge.judge_many(samples))
print(len(verdicts), sum(v.ok for v in verdicts), backend.requests_made)
"""


@pytest.mark.parametrize("orders", [("up", "up"), ("up", "down")], ids=["same-order", "opposite-order"])
def test_two_annotators_on_one_cache_ask_each_item_once(tmp_path: Path, orders: tuple[str, str]) -> None:
    n = 40
    cache = tmp_path / "shared.sqlite"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
    }
    with ScriptedJudgeServer(first_answer_then_garbage(delay=0.03)) as server:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", ANNOTATOR, server.base_url, str(cache), str(n), order],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for order in orders
        ]
        results = [p.communicate(timeout=120) for p in processes]
        requests = len(server.requests)
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr
        assert stdout.split()[:2] == [str(n), str(n)]  # every item, every verdict ok
    assert requests <= n * 1.1, requests  # 741 requests for 2 processes vs ~300 for 1 before
    with JudgmentCache(cache, readonly=True) as store:
        assert store.count(status="ok") == n and store.count() == n


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": ' + b"[" * 100_000,  # RecursionError inside json.loads
        b'{"choices": [{"message": {"content": "x"}}], "n": ' + b"9" * 5000 + b"}",  # int-digits limit
        b'{"choices": [{"message": ["not", "an", "object"]}]}',
        b"\xff\xfe not utf-8",
    ],
)
def test_a_response_body_that_is_no_chat_completion_is_a_transport_failure(body: bytes) -> None:
    with ScriptedJudgeServer(lambda request, i: Raw(body)) as server:
        verdict = DifficultyJudge(backend(server), parse_retries=0).ask(sample(1))
    assert verdict.status == "transport_error" and "malformed response" in (verdict.error or "")
