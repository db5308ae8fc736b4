"""Every code block of docs/openrlhf.md runs (or is marked as a fragment, with a reason), and documented output
is what the code prints (tests/doc_blocks.py). The page's server block starts the real server on a free port of
127.0.0.1 and queries it with curl."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from adapter_fixtures import free_port
from doc_blocks import ROOT, assert_blocks_run_or_marked, run_page

PAGE = ROOT / "docs" / "openrlhf.md"


def test_every_block_is_run_or_marked() -> None:
    assert_blocks_run_or_marked(PAGE)


@pytest.mark.slow
def test_every_code_block_of_docs_openrlhf_runs(tmp_path: Path) -> None:
    for name in ("fastapi", "uvicorn", "yaml"):
        pytest.importorskip(name, reason="the page's server example needs the 'server' extra and pyyaml")
    if shutil.which("curl") is None:
        pytest.skip("the page's server example queries the server with curl")
    counts = run_page(PAGE, tmp_path, {"PORT": str(free_port())})
    assert counts == {"ran": 6, "output": 4, "file": 1, "fragment": 3}, counts
    log = (tmp_path / "server.log").read_text()
    assert "POST /get_reward: 422 labels[0].difficulty: missing" in log
