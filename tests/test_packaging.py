"""Packaging a user can trust (issue 18): the licence, the metadata, the single-sourced version, the extras, and the
sdist and wheel as built (the sdist carries what its own tests need; the wheel only the packages).

The build tests are marked slow: they run ``python -m build --no-isolation`` once (the sdist, then the wheel from
that sdist; the ``docs`` extra installs ``build`` and ``twine``) into a temporary folder and ``twine check --strict``.
Run from an unpacked sdist, they build from it again.

The core dependencies' floors (``TESTED_FLOORS``) were tested by hand, with network access to the package index, as
follows (December 2026, Python 3.11; torch and the frameworks are not needed for the core)::

    python -m venv /tmp/floor
    /tmp/floor/bin/pip install numpy==2.0.0 pydantic==2.11.0 typing-extensions==4.12.2 pyyaml==6.0.1 \
        pytest pytest-timeout hypothesis pillow tokenizers
    /tmp/floor/bin/pip install --no-deps dist/adaptive_length_reward-*.whl && /tmp/floor/bin/pip check
    /tmp/floor/bin/python -W error -c "import adaptive_length_reward"          # no warning
    /tmp/floor/bin/python -m pytest -p no:cacheprovider -m "not slow" -W error::UserWarning \
        --ignore-glob='tests/test_example_*.py'    # passes but for the tests that need torch or transformers

Below these floors: pydantic 2.6-2.10 reject the component configs (``SchemaError``: ``allow_inf_nan`` on an int
parameter; ``tests/test_config.py`` fails at collection), and numpy 1.24-1.26 compute some rewards 1 ulp away from
numpy 2 (``tests/test_golden.py``, bit for bit, fails for the cosine length reward and the heuristic difficulty).
"""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")
requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
INIT = ROOT / "src" / "adaptive_length_reward" / "__init__.py"

# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the standard text with its appendix as published.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
COPYRIGHT = "   Copyright 2026 The adaptive-length-reward authors"
PLACEHOLDER = "   Copyright [yyyy] [name of copyright owner]"

