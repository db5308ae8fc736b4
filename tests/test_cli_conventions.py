"""Conventions of the three console scripts (``alr-difficulty``, ``alr-rscore``, ``alr-openrlhf-server``):
``--version``, defaults shown in ``--help``, one-line usage errors with exit status 2 and no traceback, every input
checked before a progress bar is drawn or a request sent, and errors in the command line's words (flags and
variables, not the library's parameter paths). The judge is a real HTTP server on 127.0.0.1 answering from a
script (tests/difficulty_fixtures.py), not a model."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from difficulty_fixtures import ScriptedJudgeServer, write_jsonl_dataset

import adaptive_length_reward
from adaptive_length_reward.difficulty import cli as difficulty_cli
from adaptive_length_reward.rscore import cli as rscore_cli

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("ALR_")} | {
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(REPO / "src"),
}

MODULES = {
    "alr-difficulty": "adaptive_length_reward.difficulty.cli",
    "alr-rscore": "adaptive_length_reward.rscore.cli",
    "alr-openrlhf-server": "adaptive_length_reward.adapters.openrlhf_server",
}


def _run(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO
    )


def _server_parser() -> argparse.ArgumentParser:
    pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    from adaptive_length_reward.adapters.openrlhf_server import _parser

    return _parser()


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser, by its prog."""
    found = {"alr-openrlhf-server": _server_parser()}
    for build in (difficulty_cli.build_parser, rscore_cli.build_parser):
        parser = build()
        found[parser.prog] = parser
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        found.update({sub.prog: sub for sub in commands.choices.values()})
    return found


# ------------------------------------------------------------------------------------------------------------
# --version, prog names, usage errors (subprocesses: the entry point is what is tested)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prog", sorted(MODULES))
def test_version_prints_prog_and_package_version(prog: str) -> None:
    if prog == "alr-openrlhf-server":
        pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    result = _run(MODULES[prog], "--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"{prog} {adaptive_length_reward.__version__}\n",
        "",
    )


@pytest.mark.parametrize(
    ("prog", "argv", "message"),
    [
        (
            "alr-difficulty",
            ["judge", "d.jsonl", "-o", "o.jsonl", "--concurrency", "many"],
            "alr-difficulty judge: error: argument --concurrency: invalid int value: 'many'",
        ),
        (
            "alr-rscore",
            ["judge", "d.jsonl", "-o", "o.jsonl", "--parse-retries", "-1"],
            "alr-rscore judge: error: argument --parse-retries: invalid int >= 0 value: '-1'",
        ),
        (
            "alr-openrlhf-server",
            ["--port", "70000"],
            "alr-openrlhf-server: error: argument --port: invalid int in [0, 65535] value: '70000'",
        ),
    ],
)
def test_a_usage_error_is_one_error_line_exit_2_no_traceback(prog: str, argv: list[str], message: str) -> None:
    if prog == "alr-openrlhf-server":
        pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    result = _run(MODULES[prog], *argv)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    assert lines == [f"{message} (see {message.split(': error')[0]} --help)"], result.stderr


# ------------------------------------------------------------------------------------------------------------
# --help shows every default once
# ------------------------------------------------------------------------------------------------------------


def test_help_shows_the_default_of_every_flag_that_has_one_once() -> None:
    checked = 0
    for prog, parser in _parsers().items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            default = action.default
            if not action.option_strings or default in (None, False, argparse.SUPPRESS):
                continue
            assert "default" not in (action.help or ""), (prog, action.dest)  # written by hand: would show twice
            shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
            assert f"(default: {shown})" in text, (prog, action.dest)
            checked += 1
    assert checked > 60
    server = " ".join(_parsers()["alr-openrlhf-server"].format_help().split())
    assert "(default: $ALR_MAX_BATCH, else 16384)" in server and "--port PORT port (default: 5000)" in server
    lookup = " ".join(_parsers()["alr-difficulty lookup"].format_help().split())
    assert "--thresholds THRESHOLDS [THRESHOLDS ...] tier boundaries on the 1..10 scale (default: 3.5 5.0)" in lookup
    assert "(default: None)" not in lookup and "(default: False)" not in lookup


# ------------------------------------------------------------------------------------------------------------
# Inputs checked before any progress output or request
# ------------------------------------------------------------------------------------------------------------


def _no_progress_drawn(err: str) -> None:
    assert "judging" not in err and "scoring" not in err and "%|" not in err and "it/s" not in err, err


@pytest.mark.parametrize(
    "breakage", ["no image column", "empty expression", "missing image file", "output format", "output is a directory"]
)
def test_difficulty_judge_checks_every_row_before_the_bar_or_a_request(
    tmp_path: Path, capsys: Any, breakage: str
) -> None:
    data = write_jsonl_dataset(tmp_path, 4)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    out, message = tmp_path / "o.jsonl", ""
    if breakage == "no image column":
        rows = [{k: v for k, v in row.items() if k != "image"} for row in rows]
        message = "expected a column 'image'"
    elif breakage == "empty expression":
        rows[3]["problem"] = " "
        message = "dataset: row 3: JudgeSample 's3': expression: expected a non-empty string"
    elif breakage == "missing image file":
        rows[2]["image"] = "images/gone.png"
        message = "dataset: row 2: column 'image': expected an existing image file, got 'images/gone.png'"
    elif breakage == "output format":
        out, message = tmp_path / "o.parquet", "--output: expected a jsonl path like the input"
    else:
        out, message = tmp_path / "images", "--output: expected a jsonl file path like the input, got the directory"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with ScriptedJudgeServer() as server:
        code = difficulty_cli.main(
            [
                "judge",
                str(data),
                "-o",
                str(out),
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]
        )  # progress on
        assert server.requests == []
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("alr-difficulty judge: error: ") and message in err, err
    assert err.count("\n") == 1
    _no_progress_drawn(err)
    assert not out.exists() or out.is_dir()


