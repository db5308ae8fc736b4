"""Exceptions raised by the library, and the one place that turns a missing optional package into advice."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

__all__ = [
    "ConfigError",
    "FatalRewardError",
    "MissingContextError",
    "MissingExtraError",
    "RewardInputError",
    "field_path",
    "import_optional",
]


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


def field_path(loc: Sequence[str | int]) -> str:
    """``("labels", 0, "difficulty")`` -> ``'labels[0].difficulty'``.

    >>> field_path(("labels", 2, "difficulty")), field_path(("query",))
    ('labels[2].difficulty', 'query')
    """
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class RewardInputError(ValueError):
    """What a framework passed a reward cannot be scored: a missing or malformed label, prompt or query (a
    pipeline problem, never a model output). ``loc`` names the field as a path, e.g. ``("labels", 0,
    "difficulty")``; ``message`` says what was expected and got. ``str()`` is ``"<field>: <message>"``; the OpenRLHF
    server answers it with HTTP 422 and ``{"detail": [{"loc": ["body", *loc], "msg": message, ...}]}``.

    >>> str(RewardInputError(("labels", 0, "difficulty"), "expected a number, got 'hard'"))
    "labels[0].difficulty: expected a number, got 'hard'"
    """

    def __init__(self, loc: Sequence[str | int], message: str, *, kind: str = "value_error") -> None:
        self.loc = tuple(loc)
        self.message = message
        self.kind = kind
        super().__init__(f"{field_path(self.loc)}: {message}")


class FatalRewardError(BaseException):
    """A reward-file call that cannot be scored, raised through the framework's catch-all handler.

    OpenRLHF 0.11.2 (``openrlhf/utils/agent.py::SingleTurnAgentExecutor.execute``) catches every ``Exception`` a
    reward function raises, logs it at INFO level and leaves the sample without a reward (``Experience.rewards``
    None), so the run continues and fails later with an unrelated message. This error derives from
    ``BaseException`` (as ``asyncio.CancelledError`` and pytest's ``Failed`` do) so that ``except Exception`` lets
    it through: the rollout stops and Ray reports ``RayTaskError(FatalRewardError)`` with this message. The error
    that could not be scored is its ``__cause__`` and leads its message.
    """


def import_optional(module: str, *, extra: str | None, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"torch"``) or raise [`MissingExtraError`][] naming ``purpose`` (what needs it)
    and the fix: the ``adaptive-length-reward`` ``extra`` that installs it or, with ``extra=None``, the pip
    ``package`` (default the module's top-level name)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - exercised only where the package is absent
        top = module.split(".")[0]
        fix = f"pip install 'adaptive-length-reward[{extra}]'" if extra else f"pip install {package or top}"
        raise MissingExtraError(
            f"{purpose} needs the optional package '{top}', which is not installed: {fix}"
        ) from error
