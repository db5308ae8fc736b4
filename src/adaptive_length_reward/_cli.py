"""Conventions shared by the console scripts (``alr-difficulty``, ``alr-rscore``, ``alr-openrlhf-server``):
``--version``, defaults shown by the help formatter, and errors in the command line's words."""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from . import __version__

__all__ = ["HelpFormatter", "Parser", "add_version", "flag_names", "parameter_error"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults-showing formatter, quieter: no ``(default: None)`` / ``(default: False)``, a list
    default as its values separated by spaces (as typed on the command line)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
            or isinstance(action, argparse._VersionAction)
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``PROG: error: MESSAGE (see PROG --help)``, exit
    status 2 (argparse's own would print the whole usage first, 25 lines for a subcommand with many options); its
    help shows defaults (:class:`HelpFormatter`) unless another formatter is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: prints ``<prog> <package version>`` and exits 0."""
    parser.add_argument("--version", action="version", version=f"{parser.prog} {__version__}")


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each destination's long option (``missing`` -> ``--missing``)."""
    return {action.dest: action.option_strings[-1] for action in parser._actions if action.option_strings}


#: A library message about a parameter: ``Owner: [path: ...] name[.item]: expected ...``.
_PARAMETER_ERROR = re.compile(r"^(?:[\w.\[\]/-]+: )*?(\w+)((?:\.\w+|\[\w+\])*): (expected .*)$", re.DOTALL)


def parameter_error(message: str) -> tuple[str, str] | None:
    """``(name, "expected ...")`` of a library message about the parameter ``name`` (``"item: expected ..."`` for
    one of its items), else None.

    >>> parameter_error("Product: terms.1: TieredBudget: missing_difficulty: expected 'error', got 'x'")
    ('missing_difficulty', "expected 'error', got 'x'")
    >>> parameter_error("JudgedDifficulty: weights.scene: expected a valid number, got 'x'")
    ('weights', "scene: expected a valid number, got 'x'")
    """
    match = _PARAMETER_ERROR.match(message)
    if match is None:
        return None
    item = match.group(2).lstrip(".")
    return match.group(1), f"{item}: {match.group(3)}" if item else match.group(3)
