"""Structure rules of the source tree (issue 11): no function in ``src/`` is longer than 80 lines, and every
library component declares its parameters (no hand-written ``__init__`` on a registered component)."""

from __future__ import annotations

import ast
from pathlib import Path

import adaptive_length_reward  # noqa: F401 - registers every component kind
from adaptive_length_reward.config import _REGISTRY, Component

SRC = Path(__file__).resolve().parents[1] / "src" / "adaptive_length_reward"
MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}::{node.name} ({lines} lines)")
    assert not long, long


def test_every_library_component_is_declared() -> None:
    handwritten = [
        cls.__qualname__
        for _, cls in _REGISTRY.values()
        if cls.__module__.startswith("adaptive_length_reward.")
        and cls.__qualname__ != "_Opaque"
        and (not issubclass(cls, Component) or "__init__" in vars(cls))
    ]
    assert not handwritten, handwritten