REPO_URL = "https://github.com/adaptive-length-reward/adaptive-length-reward"
TESTED_FLOORS = {"numpy": "2.0", "pydantic": "2.11", "pyyaml": "6.0.1", "typing-extensions": "4.12.2"}
FRAMEWORKS = {"torch", "transformers", "trl", "verl", "openrlhf"}
CACHES = (".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "__pycache__", ".venv")


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"]
    return project


def _literal_version() -> str:
    """The one ``__version__ = "..."`` assignment of the package's ``__init__.py`` (read without importing)."""
    values = [
        node.value.value
        for node in ast.parse(INIT.read_text()).body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    assert len(values) == 1, f"expected one literal __version__ assignment in {INIT}, got {values}"
    return values[0]


def test_licence_is_the_full_apache_2_text_with_a_copyright_line() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.count(COPYRIGHT + "\n") == 1, "the copyright line fills the appendix's boilerplate"
    standard = text.replace(COPYRIGHT + "\n", PLACEHOLDER + "\n")
    assert hashlib.sha256(standard.encode()).hexdigest() == APACHE_2_SHA256, "LICENSE differs from the Apache-2.0 text"
    project = _project()
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    # PEP 639: a licence expression replaces the licence classifier (setuptools refuses both).
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_version_has_one_source() -> None:
    raw = tomllib.loads(PYPROJECT.read_text())
    project = raw["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert raw["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "adaptive_length_reward.__version__"}
    version = pytest.importorskip("packaging.version")
    literal = _literal_version()
    assert str(version.Version(literal)) == literal, f"__version__ {literal!r} is not a normalised PEP 440 version"
    import adaptive_length_reward

    assert adaptive_length_reward.__version__ == literal


def test_metadata_names_the_project_urls_and_classifiers() -> None:
    project = _project()
    urls = project["urls"]
    for key in ("Homepage", "Source", "Documentation", "Changelog", "Issues"):
        assert urls[key].startswith(REPO_URL), (key, urls[key])
    assert urls["Paper"] == "https://arxiv.org/abs/2505.23727"
    classifiers = set(project["classifiers"])
    assert {
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    } <= classifiers
    assert project["requires-python"] == ">=3.10"
    python = re.compile(r"Programming Language :: Python :: 3\.(\d+)")
    listed = sorted(int(m.group(1)) for m in map(python.fullmatch, classifiers) if m)
    assert listed == [10, 11, 12, 13]


def test_changelog_has_a_section_for_this_version_and_a_link_for_every_section() -> None:
    """Keep a Changelog: ``[Unreleased]`` on top, a dated section for the package's version (unless it is a
    development version), and a link reference for every section heading."""
    import adaptive_length_reward

    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.M)
    assert headings and headings[0] == ("Unreleased", ""), headings[:2]
    released = {name: date for name, date in headings[1:]}
    version = adaptive_length_reward.__version__
    if not pytest.importorskip("packaging.version").Version(version).is_devrelease:  # a release has its section
        assert released.get(version), (version, released)
    links = dict(re.findall(r"^\[([^\]]+)\]: (https://\S+)$", text, flags=re.M))
    missing = [name for name, _ in headings if not links.get(name, "").startswith(REPO_URL)]
    assert not missing, f"CHANGELOG.md: sections without a link reference: {missing}"
    assert len(headings) == len(set(headings)), headings


def test_readme_links_work_on_the_package_index() -> None:
    """The package index shows README.md without the repository around it: a relative link (``docs/x.md``) would
    lead nowhere there. Every link is absolute or an anchor, and every link into this repository names a file that
    exists (the docs site's hook turns them back into page links: tests/test_docs_site.py)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets, "README.md: expected Markdown links, got none"
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert not relative, f"README.md: relative links break on the package index: {relative}"
    prefix = f"{REPO_URL}/blob/main/"
    ours = [t.removeprefix(prefix).split("#")[0] for t in targets if t.startswith(prefix)]
    assert len(ours) >= 15, ours
    missing = [path for path in ours if not (ROOT / path).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_core_dependencies_are_yaml_included_at_their_tested_floors() -> None:
    # PyYAML is core: reward configs and adapter settings are YAML. A floor changes only with a new test at it
    # (the commands are in this module's docstring).
    floors = {}
    for spec in _project()["dependencies"]:
        requirement = requirements.Requirement(spec)
        assert [s.operator for s in requirement.specifier] == [">="], f"expected a lone floor, got {spec!r}"
        floors[requirement.name.lower()] = next(iter(requirement.specifier)).version
    assert floors == TESTED_FLOORS


def test_every_framework_requirement_is_bounded_above() -> None:
    unbounded = [
        f"[{extra}] {spec}"
        for extra, specs in _project()["optional-dependencies"].items()
        for spec in specs
        if requirements.Requirement(spec).name in FRAMEWORKS
        and not any(s.operator in {"<", "<=", "=="} for s in requirements.Requirement(spec).specifier)
    ]
    assert unbounded == [], f"framework requirements without an upper bound: {unbounded}"


def _text_files() -> list[Path]:
    folders = ("src", "examples", "benchmarks", "docs", "tests")
    files = [path for folder in folders for pattern in ("*.py", "*.md") for path in (ROOT / folder).rglob(pattern)]
    return [path for path in [*files, ROOT / "README.md"] if not any(part in CACHES for part in path.parts)]


def test_install_hints_name_existing_extras() -> None:
    extras = set(_project()["optional-dependencies"])
    assert "tokenizers" not in extras, "the transformers extra is called `transformers`"
    named = set()
    for path in _text_files():
        text, where = path.read_text(), path.relative_to(ROOT).as_posix()
        if path.suffix == ".py" and where.startswith(("src/", "examples/", "benchmarks/")):  # import_optional hints
            named |= {(where, extra) for extra in re.findall(r"""\bextra=["']([^"']+)["']""", text)}
        for group in re.findall(r"adaptive-length-reward\[([\w,\- ]+)\]", text):  # pip install lines
            named |= {(where, extra.strip()) for extra in group.split(",")}
    named = {(path, extra) for path, extra in named if extra not in {"forbid", "ignore", "allow"}}  # pydantic's
    assert len({path for path, _ in named}) > 5, "expected install hints in src, docs and the README"
    missing = sorted((path, extra) for path, extra in named if extra not in extras)
    assert missing == [], f"install hints naming extras pyproject.toml does not define: {missing}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, then the wheel built from that sdist (what ``python -m build`` does by default).

    Built from a copy of the tree without ``*.egg-info``: setuptools adds the files an old ``SOURCES.txt`` lists
    (an editable install leaves one in ``src/``), which would hide a file ``MANIFEST.in`` leaves out.
    """
    pytest.importorskip("build", reason="building needs the `build` package (the docs extra)")
    source, out = tmp_path_factory.mktemp("source") / "tree", tmp_path_factory.mktemp("dist")
    ignored = shutil.ignore_patterns(".git", "*.egg-info", "runs", "build", "dist", "site", "*.pyc", *CACHES, ".venv*")
    shutil.copytree(ROOT, source, ignore=ignored)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,), (wheel,) = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    return sdist, wheel


