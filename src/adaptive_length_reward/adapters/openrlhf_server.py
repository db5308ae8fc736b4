"""HTTP reward server for OpenRLHF's remote reward contract (``--reward.remote_url http://HOST:PORT/get_reward``).

``POST /get_reward`` takes ``{"query": [...], "prompts": [...], "labels": [...]}`` and returns ``{"rewards": [...],
"scores": [...], "extra_logs": {name: [...]}}``, like OpenRLHF's reference server (``openrlhf/cli/serve_rm.py``) and
client (``openrlhf/utils/agent.py::_fetch_rewards_via_http``), scored by
:class:`~adaptive_length_reward.adapters.openrlhf.OpenRLHFReward`. A malformed request gets HTTP 422 naming the
field (``{"detail": [{"loc": ["body", "labels", 0, "difficulty"], "msg": ..., "type": ...}]}``); a malformed
*completion* is scored. Limits (:class:`ServerLimits`): a body over ``max_body_bytes`` gets 413 before it is read
(from its ``Content-Length``, else while reading), more than ``max_batch`` queries 413, a body not received within
``body_timeout`` 408, a request whose headers take longer than ``header_timeout`` is dropped; with an
``auth_token`` every request needs ``Authorization: Bearer <token>`` (else 401). FastAPI + uvicorn (extra
``server``), imported on first use; see docs/openrlhf.md::

    ALR_SETTINGS=settings.yaml python -m adaptive_length_reward.adapters.openrlhf_server --host 127.0.0.1 --port 5000
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .._cli import Parser, add_version, parameter_error
from ..errors import MissingExtraError, RewardInputError, field_path, import_optional
from .openrlhf import OpenRLHFReward
from .scoring import ENV_SETTINGS, finite_or_none

__all__ = ["RewardRequest", "ServerLimits", "create_app", "http_protocol", "main"]

logger = logging.getLogger(__name__)

PROG = "alr-openrlhf-server"


@dataclass(frozen=True)
class ServerLimits:
    """What the reward server accepts; each field defaults to its ``ALR_*`` environment variable, else the
    value below (:meth:`from_env`).

    Attributes:
        max_body_bytes: largest request body (``ALR_MAX_BODY_BYTES``, 16 MiB); larger gets 413 without being
            read (a ``Content-Length`` over it is refused at once; a body without one is counted as it arrives).
        max_batch: most queries in one request (``ALR_MAX_BATCH``, 16384); more gets 413.
        header_timeout: seconds from a request's first byte to the end of its headers (``ALR_HEADER_TIMEOUT``, 10);
            a slower client's connection is closed (needs the server's :func:`http_protocol`, which the command
            line uses).
        body_timeout: seconds from the end of the headers to the end of the body (``ALR_BODY_TIMEOUT``, 60); a
            slower body gets 408 and the connection is closed.
        auth_token: when set (``ALR_AUTH_TOKEN``), every request needs ``Authorization: Bearer <token>``; else 401.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_batch: int = 16384
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    auth_token: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerLimits: {name}: expected an int >= 1, got {value!r}")
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"ServerLimits: {name}: expected a number of seconds > 0, got {value!r}")
        if self.auth_token is not None and (not isinstance(self.auth_token, str) or not self.auth_token.strip()):
            raise ValueError("ServerLimits: auth_token: expected a non-empty string or None, got an empty one")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerLimits:
        """Limits from ``ALR_MAX_BODY_BYTES``, ``ALR_MAX_BATCH``, ``ALR_HEADER_TIMEOUT``, ``ALR_BODY_TIMEOUT`` and
        ``ALR_AUTH_TOKEN`` (unset or empty: the default), then ``overrides`` (``None`` values ignored).

        Raises:
            ValueError: a value that is not a number of the right kind, naming the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = environ.get(f"ALR_{f.name.upper()}", "").strip()
            if not text:
                continue
            if f.name == "auth_token":
                values[f.name] = text
                continue
            convert = int if f.name in ("max_body_bytes", "max_batch") else float
            try:
                values[f.name] = convert(text)
            except ValueError:
                raise ValueError(
                    f"ALR_{f.name.upper()}: expected {'an integer' if convert is int else 'a number'}, got {text!r}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class RewardRequest(BaseModel):
    """Body of ``POST /get_reward`` (OpenRLHF's client sends all three lists; other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


def unprocessable(error: RewardInputError) -> dict[str, Any]:
    """The 422 body for ``error``, in FastAPI's own validation-error shape: ``{"detail": [{"loc": ["body", field,
    ...], "msg": ..., "type": ...}]}`` (the reward function's ``queries`` is the request's ``query``).

    >>> unprocessable(RewardInputError(("labels", 0, "difficulty"), "missing", kind="missing"))
    {'detail': [{'loc': ['body', 'labels', 0, 'difficulty'], 'msg': 'missing', 'type': 'missing'}]}
    """
    loc = ["query" if part == "queries" else part for part in error.loc[:1]] + list(error.loc[1:])
    return {"detail": [{"loc": ["body", *loc], "msg": error.message, "type": error.kind}]}


class _Guard:
    """ASGI middleware enforcing :class:`ServerLimits` before the application reads anything: the token, the
    declared body size (413 at once, without reading), the body size as it arrives, and the body deadline.

    A refusal is ``{"detail": "<message>"}`` with ``Connection: close`` (the rest of a refused body is not read)
    and a WARNING log line."""

    def __init__(self, app: Any, limits: ServerLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        refusal = self._refusal(headers)
        if refusal is not None:
            await _refuse(scope, send, *refusal)
        else:
            await self.app(scope, self._guarded(receive), send)

    def _refusal(self, headers: Mapping[bytes, bytes]) -> tuple[int, str, dict[str, str]] | None:
        token = self.limits.auth_token
        if token is not None:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return (
                    401,
                    "expected an 'Authorization: Bearer <token>' header with the server's token",
                    {"WWW-Authenticate": "Bearer"},
                )
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return 400, f"Content-Length: expected a number of bytes, got {length[:40]!r}", {}
            if int(length) > self.limits.max_body_bytes:
                return (
                    413,
                    (
                        f"request body: expected at most {self.limits.max_body_bytes} bytes (max_body_bytes, "
                        f"ALR_MAX_BODY_BYTES), got Content-Length {int(length)}"
                    ),
                    {},
                )
        return None

    def _guarded(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> Callable[[], Awaitable[dict[str, Any]]]:
        from starlette.exceptions import HTTPException

        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.body_timeout
        received = 0
        close = {"Connection": "close"}

        async def guarded() -> dict[str, Any]:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise HTTPException(
                    408,
                    f"request body: not received within {limits.body_timeout:g} s (body_timeout, ALR_BODY_TIMEOUT)",
                    headers=close,
                ) from None
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limits.max_body_bytes:
                    raise HTTPException(
                        413,
                        f"request body: expected at most {limits.max_body_bytes} bytes "
                        "(max_body_bytes, ALR_MAX_BODY_BYTES), got more",
                        headers=close,
                    )
            return message

        return guarded


async def _refuse(
    scope: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: int,
    message: str,
    headers: Mapping[str, str],
) -> None:
    logger.warning("%s %s: %d %s", scope.get("method"), scope.get("path"), status, message)
    body = json.dumps({"detail": message}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def create_app(reward: OpenRLHFReward | None = None, *, limits: ServerLimits | None = None) -> Any:
    """A FastAPI application serving ``reward`` (default: :class:`OpenRLHFReward` configured from the environment)
    within ``limits`` (default: :meth:`ServerLimits.from_env`).

    A request that cannot be scored gets HTTP 422 (:func:`unprocessable`); an unexpected error HTTP 500 with
    ``{"detail": "<error type>: <message>"}``, its traceback logged by this module's logger. A refused request
    (see :class:`ServerLimits`) gets 400, 401, 408 or 413 with ``{"detail": "<message>"}``."""
    fastapi = import_optional("fastapi", extra="server", purpose="The OpenRLHF reward server")
    from fastapi.responses import JSONResponse

    from ..config import config_of

    reward = reward if reward is not None else OpenRLHFReward()
    if not isinstance(reward, OpenRLHFReward):
        raise TypeError(f"create_app: reward: expected an OpenRLHFReward, got {type(reward).__name__}")
    limits = limits if limits is not None else ServerLimits.from_env()
    if not isinstance(limits, ServerLimits):
        raise TypeError(f"create_app: limits: expected a ServerLimits, got {type(limits).__name__}")

    app = fastapi.FastAPI(title="adaptive-length-reward", description=__doc__)
    app.add_middleware(_Guard, limits=limits)
    app.state.limits = limits

    @app.exception_handler(RewardInputError)  # type: ignore[untyped-decorator]
    async def _unprocessable(request: Any, error: RewardInputError) -> Any:
        # OpenRLHF's client retries a failed request 5 times, then leaves the reward None: say why here
        content = unprocessable(error)
        detail = content["detail"][0]
        logger.warning("POST %s: 422 %s: %s", request.url.path, field_path(detail["loc"][1:]), detail["msg"])
        return JSONResponse(status_code=422, content=content)

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    async def _failed(request: Any, error: Exception) -> Any:  # Starlette logs the traceback after this
        return JSONResponse(status_code=500, content={"detail": f"{type(error).__name__}: {error}"})

    @app.post("/get_reward")  # type: ignore[untyped-decorator]
    def get_reward(request: RewardRequest) -> Any:
        if len(request.query) > limits.max_batch:
            message = (
                f"query: expected at most {limits.max_batch} items (max_batch, ALR_MAX_BATCH), got {len(request.query)}"
            )
            logger.warning("POST /get_reward: 413 %s", message)
            return JSONResponse(status_code=413, content={"detail": message})
        return reward.score(request.query, request.prompts, request.labels, convert=finite_or_none)

    @app.get("/health")  # type: ignore[untyped-decorator]
    def health() -> dict[str, Any]:
        return {"status": "ok", "reward": reward.__name__, "config": config_of(reward.reward).model_dump(mode="json")}

    return app


def http_protocol(header_timeout: float | None = None) -> type:
    """uvicorn's HTTP protocol class (``uvicorn.protocols.http.auto``) with a header deadline: a connection whose
    request headers are not complete ``header_timeout`` seconds (default :attr:`ServerLimits.header_timeout`, from
    ``ALR_HEADER_TIMEOUT``) after the request's first byte is closed. uvicorn itself has no such limit (its
    keep-alive timeout restarts with every byte). Pass it as ``uvicorn.Config(app, http=http_protocol())``; the
    command line uses it by the import string ``adaptive_length_reward.adapters.openrlhf_server:HeaderTimeoutProtocol``.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    timeout = ServerLimits.from_env(header_timeout=header_timeout).header_timeout

    class HeaderTimeoutProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        """uvicorn's HTTP protocol, closing connections whose request headers arrive too slowly."""

        def connection_made(self, transport: Any) -> None:
            self._header_timer: asyncio.TimerHandle | None = None
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            # a request's first bytes: nothing in progress, or the last response sent (a keep-alive connection)
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._header_timer = self.loop.call_later(timeout, self._headers_overdue, self.cycle)
            super().data_received(data)

        def _headers_overdue(self, cycle: Any) -> None:
            self._header_timer = None
            if self.cycle is cycle and not self.transport.is_closing():  # no new request since the timer started
                logger.warning(
                    "a client sent no complete request headers within %g s (header_timeout, "
                    "ALR_HEADER_TIMEOUT): connection closed",
                    timeout,
                )
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def __getattr__(name: str) -> Any:
    """``HeaderTimeoutProtocol``, built on first use (uvicorn is an optional dependency); see
    :func:`http_protocol`."""
    if name == "HeaderTimeoutProtocol":
        return http_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _number(kind: type, low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` number in ``[low, high]`` (argparse names the flag in its message)."""

    def read(text: str) -> Any:
        value = kind(text)
        if not (low <= value < math.inf and (high is None or value <= high)):
            raise ValueError(text)
        return value

    read.__name__ = f"{kind.__name__} >= {low:g}" if high is None else f"{kind.__name__} in [{low:g}, {high:g}]"
    return read


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError(text)
    return value


_seconds.__name__ = "number of seconds > 0"


def _text(text: str) -> str:
    """An argparse type: non-empty text."""
    if not text:
        raise ValueError(text)
    return text


_text.__name__ = "non-empty text"

#: The flags that set an ``ALR_*`` variable (the variable's name is ``ALR_`` + the name in capitals).
_ENV_FLAGS = (
    "missing_difficulty",
    "missing_uncertainty",
    "response_marker",
    "max_body_bytes",
    "max_batch",
    "header_timeout",
    "body_timeout",
    "auth_token",
)


def _env_default(name: str, fallback: Any) -> str:
    return f"(default: ${'ALR_' + name.upper()}, else {fallback})".replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="OpenRLHF /get_reward server for adaptive-length-reward "
        "rewards. Settings: the ALR_* variables (docs/openrlhf.md), then these flags.",
    )
    add_version(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=_number(int, 0, 65535), default=5000, help="port")
    parser.add_argument(
        "--settings",
        default=None,
        metavar="FILE",
        help="YAML/JSON adapter settings (default: $ALR_SETTINGS, else none)",
    )
    parser.add_argument(
        "--missing-difficulty",
        default=None,
        metavar="RULE",
        help="a label without difficulty: 'error', a tier name or a value "
        + _env_default("missing_difficulty", "the reward's rule"),
    )
    parser.add_argument(
        "--missing-uncertainty",
        default=None,
        metavar="RULE",
        help="a label without uncertainty where the budget needs one: 'error' or a value "
        + _env_default("missing_uncertainty", "the reward's rule"),
    )
    parser.add_argument(
        "--response-marker",
        type=_text,
        default=None,
        metavar="TEXT",
        help="text before the response, backslash escapes decoded " + _env_default("response_marker", "none"),
    )
    parser.add_argument("--workers", type=_number(int, 1), default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="for uvicorn and this library's loggers",
    )
    _add_limits(parser.add_argument_group("limits (docs/openrlhf.md)"))
    return parser


def _add_limits(limits: Any) -> None:
    """The :class:`ServerLimits` flags; each defaults to its ``ALR_*`` variable, else the built-in value."""
    defaults = ServerLimits()
    limits.add_argument(
        "--max-body-bytes",
        type=_number(int, 1),
        default=None,
        metavar="N",
        help="largest request body in bytes; larger gets 413 unread "
        + _env_default("max_body_bytes", defaults.max_body_bytes),
    )
    limits.add_argument(
        "--max-batch",
        type=_number(int, 1),
        default=None,
        metavar="N",
        help="most queries per request; more gets 413 " + _env_default("max_batch", defaults.max_batch),
    )
    limits.add_argument(
        "--header-timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds for a request's headers; slower is dropped "
        + _env_default("header_timeout", f"{defaults.header_timeout:g}"),
    )
    limits.add_argument(
        "--body-timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds for a request's body; slower gets 408 "
        + _env_default("body_timeout", f"{defaults.body_timeout:g}"),
    )
    limits.add_argument(
        "--auth-token",
        type=_text,
        default=None,
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN'; prefer the variable, a flag is visible in the "
        "process list " + _env_default("auth_token", "no token"),
    )


def _user_facing(error: BaseException, args: argparse.Namespace) -> str:
    """One line: an error about a setting that a flag or an ``ALR_*`` variable gave names that flag or variable
    (not the reward's internal path to it); any other keeps its type and message (e.g. a settings file's)."""
    message = " ".join(str(error).split())
    parameter = parameter_error(message)
    if parameter is not None and parameter[0] in _ENV_FLAGS:
        name, expected = parameter
        if getattr(args, name) is not None:
            return f"--{name.replace('_', '-')}: {expected}"
        if os.environ.get(f"ALR_{name.upper()}", "").strip():
            return f"ALR_{name.upper()}: {expected}"
    return f"{type(error).__name__}: {message}"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``alr-openrlhf-server [--settings FILE] [--missing-difficulty RULE] [--port N] ...``.

    A usage error exits with status 2, the usage and one ``alr-openrlhf-server: error: ...`` line; a bad
    configuration (flags, ``ALR_*`` variables, settings file) exits 2 with that one line alone, before the server
    starts."""
    parser = _parser()
    args = parser.parse_args(argv)
    # an application entry point: show the library's log records (the library itself configures no handler)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.settings:
        if not Path(args.settings).is_file():
            parser.error(f"--settings: expected an existing YAML or JSON file, got {args.settings!r}")
        os.environ[ENV_SETTINGS] = str(Path(args.settings).resolve())  # every worker process reads it
    for flag in _ENV_FLAGS:
        if getattr(args, flag) is not None:
            os.environ[f"ALR_{flag.upper()}"] = str(getattr(args, flag))
    try:
        uvicorn = import_optional("uvicorn", extra="server", purpose="The OpenRLHF reward server")
        create_app()  # build once here so a bad configuration fails before the server starts
    except (ValueError, TypeError, OSError, MissingExtraError) as error:
        print(f"{PROG}: error: {_user_facing(error, args)}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        "adaptive_length_reward.adapters.openrlhf_server:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        http="adaptive_length_reward.adapters.openrlhf_server:HeaderTimeoutProtocol",
    )


if __name__ == "__main__":  # pragma: no cover - exercised by the CLI test in a subprocess
    main()
