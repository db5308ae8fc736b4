"""Python ``logging``: module loggers (``logging.getLogger(__name__)``) for judge retries, unreadable replies, cache
hits and missing-context fallbacks; the library itself configures no handler.

The judge runs against tests/difficulty_fixtures.py's scripted HTTP server on 127.0.0.1 (scores derived from the
sample number, or a fixed sequence of errors and replies; no model).
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from difficulty_fixtures import (
    Reply,
    ScriptedJudgeServer,
    Status,
    judge_sample,
    scripted_backend,
    sequence,
    square_image,
)

from adaptive_length_reward import RewardBatch, pixelthink
from adaptive_length_reward.adapters.scoring import SampleScorer
from adaptive_length_reward.difficulty import DifficultyJudge, LookupDifficulty, OpenAICompatibleBackend


def _backend(server: ScriptedJudgeServer, **overrides: object) -> OpenAICompatibleBackend:
    return scripted_backend(server, **{"concurrency": 1, **overrides})  # type: ignore[no-any-return]


def _messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger]


def test_the_library_configures_no_handler() -> None:
    code = (
        "import logging, adaptive_length_reward, adaptive_length_reward.adapters.openrlhf, "
        "adaptive_length_reward.adapters.openrlhf_server, adaptive_length_reward.difficulty.judge, "
        "adaptive_length_reward.difficulty.cli\n"
        "names = [n for n in logging.root.manager.loggerDict if n.startswith('adaptive_length_reward')]\n"
        "loggers = [logging.getLogger(n) for n in names]\n"
        "print(len(logging.root.handlers), sum(len(lg.handlers) for lg in loggers), "
        "all(lg.propagate and lg.level == logging.NOTSET for lg in loggers), sorted(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 3)
    assert out[:3] == ["0", "0", "True"], out
    for name in (
        "adaptive_length_reward.adapters.openrlhf",
        "adaptive_length_reward.adapters.scoring",
        "adaptive_length_reward.difficulty.judge.backends",
        "adaptive_length_reward.difficulty.judge.runner",
        "adaptive_length_reward.difficulty.scorer",
    ):
        assert repr(name) in out[3]


def test_judge_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    script = sequence(Status(500), Status(503))
    with ScriptedJudgeServer(script) as server, caplog.at_level(logging.INFO):
        _backend(server).complete([{"role": "user", "content": "rate sample-3"}], square_image(3))
    logged = _messages(caplog, "adaptive_length_reward.difficulty.judge.backends")
    assert [level for level, _ in logged] == [logging.WARNING, logging.WARNING]
    assert "attempt 1 of 4 failed (HTTP 500" in logged[0][1] and "retrying in" in logged[0][1]
    assert "attempt 2 of 4 failed (HTTP 503" in logged[1][1]


def test_judge_giving_up_is_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedJudgeServer(lambda body, i: Status(502)) as server, caplog.at_level(logging.INFO):
        verdict = DifficultyJudge(_backend(server, max_retries=1)).ask(judge_sample(2))
    assert verdict.status == "transport_error"
    backends = _messages(caplog, "adaptive_length_reward.difficulty.judge.backends")
    assert backends[-1][0] == logging.ERROR and "no reply after 2 attempts; last error: HTTP 502" in backends[-1][1]
    runner = _messages(caplog, "adaptive_length_reward.difficulty.judge.runner")
    assert runner == [(logging.WARNING, runner[0][1])] and "sample 's2': no reply from the judge" in runner[0][1]


def test_unreadable_replies_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    script = sequence(Reply("The scene looks moderately complex."), then=lambda body, i: Reply("still prose"))
    with ScriptedJudgeServer(script) as server, caplog.at_level(logging.INFO):
        verdict = DifficultyJudge(_backend(server), parse_retries=1).ask(judge_sample(4))
    assert verdict.status == "unparseable"
    logged = _messages(caplog, "adaptive_length_reward.difficulty.judge.runner")
    assert len(logged) == 2 and all(level == logging.INFO for level, _ in logged)
    assert "sample 's4': unreadable judge reply (attempt 1 of 2)" in logged[0][1] and "asking again" in logged[0][1]
    assert "(attempt 2 of 2)" in logged[1][1] and "recorded as unparseable" in logged[1][1]


def test_cache_hits_are_logged(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "c.sqlite"
    with ScriptedJudgeServer() as server, caplog.at_level(logging.INFO):
        list(DifficultyJudge(_backend(server), cache=cache).judge_many(judge_sample(n) for n in range(2)))
        caplog.clear()
        verdicts = list(DifficultyJudge(_backend(server), cache=cache).judge_many(judge_sample(n) for n in range(3)))
    assert sum(v.cached for v in verdicts) == 2
    logged = _messages(caplog, "adaptive_length_reward.difficulty.judge.runner")
    assert logged == [(logging.INFO, f"judge cache {cache}: 2 of 3 samples answered from the cache, 1 to ask")]


def test_difficulty_fallbacks_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    scorer = LookupDifficulty({"a": 2.0}, key_column="id", missing="medium")
    with caplog.at_level(logging.INFO):
        values = scorer(RewardBatch(["x", "y", "z"], extra={"id": ["a", "b", "c"]}))
    assert values.tolist() == [2.0, 4.25, 4.25] and scorer.fallback_count == 2
    assert _messages(caplog, "adaptive_length_reward.difficulty.scorer") == [
        (logging.INFO, "LookupDifficulty: 2 of 3 samples without a difficulty of their own: missing='medium' applies")
    ]


def test_adapter_fallbacks_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The adapters' one scoring path (TRL, verl, OpenRLHF) logs each batch where a configured fallback applied."""
    scorer = SampleScorer(pixelthink(missing_difficulty=3.0, missing_uncertainty=0.0))
    gt = "<box>(0,0),(9,9)</box><points>(2,2),(5,5)</points>"
    with caplog.at_level(logging.INFO):
        scorer.score(RewardBatch(["a", "b"], ground_truth=[gt, gt], difficulty=np.array([np.nan, 7.0])))
    assert _messages(caplog, "adaptive_length_reward.adapters.scoring") == [
        (logging.INFO, "reward 'pixelthink': 1 of 2 samples without difficulty: missing_difficulty=3.0 applies"),
        (
            logging.INFO,
            "reward 'pixelthink': 2 of 2 samples without uncertainty: missing_uncertainty=0.0 applies "
            "where its budget scales with it",
        ),
    ]
