"""The docs site builds with ``mkdocs build --strict`` (no warning at all) and its API reference renders what the
library declares: every adapter name, and the constructor parameters of ``TRLReward`` and the uncertainty keywords
of ``UncertaintyGRPOTrainer``, read here from the runtime declarations (``Component.fields``), not from the HTML.

One real build into a temporary directory (about 10 s on two cores): mkdocs, mkdocs-material and mkdocstrings come
with the ``docs`` extra, which ``make venv`` installs.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (mkdocs) is not installed")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra (mkdocstrings[python]) is not installed")

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r'<tr class="doc-section-item">\s*<td>\s*<code>([^<]+)</code>\s*</td>(.*?)</tr>', re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-4000:]}"
    assert "WARNING" not in log, log
    return out


def _section(page: str, identifier: str) -> str:
    """The HTML of one documented object: from its heading to its members (or the next object's heading)."""
    start = page.find(f'id="{identifier}"')
    assert start >= 0, f"{identifier} is not rendered"
    ends = [
        i
        for i in (
            page.find('<div class="doc doc-children">', start),
            page.find('class="doc doc-heading"', start + len(identifier) + 10),
        )
        if i >= 0
    ]
    return page[start : min(ends)] if ends else page[start:]


def _table(section: str, title: str) -> dict[str, str]:
    """``{name: description text}`` of a rendered docstring table ("Parameters:", "Other Parameters:")."""
    start = section.find(f'<span class="doc-section-title">{title}</span>')
    assert start >= 0, f"no {title!r} table"
    table = section[start : section.find("</table>", start)]
    return {name: _text(rest.split("</td>", 2)[1]) for name, rest in ROW.findall(table)}


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _declared(cls: type) -> dict[str, str]:
    return {f.key: f.spec.doc for f in cls.fields()}  # type: ignore[attr-defined]


def test_every_adapter_name_is_rendered(site: Path) -> None:
    import adaptive_length_reward.adapters as adapters

    page = (site / "reference" / "adapters.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(adaptive_length_reward\.adapters\.[\w.]+)"', page))
    for name in adapters.__all__:
        assert any(anchor.endswith(f".{name}") for anchor in anchors), f"adapters.{name} has no entry"


def test_trl_reward_parameters_render(site: Path) -> None:
    from adaptive_length_reward.adapters.trl import TRLReward

    page = (site / "reference" / "adapters.html").read_text(encoding="utf-8")
    for cls in ("TRLReward", "AsyncTRLReward"):
        rendered = _table(_section(page, f"adaptive_length_reward.adapters.trl.{cls}"), "Parameters:")
        declared = _declared(TRLReward)
        assert list(rendered) == list(declared)
        assert rendered == {key: doc.replace("`", "") for key, doc in declared.items()}


def test_uncertainty_trainer_keywords_render(site: Path) -> None:
    pytest.importorskip("trl")
    from adaptive_length_reward.adapters.trl_trainer import UncertaintyTrainerConfig

    page = (site / "reference" / "adapters.html").read_text(encoding="utf-8")
    section = _section(page, "adaptive_length_reward.adapters.trl_trainer.UncertaintyGRPOTrainer")
    assert list(_table(section, "Parameters:")) == ["*args", "**kwargs"]
    keywords = _table(section, "Other Parameters:")
    declared = _declared(UncertaintyTrainerConfig)
    assert list(keywords) == list(declared)
    assert "uncertainty_measure" in keywords and "uncertainty_source" in keywords
    assert keywords == {key: doc for key, doc in declared.items()}


def test_every_component_lists_its_parameters(site: Path) -> None:
    """Each declared parameter of the top-level components appears in its class's Parameters table."""
    import inspect

    import adaptive_length_reward as alr
    from adaptive_length_reward.config import Component

    pages = {p: p.read_text(encoding="utf-8") for p in (site / "reference").glob("*.html")}
    checked = 0
    for name in alr.__all__:
        cls = getattr(alr, name)
        if not (inspect.isclass(cls) and issubclass(cls, Component) and cls.fields()):
            continue
        identifier = f"{cls.__module__}.{cls.__qualname__}"
        page = next((text for text in pages.values() if f'id="{identifier}"' in text), None)
        assert page is not None, f"{identifier} is not rendered"
        assert list(_table(_section(page, identifier), "Parameters:")) == list(_declared(cls)), identifier
        checked += 1
    assert checked > 30


def test_guides_and_home_page_render(site: Path) -> None:
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Quickstart" in home
    assert 'href="trl.html"' in home and 'href="docs/' not in home  # README's docs/ links point at the pages
    guide = (site / "trl.html").read_text(encoding="utf-8")
    # the guide's `TRLReward` / `UncertaintyGRPOTrainer` lead to their entries (docs/hooks.py)
    assert 'href="reference/adapters.html#adaptive_length_reward.adapters.trl.TRLReward"' in guide
    assert 'href="reference/adapters.html#adaptive_length_reward.adapters.trl_trainer.UncertaintyGRPOTrainer"' in guide
    assert not (site / "api.html").exists()  # the one-page summary stays on GitHub; the site has the reference
