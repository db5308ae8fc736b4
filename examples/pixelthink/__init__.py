"""Helpers of the worked example ``examples/pixelthink_grpo.py`` (not part of the installed library).

``scenes`` (procedural dataset), ``sources`` (RefCOCOg-9k / ReasonSeg loaders), ``prompts`` (Seg-Zero's prompt),
``models`` (policy and SAM, tiny or from local checkpoints), ``rewards`` (the ablations), ``training`` (TRL GRPO),
``evaluation`` (greedy decode + SAM + metrics, timed) and ``report`` (plots and markdown).
"""
