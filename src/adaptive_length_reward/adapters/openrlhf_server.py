"""HTTP reward server for OpenRLHF's remote reward contract (``--reward.remote_url http://HOST:PORT/get_reward``).

``POST /get_reward`` takes ``{"query": [...], "prompts": [...], "labels": [...]}`` and returns ``{"rewards": [...],
"scores": [...], "extra_logs": {name: [...]}}``, like OpenRLHF's reference server (``openrlhf/cli/serve_rm.py``) and
client (``openrlhf/utils/agent.py::_fetch_rewards_via_http``), scored by
:class:`~adaptive_length_reward.adapters.openrlhf.OpenRLHFReward`. A malformed request gets HTTP 422 naming the
field; a malformed *completion* is scored.
FastAPI + uvicorn (extra ``server``), imported on first use; see docs/openrlhf.md::

    ALR_SETTINGS=settings.yaml python -m adaptive_length_reward.adapters.openrlhf_server --host 127.0.0.1 --port 5000
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import import_optional
from .openrlhf import OpenRLHFReward
from .scoring import ENV_SETTINGS, finite_or_none

__all__ = ["RewardRequest", "create_app", "main"]


class RewardRequest(BaseModel):
    """Body of ``POST /get_reward`` (OpenRLHF's client sends all three lists; other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


def create_app(reward: OpenRLHFReward | None = None) -> Any:
    """A FastAPI application serving ``reward`` (default: :class:`OpenRLHFReward` configured from the environment)."""
    fastapi = import_optional("fastapi", extra="server", purpose="The OpenRLHF reward server")
    from ..config import config_of

    reward = reward if reward is not None else OpenRLHFReward()
    if not isinstance(reward, OpenRLHFReward):
        raise TypeError(f"create_app: reward: expected an OpenRLHFReward, got {type(reward).__name__}")

    app = fastapi.FastAPI(title="adaptive-length-reward", description=__doc__)

    @app.post("/get_reward")  # type: ignore[untyped-decorator]
    def get_reward(request: RewardRequest) -> dict[str, Any]:
        try:  # NaN/inf are not JSON: null (only a reward documented to return NaN produces them)
            return reward.score(request.query, request.prompts, request.labels, convert=finite_or_none)
        except (ValueError, TypeError) as error:
            if not str(error).startswith("OpenRLHF reward:"):
                raise  # a programming or configuration error: a 500 with its traceback in the server log
            raise fastapi.HTTPException(status_code=422, detail=str(error)) from error

    @app.get("/health")  # type: ignore[untyped-decorator]
    def health() -> dict[str, Any]:
        return {"status": "ok", "reward": reward.__name__,
                "config": config_of(reward.reward).model_dump(mode="json")}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m adaptive_length_reward.adapters.openrlhf_server [--settings FILE] [--port N]``."""
    parser = argparse.ArgumentParser(description="OpenRLHF /get_reward server for adaptive-length-reward rewards.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--settings", default=None, help="YAML/JSON adapter settings (default: ALR_* variables)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    args = parser.parse_args(argv)
    uvicorn = import_optional("uvicorn", extra="server", purpose="The OpenRLHF reward server")
    if args.settings:
        if not Path(args.settings).is_file():
            parser.error(f"--settings: expected an existing YAML or JSON file, got {args.settings!r}")
        os.environ[ENV_SETTINGS] = str(Path(args.settings).resolve())  # every worker process reads it
    create_app()  # build once here so a bad configuration fails before the server starts
    uvicorn.run("adaptive_length_reward.adapters.openrlhf_server:create_app", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level="info")


if __name__ == "__main__":  # pragma: no cover - exercised by the CLI test in a subprocess
    main()
