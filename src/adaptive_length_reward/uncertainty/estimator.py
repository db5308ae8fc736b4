"""The uncertainty estimator as a context provider: per-token data in a batch column -> the ``uncertainty`` column.

PixelThink (arXiv 2505.23727, Sec. 3.3) scales the hard-tier budget by the policy's uncertainty ``U``. An
:class:`UncertaintyEstimator` computes ``U`` per completion from per-token data that the rollout left in a
batch column, so a budget (:class:`~adaptive_length_reward.budgets.TieredBudget`,
:class:`~adaptive_length_reward.budgets.LinearBudget`) uses it without knowing where it came from::

    reward = WithContext(Product([accuracy, SoftLengthPenalty()]), [UncertaintyEstimator(column="logprobs")])

Sources (``source=``) and what each entry of the column holds per completion:

=======================  =========================================================================================
``"vllm"``               vLLM's ``CompletionOutput.logprobs``: one ``dict[token_id, Logprob]`` per token, or a
                         ``FlatLogprobs`` (raw log-probs, before temperature, by default)
``"sglang"``             SGLang's ``meta_info["output_top_logprobs"]``: per token a list of
                         ``(logprob, token_id, text)`` (after temperature)
``"topk_array"``         a ``[T, k]`` array of top-k log-probs, ``-inf`` padded
``"sampled_logprobs"``   the sampled tokens' log-probs ``[T]`` (verl's ``response_logprobs``, TRL's ``logprobs``)
``"token_values"``       per-token values already computed, e.g. ``1 - margin`` or normalised entropy from
                         :func:`~adaptive_length_reward.uncertainty.token_statistics` in a forward pass
=======================  =========================================================================================

Measures (``measure=``), each mapped to ``[0, 1]`` per token before the reduction:

* ``"margin"`` (default, PixelThink): ``clip(1 - (p1 - p2), 0, 1)``; top-k sources.
* ``"entropy_lower"`` / ``"entropy_upper"``: the top-k entropy bounds divided by ``ln V`` (``vocab_size``) or by
  ``entropy_cap``, clipped; top-k sources.
* ``"deepconf"``: ``k exp(-C)`` from DeepConf's token confidence ``C`` over the top ``k``; top-k sources.
* ``"nll"``: ``1 - p_y`` of the sampled token (or ``nll / nll_cap``, clipped); ``"sampled_logprobs"``.
* ``"value"``: the values as given (divided by ``value_cap`` and clipped when one is set); ``"token_values"``.

Then one number per completion: ``reduction`` (mean by default, as PixelThink; max, min, quantile) over the
whole response or, with ``span="reasoning"``, over the reasoning span found from the tags' token ids in the
batch's ``token_ids`` (which must align one-to-one with the per-token data). Tokens without a value (NaN, e.g.
fewer than two top-k entries) are skipped; a completion with no usable token gets ``empty_value`` (default
``0.0`` as the official code; ``nan`` marks it missing, which the budgets' ``missing_uncertainty`` then handles).

Which distribution is measured is the engine's: vLLM's default ``raw_logprobs`` is the model's distribution
before temperature (PixelThink samples at temperature 1.0, where both agree); SGLang reports after temperature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ..batch import RewardBatch
from ..config import ComponentConfig, register, validated
from ..reward import ContextProvider
from .reduction import (
    margin_uncertainty,
    normalized_entropy,
    normalized_nll,
    pad_ragged,
    reasoning_span_mask,
    reduce_tokens,
)
from .topk import (
    TopKLogprobs,
    deepconf_uncertainty,
    topk_entropy_bounds,
    topk_from_dense,
    topk_from_sglang,
    topk_from_vllm,
)

__all__ = ["UncertaintyEstimator", "UncertaintyEstimatorConfig"]

Source = Literal["vllm", "sglang", "topk_array", "sampled_logprobs", "token_values"]
Measure = Literal["margin", "entropy_lower", "entropy_upper", "deepconf", "nll", "value"]
_TOPK_SOURCES = ("vllm", "sglang", "topk_array")
_MEASURE_SOURCES: dict[str, tuple[str, ...]] = {
    "margin": _TOPK_SOURCES,
    "entropy_lower": _TOPK_SOURCES,
    "entropy_upper": _TOPK_SOURCES,
    "deepconf": _TOPK_SOURCES,
    "nll": ("sampled_logprobs",),
    "value": ("token_values",),
}


class UncertaintyEstimatorConfig(ComponentConfig):
    """Configuration of :class:`UncertaintyEstimator`."""

    kind: Literal["uncertainty_estimator"] = "uncertainty_estimator"
    column: str = Field("logprobs", min_length=1)
    source: Source = "vllm"
    measure: Measure = "margin"
    reduction: Literal["mean", "max", "min", "quantile"] = "mean"
    quantile: float = Field(0.9, ge=0.0, le=1.0)
    span: Literal["response", "reasoning"] = "response"
    open_ids: tuple[int, ...] = ()
    close_ids: tuple[int, ...] = ()
    vocab_size: int | None = Field(None, ge=2)
    entropy_cap: float | None = Field(None, gt=0, allow_inf_nan=False)
    nll_cap: float | None = Field(None, gt=0, allow_inf_nan=False)
    value_cap: float | None = Field(None, gt=0, allow_inf_nan=False)
    k: int | None = Field(None, ge=1)
    empty_value: float = Field(0.0, allow_inf_nan=True)

    @model_validator(mode="after")
    def _consistent(self) -> UncertaintyEstimatorConfig:
        allowed = _MEASURE_SOURCES[self.measure]
        if self.source not in allowed:
            raise ValueError(f"source: expected one of {list(allowed)} for measure={self.measure!r}, "
                             f"got {self.source!r}")
        if self.span == "reasoning" and not (self.open_ids and self.close_ids):
            raise ValueError("open_ids and close_ids: expected the tags' token ids when span='reasoning', got "
                             f"{self.open_ids!r} and {self.close_ids!r}")
        if self.measure.startswith("entropy") and self.entropy_cap is None and self.vocab_size is None:
            raise ValueError(f"vocab_size: expected the vocabulary size (or entropy_cap) for measure={self.measure!r}, "
                             "got None")
        if self.measure == "entropy_upper" and self.vocab_size is None:
            raise ValueError("vocab_size: expected the vocabulary size for measure='entropy_upper' (the bound needs "
                             "V), got None")
        if self.measure == "deepconf" and self.k is None:
            raise ValueError("k: expected the engine's top-k (an int >= 1) for measure='deepconf', got None")
        if math.isinf(self.empty_value):
            raise ValueError(f"empty_value: expected a finite number or nan, got {self.empty_value}")
        return self


@register("uncertainty_estimator", UncertaintyEstimatorConfig)
class UncertaintyEstimator(ContextProvider):
    """Fills the batch's ``uncertainty`` column (one value in ``[0, 1]`` per completion) from per-token data.

    The default reproduces PixelThink's rollout uncertainty: vLLM top-k log-probs in column ``"logprobs"``,
    per token ``clip(1 - (p1 - p2), 0, 1)``, mean over all generated tokens, ``0.0`` for a completion without
    log-probs. See the module docstring for every source, measure and reduction.

    Args:
        column: the batch column (an extra column) holding the per-token data, one entry per completion.
        source: its format: ``"vllm"``, ``"sglang"``, ``"topk_array"``, ``"sampled_logprobs"`` or
            ``"token_values"``.
        measure: ``"margin"``, ``"entropy_lower"``, ``"entropy_upper"``, ``"deepconf"`` (top-k sources),
            ``"nll"`` (sampled log-probs) or ``"value"`` (token values).
        reduction: ``"mean"``, ``"max"``, ``"min"`` or ``"quantile"`` (with ``quantile``).
        span: ``"response"`` (every generated token) or ``"reasoning"`` (between the tags, found in the
            batch's ``token_ids`` with ``open_ids``/``close_ids``).
        vocab_size: ``V``, for the entropy normalisation ``H / ln V`` and the entropy upper bound.
        entropy_cap, nll_cap, value_cap: divide by this and clip to ``[0, 1]`` instead of the default mapping.
        k: the engine's top-k, for ``measure="deepconf"``.
        empty_value: the value for a completion without a usable token (``nan`` = missing).

    >>> from adaptive_length_reward import RewardBatch
    >>> estimator = UncertaintyEstimator(column="top", source="topk_array")
    >>> batch = RewardBatch.from_completions(["a", "b"], top=[np.log([[0.7, 0.2], [0.9, 0.1]]), np.zeros((0, 2))])
    >>> estimator(batch).round(6).tolist()
    [0.35, 0.0]
    """

    provides = "uncertainty"

    def __init__(
        self,
        *,
        column: str = "logprobs",
        source: Source = "vllm",
        measure: Measure = "margin",
        reduction: Literal["mean", "max", "min", "quantile"] = "mean",
        quantile: float = 0.9,
        span: Literal["response", "reasoning"] = "response",
        open_ids: Sequence[int] = (),
        close_ids: Sequence[int] = (),
        vocab_size: int | None = None,
        entropy_cap: float | None = None,
        nll_cap: float | None = None,
        value_cap: float | None = None,
        k: int | None = None,
        empty_value: float = 0.0,
    ) -> None:
        self._config = validated(
            "UncertaintyEstimator", UncertaintyEstimatorConfig, column=column, source=source, measure=measure,
            reduction=reduction, quantile=quantile, span=span, open_ids=tuple(open_ids), close_ids=tuple(close_ids),
            vocab_size=vocab_size, entropy_cap=entropy_cap, nll_cap=nll_cap, value_cap=value_cap, k=k,
            empty_value=empty_value,
        )

    @property
    def requires(self) -> frozenset[str]:
        needed = {self._config.column}
        if self._config.span == "reasoning":
            needed.add("token_ids")
        return frozenset(needed)

    def to_config(self) -> UncertaintyEstimatorConfig:
        return self._config

    # -- computation ------------------------------------------------------------------------------------------
    def token_uncertainty(self, batch: RewardBatch) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Per-token uncertainties in ``[0, 1]`` as ``([B, T] values, [B, T] mask of real tokens)`` (NaN = none)."""
        c = self._config
        entries = list(batch.column(c.column, by=f"UncertaintyEstimator (column {c.column!r})"))
        if c.source in _TOPK_SOURCES:
            topk = self._read_topk(entries)
            per_token = self._topk_measure(topk)
            return topk.padded(per_token)
        sequences = []
        for i, entry in enumerate(entries):
            if entry is None:
                entry = ()
            if hasattr(entry, "detach") and hasattr(entry, "cpu"):
                entry = entry.detach().cpu().numpy()
            try:
                array = np.asarray(entry, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"UncertaintyEstimator: column {c.column!r}[{i}]: expected a sequence of numbers "
                                f"(one per token), got {type(entry).__name__}") from None
            if array.ndim > 1:
                raise ValueError(f"UncertaintyEstimator: column {c.column!r}[{i}]: expected one number per token, "
                                 f"got shape {array.shape}")
            sequences.append(array.reshape(-1))
        values, mask = pad_ragged(sequences)
        if np.isinf(values).any():
            i = int(np.flatnonzero(np.isinf(values).any(axis=1))[0])
            raise ValueError(f"UncertaintyEstimator: column {c.column!r}[{i}]: expected finite numbers (NaN marks a "
                             "token without a value), got inf")
        if c.measure == "nll":
            if (values > 1e-4).any():
                i = int(np.flatnonzero((values > 1e-4).any(axis=1))[0])
                raise ValueError(f"UncertaintyEstimator: column {c.column!r}[{i}]: expected log-probabilities <= 0, "
                                 f"got {float(np.nanmax(values[i]))}")
            return normalized_nll(np.maximum(-values, 0.0), cap=c.nll_cap), mask
        if c.value_cap is not None:
            values = np.clip(values / c.value_cap, 0.0, 1.0)
        return values, mask

    def _read_topk(self, entries: list[Any]) -> TopKLogprobs:
        source = self._config.source
        if source == "vllm":
            return topk_from_vllm(entries)
        if source == "sglang":
            return topk_from_sglang(entries)
        return topk_from_dense([np.zeros((0, 1)) if e is None else e for e in entries])

    def _topk_measure(self, topk: TopKLogprobs) -> npt.NDArray[np.float64]:
        c = self._config
        if c.measure == "margin":
            from .topk import topk_margin

            return margin_uncertainty(topk_margin(topk))
        if c.measure == "deepconf":
            assert c.k is not None
            return deepconf_uncertainty(topk, k=c.k)
        low, high, _ = topk_entropy_bounds(topk, vocab_size=c.vocab_size)
        entropy = low if c.measure == "entropy_lower" else high
        if c.entropy_cap is not None:
            return normalized_entropy(entropy, cap=c.entropy_cap)
        return normalized_entropy(entropy, vocab_size=c.vocab_size)

    def __call__(self, batch: RewardBatch) -> npt.NDArray[np.float64]:
        c = self._config
        values, mask = self.token_uncertainty(batch)
        if c.span == "reasoning":
            ids = batch.column("token_ids", by="UncertaintyEstimator (span='reasoning')")
            id_lengths = [len(row) for row in ids]
            token_counts = mask.sum(axis=1).tolist()
            for i, (a, b) in enumerate(zip(id_lengths, token_counts)):
                if a != b:
                    raise ValueError(f"UncertaintyEstimator: token_ids[{i}] has {a} ids but column {c.column!r}[{i}] "
                                     f"has {b} tokens; span='reasoning' needs them aligned one-to-one")
            span = reasoning_span_mask(list(ids), c.open_ids, c.close_ids)
            width = values.shape[1]
            if span.shape[1] < width:
                span = np.pad(span, ((0, 0), (0, width - span.shape[1])))
            mask = mask & span[:, :width]
        return reduce_tokens(values, mask, how=c.reduction, q=c.quantile, empty_value=c.empty_value)
