"""Every code block of docs/verl.md runs (or is marked as a fragment, with a reason), and documented output is what
the code prints (tests/doc_blocks.py); the install block is the one tests/frameworks/install.py runs in the verl venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from doc_blocks import ROOT, assert_blocks_run_or_marked, run_page

PAGE = ROOT / "docs" / "verl.md"


def test_every_block_is_run_or_marked() -> None:
    assert_blocks_run_or_marked(PAGE)


def test_the_install_block_is_what_the_verl_venv_runs() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "frameworks"))
    from install import install_lines, localised

    commands = install_lines(PAGE.read_text(encoding="utf-8"))
    assert commands == [["torch"], ["adaptive-length-reward[verl]"]]
    assert localised(commands[1], "torch==2.13.0") == ["-e", f"{ROOT}[verl]"]
    assert localised(commands[0], "torch==2.13.0") == ["torch==2.13.0"]


@pytest.mark.slow
def test_every_code_block_of_docs_verl_runs(tmp_path: Path) -> None:
    pytest.importorskip("verl", reason="the page's examples need verl: make test-verl")
    pytest.importorskip("yaml", reason="the page's YAML blocks are parsed with pyyaml")
    counts = run_page(PAGE, tmp_path)
    assert counts == {"ran": 4, "output": 3, "file": 3, "fragment": 3}, counts
