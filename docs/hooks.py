"""mkdocs hooks for the docs site: the README as the home page, the CHANGELOG as a page (mkdocs.yml ``hooks:``).

Both files live at the repository root, where GitHub and the package index show them; the site builds its pages
from them at build time (nothing is copied into docs/), rewriting the README's ``docs/...`` links to the pages
they name so the same links work on GitHub and on the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
# (page in the site, file at the root)
PAGES = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}


def _rewrite_links(text: str) -> str:
    """``](docs/x.md)`` -> ``](x.md)``; ``](CHANGELOG.md)`` -> ``](changelog.md)``."""
    text = re.sub(r"\]\(docs/", "](", text)
    return re.sub(r"\]\(CHANGELOG\.md", "](changelog.md", text)


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for page, source in PAGES.items():
        content = _rewrite_links((ROOT / source).read_text(encoding="utf-8"))
        files.append(File.generated(config, page, content=content))
    return files
