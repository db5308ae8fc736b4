"""docs/rscore.md: every code block runs (or is a fragment that says why not), and documented outputs are what
the code prints (tests/doc_blocks.py)."""

from __future__ import annotations

from pathlib import Path

from doc_blocks import ROOT, assert_blocks_run_or_marked, run_page

PAGE = ROOT / "docs" / "rscore.md"


def test_every_block_is_run_or_marked() -> None:
    assert_blocks_run_or_marked(PAGE)


def test_every_code_block_of_docs_rscore_runs(tmp_path: Path) -> None:
    counts = run_page(PAGE, tmp_path)
    assert counts["ran"] >= 3 and counts["output"] == 3 and counts["fragment"] == 5
