"""Exceptions raised by the library, and the one place that turns a missing optional package into advice."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ConfigError", "MissingContextError", "MissingExtraError", "import_optional"]


class ConfigError(ValueError):
    """A component was configured with an invalid value.

    The message names the component, the field, what was expected and what was got, e.g.
    ``SoftLengthPenalty: beta: expected a number > 0, got -1.0``.
    """


class MissingContextError(KeyError):
    """A reward needs a batch column (``difficulty``, ``uncertainty``, ``group_ids``...) that is absent."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which ``pip install`` fixes it."""


def import_optional(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"torch"``) or raise :class:`MissingExtraError` naming ``purpose`` (what needs it)
    and the ``adaptive-length-reward`` ``extra`` that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - exercised only where the package is absent
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs the optional package '{top}', which is not installed: "
            f"pip install 'adaptive-length-reward[{extra}]'"
        ) from error
