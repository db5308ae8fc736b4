"""Uncertainty estimators: how unsure the policy was while writing a completion, as one number in [0, 1].

PixelThink (arXiv 2505.23727) scales the hard-tier length budget by the policy's uncertainty, measured as the
mean over generated tokens of ``1 - (p1 - p2)`` from vLLM's top-5 log-probs. This subpackage computes that and
entropy-based alternatives, from either of the two things a trainer can have:

* full logits ``[B, T, V]`` from a forward pass (:func:`token_statistics` and its wrappers; torch, imported
  lazily): exact entropy, margin, self-certainty and sampled-token NLL in one fused, memory-bounded pass;
* top-k log-probs from a rollout engine (:func:`topk_from_vllm`, :func:`topk_from_sglang`,
  :func:`topk_from_dense`; numpy): margin, entropy bounds, DeepConf confidence, vectorised.

:func:`reduce_tokens` and :func:`reasoning_span_mask` turn per-token values into one number per completion
(over the whole response or the reasoning span), and :class:`UncertaintyEstimator` does all of it as a
:class:`~adaptive_length_reward.reward.ContextProvider` that fills the batch's ``uncertainty`` column.

Importing this subpackage does not import torch.
"""

from .estimator import UncertaintyEstimator, UncertaintyEstimatorConfig
from .logits import (
    STATISTICS,
    default_memory_budget,
    rows_per_chunk,
    sequence_uncertainty,
    token_entropy,
    token_margin,
    token_nll,
    token_self_certainty,
    token_statistics,
)
from .reduction import (
    margin_uncertainty,
    normalized_entropy,
    normalized_nll,
    pad_ragged,
    reasoning_span_mask,
    reduce_ragged,
    reduce_tokens,
)
from .topk import (
    TopKLogprobs,
    deepconf_confidence,
    deepconf_uncertainty,
    topk_entropy_bounds,
    topk_from_dense,
    topk_from_sglang,
    topk_from_vllm,
    topk_margin,
    topk_margin_uncertainty,
)

__all__ = [
    "STATISTICS",
    "TopKLogprobs",
    "UncertaintyEstimator",
    "UncertaintyEstimatorConfig",
    "deepconf_confidence",
    "deepconf_uncertainty",
    "default_memory_budget",
    "margin_uncertainty",
    "normalized_entropy",
    "normalized_nll",
    "pad_ragged",
    "reasoning_span_mask",
    "reduce_ragged",
    "reduce_tokens",
    "rows_per_chunk",
    "sequence_uncertainty",
    "token_entropy",
    "token_margin",
    "token_nll",
    "token_self_certainty",
    "token_statistics",
    "topk_entropy_bounds",
    "topk_from_dense",
    "topk_from_sglang",
    "topk_from_vllm",
    "topk_margin",
    "topk_margin_uncertainty",
]
