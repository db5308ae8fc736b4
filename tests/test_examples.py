"""The README quickstart and examples/quickstart.py run and print what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands() -> None:
    lines = [l for l in (ROOT / "README.md").read_text().splitlines() if l.strip()]
    assert lines[1:4] == [
        "```bash",
        "make demo   # creates .venv if needed, prints the quickstart table, then runs the worked example offline",
        "make test   # creates .venv (and .venv-verl, .venv-openrlhf) if needed, then runs every test suite",
    ]


def test_make_demo_prints_the_quickstart_table_then_runs_the_worked_example() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)  # type: ignore[union-attr]
    commands = [line.strip() for line in recipe.splitlines()]
    assert commands == [
        "$(PY) examples/quickstart.py",
        "$(PY) examples/pixelthink_grpo.py --tiny --output-dir runs/demo",
    ]


def test_readme_quickstart_block_runs_and_its_comment_is_true() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    np.testing.assert_allclose(namespace["out"].rewards, [5.0, 3.75])  # type: ignore[attr-defined]


def test_quickstart_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "length score" in result.stdout and "budget" in result.stdout
    rows = [l for l in result.stdout.splitlines() if l.startswith(("easy, concise", "easy, way too long", "medium"))]
    assert rows[0].split()[-1] == "5.000" and rows[1].split()[-1] == "0.000" and "none" in rows[2]
