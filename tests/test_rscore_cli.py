"""The ``alr-rscore`` CLI: ``judge`` against a real HTTP server on 127.0.0.1 answering from a script (not a
model), ``overlap`` (the stand-in), on JSONL and Parquet; exit statuses 0 / 1 / 2 / 130, resume from the cache,
and no progress output before the input columns are checked."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from difficulty_fixtures import Action, Reply, ScriptedJudgeServer, Status, judge_args, sample_number
from rscore_fixtures import LONG, SHORT, expected_rscore, rscore_by_sample

from adaptive_length_reward.rscore import token_f1
from adaptive_length_reward.rscore.cli import main

REPO = Path(__file__).resolve().parents[1]


def write_rows(directory: Path, n: int, *, name: str = "chains.jsonl", **overrides: object) -> Path:
    path = directory / name
    rows = [
        {
            "id": f"s{i}",
            "reasoning": f"the red cup of sample-{i} on the left",
            "reference_short": SHORT,
            "reference_long": LONG,
            **overrides,
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_judge_writes_the_column_and_a_rerun_resumes_from_the_cache(tmp_path, capsys) -> None:
    data, out, summary_file = write_rows(tmp_path, 7), tmp_path / "out.jsonl", tmp_path / "summary.json"
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        assert main(judge_args(data, out, server, "--summary-json", str(summary_file), "--details")) == 0
        first = capsys.readouterr().out
        assert len(server.requests) == 7
        assert main(judge_args(data, out, server)) == 0
        second = capsys.readouterr().out
        assert len(server.requests) == 7  # every row from the cache
    rows = read_jsonl(out)
    assert [r["rscore"] for r in rows] == [expected_rscore(i) for i in range(7)]
    assert rows[2]["reference_short"] == SHORT and "rscore_status" not in rows[2]  # the rerun wrote no details
    summary = json.loads(summary_file.read_text())
    assert summary["scored_rows"] == 7 and summary["method"] == "llm_judge"
    assert summary["mean_rscore"] == pytest.approx(sum(expected_rscore(i) for i in range(7)) / 7)
    assert summary["judge"]["cache"] == f"{data}.rscore-cache.sqlite" and summary["judge"]["statuses"] == {"ok": 7}
    assert "judged now 7, from cache 0" in first and "judged now 0, from cache 7" in second
    assert "prompt rscore-v1" in first and "method: llm_judge" in first


def test_rows_without_a_score_set_exit_status_1_and_are_null(tmp_path, capsys) -> None:
    data, out = write_rows(tmp_path, 5), tmp_path / "out.parquet"
    data_parquet = tmp_path / "chains.parquet"
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(read_jsonl(data)), data_parquet)

    def script(body: dict, index: int) -> Action:
        return Reply("no idea") if sample_number(body) == 3 else rscore_by_sample()(body, index)

    with ScriptedJudgeServer(script) as server:
        assert main(judge_args(data_parquet, out, server, "--parse-retries", "1", "--details")) == 1
    table = pq.read_table(out).to_pylist()
    assert [r["rscore"] for r in table] == [expected_rscore(i) if i != 3 else None for i in range(5)]
    assert table[3]["rscore_status"] == "unparseable"
    printed = capsys.readouterr().out
    assert "unparseable 1" in printed and "over 4 scored of 5 rows" in printed and "id s3#" in printed


def test_a_missing_column_is_an_error_before_any_progress_is_drawn(tmp_path, capsys) -> None:
    data = write_rows(tmp_path, 3)
    rows = read_jsonl(data)
    for row in rows:
        del row["reference_long"]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with ScriptedJudgeServer(rscore_by_sample()) as server:
        args = [a for a in judge_args(data, tmp_path / "o.jsonl", server) if a != "--no-progress"]
        assert main(args) == 2
        assert server.requests == []
    err = capsys.readouterr().err
    assert "expected a column 'reference_long'" in err and "scoring" not in err and "%" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "expected either --base-url (with --model) or --model-path, got neither"),
        (("--base-url", "http://127.0.0.1:9/v1", "--model-path", "x"), "got both"),
    ],
)
def test_backend_options_are_checked(tmp_path, capsys, extra, message) -> None:
    data = write_rows(tmp_path, 2)
    assert main(["judge", str(data), "-o", str(tmp_path / "o.jsonl"), "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_row_and_a_rejected_request_are_errors(tmp_path, capsys) -> None:
    no_refs = write_rows(tmp_path, 2, name="bad.jsonl", reference_short="", reference_long=None)
    with ScriptedJudgeServer(lambda body, i: Status(401, '{"error": "no key"}')) as server:
        assert main(judge_args(no_refs, tmp_path / "o.jsonl", server)) == 2
        assert "row 0" in capsys.readouterr().err and server.requests == []
        assert main(judge_args(write_rows(tmp_path, 2), tmp_path / "o.jsonl", server)) == 2
        assert "HTTP 401" in capsys.readouterr().err


def test_overlap_is_opt_in_labelled_and_logged(tmp_path, capsys, caplog) -> None:
    data, out = write_rows(tmp_path, 3), tmp_path / "out.jsonl"
    summary_file = tmp_path / "s.json"
    assert main(["overlap", str(data), "-o", str(out), "--no-progress", "--summary-json", str(summary_file)]) == 0
    captured = capsys.readouterr()
    values = [r["rscore"] for r in read_jsonl(out)]
    reasoning = [f"the red cup of sample-{i} on the left" for i in range(3)]
    assert values == [10 * max(token_f1(r, SHORT), token_f1(r, LONG)) for r in reasoning]
    assert 0 < values[0] < 10
    assert "method: reference_overlap (not an LLM judge)" in captured.out
    warned = [r for r in caplog.records if r.name == "adaptive_length_reward.rscore.overlap"]
    assert warned[0].levelname == "WARNING" and "not an LLM judge" in warned[0].getMessage()
    assert json.loads(summary_file.read_text())["method"] == "reference_overlap (not an LLM judge)"


@pytest.mark.slow
def test_an_interrupted_run_exits_130_and_the_rerun_asks_only_the_rest(tmp_path) -> None:
    n = 30
    data, out, cache = write_rows(tmp_path, n), tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    # from the fifth request on the server holds its reply until the interrupt has been sent, so the run cannot
    # finish before it arrives however the test process is scheduled (the exit-0 failures seen on clean clones had
    # another cause: SIGINT ignored in the child, restored below)
    released, scored = threading.Event(), rscore_by_sample(delay=0.1)

    def held(body: dict, index: int) -> Action:
        if index >= 4:
            released.wait(60)
        return scored(body, index)

    with ScriptedJudgeServer(held) as server:
        command = [
            sys.executable,
            "-m",
            "adaptive_length_reward.rscore.cli",
            *judge_args(data, out, server, "--cache", str(cache), "--concurrency", "1"),
        ]
        # SIGINT back to its default in the child: a shell that starts the suite in the background (nohup ... &)
        # hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 60
        while len(server.requests) < 4:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        released.set()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "interrupted" in err and not out.exists()
        with sqlite3.connect(cache) as connection:
            stored = connection.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
        asked = len(server.requests)
        assert 4 <= stored <= asked < n
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert len(server.requests) - asked == n - stored  # only the rows without a verdict
    assert [r["rscore"] for r in read_jsonl(out)] == [expected_rscore(i) for i in range(n)]
