"""Reward file for OpenRLHF: ``--reward.remote_url /path/to/openrlhf_reward_file.py``.

OpenRLHF loads this file by path and calls its module-level ``reward_func(queries, prompts, labels)``
(``openrlhf/utils/agent.py::SingleTurnAgentExecutor``). Configure it with environment variables set before
training starts (they reach OpenRLHF's Ray workers through ``--runtime-env`` or the shell):

* ``ALR_SETTINGS``: a YAML/JSON file of :class:`~adaptive_length_reward.adapters.scoring.AdapterSettings` fields;
* or single variables: ``ALR_REWARD_CONFIG`` (a reward config file; default PixelThink's preset),
  ``ALR_GROUND_TRUTH_KEY``, ``ALR_DIFFICULTY_KEY``, ``ALR_UNCERTAINTY_KEY``, ``ALR_RESPONSE_MARKER``.

Print this file's path with ``python -m adaptive_length_reward.adapters.openrlhf_reward_file``. The imports are
absolute because OpenRLHF loads the file outside its package.
"""

from adaptive_length_reward.adapters.openrlhf import reward_func

__all__ = ["reward_func"]

if __name__ == "__main__":
    print(__file__)
