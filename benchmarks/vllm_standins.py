"""Stand-ins for vLLM's log-prob containers (vLLM ships CUDA-only wheels and cannot be installed here).

Same fields as ``vllm.logprobs.Logprob`` and ``vllm.logprobs.FlatLogprobs``; used by ``benchmarks/uncertainty.py``
and ``tests/test_uncertainty_topk.py`` to feed the top-k estimators vLLM-shaped input.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Logprob:
    """Same fields as ``vllm.logprobs.Logprob``."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclasses.dataclass
class FlatLogprobs:
    """Same layout as ``vllm.logprobs.FlatLogprobs`` (flat lists, per-position start/end indices)."""

    start_indices: list[int]
    end_indices: list[int]
    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int | None]
