"""Per-token uncertainty from the top-k log-probs that rollout engines return, vectorised with numpy.

Rollout engines do not return logits, only the top-k log-probs per generated token:

* **vLLM** (``SamplingParams(logprobs=k)``): per completion, a list with one dict per token mapping token id to
  a ``Logprob(logprob, rank, decoded_token)``; it holds the top-k plus the sampled token when that one is not
  in the top-k (so k or k + 1 entries). vLLM's ``FlatLogprobs`` container (flat ``logprobs`` list with
  ``start_indices``/``end_indices`` per position) is read directly, without building dicts. The default
  ``--logprobs-mode raw_logprobs`` reports the model's distribution **before** temperature.
* **SGLang** (``return_logprob=True, top_logprobs_num=k``): ``meta_info["output_top_logprobs"]``, one list of
  ``(logprob, token_id, text)`` tuples per token; reported **after** temperature scaling.
* **dense arrays**: ``[T, k]`` (one per completion) or ``[N, k]`` with per-completion lengths, padded with
  ``-inf`` where fewer than k entries exist.

All three become one :class:`TopKLogprobs` (a dense ``[N, K]`` float64 array sorted descending, ``-inf``
padded, plus per-completion token counts) in one pass over the Python objects, with no per-token tensor or
array; every statistic is then a few whole-array numpy operations.

Per-token statistics (``p_j = exp(logprob_j)``, ``j = 1..n`` the ``n`` reported entries, descending):

* margin ``p1 - p2`` and PixelThink's uncertainty ``u = clip(1 - (p1 - p2), 0, 1)`` (arXiv 2505.23727; official
  ``verl/workers/rollout/vllm_rollout_spmd.py::compute_uncertainty_from_logprob_dict``, which sorts the dict by
  rank and takes the first two; ranks follow log-probs, so the two largest log-probs are the same pair).
  Tokens with fewer than two entries have no margin: NaN, skipped by the reductions as the official code
  skips them.
* entropy bounds with the tail mass ``r = 1 - sum_j p_j`` (clipped to ``[0, 1]``), valid for any set of
  reported tokens: ``H_lb = -sum_j p_j ln p_j - r ln r`` (the tail on one token) and
  ``H_ub = H_lb + r ln(V - n)`` (the tail spread uniformly over the ``V - n`` unreported tokens); the true
  entropy of the full distribution lies in ``[H_lb, H_ub]``. Self-certainty needs the full vocabulary and is
  not available here.
* DeepConf token confidence ``C = -(1/k) sum_{j<=k} ln p_j`` over the top ``k`` (Fu et al. 2025, "Deep Think
  with Confidence", arXiv 2508.15260, token confidence); it depends on ``k``, so ``k`` is an explicit argument. Its
  ``[0, 1]`` uncertainty form here is ``k exp(-C)`` (``k`` times the geometric mean of the top-k
  probabilities, which is at most ``1/k``): 1 for a flat top-k holding all mass, towards 0 for a confident
  token; it decreases as ``C`` increases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "TopKLogprobs",
    "deepconf_confidence",
    "deepconf_uncertainty",
    "topk_entropy_bounds",
    "topk_from_dense",
    "topk_from_sglang",
    "topk_from_vllm",
    "topk_margin",
    "topk_margin_uncertainty",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
# Engines round log-probs near 0 to small positive values; anything above this is not a log-probability.
_POSITIVE_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True, eq=False)
class TopKLogprobs:
    """Top-k log-probs of a batch of completions, dense: one row per generated token.

    Attributes:
        values: ``[N, K]`` float64 log-probs, each row sorted descending and padded with ``-inf``; ``N`` is the
            total number of tokens, ``K`` the largest number of entries any token reported.
        lengths: ``[B]`` tokens per completion (rows ``offsets[i]:offsets[i] + lengths[i]`` belong to
            completion ``i``).
        counts: ``[N]`` entries reported per token. An engine may report an entry with log-prob ``-inf``
            (probability 0): it counts, as in the official code. In dense arrays ``-inf`` is padding.
    """

    values: FloatArray
    lengths: IntArray
    counts: IntArray

    @property
    def offsets(self) -> IntArray:
        """First row of each completion."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.intp)

    def split(self, per_token: npt.ArrayLike) -> list[FloatArray]:
        """Per-token values ``[N]`` cut into one array per completion."""
        array = np.asarray(per_token, dtype=np.float64)
        return np.split(array, np.cumsum(self.lengths)[:-1])

    def padded(self, per_token: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Per-token values ``[N]`` as ``([B, T_max] values, [B, T_max] mask)`` for the reductions."""
        array = np.asarray(per_token, dtype=np.float64)
        width = int(self.lengths.max(initial=0))
        mask = np.arange(width)[None, :] < self.lengths[:, None]
        out = np.full((self.lengths.size, width), np.nan)
        out[mask] = array
        return out, mask


def _finish(flat: FloatArray, counts: IntArray, lengths: IntArray, where: str) -> TopKLogprobs:
    """Validate flat log-probs, scatter them into a dense -inf padded [N, K] array sorted descending."""
    bad = np.isnan(flat) | np.isposinf(flat) | (flat > _POSITIVE_TOLERANCE)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        token = int(np.searchsorted(np.cumsum(counts), index, side="right"))
        completion = int(np.searchsorted(np.cumsum(lengths), token, side="right"))
        raise ValueError(
            f"{where}: expected log-probabilities (<= 0, or -inf), got {float(flat[index])!r} at completion "
            f"{completion}, token {token - int(np.sum(lengths[:completion]))}"
        )
    if (flat > 0).any():
        flat = np.minimum(flat, 0.0)
    n_tokens = counts.size
    width = max(int(counts.max(initial=0)), 2)
    values = np.full((n_tokens, width), -np.inf)
    if flat.size:
        values[np.arange(width)[None, :] < counts[:, None]] = flat  # row-major order = the flat order
        values.sort(axis=1)  # ascending, -inf first; reversed below (a view)
        values = values[:, ::-1]
    return TopKLogprobs(values=values, lengths=lengths.astype(np.intp), counts=counts.astype(np.intp))


def _entry_kind(entry: Any, where: str) -> str:
    if hasattr(entry, "logprob"):
        return "attribute"
    if isinstance(entry, Mapping):
        return "mapping"
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return "number"
    raise TypeError(f"{where}: expected Logprob objects (with .logprob), mappings with 'logprob' or floats as "
                    f"dict values, got {type(entry).__name__}")


def _is_flat_container(obj: Any) -> bool:
    return all(hasattr(obj, name) for name in ("start_indices", "end_indices", "logprobs"))


def _dict_values(tokens: Sequence[dict[int, Any]], total: int) -> FloatArray:
    """All log-probs of a list of per-token dicts, flat, in one C-level pass."""
    if total == 0:
        return np.zeros(0)
    first = next(iter(next(d for d in tokens if d).values()))
    kind = _entry_kind(first, "vLLM logprobs")
    # List comprehensions are the fastest pure-Python extraction here (faster than map + attrgetter + fromiter).
    if kind == "attribute":
        values = [entry.logprob for d in tokens for entry in d.values()]
    elif kind == "mapping":
        values = [entry["logprob"] for d in tokens for entry in d.values()]
    else:
        values = [entry for d in tokens for entry in d.values()]
    array = np.array(values, dtype=np.float64)
    if array.shape != (total,):
        raise TypeError("vLLM logprobs: expected one number per entry")
    return array


def _dict_values_checked(tokens: Sequence[Any], where: str) -> tuple[IntArray, FloatArray]:
    """The slow path: ``None`` tokens allowed, and a clear error naming the first malformed token."""
    dicts = []
    for t, entry in enumerate(tokens):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise TypeError(f"{where}, token {t}: expected a dict (token id -> Logprob) or None, got "
                            f"{type(entry).__name__}")
        dicts.append(entry)
    per_token = np.fromiter(map(len, dicts), dtype=np.intp, count=len(dicts))
    try:
        return per_token, _dict_values(dicts, int(per_token.sum()))
    except (TypeError, ValueError, AttributeError, KeyError):
        raise TypeError(f"{where}: expected every dict value to be a Logprob, a mapping with 'logprob' or a float "
                        "(all of one kind, logprob a number)") from None


def topk_from_vllm(completions: Sequence[Any]) -> TopKLogprobs:
    """Read vLLM's per-token log-prob dicts (``CompletionOutput.logprobs``) of a batch of completions.

    Args:
        completions: per completion, a list with one ``dict[token_id, Logprob]`` per generated token (``None``
            or ``{}`` for a token without log-probs), or a vLLM ``FlatLogprobs``. Dict values may also be
            mappings with a ``"logprob"`` key (after JSON) or plain floats.

    The sampled token's extra entry (when it is outside the top-k) is kept: it is a reported token, so it
    tightens the entropy bounds, and it never changes the margin (it is below the top-k).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Logprob:  # vllm.logprobs.Logprob
    ...     logprob: float
    ...     rank: int | None = None
    >>> topk = topk_from_vllm([[{5: Logprob(-0.1, 1), 9: Logprob(-2.5, 2)}, {3: Logprob(-0.7, 1)}]])
    >>> topk.values.round(2).tolist(), topk.lengths.tolist()
    ([[-0.1, -2.5], [-0.7, -inf]], [2])
    """
    if isinstance(completions, (str, bytes, Mapping)):
        raise TypeError("completions: expected a sequence of per-completion log-prob lists, got "
                        f"{type(completions).__name__}")
    flats: list[FloatArray] = []
    counts: list[IntArray] = []
    lengths = np.zeros(len(completions), dtype=np.intp)
    for i, tokens in enumerate(completions):
        where = f"vLLM logprobs of completion {i}"
        if tokens is None:
            tokens = ()
        if _is_flat_container(tokens):
            starts = np.asarray(tokens.start_indices, dtype=np.intp)
            ends = np.asarray(tokens.end_indices, dtype=np.intp)
            all_values = np.asarray(tokens.logprobs, dtype=np.float64)
            per_token = ends - starts
            index = np.arange(int(per_token.sum())) - np.repeat(np.cumsum(per_token) - per_token, per_token)
            flats.append(all_values[np.repeat(starts, per_token) + index])
            counts.append(per_token)
            lengths[i] = per_token.size
            continue
        if isinstance(tokens, (str, bytes, Mapping)):
            raise TypeError(f"{where}: expected a list of per-token dicts, got {type(tokens).__name__}")
        try:  # fast path: every token a dict
            per_token = np.array(list(map(len, tokens)), dtype=np.intp).reshape(-1)
            values = _dict_values(tokens, int(per_token.sum()))
        except (TypeError, ValueError, AttributeError, KeyError):
            per_token, values = _dict_values_checked(tokens, where)
        lengths[i] = per_token.size
        counts.append(per_token)
        flats.append(values)
    flat = np.concatenate(flats) if flats else np.zeros(0)
    per_token_all = np.concatenate(counts) if counts else np.zeros(0, dtype=np.intp)
    return _finish(flat, per_token_all, lengths, "vLLM logprobs")


def topk_from_sglang(completions: Sequence[Any]) -> TopKLogprobs:
    """Read SGLang's ``meta_info["output_top_logprobs"]`` of a batch of completions.

    Args:
        completions: per completion, a list with one list of ``(logprob, token_id, text)`` tuples (or lists,
            after JSON) per generated token; ``None`` for a token without log-probs.

    >>> topk = topk_from_sglang([[[(-0.1, 5, "a"), (-2.5, 9, "b")], [(-0.7, 3, None)]]])
    >>> topk.values.round(2).tolist()
    [[-0.1, -2.5], [-0.7, -inf]]
    """
    if isinstance(completions, (str, bytes, Mapping)):
        raise TypeError("completions: expected a sequence of per-completion top-logprob lists, got "
                        f"{type(completions).__name__}")
    flats: list[FloatArray] = []
    counts: list[IntArray] = []
    lengths = np.zeros(len(completions), dtype=np.intp)
    for i, tokens in enumerate(completions):
        if tokens is None:
            tokens = ()
        if isinstance(tokens, (str, bytes, Mapping)):
            raise TypeError(f"SGLang top logprobs of completion {i}: expected a list of per-token lists, got "
                            f"{type(tokens).__name__}")
        try:  # fast path; None tokens take the slow path
            per_token = np.array(list(map(len, tokens)), dtype=np.intp).reshape(-1)
        except TypeError:
            tokens = [t if t is not None else () for t in tokens]
            per_token = np.array(list(map(len, tokens)), dtype=np.intp).reshape(-1)
        lengths[i] = per_token.size
        counts.append(per_token)
        try:
            values = np.array([entry[0] for entries in tokens for entry in entries], dtype=np.float64)
            if values.shape != (int(per_token.sum()),):
                raise ValueError("one number per entry")
            flats.append(values)
        except (TypeError, IndexError, KeyError, ValueError):
            raise TypeError(f"SGLang top logprobs of completion {i}: expected per token a list of "
                            "(logprob, token_id, text) tuples with a float logprob") from None
    flat = np.concatenate(flats) if flats else np.zeros(0)
    per_token_all = np.concatenate(counts) if counts else np.zeros(0, dtype=np.intp)
    return _finish(flat, per_token_all, lengths, "SGLang top logprobs")


def topk_from_dense(values: Any, lengths: npt.ArrayLike | None = None) -> TopKLogprobs:
    """Dense top-k log-probs: a list of ``[T_i, k]`` arrays (one per completion), or one ``[N, k]`` array with
    ``lengths`` (tokens per completion; default: one completion). Missing entries are ``-inf``; rows need
    not be sorted. Torch tensors are accepted.

    >>> topk_from_dense([[[-2.5, -0.1], [-0.7, -np.inf]]]).values.round(2).tolist()
    [[-0.1, -2.5], [-0.7, -inf]]
    """
    def as_array(x: Any, name: str) -> FloatArray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            x = x.detach().cpu().numpy()
        array = np.asarray(x, dtype=np.float64)
        if array.ndim == 1 and array.size == 0:
            array = array.reshape(0, 1)
        if array.ndim != 2:
            raise ValueError(f"{name}: expected a [tokens, k] array, got shape {array.shape}")
        return array

    if lengths is None and not (isinstance(values, np.ndarray) or hasattr(values, "detach")):
        arrays = [as_array(v, f"values[{i}]") for i, v in enumerate(values)]
        sizes = np.array([a.shape[0] for a in arrays], dtype=np.intp)
        width = max((a.shape[1] for a in arrays), default=1)
        stacked = np.full((int(sizes.sum()), width), -np.inf)
        row = 0
        for a in arrays:
            stacked[row : row + a.shape[0], : a.shape[1]] = a
            row += a.shape[0]
    else:
        stacked = as_array(values, "values")
        sizes = np.array([stacked.shape[0]] if lengths is None else np.asarray(lengths).reshape(-1), dtype=np.intp)
        if (sizes < 0).any() or int(sizes.sum()) != stacked.shape[0]:
            raise ValueError(f"lengths: expected non-negative token counts summing to {stacked.shape[0]} (the rows), "
                             f"got {sizes.tolist()}")
    finite = ~np.isneginf(stacked)
    flat = stacked[finite]
    counts = finite.sum(axis=1).astype(np.intp)
    return _finish(flat, counts, sizes, "dense top-k logprobs")


# ------------------------------------------------------------------------------------------------------------
# Per-token statistics on TopKLogprobs (or any [N, K] -inf padded array sorted descending)
# ------------------------------------------------------------------------------------------------------------


def _values(topk: TopKLogprobs | npt.ArrayLike) -> FloatArray:
    if isinstance(topk, TopKLogprobs):
        return topk.values
    return topk_from_dense(topk).values


def _as_topk(topk: TopKLogprobs | npt.ArrayLike) -> TopKLogprobs:
    return topk if isinstance(topk, TopKLogprobs) else topk_from_dense(topk)


def topk_margin(topk: TopKLogprobs | npt.ArrayLike) -> FloatArray:
    """Per-token ``p1 - p2`` from the two largest log-probs; NaN where fewer than two entries were reported.

    >>> topk_margin(np.log([[0.7, 0.2], [0.5, 0.5]])).round(6).tolist()
    [0.5, 0.0]
    """
    topk = _as_topk(topk)
    margin = np.exp(topk.values[:, 0]) - np.exp(topk.values[:, 1])
    return np.where(topk.counts >= 2, margin, np.nan)


def topk_margin_uncertainty(topk: TopKLogprobs | npt.ArrayLike) -> FloatArray:
    """PixelThink's per-token uncertainty ``clip(1 - (p1 - p2), 0, 1)``; NaN where fewer than two entries.

    Identical to the official rollout code's per-token value (which it computes in float32 torch scalars;
    this is float64).

    >>> topk_margin_uncertainty(np.log([[0.7, 0.2]])).round(6).tolist()
    [0.5]
    """
    topk = _as_topk(topk)
    values = topk.values
    uncertainty = np.clip(1.0 - (np.exp(values[:, 0]) - np.exp(values[:, 1])), 0.0, 1.0)
    return np.where(topk.counts >= 2, uncertainty, np.nan)


def topk_entropy_bounds(topk: TopKLogprobs | npt.ArrayLike, *,
                        vocab_size: int | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-token ``(H_lb, H_ub, tail_mass)`` in nats; ``H_ub`` needs ``vocab_size`` (else it is NaN).

    ``H_lb = -sum_j p_j ln p_j - r ln r``, ``H_ub = H_lb + r ln(V - n)``, ``r = clip(1 - sum_j p_j, 0, 1)``
    (see the module docstring). Tokens without any entry get NaN.

    >>> low, high, tail = topk_entropy_bounds(np.log([[0.5, 0.5]]), vocab_size=10)
    >>> low.round(4).tolist(), high.round(4).tolist(), tail.round(4).tolist()
    ([0.6931], [0.6931], [0.0])
    """
    topk = _as_topk(topk)
    values = topk.values
    n = topk.counts
    p = np.exp(values)
    plogp = np.where(p > 0, p * np.where(np.isfinite(values), values, 0.0), 0.0)
    tail = np.clip(1.0 - p.sum(axis=1), 0.0, 1.0)
    tail_term = np.where(tail > 0, tail * np.log(np.where(tail > 0, tail, 1.0)), 0.0)
    low = -plogp.sum(axis=1) - tail_term
    if vocab_size is None:
        high = np.full_like(low, np.nan)
    else:
        if not (isinstance(vocab_size, (int, np.integer)) and vocab_size >= 2):
            raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        if (n > vocab_size).any():
            raise ValueError(f"vocab_size: expected >= the number of reported entries ({int(n.max())}), "
                             f"got {vocab_size}")
        unreported = np.maximum(vocab_size - n, 1)
        high = low + tail * np.log(unreported)
    missing = n == 0
    return np.where(missing, np.nan, low), np.where(missing, np.nan, high), np.where(missing, np.nan, tail)


