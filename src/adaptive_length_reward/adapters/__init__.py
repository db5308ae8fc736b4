"""Adapters that plug library rewards into the trainers people already run: TRL, verl and OpenRLHF.

Each adapter translates the framework's calling convention into a [`RewardBatch`][]
and back, and supplies what the framework does not pass (reasoning length, difficulty, uncertainty). Importing this
package loads no framework and no torch: each name of ``__all__`` is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AdapterSettings": "scoring",
    "TRLReward": "trl",
    "AsyncTRLReward": "trl",
    "UncertaintyGRPOTrainer": "trl_trainer",
    "compute_score": "verl",
    "VerlComputeScore": "verl",
    "AdaptiveLengthRewardManager": "verl",
    "UncertaintySingleTurnAgentLoop": "verl_agent_loop",
    "MarginSingleTurnAgentLoop": "verl_agent_loop",
    "AdaptiveLengthRateLimitedRewardManager": "verl",
    "AdaptiveLengthLegacyRewardManager": "verl",
    "reward_func": "openrlhf",
    "OpenRLHFReward": "openrlhf",
    "create_app": "openrlhf_server",
    "ThinkingBudgetProcessor": "thinking_budget",
    "thinking_budgets": "thinking_budget",
    "vllm_sampling_kwargs": "thinking_budget",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
