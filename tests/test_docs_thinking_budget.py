"""Every code block of docs/thinking_budget.md runs (or is marked as a fragment, with a reason), and the documented
output is what the code prints (tests/doc_blocks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import ROOT, assert_blocks_run_or_marked, run_page

PAGE = ROOT / "docs" / "thinking_budget.md"


def test_every_block_is_run_or_marked() -> None:
    assert_blocks_run_or_marked(PAGE)


@pytest.mark.slow
def test_every_code_block_of_docs_thinking_budget_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the page's generate example needs torch and transformers")
    pytest.importorskip("transformers", reason="the page's generate example needs transformers")
    counts = run_page(PAGE, tmp_path)
    assert counts == {"ran": 1, "output": 1, "file": 0, "fragment": 2}, counts