def deepconf_confidence(topk: TopKLogprobs | npt.ArrayLike, *, k: int) -> FloatArray:
    """DeepConf token confidence ``C = -(1/k') sum_{j<=k'} ln p_j`` over the top ``k' = min(k, n)`` entries
    (arXiv 2508.15260, token confidence); ``k`` is the engine's top-k. NaN where no entry was reported.

    >>> deepconf_confidence(np.log([[0.5, 0.25, 0.125]]), k=2).round(6).tolist()
    [1.039721]
    """
    if not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"k: expected an int >= 1 (the engine's top-k), got {k!r}")
    values = _values(topk)[:, :k]
    used = np.isfinite(values)
    count = used.sum(axis=1)
    total = np.where(used, values, 0.0).sum(axis=1)
    return np.where(count > 0, -total / np.maximum(count, 1), np.nan)


def deepconf_uncertainty(topk: TopKLogprobs | npt.ArrayLike, *, k: int) -> FloatArray:
    """DeepConf confidence mapped to ``[0, 1]`` uncertainty: ``k' exp(-C)``, the top-k' geometric mean
    probability over its maximum ``1/k'`` (ours, monotone decreasing in ``C``). NaN where no entry.

    >>> deepconf_uncertainty(np.log([[0.5, 0.5]]), k=2).round(6).tolist()
    [1.0]
    """
    values = _values(topk)[:, :k]
    count = np.isfinite(values).sum(axis=1)
    confidence = deepconf_confidence(topk, k=k)
    return np.asarray(np.clip(count * np.exp(-confidence), 0.0, 1.0), dtype=np.float64)

