"""Every ```python block of README.md and docs/**/*.md runs, page by page, and shows what it prints.

The pages with a test of their own (``tests/test_docs_<page>.py``, which runs every block of the page with
tests/doc_blocks.py) are left to it; docs/api.md is generated and docs/reference/ is the rendered API. Every other
page's python blocks run here, in page order, in one namespace per page (a page's blocks build on each other), in a
fresh interpreter whose working directory is a temporary folder holding the page's small generated files
(``FIXTURES``; nothing is downloaded). ``examples/`` is on ``PYTHONPATH``, as the pages that import ``pixelthink``
say. The mark-up is tests/doc_blocks.py's: an HTML comment on the line before a block,

- ``<!-- fragment: why -->``: not run (it needs a GPU, a server, the hub); the reason is required;
- ``<!-- output -->`` before a block: what the python block before it prints, compared (trailing whitespace ignored);
- ``<!-- file: NAME -->``: written to ``NAME`` in the working folder before the next block runs.

Inside a python block, a top-level statement whose last line ends in ``# -> TEXT`` (or ``# prints TEXT``) is
checked: what it printed, or the ``repr`` of its value where it is an expression that printed nothing, must be
``TEXT``. A failure names the page, the python block's number on the page and its line.

Bash blocks are not run (they build venvs, train, call servers); the ``make`` targets and the scripts they name
must exist.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tokenize
import traceback
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import ROOT, Block, blocks

_OUTPUT_COMMENT = re.compile(r"#\s*(?:->|prints)\s+(?P<text>.*?)\s*$")
# Small files the pages' blocks read, written into the page's working folder before its first block.
FIXTURES: dict[str, dict[str, str]] = {
    "docs/difficulty.md": {
        "refcoco_train_labeled_merged.json": json.dumps(
            [
                {
                    "image_id": "COCO_train2014_000000000009_0",
                    "problem": "the giraffe behind the other one",
                    "difficulty_score_model": 6.33,
                },
                {"image_id": "COCO_train2014_000000000025_1", "problem": "the red mug", "difficulty_score_model": 2.0},
            ]
        ),
    },
}
# Pages whose blocks build models or import the training stack (seconds each on one core).
SLOW = {"docs/uncertainty.md", "docs/data.md"}


def pages() -> list[Path]:
    """README.md and every docs page, except the generated API page and the rendered reference."""
    docs = ROOT / "docs"
    return [
        ROOT / "README.md",
        *sorted(p for p in docs.rglob("*.md") if p != docs / "api.md" and docs / "reference" not in p.parents),
    ]


def has_own_test(page: Path) -> bool:
    return (ROOT / "tests" / f"test_docs_{page.stem}.py").exists()


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def plan(page: Path) -> list[dict[str, Any]]:
    """The page's steps in order: python blocks to run, files to write, outputs to compare, fragments to skip."""
    steps: list[dict[str, Any]] = []
    number = 0
    for block in blocks(page):
        if block.lang == "python":
            number += 1
        where = (
            f"{_name(page)} python block {number} (line {block.line})"
            if block.lang == "python"
            else (f"{_name(page)} {block.where}")
        )
        if block.mark.startswith("fragment"):
            steps.append({"kind": "fragment", "where": where, "reason": block.mark.removeprefix("fragment:").strip()})
        elif block.mark == "output":
            steps.append({"kind": "output", "where": where, "text": block.body})
        elif block.mark.startswith("file:"):
            steps.append(
                {"kind": "file", "where": where, "name": block.mark.removeprefix("file:").strip(), "text": block.body}
            )
            if block.lang == "python":
                steps.append(_python_step(block, where))
        elif block.lang == "python":
            if block.mark:
                raise AssertionError(f"{where}: unknown mark {block.mark!r}")
            steps.append(_python_step(block, where))
    return steps


def _python_step(block: Block, where: str) -> dict[str, Any]:
    return {"kind": "python", "where": where, "code": block.body, "line": block.line}


def _expected_outputs(code: str) -> dict[int, str]:
    """Line (1-based, in the block) -> the ``# -> TEXT`` written at its end."""
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT and (match := _OUTPUT_COMMENT.fullmatch(token.string)):
            found[token.start[0]] = match["text"]
    return found


def _run_statement(node: ast.stmt, line: int, namespace: dict[str, Any], where: str) -> tuple[str, Any]:
    """Run one top-level statement; return what it printed and, for an expression, its value."""
    ast.increment_lineno(node, line)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), where, "eval"), namespace)
        else:
            exec(compile(ast.Module([node], type_ignores=[]), where, "exec"), namespace)
            value = None
    return out.getvalue(), value


