"""The ``alr-difficulty`` CLI: judge (against a real HTTP server on 127.0.0.1 answering from a script, not a
model), lookup and heuristic, on JSONL, Parquet and saved Hugging Face datasets; summaries and exit codes; and
the resume test, which SIGKILLs a real annotating subprocess midway and restarts it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from difficulty_fixtures import (
    Reply,
    ScriptedJudgeServer,
    Status,
    expected_aspects,
    judge_args,
    sample_number,
    scores_by_sample,
    square_image,
    write_jsonl_dataset,
)

from adaptive_length_reward.difficulty.cli import main

REPO = Path(__file__).resolve().parents[1]


def expected_difficulty(n: int) -> float:
    return sum(expected_aspects(n).values()) / 3


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------------------------------------
# judge
# ------------------------------------------------------------------------------------------------------------


def test_judge_annotates_jsonl_prints_histogram_and_resumes_from_cache(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 10)
    out, summary_file = tmp_path / "out.jsonl", tmp_path / "summary.json"
    with ScriptedJudgeServer() as server:
        assert main(judge_args(data, out, server, "--summary-json", str(summary_file))) == 0
        assert len(server.requests) == 10
        first = capsys.readouterr().out
        assert main(judge_args(data, out, server)) == 0  # rerun: everything from the cache
        assert len(server.requests) == 10
        second = capsys.readouterr().out
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(10)]
    assert [r["difficulty"] for r in rows] == pytest.approx([expected_difficulty(i) for i in range(10)])
    assert rows[3]["image"] == "images/3.png" and rows[3]["mask_area_ratio"] == pytest.approx(0.28)  # columns kept
    summary = json.loads(summary_file.read_text())
    values = [expected_difficulty(i) for i in range(10)]
    expected_histogram = {
        "easy": sum(v < 3.5 for v in values),
        "medium": sum(3.5 <= v < 5 for v in values),
        "hard": sum(v >= 5 for v in values),
        "missing": 0,
    }
    assert summary["histogram"] == expected_histogram
    assert summary["judge"]["judged_now"] == 10 and summary["judge"]["statuses"] == {"ok": 10}
    assert summary["judge"]["cache"] == f"{data}.judge-cache.sqlite" and Path(summary["judge"]["cache"]).is_file()
    assert "judged now 10, from cache 0" in first and "judged now 0, from cache 10" in second
    assert f"easy       [1, 3.5)     {expected_histogram['easy']:>8}" in first
    assert "hard       [5, 10]" in first and "missing" in first


def test_judge_failures_are_summarised_and_set_the_exit_status(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 6)

    def script(body: dict, index: int) -> Reply:
        return Reply("I refuse to rate this.") if sample_number(body) == 3 else scores_by_sample()(body, index)

    out = tmp_path / "out.jsonl"
    with ScriptedJudgeServer(script) as server:
        assert main(judge_args(data, out, server, "--details", "--parse-retries", "1")) == 1
        assert server.per_sample[3] == 2
    text = capsys.readouterr().out
    assert "unparseable 1" in text and "failures (1):" in text and "id s3: unparseable: no JSON object" in text
    assert re.search(r"missing\s+1\s+16\.7%", text)
    rows = read_jsonl(out)
    assert rows[3]["difficulty"] is None and rows[3]["difficulty_status"] == "unparseable"
    assert rows[3]["difficulty_scene"] is None
    assert rows[4]["difficulty_status"] == "ok" and rows[4]["difficulty_seg"] == expected_aspects(4)["seg"]


def test_judge_transport_failures_are_not_cached_and_rerun_fills_them(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 4)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"

    def script(body: dict, index: int) -> Status | Reply:
        return Status(503) if sample_number(body) == 1 else scores_by_sample()(body, index)

    with ScriptedJudgeServer(script) as server:
        assert main(judge_args(data, out, server, "--cache", str(cache), "--max-retries", "1")) == 1
    assert "transport errors 1" in capsys.readouterr().out
    with ScriptedJudgeServer() as server:
        assert main(judge_args(data, out, server, "--cache", str(cache))) == 0
        assert list(server.per_sample) == [1]  # only the sample that had no verdict is asked
    assert read_jsonl(out)[1]["difficulty"] == pytest.approx(expected_difficulty(1))


def test_judge_parquet_with_boxes_and_weights(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = write_jsonl_dataset(tmp_path, 5)
    rows = read_jsonl(data)
    for row in rows:
        row["solution"] = "<box>(5,5),(20,20)</box><points>(8,8),(12,12)</points>"
    table = pa.Table.from_pylist(rows)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    with ScriptedJudgeServer() as server:
        assert (
            main(
                judge_args(
                    path,
                    path,
                    server,
                    "--box-column",
                    "solution",
                    "--area-column",
                    "mask_area_ratio",
                    "--weights",
                    "scene=1,seg=0,language=0",
                    "--aggregate",
                    "max",
                )
            )
            == 0
        )
        prompt = server.requests[0]["messages"][1]["content"][1]["text"]
    assert "bounding box spans 8.9%-36% of the width" in prompt
    result = pq.read_table(path)
    assert result.column_names == [*table.column_names, "difficulty"]  # written in place, columns kept
    assert result.column("difficulty").to_pylist() == [expected_aspects(i)["scene"] for i in range(5)]


def test_judge_saved_hf_dataset_in_place(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    images = [square_image(i) for i in range(4)]
    dataset = datasets.Dataset.from_dict(
        {
            "id": list(range(4)),
            "image": images,
            "problem": [f"square of sample-{i}" for i in range(4)],
            "difficulty": [None] * 4,
        }
    ).cast_column("image", datasets.Image())
    path = tmp_path / "hf"
    dataset.save_to_disk(str(path))
    with ScriptedJudgeServer() as server:
        assert main(judge_args(path, path, server)) == 0
        assert len(server.requests) == 4
    reloaded = datasets.load_from_disk(str(path))
    assert reloaded["difficulty"] == pytest.approx([expected_difficulty(i) for i in range(4)])
    assert reloaded.column_names == ["id", "image", "problem", "difficulty"] and reloaded[2]["image"].size == (56, 56)


def test_progress_bar_and_plain_fallback(tmp_path, capsys, monkeypatch) -> None:
    data = write_jsonl_dataset(tmp_path, 20)
    with ScriptedJudgeServer() as server:
        args = [a for a in judge_args(data, tmp_path / "o.jsonl", server) if a != "--no-progress"]
        assert main([*args, "--cache", str(tmp_path / "a.sqlite")]) == 0
        assert "judging" in capsys.readouterr().err  # tqdm bar on stderr
        monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
        assert main([*args, "--cache", str(tmp_path / "b.sqlite")]) == 0
    err = capsys.readouterr().err
    assert "judging: 1/20 (5%), failed 0" in err and "judging: 20/20 (100%), failed 0" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "m"], "expected either --base-url (with --model) or --model-path, got neither"),
        (["--base-url", "http://127.0.0.1:9/v1", "--model-path", "x"], "got both"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--model: expected the served model name"),
        (["--base-url", "127.0.0.1:9", "--model", "m"], "error: --base-url: expected an http:// or https:// URL"),
        (["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--image-column", "img"], "expected a column 'img'"),
    ],
)
def test_judge_usage_errors_exit_2_with_a_message(tmp_path, capsys, args: list[str], message: str) -> None:
    data = write_jsonl_dataset(tmp_path, 2)
    assert main(["judge", str(data), "-o", str(tmp_path / "o.jsonl"), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err


def test_flags_derive_from_the_declared_parameters(capsys) -> None:
    from adaptive_length_reward.difficulty import HeuristicDifficulty, JudgedDifficulty, LookupDifficulty
    from adaptive_length_reward.difficulty import OpenAICompatibleBackend as HTTPBackend
    from adaptive_length_reward.difficulty.cli import COLUMNS, HEURISTIC, HTTP, LOOKUP, READING, build_parser

    parser = build_parser()
    judge = parser.parse_args(["judge", "d.jsonl", "-o", "o.jsonl"])
    commands = [
        (judge, HTTPBackend, HTTP),
        (judge, JudgedDifficulty, (*READING, *COLUMNS)),
        (parser.parse_args(["lookup", "d.jsonl", "-o", "o.jsonl", "--table", "t.json"]), LookupDifficulty, LOOKUP[1:]),
        (parser.parse_args(["heuristic", "d.jsonl", "-o", "o.jsonl"]), HeuristicDifficulty, HEURISTIC),
    ]
    for args, cls, names in commands:
        fields = {f.key: f for f in cls.fields()}
        for name in names:
            expected = None if fields[name].required else fields[name].default()
            assert getattr(args, name) == expected, (cls.__name__, name)
    with pytest.raises(SystemExit):
        parser.parse_args(["judge", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    doc = next(f.spec.doc for f in HTTPBackend.fields() if f.key == "concurrency")
    assert f"--concurrency CONCURRENCY {doc} (default: 4)" in help_text
    assert "--aggregate {mean,median,max,min}" in help_text and "--json-mode" in help_text


def test_server_rejecting_requests_aborts_with_exit_2(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 3)
    with ScriptedJudgeServer(lambda body, i: Status(401, '{"error": "bad key"}')) as server:
        assert main(judge_args(data, tmp_path / "o.jsonl", server)) == 2
    assert "HTTP 401" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()


def test_input_errors_exit_2(tmp_path, capsys) -> None:
    assert main(["lookup", str(tmp_path / "none.jsonl"), "-o", "x.jsonl", "--table", "t.json"]) == 2
    assert "expected an existing file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n', encoding="utf-8")
    assert main(["heuristic", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "line 2: expected a JSON object" in capsys.readouterr().err
    (tmp_path / "data.csv").write_text("id\n1\n")
    assert main(["heuristic", str(tmp_path / "data.csv"), "-o", "o.csv"]) == 2
    assert "expected a .jsonl, .parquet file or a saved Hugging Face dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["judge"])
    assert exit_info.value.code == 2


# ------------------------------------------------------------------------------------------------------------
# lookup and heuristic
# ------------------------------------------------------------------------------------------------------------


def test_lookup_with_the_official_table_and_missing_policies(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 5)
    table = tmp_path / "refcoco_train_labeled_merged.json"
    table.write_text(json.dumps([{"image_id": f"s{i}", "difficulty_score_model": 2.0 + i} for i in range(3)]))
    out = tmp_path / "o.jsonl"
    assert main(["lookup", str(data), "-o", str(out), "--table", str(table)]) == 2
    assert "no difficulty for 2 of 5 samples (first: ['s3', 's4'])" in capsys.readouterr().err
    assert main(["lookup", str(data), "-o", str(out), "--table", str(table), "--missing", "easy"]) == 0
    text = capsys.readouterr().out
    assert [r["difficulty"] for r in read_jsonl(out)] == [2.0, 3.0, 4.0, 2.25, 2.25]
    assert "scored 5, fell back to the missing policy 2" in text
    assert main(["lookup", str(data), "-o", str(out), "--table", str(table), "--missing", "nan"]) == 1
    assert [r["difficulty"] for r in read_jsonl(out)][3:] == [None, None]
    assert main(["lookup", str(data), "-o", str(out), "--table", str(table), "--missing", "3"]) == 0
    assert [r["difficulty"] for r in read_jsonl(out)][3:] == [3.0, 3.0]


def test_heuristic_cli(tmp_path, capsys) -> None:
    data = write_jsonl_dataset(tmp_path, 4)
    out = tmp_path / "o.jsonl"
    assert main(["heuristic", str(data), "-o", str(out), "--column", "difficulty_h", "--area-weight", "1"]) == 0
    rows = read_jsonl(out)
    values = [r["difficulty_h"] for r in rows]
    assert values == sorted(values, reverse=True)  # larger masks, easier
    assert all(1.0 <= v <= 10.0 for v in values) and "difficulty" not in rows[0]
    assert main(["heuristic", str(data), "-o", str(out), "--area-column", "none"]) == 0
    assert len({r["difficulty"] for r in read_jsonl(out)}) == 1  # same expression length everywhere


# ------------------------------------------------------------------------------------------------------------
# Resume after a kill (a real subprocess)
# ------------------------------------------------------------------------------------------------------------


def _cached_ids(cache: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as connection:
            return [row[0] for row in connection.execute("SELECT sample_id FROM judgments WHERE status = 'ok'")]
    except sqlite3.OperationalError:  # not created yet, or the schema is being written
        return []


@pytest.mark.slow
def test_killed_annotation_run_resumes_without_losing_or_duplicating(tmp_path) -> None:
    n = 24
    data = write_jsonl_dataset(tmp_path, n)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    with ScriptedJudgeServer(scores_by_sample(delay=0.1)) as server:
        command = [
            sys.executable,
            "-m",
            "adaptive_length_reward.difficulty.cli",
            *judge_args(data, out, server, "--cache", str(cache), "--concurrency", "2"),
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(_cached_ids(cache)) < 8:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the annotation run made no progress"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        time.sleep(0.2)  # let the server finish reading requests sent just before the kill
        while server.in_flight:
            time.sleep(0.01)
        before = set(_cached_ids(cache))
        asked_before = dict(server.per_sample)
        assert 8 <= len(before) < n and not out.exists()  # killed midway, before writing the output
        with sqlite3.connect(cache) as connection:  # the killed run's claims on the samples it was asking about
            stale = connection.execute("SELECT COUNT(*) FROM claims").fetchone()[0]

        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        resumed_in = time.monotonic() - started
        assert result.returncode == 0, result.stderr
    # the dead process's claims (600 s leases; usually one per request in flight) were taken over at once
    assert resumed_in < 60, (stale, resumed_in)
    with sqlite3.connect(cache) as connection:
        assert connection.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert f"judged now {n - len(before)}, from cache {len(before)}" in result.stdout
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(n)]  # every record once, none lost
    assert [r["difficulty"] for r in rows] == pytest.approx([expected_difficulty(i) for i in range(n)])
    for i in range(n):
        if f"s{i}" in before:
            assert server.per_sample[i] == 1  # cached before the kill: never asked again
    # only the requests in flight at the kill (at most --concurrency) were asked twice
    assert sum(count - 1 for count in server.per_sample.values()) <= 2
    assert set(asked_before) - {int(s[1:]) for s in before} == {i for i, c in server.per_sample.items() if c == 2}
    with sqlite3.connect(cache) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = connection.execute("SELECT sample_id, status, aspects FROM judgments").fetchall()
    assert sorted(r[0] for r in rows) == sorted(f"s{i}" for i in range(n))
    for sample_id, status, aspects in rows:
        assert status == "ok" and json.loads(aspects) == expected_aspects(int(sample_id[1:]))


@pytest.mark.slow
def test_log_level_shows_retries_and_cache_hits_on_stderr(tmp_path) -> None:
    """The command (an application) shows the library's log records: retries at the default level, cache hits
    with ``--log-level info``."""
    data = write_jsonl_dataset(tmp_path, 2)
    out = tmp_path / "out.jsonl"
    calls: list[int] = []

    def script(body: dict, index: int) -> Status | Reply:
        calls.append(index)
        return Status(503) if len(calls) == 1 else scores_by_sample()(body, index)

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    with ScriptedJudgeServer(script) as server:
        command = [
            sys.executable,
            "-m",
            "adaptive_length_reward.difficulty.cli",
            *judge_args(data, out, server, "--concurrency", "1"),
        ]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        second = subprocess.run([*command, "--log-level", "info"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert re.search(
        r"alr-difficulty: WARNING adaptive_length_reward\.difficulty\.judge\.backends: http://127\.0\.0"
        r"\.1:\d+/v1/chat/completions: attempt 1 of 4 failed \(HTTP 503",
        first.stderr,
    )
    assert "INFO" not in first.stderr
    assert "INFO adaptive_length_reward.difficulty.judge.runner: judge cache " in second.stderr
    assert "2 of 2 samples answered from the cache, 0 to ask" in second.stderr
