"""Every docstring example in the package runs (examples are documentation that cannot rot)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from typing import Any

import pytest

import adaptive_length_reward
from adaptive_length_reward.errors import MissingExtraError

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(adaptive_length_reward.__path__, prefix="adaptive_length_reward.")
    if not info.name.rsplit(".", 1)[-1].startswith("_") and not info.name.endswith("__main__")
)


IMPORT = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)")


def _imported_by_examples(module: Any) -> set[str]:
    """The top-level packages the module's docstring examples import."""
    tests = doctest.DocTestFinder().find(module)
    return {m.group(1) for t in tests for e in t.examples if (m := IMPORT.match(e.source))}


@pytest.mark.parametrize("name", ["adaptive_length_reward", *MODULES])
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except MissingExtraError as error:  # only where an optional extra is absent; CI installs every extra
        pytest.skip(str(error))
    absent = sorted(name for name in _imported_by_examples(module) if importlib.util.find_spec(name) is None)
    if absent:  # only where an optional extra is absent; CI installs every extra, so this never skips there
        pytest.skip(f"{name}'s examples import {', '.join(absent)}, not installed here")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