def _run_python(step: dict[str, Any], namespace: dict[str, Any]) -> str:
    """Run a block statement by statement, check its ``# ->`` comments; return everything it printed."""
    code, where = step["code"], step["where"]
    expected = _expected_outputs(code)
    printed = []
    for node in ast.parse(code, where).body:
        end = node.end_lineno or node.lineno
        stdout, value = _run_statement(node, step["line"], namespace, where)
        sys.stdout.write(stdout)
        printed.append(stdout)
        if end in expected:
            want = expected.pop(end)
            got = stdout.strip() if stdout or value is None else repr(value)
            if got != want:
                raise AssertionError(f"line {step['line'] + end}: documented `# -> {want}`, got `{got}`")
    if expected:
        raise AssertionError(
            f"`# ->` comments not at the end of a statement, never checked: lines "
            f"{[step['line'] + n for n in expected]}"
        )
    return "".join(printed)


def drive(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Run a page's steps in this process (a fresh interpreter; see run_page). Stops at the first failure."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    printed: str | None = None
    counts = {"ran": 0, "output": 0, "file": 0, "fragment": 0}
    for step in steps:
        try:
            if step["kind"] == "fragment":
                printed = None
            elif step["kind"] == "file":
                Path(step["name"]).write_text(step["text"], encoding="utf-8")
            elif step["kind"] == "output":
                if printed is None:
                    raise AssertionError("an output block must follow a python block that ran")
                if printed.rstrip() != step["text"].rstrip():
                    raise AssertionError(f"the documented output differs from what the block printed:\n{printed}")
            else:
                printed = _run_python(step, namespace)
                counts["ran"] += 1
                continue
            counts[step["kind"]] += 1
        except BaseException as error:  # reported with the page and block, not raised
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == step["where"]]
            at = f" at page line {frames[-1].lineno}" if frames else ""
            return {"counts": counts, "failure": f"{step['where']}{at}: {detail}"}
    return {"counts": counts, "failure": None}


def run_page(page: Path, workdir: Path) -> dict[str, Any]:
    """Run ``page``'s python blocks in a fresh interpreter in ``workdir``; return counts and the first failure."""
    for name, text in FIXTURES.get(_name(page), {}).items():
        (workdir / name).write_text(text, encoding="utf-8")
    spec = workdir / ".doc_blocks_plan.json"
    spec.write_text(json.dumps(plan(page)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALR_")}
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(ROOT / "examples"), str(Path(__file__).parent)]),
    )
    done = subprocess.run(
        [sys.executable, __file__, str(spec)], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{_name(page)}: the driver failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout.rsplit("\n@@result ", 1)[1])
    return result


def _missing_optional_package(failure: str | None) -> str | None:
    """The package a failure says is missing (an import error, or the library's MissingExtraError), if it is really
    not installed in this environment; otherwise None (the failure stands)."""
    found = re.search(r"No module named '([\w.]+)'|optional package '([\w.-]+)'", failure or "")
    name = next((g for g in found.groups() if g), None) if found else None
    top = (name or "").split(".")[0].replace("-", "_")
    return name if top and importlib.util.find_spec(top) is None else None


PAGES = [p for p in pages() if not has_own_test(p) and any(b.lang == "python" for b in blocks(p))]