def _needed_by_the_tests() -> set[str]:
    """What the suite imports or reads: the test folder, the examples, benchmarks and docs, and the root files."""
    root = ("LICENSE", "README.md", "CHANGELOG.md", "CONTRIBUTING.md", "Makefile", "pyproject.toml", "mkdocs.yml")
    files = {name for name in root if (ROOT / name).is_file()}
    for folder in ("src", "tests", "examples", "benchmarks", "docs"):
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT)
            skipped = any(
                part in CACHES or part.startswith(".venv") or part.endswith(".egg-info") for part in relative.parts
            )
            if path.is_file() and not skipped and path.suffix not in {".pyc", ".tmp"}:
                files.add(relative.as_posix())
    return files


@pytest.mark.slow
def test_sdist_carries_what_its_tests_need_and_no_caches(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        pkg_info = tar.extractfile(
            next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        )
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    assert f"\nVersion: {_literal_version()}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    for needed in (
        "tests/conftest.py",
        "tests/strategies.py",
        "tests/golden/cases.py",
        "tests/data/golden_rewards.npz",
        "examples/quickstart.py",
        "docs/api.md",
        "Makefile",
        "LICENSE",
    ):
        assert needed in names, needed
    missing = sorted(_needed_by_the_tests() - names)
    assert missing == [], f"the sdist's tests need files it does not ship: {missing[:20]}"
    stray = sorted(
        n
        for n in names
        if any(part in CACHES or part in {"runs", "site", "dist", "build"} for part in n.split("/")[:-1])
    )
    assert stray == [], f"caches or outputs in the sdist: {stray[:20]}"


@pytest.mark.slow
def test_wheel_holds_the_packages_licence_and_metadata_only(built: tuple[Path, Path]) -> None:
    sdist, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    tops = {name.split("/", 1)[0] for name in names}
    version = _literal_version()
    assert tops == {
        "adaptive_length_reward",
        "adaptive_length_reward_verl_plugin",
        f"adaptive_length_reward-{version}.dist-info",
    }, tops
    assert {
        "adaptive_length_reward/py.typed",
        "adaptive_length_reward_verl_plugin/py.typed",
        f"adaptive_length_reward-{version}.dist-info/licenses/LICENSE",
    } <= set(names)
    for line in (
        f"Version: {version}",
        "License-Expression: Apache-2.0",
        "Requires-Dist: pyyaml>=6.0.1",
        "Provides-Extra: transformers",
        f"Project-URL: Changelog, {REPO_URL}/blob/main/CHANGELOG.md",
    ):
        assert f"\n{line}\n" in metadata, line
    twine = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if "No module named twine" in twine.stderr:
        pytest.skip("twine check needs twine (the docs extra)")
    assert twine.returncode == 0, twine.stdout + twine.stderr
