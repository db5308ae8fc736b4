"""HTTP reward server for OpenRLHF's remote reward contract (``--reward.remote_url http://HOST:PORT/get_reward``).

``POST /get_reward`` takes ``{"query": [...], "prompts": [...], "labels": [...]}`` and returns ``{"rewards": [...],
"scores": [...], "extra_logs": {name: [...]}}``, like OpenRLHF's reference server (``openrlhf/cli/serve_rm.py``) and
client (``openrlhf/utils/agent.py::_fetch_rewards_via_http``), scored by
:class:`~adaptive_length_reward.adapters.openrlhf.OpenRLHFReward`. A malformed request gets HTTP 422 naming the
field (``{"detail": [{"loc": ["body", "labels", 0, "difficulty"], "msg": ..., "type": ...}]}``); a malformed
*completion* is scored. FastAPI + uvicorn (extra ``server``), imported on first use; see docs/openrlhf.md::

    ALR_SETTINGS=settings.yaml python -m adaptive_length_reward.adapters.openrlhf_server --host 127.0.0.1 --port 5000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import MissingExtraError, RewardInputError, field_path, import_optional
from .openrlhf import OpenRLHFReward
from .scoring import ENV_SETTINGS, finite_or_none

__all__ = ["RewardRequest", "create_app", "main"]

logger = logging.getLogger(__name__)

PROG = "alr-openrlhf-server"


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


def create_app(reward: OpenRLHFReward | None = None) -> Any:
    """A FastAPI application serving ``reward`` (default: :class:`OpenRLHFReward` configured from the environment).

    A request that cannot be scored gets HTTP 422 (:func:`unprocessable`); an unexpected error HTTP 500 with
    ``{"detail": "<error type>: <message>"}``, its traceback logged by this module's logger."""
    fastapi = import_optional("fastapi", extra="server", purpose="The OpenRLHF reward server")
    from fastapi.responses import JSONResponse

    from ..config import config_of

    reward = reward if reward is not None else OpenRLHFReward()
    if not isinstance(reward, OpenRLHFReward):
        raise TypeError(f"create_app: reward: expected an OpenRLHFReward, got {type(reward).__name__}")

    app = fastapi.FastAPI(title="adaptive-length-reward", description=__doc__)

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
    def get_reward(request: RewardRequest) -> dict[str, Any]:
        return reward.score(request.query, request.prompts, request.labels, convert=finite_or_none)

    @app.get("/health")  # type: ignore[untyped-decorator]
    def health() -> dict[str, Any]:
        return {"status": "ok", "reward": reward.__name__,
                "config": config_of(reward.reward).model_dump(mode="json")}

    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="OpenRLHF /get_reward server for adaptive-length-reward "
                                     "rewards. Settings: the ALR_* variables (docs/openrlhf.md), then these flags.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--settings", default=None, help="YAML/JSON adapter settings (ALR_SETTINGS)")
    parser.add_argument("--missing-difficulty", default=None, metavar="RULE",
                        help="a label without difficulty: 'error', a tier name or a value (ALR_MISSING_DIFFICULTY)")
    parser.add_argument("--missing-uncertainty", default=None, metavar="RULE",
                        help="a label without uncertainty where the budget needs one: 'error' or a value "
                        "(ALR_MISSING_UNCERTAINTY)")
    parser.add_argument("--response-marker", default=None, metavar="TEXT",
                        help="text before the response, backslash escapes decoded (ALR_RESPONSE_MARKER)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="for uvicorn and this library's loggers (default info)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``alr-openrlhf-server [--settings FILE] [--missing-difficulty RULE] [--port N] ...``.

    A bad configuration exits with status 2 and one line ``alr-openrlhf-server: error: ...`` on stderr."""
    parser = _parser()
    args = parser.parse_args(argv)
    # an application entry point: show the library's log records (the library itself configures no handler)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn = import_optional("uvicorn", extra="server", purpose="The OpenRLHF reward server")
    if args.settings:
        if not Path(args.settings).is_file():
            parser.error(f"--settings: expected an existing YAML or JSON file, got {args.settings!r}")
        os.environ[ENV_SETTINGS] = str(Path(args.settings).resolve())  # every worker process reads it
    for flag in ("missing_difficulty", "missing_uncertainty", "response_marker"):
        if getattr(args, flag) is not None:
            os.environ[f"ALR_{flag.upper()}"] = getattr(args, flag)
    try:
        create_app()  # build once here so a bad configuration fails before the server starts
    except (ValueError, TypeError, OSError, MissingExtraError) as error:
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {type(error).__name__}: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run("adaptive_length_reward.adapters.openrlhf_server:create_app", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level=args.log_level)


if __name__ == "__main__":  # pragma: no cover - exercised by the CLI test in a subprocess
    main()