@pytest.mark.parametrize(
    "page", [pytest.param(p, id=_name(p), marks=[pytest.mark.slow] if _name(p) in SLOW else []) for p in PAGES]
)
def test_every_python_block_runs_and_prints_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    result = run_page(page, tmp_path)
    missing = _missing_optional_package(result["failure"])
    if missing:  # only where an optional extra is absent; CI installs every extra, so this never skips there
        pytest.skip(f"{_name(page)} needs {missing}, not installed here: {result['failure']}")
    assert result["failure"] is None, result["failure"]
    python = sum(b.lang == "python" for b in blocks(page))
    fragments = sum(b.lang == "python" and b.mark.startswith("fragment") for b in blocks(page))
    assert result["counts"]["ran"] == python - fragments, result["counts"]


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_every_fragment_says_why_and_every_python_block_is_run_somewhere(page: Path) -> None:
    for block in blocks(page):
        if block.mark.startswith("fragment"):
            reason = block.mark.removeprefix("fragment:").strip()
            assert block.mark.startswith("fragment:") and reason, (
                f"{_name(page)} {block.where}: write <!-- fragment: why it is not run -->, got <!-- {block.mark} -->"
            )
    if any(b.lang == "python" and not b.mark.startswith("fragment") for b in blocks(page)):
        assert page in PAGES or has_own_test(page), f"{_name(page)}: its python blocks are run by no test"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def bash_problems(page: Path) -> list[str]:
    """The make targets, scripts and modules that ``page``'s bash blocks name and that do not exist."""
    targets, problems = _make_targets(), []
    for block in blocks(page):
        if block.lang not in ("bash", "sh", "console"):
            continue
        for target in re.findall(r"(?:^\s*|[;&|]\s*)make\s+([\w-]+)", block.body, re.M):
            if target not in targets:
                problems.append(f"{_name(page)} {block.where}: no make target {target!r}")
        for script in re.findall(
            r"(?<![\w/.-])((?:examples|benchmarks|scripts|docs|tests)/[\w/.-]+\.(?:py|sh))", block.body
        ):
            if not (ROOT / script).is_file():
                problems.append(f"{_name(page)} {block.where}: no script {script}")
        for module in re.findall(r"python\s+-m\s+((?:benchmarks|examples)\.[\w.]+)", block.body):
            path = ROOT / module.replace(".", "/")
            if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
                problems.append(f"{_name(page)} {block.where}: no module {module}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_bash_blocks_name_make_targets_and_scripts_that_exist(page: Path) -> None:
    assert bash_problems(page) == []


def test_a_bash_block_naming_a_missing_target_or_script_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nmake demo\nmake no-such-target\npython examples/quickstart.py\npython examples/gone.py\n"
        "python -m benchmarks.adaptive_length.run\npython -m benchmarks.gone\n```\n"
    )
    assert bash_problems(page) == [
        "page.md line 1 (bash): no make target 'no-such-target'",
        "page.md line 1 (bash): no script examples/gone.py",
        "page.md line 1 (bash): no module benchmarks.gone",
    ]


BROKEN_PAGE = """# A page

```python
total = 2 + 3
print(total)  # -> 5
```

<!-- fragment: needs a GPU -->
```python
import cuda_only_thing
```

```python
print(total * 2)
```

<!-- output -->
```text
10
```

```python
print(undefined_rows[0])
```
"""


def test_a_broken_block_is_reported_with_its_page_and_number(tmp_path: Path) -> None:
    """The collector fails, naming the page and python block, on a copy of a page with one block broken."""
    page = tmp_path / "broken.md"
    page.write_text(BROKEN_PAGE)
    work = tmp_path / "work"
    work.mkdir()
    result = run_page(page, work)
    assert result["counts"] == {"ran": 2, "output": 1, "file": 0, "fragment": 1}, result
    assert result["failure"].startswith("broken.md python block 4 (line 22) at page line 23: NameError"), result

    page.write_text(BROKEN_PAGE.replace("# -> 5", "# -> 6").replace("print(undefined_rows[0])", "pass"))
    failure = run_page(page, work)["failure"]
    assert failure.startswith("broken.md python block 1 (line 3)") and "documented `# -> 6`, got `5`" in failure

    page.write_text(BROKEN_PAGE.replace("10\n", "11\n").replace("print(undefined_rows[0])", "pass"))
    failure = run_page(page, work)["failure"]
    assert failure.startswith("broken.md line 18 (text)") and "documented output differs" in failure


def test_a_real_page_with_one_block_broken_fails(tmp_path: Path) -> None:
    """A copy of the README whose quickstart block breaks is reported with the page and block number."""
    copy = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    assert "print(out.rewards" in text
    copy.write_text(text.replace("print(out.rewards", "print(rewards_undefined", 1))
    work = tmp_path / "work"
    work.mkdir()
    failure = run_page(copy, work)["failure"]
    assert failure is not None and failure.startswith("README.md python block 1 (line "), failure
    assert "NameError: name 'rewards_undefined' is not defined" in failure, failure


if __name__ == "__main__":  # the fresh interpreter run_page starts
    _result = drive(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    sys.stdout.write("\n@@result " + json.dumps(_result))


def test_a_block_is_skipped_only_for_a_package_that_is_really_absent() -> None:
    """Where an optional extra is missing (a user's minimal venv), its pages are skipped, not failed; where the
    package is installed (CI installs every extra), the same message is a failure."""
    absent = "docs/x.md python block 1 (line 3): ModuleNotFoundError: No module named 'cuda_only_thing.sub'"
    assert _missing_optional_package(absent) == "cuda_only_thing.sub"
    extra = "MissingExtraError: Decoding needs the optional package 'no-such-package', which is not installed"
    assert _missing_optional_package(extra) == "no-such-package"
    assert _missing_optional_package("ModuleNotFoundError: No module named 'json'") is None  # installed: a failure
    assert _missing_optional_package("NameError: name 'rows' is not defined") is None
    assert _missing_optional_package(None) is None
