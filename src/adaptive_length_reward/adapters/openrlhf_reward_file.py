"""Reward file for OpenRLHF: ``--reward.remote_url /path/to/openrlhf_reward_file.py`` (docs/openrlhf.md).

OpenRLHF loads this file by path and calls its module-level ``reward_func(queries, prompts, labels)``
(``openrlhf/utils/agent.py::SingleTurnAgentExecutor``); the ``ALR_*`` environment variables of
[`scoring`][] configure it (default PixelThink's preset). Print this file's path
with ``python -m adaptive_length_reward.adapters.openrlhf_reward_file``. The imports are absolute because OpenRLHF
loads the file outside its package.
"""

from adaptive_length_reward.adapters.openrlhf import reward_func

__all__ = ["reward_func"]

if __name__ == "__main__":
    print(__file__)
