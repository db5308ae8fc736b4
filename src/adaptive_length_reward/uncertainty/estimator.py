"""The uncertainty estimator as a context provider: per-token data in a batch column -> the ``uncertainty`` column.

PixelThink (arXiv 2505.23727, Sec. 3.3) scales the hard-tier budget by the policy's uncertainty ``U``.
[`UncertaintyEstimator`][] computes ``U`` per completion from per-token data that the rollout left in a batch
column, so a budget uses it without knowing where it came from. Its sources (the column's formats), measures (each
mapped to ``[0, 1]`` per token) and reductions are listed in docs/uncertainty.md, "UncertaintyEstimator".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..config import param
from ..reward import ContextProvider
from ..spans import Span, reasoning_span_mask
from .reduction import (
    Reduction,
    _as_numpy,
    logprob_uncertainty,
    pad_ragged,
    reduce_tokens,
    unit_uncertainty,
)
from .topk import (
    TopKLogprobs,
    deepconf_uncertainty,
    topk_entropy_bounds,
    topk_from_dense,
    topk_from_sglang,
    topk_from_vllm,
    topk_margin,
)

__all__ = ["UncertaintyEstimator", "UncertaintyEstimatorConfig"]

Source = Literal["vllm", "sglang", "topk_array", "sampled_logprobs", "token_values"]
Measure = Literal["margin", "entropy_lower", "entropy_upper", "deepconf", "nll", "value"]
_TOPK_SOURCES = ("vllm", "sglang", "topk_array")
_MEASURE_SOURCES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("margin", "entropy_lower", "entropy_upper", "deepconf"), _TOPK_SOURCES),
    "nll": ("sampled_logprobs",),
    "value": ("token_values",),
}
_READERS = {"vllm": topk_from_vllm, "sglang": topk_from_sglang}


class UncertaintyEstimator(ContextProvider, kind="uncertainty_estimator"):
    """Fills the batch's ``uncertainty`` column (one value in ``[0, 1]`` per completion) from per-token data.

    The default reproduces PixelThink's rollout uncertainty: vLLM top-k log-probs in column ``"logprobs"``,
    per token ``clip(1 - (p1 - p2), 0, 1)``, mean over all generated tokens, ``0.0`` for a completion without
    log-probs. Sources, measures and reductions: docs/uncertainty.md.

    >>> from adaptive_length_reward import RewardBatch
    >>> estimator = UncertaintyEstimator(column="top", source="topk_array")
    >>> batch = RewardBatch.from_completions(["a", "b"], top=[np.log([[0.7, 0.2], [0.9, 0.1]]), np.zeros((0, 2))])
    >>> estimator(batch).round(6).tolist()
    [0.35, 0.0]
    """

    provides = "uncertainty"

    column: str = param(default="logprobs", min_length=1, doc="the batch column holding the per-token data")
    source: Source = param(default="vllm", doc="the column's format (docs/uncertainty.md)")
    measure: Measure = param(default="margin", doc="the per-token measure; top-k sources, 'nll' or 'value'")
    reduction: Reduction = param(default="mean", doc="per completion: mean (PixelThink), max, min or quantile")
    quantile: float = param(default=0.9, ge=0.0, le=1.0, doc="the quantile for reduction='quantile'")
    span: Span = param(default="response", doc="every generated token, or the reasoning span (needs token_ids)")
    open_ids: Sequence[int] = param(default=(), doc="the opening tag's token ids (span='reasoning')")
    close_ids: Sequence[int] = param(default=(), doc="the closing tag's token ids (span='reasoning')")
    vocab_size: int | None = param(default=None, ge=2, doc="V, for H / ln V and the entropy upper bound")
    entropy_cap: float | None = param(default=None, gt=0, doc="entropy / cap, clipped, instead of H / ln V")
    nll_cap: float | None = param(default=None, gt=0, doc="nll / cap, clipped, instead of 1 - p_y")
    value_cap: float | None = param(default=None, gt=0, doc="token values / cap, clipped")
    k: int | None = param(default=None, ge=1, doc="the engine's top-k, for measure='deepconf'")
    empty_value: float = param(default=0.0, allow_inf_nan=True, doc="for no usable token (nan: missing)")

    @staticmethod
    def _check(c: Any) -> None:
        """The cross-field rules (each names the field, expected and got)."""
        allowed = _MEASURE_SOURCES[c.measure]
        if c.source not in allowed:
            raise ValueError(f"source: expected one of {list(allowed)} for measure={c.measure!r}, got {c.source!r}")
        if c.span == "reasoning" and not (c.open_ids and c.close_ids):
            raise ValueError(
                "open_ids and close_ids: expected the tags' token ids when span='reasoning', got "
                f"{c.open_ids!r} and {c.close_ids!r}"
            )
        needs_v = c.measure == "entropy_upper" or (c.measure == "entropy_lower" and c.entropy_cap is None)
        if needs_v and c.vocab_size is None:
            raise ValueError(
                f"vocab_size: expected the vocabulary size for measure={c.measure!r} (H / ln V, and the "
                "upper bound needs V; entropy_lower may use entropy_cap instead), got None"
            )
        if c.measure == "deepconf" and c.k is None:
            raise ValueError("k: expected the engine's top-k (an int >= 1) for measure='deepconf', got None")
        if math.isinf(c.empty_value):
            raise ValueError(f"empty_value: expected a finite number or nan, got {c.empty_value}")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.column, "token_ids"} if self.span == "reasoning" else {self.column})

    def token_uncertainty(self, batch: RewardBatch) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Per-token uncertainties in ``[0, 1]`` as ``([B, T] values, [B, T] mask of real tokens)`` (NaN = none)."""
        where = f"UncertaintyEstimator: column {self.column!r}"
        entries = list(batch.column(self.column, by=f"UncertaintyEstimator (column {self.column!r})"))
        if self.source in _TOPK_SOURCES:
            read = _READERS.get(self.source)
            topk = read(entries) if read else topk_from_dense([np.zeros((0, 1)) if e is None else e for e in entries])
            return topk.padded(self._topk_measure(topk))
        values, mask = pad_ragged([_per_token(f"{where}[{i}]", entry) for i, entry in enumerate(entries)])
        if np.isinf(values).any():
            i = int(np.flatnonzero(np.isinf(values).any(axis=1))[0])
            raise ValueError(f"{where}[{i}]: expected finite numbers (NaN marks a token without a value), got inf")
        if self.measure == "nll":
            return logprob_uncertainty(values, cap=self.nll_cap, where=where), mask
        if self.value_cap is not None:
            values = np.clip(values / self.value_cap, 0.0, 1.0)
        return values, mask

    def _topk_measure(self, topk: TopKLogprobs) -> npt.NDArray[np.float64]:
        if self.measure == "margin":
            return unit_uncertainty("margin", topk_margin(topk))
        if self.measure == "deepconf":
            assert self.k is not None
            return deepconf_uncertainty(topk, k=self.k)
        low, high, _ = topk_entropy_bounds(topk, vocab_size=self.vocab_size)
        entropy = low if self.measure == "entropy_lower" else high
        return unit_uncertainty("entropy", entropy, vocab_size=self.vocab_size, entropy_cap=self.entropy_cap)

    def __call__(self, batch: RewardBatch) -> npt.NDArray[np.float64]:
        values, mask = self.token_uncertainty(batch)
        if self.span == "reasoning":
            ids = list(batch.column("token_ids", by="UncertaintyEstimator (span='reasoning')"))
            for i, (row, count) in enumerate(zip(ids, mask.sum(axis=1).tolist())):
                if len(row) != count:
                    raise ValueError(
                        f"UncertaintyEstimator: token_ids[{i}] has {len(row)} ids but column "
                        f"{self.column!r}[{i}] has {count} tokens; span='reasoning' needs them "
                        "aligned one-to-one"
                    )
            mask = mask & reasoning_span_mask(ids, self.open_ids, self.close_ids)
        return reduce_tokens(values, mask, how=self.reduction, q=self.quantile, empty_value=self.empty_value)


def _per_token(where: str, entry: Any) -> npt.NDArray[np.float64]:
    """One completion's per-token numbers (a sequence, an array or a tensor; ``None``: no tokens) as a 1-D array."""
    array = _as_numpy(() if entry is None else entry, where)
    if array.ndim > 1:
        raise ValueError(f"{where}: expected one number per token, got shape {array.shape}")
    return array.reshape(-1)


#: The frozen configuration model of [`UncertaintyEstimator`][] (derived from its declaration).
UncertaintyEstimatorConfig = UncertaintyEstimator.config_model()