def test_the_same_dataset_judged_shows_the_bar(tmp_path: Path, capsys: Any) -> None:
    """The check above can fail: with valid rows the bar is drawn (tqdm on stderr)."""
    data = write_jsonl_dataset(tmp_path, 4)
    with ScriptedJudgeServer() as server:
        assert (
            difficulty_cli.main(
                ["judge", str(data), "-o", str(tmp_path / "o.jsonl"), "--base-url", server.base_url, "--model", "m"]
            )
            == 0
        )
    assert "judging" in capsys.readouterr().err


def test_rscore_checks_the_output_format_before_a_request(tmp_path: Path, capsys: Any) -> None:
    data = tmp_path / "chains.jsonl"
    data.write_text(json.dumps({"id": "a", "reasoning": "r", "reference_short": "s", "reference_long": "l"}) + "\n")
    with ScriptedJudgeServer() as server:
        assert (
            rscore_cli.main(
                ["judge", str(data), "-o", str(tmp_path / "o.parquet"), "--base-url", server.base_url, "--model", "m"]
            )
            == 2
        )
        assert server.requests == []
    err = capsys.readouterr().err
    assert (
        err == f"alr-rscore judge: error: --output: expected a jsonl path like the input, got "
        f"{str(tmp_path / 'o.parquet')!r}\n"
    )


# ------------------------------------------------------------------------------------------------------------
# Errors in the command line's words
# ------------------------------------------------------------------------------------------------------------


def test_difficulty_errors_name_flags_not_parameters(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALR_TEST_NO_SUCH_KEY", raising=False)
    data = write_jsonl_dataset(tmp_path, 3)
    table = tmp_path / "t.json"
    table.write_text(json.dumps([{"image_id": "s0", "difficulty_score_model": 4.0}]))
    base = ["lookup", str(data), "-o", str(tmp_path / "o.jsonl"), "--table", str(table)]
    cases = [
        (
            base,
            f"--table {table}: no difficulty for 2 of 3 samples (first: ['s1', 's2']); pass --missing with a "
            "tier name, a value in [1, 10], or 'nan' to allow that",
        ),
        ([*base, "--missing", "bogus"], "--missing: expected one of ['error', 'nan', 'easy', 'medium', 'hard']"),
        ([*base, "--thresholds", "5", "3"], "--thresholds: expected finite, strictly increasing numbers"),
        (
            ["heuristic", str(data), "-o", str(tmp_path / "o.jsonl"), "--area-weight", "-3"],
            "--area-weight: expected >= 0, got -3.0",
        ),
        (
            ["judge", str(data), "-o", str(tmp_path / "o.jsonl"), "--base-url", "127.0.0.1:9", "--model", "m"],
            "--base-url: expected an http:// or https:// URL",
        ),
        (
            [
                "judge",
                str(data),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--weights",
                "scene=x",
            ],
            "--weights: scene: expected a valid number",
        ),
        (
            [
                "judge",
                str(data),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--api-key-env",
                "ALR_TEST_NO_SUCH_KEY",
            ],  # checked before the first request, not by it
            "--api-key-env: expected the environment variable 'ALR_TEST_NO_SUCH_KEY' to hold an API key, got nothing",
        ),
    ]
    for argv, message in cases:
        assert difficulty_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"alr-difficulty {argv[0]}: error: {message}") and err.count("\n") == 1, err
        for internal in (
            "set missing",
            "LookupDifficulty",
            "HeuristicDifficulty",
            "OpenAICompatibleBackend",
            "JudgedDifficulty",
            "area_weight",
            "base_url",
            "api_key_env",
            "weights.",
        ):
            assert internal not in err, err


def test_server_errors_name_the_flag_or_variable_that_set_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    pytest.importorskip("uvicorn", reason="the reward server needs the 'server' extra (fastapi, uvicorn)")
    from adaptive_length_reward.adapters.openrlhf_server import main

    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALR_")}
    cases = [
        ({}, ["--missing-difficulty", "huge"], "--missing-difficulty: expected 'error', a tier name"),
        ({"ALR_MISSING_DIFFICULTY": "huge"}, [], "ALR_MISSING_DIFFICULTY: expected 'error', a tier name"),
        ({}, ["--missing-uncertainty", "-1"], "--missing-uncertainty: expected"),
        ({"ALR_MAX_BATCH": "0"}, [], "ALR_MAX_BATCH: expected an int >= 1, got 0"),
    ]
    for environ, argv, message in cases:
        monkeypatch.setattr(os, "environ", clean | environ)  # main() sets ALR_* for its workers
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--port", "1"])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.startswith(f"alr-openrlhf-server: error: {message}"), err
        assert err.count("\n") == 1 and "Product:" not in err and "ServerLimits" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "commands"),
    [
        ("adaptive_length_reward.difficulty.cli", "{judge,lookup,heuristic}"),
        ("adaptive_length_reward.rscore.cli", "{judge,overlap}"),
    ],
)
def test_module_runs_as_a_script_and_imports_no_heavy_packages(module: str, commands: str) -> None:
    """``python -m`` works, and importing the command (and its package) loads no model or data framework."""
    package = module.rsplit(".", 1)[0]
    code = (
        f"import sys, {package}, {module}; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'pyarrow') if m in sys.modules))"
    )
    probe = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr
    help_text = _run(module, "--help")
    assert help_text.returncode == 0 and commands in help_text.stdout, help_text.stderr
