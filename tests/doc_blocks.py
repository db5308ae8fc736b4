"""Run the code blocks of a docs page (shared by the docs tests; see tests/test_docs_openrlhf.py).

A fenced block runs unless the line before it is an HTML comment that says otherwise:

- ``<!-- fragment: why -->``: not run (it needs GPUs, the network or a long-running process; ``why`` is required);
- ``<!-- output -->``: not run; must equal what the previous block printed (stdout, trailing whitespace ignored);
- ``<!-- file: NAME -->``: written to ``NAME`` in the page's working directory (later blocks read it).

``python`` blocks run in a fresh interpreter, ``bash`` blocks with ``bash -euo pipefail`` (the virtual environment's
``bin`` first on ``PATH``), ``json`` blocks are parsed (one document, or one per line), ``yaml`` blocks are parsed.
All blocks of a page share one working directory, in page order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"(?:^<!-- (?P<mark>[^\n]*?) -->\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    line: int
    mark: str
    lang: str
    body: str

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.lang or 'no language'})"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start("body")), (m.group("mark") or "").strip(), m.group("lang"), m.group("body"))
        for m in _BLOCK.finditer(text)
    ]


def assert_blocks_run_or_marked(page: Path) -> None:
    """Every block of ``page`` has a language, and every fragment says why it is not run."""
    for block in blocks(page):
        assert block.lang, f"{block.where}: give the block a language"
        if block.mark.startswith("fragment"):
            assert block.mark.removeprefix("fragment:").strip(), f"{block.where}: a fragment says why"


def _run(block: Block, cwd: Path, env: dict[str, str]) -> str:
    if block.lang == "python":
        command = [sys.executable, "-c", block.body]
    elif block.lang == "bash":
        command = ["bash", "-euo", "pipefail", "-c", block.body]
    elif block.lang == "json":
        try:
            json.loads(block.body)
        except json.JSONDecodeError:
            for line in block.body.splitlines():
                json.loads(line)
        return ""
    elif block.lang in ("yaml", "yml"):
        import yaml

        yaml.safe_load(block.body)
        return ""
    else:
        raise AssertionError(f"{block.where}: a {block.lang!r} block must be marked as output or a fragment")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{block.where} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def run_page(page: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> dict[str, int]:
    """Run every block of ``page`` in ``workdir``; return how many blocks of each kind there were."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALR_")}
    env.update(
        OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **(extra_env or {})
    )
    counts = {"ran": 0, "output": 0, "file": 0, "fragment": 0}
    printed: str | None = None
    for block in blocks(page):
        if block.mark.startswith("fragment:") and block.mark.removeprefix("fragment:").strip():
            counts["fragment"] += 1
            printed = None
        elif block.mark == "output":
            assert printed is not None, f"{block.where}: an output block must follow a block that ran"
            assert printed.rstrip() == block.body.rstrip(), (
                f"{block.where}: the documented output differs from what the block printed:\n{printed}"
            )
            counts["output"] += 1
            printed = None
        elif block.mark.startswith("file:"):
            (workdir / block.mark.removeprefix("file:").strip()).write_text(block.body, encoding="utf-8")
            _run(block, workdir, env)
            counts["file"] += 1
        else:
            assert not block.mark, f"{block.where}: unknown mark {block.mark!r}"
            printed = _run(block, workdir, env)
            counts["ran"] += 1
    return counts
