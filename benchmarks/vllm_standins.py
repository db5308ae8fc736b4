"""Stand-ins for vLLM's output types (vLLM ships CUDA-only wheels and cannot be installed here).

Same fields as ``vllm.logprobs.Logprob``, ``vllm.logprobs.FlatLogprobs``, ``vllm.outputs.CompletionOutput`` and
``vllm.outputs.RequestOutput``; used by ``benchmarks/uncertainty.py``, ``tests/test_uncertainty_topk.py`` and
``tests/test_uncertainty_vllm_trl.py`` to feed vLLM-shaped input to the top-k estimators and to TRL's own
``extract_logprobs``.
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


@dataclasses.dataclass
class CompletionOutput:
    """Same fields as ``vllm.outputs.CompletionOutput`` (one sampled completion)."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclasses.dataclass
class RequestOutput:
    """Same fields as ``vllm.outputs.RequestOutput`` that TRL reads (``prompt_token_ids``, ``outputs``)."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True
