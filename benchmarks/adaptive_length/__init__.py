"""A controlled experiment: does PixelThink's difficulty- and uncertainty-aware soft length penalty make a policy
think less on easy inputs while keeping accuracy, and how sensitive is it to its settings?

One command runs everything on a CPU (about 20 minutes, one thread) and writes ``docs/experiments/``::

    python -m benchmarks.adaptive_length.run --seed 0
    python -m benchmarks.adaptive_length.run --seed 0 --quick   # the same code path in seconds

Modules:

- :mod:`.task`: the procedural task (chained modular arithmetic; the number of steps is the difficulty), its
  reference traces (essential steps, redundant re-checks, direct answers) and scoring.
- :mod:`.models`: word-level tokenizer and tiny Qwen2 policy built from a config (nothing downloaded).
- :mod:`.sft`: supervised fine-tuning on reference traces, so GRPO starts from non-zero rewards.
- :mod:`.variants`: the rewards compared (library classes only) and PixelThink's constants in task units.
- :mod:`.grpo`: GRPO with TRL through :class:`adaptive_length_reward.adapters.trl.TRLReward` and
  :class:`~adaptive_length_reward.adapters.trl.UncertaintyGRPOTrainer`.
- :mod:`.evaluation`: sampled and greedy evaluation per difficulty tier; the policy's uncertainty.
- :mod:`.report`: JSON, markdown and PNG plots; ``python -m benchmarks.adaptive_length.report`` rewrites the
  markdown and plots from the JSON.
- :mod:`.run`: the command line.
"""
