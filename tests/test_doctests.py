"""Every docstring example in the package runs (examples are documentation that cannot rot)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import adaptive_length_reward
from adaptive_length_reward.errors import MissingExtraError

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(adaptive_length_reward.__path__, prefix="adaptive_length_reward.")
    if not info.name.rsplit(".", 1)[-1].startswith("_") and not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", ["adaptive_length_reward", *MODULES])
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except MissingExtraError as error:  # only where an optional extra is absent; CI installs every extra
        pytest.skip(str(error))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
