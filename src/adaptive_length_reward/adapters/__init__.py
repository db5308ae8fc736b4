"""Adapters that plug library rewards into the trainers people already run: TRL, verl and OpenRLHF.

Each adapter is thin: it translates the framework's calling convention into a
:class:`~adaptive_length_reward.batch.RewardBatch` and back, and supplies what the framework does not pass
(reasoning length, difficulty, uncertainty). Importing this package loads no framework and no torch; each
framework module is imported on first use of one of its names:

=====================================  =========================================================================
name                                   module (extra that installs what it needs)
=====================================  =========================================================================
:class:`TRLReward`                     :mod:`.trl` (``adaptive-length-reward[trl]``)
:class:`AsyncTRLReward`                :mod:`.trl`
:class:`UncertaintyGRPOTrainer`        :mod:`.trl`
:func:`compute_score`                  :mod:`.verl` (``adaptive-length-reward[verl]``, see ``docs/verl.md``)
:class:`VerlComputeScore`              :mod:`.verl`
:class:`AdaptiveLengthRewardManager`   :mod:`.verl`
:class:`UncertaintySingleTurnAgentLoop` :mod:`.verl`
:func:`reward_func`                    :mod:`.openrlhf` (no framework needed; ``docs/openrlhf.md``)
:class:`OpenRLHFReward`                :mod:`.openrlhf`
:func:`create_app`                     :mod:`.openrlhf_server` (``adaptive-length-reward[server]``)
:class:`AdapterSettings`               :mod:`.scoring` (no extra)
=====================================  =========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AdapterSettings",
    "AdaptiveLengthRewardManager",
    "AsyncTRLReward",
    "OpenRLHFReward",
    "TRLReward",
    "UncertaintyGRPOTrainer",
    "UncertaintySingleTurnAgentLoop",
    "VerlComputeScore",
    "compute_score",
    "create_app",
    "reward_func",
]

_LAZY = {
    "AdapterSettings": "scoring",
    "TRLReward": "trl",
    "AsyncTRLReward": "trl",
    "UncertaintyGRPOTrainer": "trl",
    "compute_score": "verl",
    "VerlComputeScore": "verl",
    "AdaptiveLengthRewardManager": "verl",
    "UncertaintySingleTurnAgentLoop": "verl",
    "reward_func": "openrlhf",
    "OpenRLHFReward": "openrlhf",
    "create_app": "openrlhf_server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
