"""Per-token uncertainty from the top-k log-probs that rollout engines return, vectorised with numpy.

[`topk_from_vllm`][], [`topk_from_sglang`][] and [`topk_from_dense`][] read an engine's per-token top-k
(vLLM reports the distribution **before** temperature by default, SGLang **after**) into one [`TopKLogprobs`][]
in one pass over the Python objects; every statistic is then a few whole-array numpy operations. With
``p_j = exp(logprob_j)`` over the ``n`` reported entries, descending (docs/uncertainty.md, "From top-k log-probs"):

* margin ``p1 - p2`` and PixelThink's ``u = clip(1 - (p1 - p2), 0, 1)`` (arXiv 2505.23727; official
  ``verl/workers/rollout/vllm_rollout_spmd.py::compute_uncertainty_from_logprob_dict``); NaN below two entries;
* entropy bounds, tail ``r = clip(1 - sum_j p_j, 0, 1)``: ``H_lb = -sum_j p_j ln p_j - r ln r`` (the tail on one
  token) <= H <= ``H_ub = H_lb + r ln(V - n)`` (spread uniformly over the unreported tokens);
* DeepConf token confidence ``C = -(1/k) sum_{j<=k} ln p_j`` (Fu et al. 2025, arXiv 2508.15260), and its
  ``[0, 1]`` form ``k exp(-C)`` (ours: the top-k geometric-mean probability over its maximum ``1/k``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .reduction import LOGPROB_TOLERANCE, FloatArray, _as_numpy, check_vocab_size, margin_uncertainty, pad_ragged

__all__ = [
    "TopKLogprobs",
    "deepconf_confidence",
    "deepconf_uncertainty",
    "sampled_token_logprobs",
    "topk_entropy_bounds",
    "topk_from_dense",
    "topk_from_ranked",
    "topk_from_sglang",
    "topk_from_vllm",
    "topk_margin",
    "topk_margin_uncertainty",
]

IntArray = npt.NDArray[np.intp]


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
        return np.split(np.asarray(per_token, dtype=np.float64), np.cumsum(self.lengths)[:-1])

    def padded(self, per_token: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Per-token values ``[N]`` as ``([B, T_max] values, [B, T_max] mask)`` for the reductions."""
        return pad_ragged(self.split(per_token))


def _finish(flat: FloatArray, counts: IntArray, lengths: IntArray, where: str) -> TopKLogprobs:
    """Validate flat log-probs, scatter them into a dense -inf padded [N, K] array sorted descending."""
    bad = np.isnan(flat) | np.isposinf(flat) | (flat > LOGPROB_TOLERANCE)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        token = int(np.searchsorted(np.cumsum(counts), index, side="right"))
        completion = int(np.searchsorted(np.cumsum(lengths), token, side="right"))
        raise ValueError(
            f"{where}: expected log-probabilities (<= 0, or -inf), got {float(flat[index])!r} at "
            f"completion {completion}, token {token - int(np.sum(lengths[:completion]))}"
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


def _is_flat_container(obj: Any) -> bool:
    return all(hasattr(obj, name) for name in ("start_indices", "end_indices", "logprobs"))


def _dict_values(tokens: Sequence[dict[int, Any]], total: int) -> FloatArray:
    """All log-probs of a list of per-token dicts, flat, in one C-level pass."""
    if total == 0:
        return np.zeros(0)
    first = next(iter(next(d for d in tokens if d).values()))  # every value is of the first one's kind
    # List comprehensions are the fastest pure-Python extraction here (faster than map + attrgetter + fromiter).
    if hasattr(first, "logprob"):
        values = [entry.logprob for d in tokens for entry in d.values()]
    elif isinstance(first, Mapping):
        values = [entry["logprob"] for d in tokens for entry in d.values()]
    else:  # plain numbers (anything else fails the conversion below)
        values = [entry for d in tokens for entry in d.values()]
    array = np.array(values, dtype=np.float64)
    if array.shape != (total,):
        raise TypeError("vLLM logprobs: expected one number per entry")
    return array


def _gather(
    completions: Sequence[Any], what: str, read: Callable[[Any, str], tuple[IntArray, FloatArray]]
) -> TopKLogprobs:
    """One [`TopKLogprobs`][] from per-completion token lists, each read by ``read(tokens, where)`` into
    ``(entries per token, flat log-probs)``."""
    if isinstance(completions, (str, bytes, Mapping)):
        raise TypeError(
            f"completions: expected a sequence of per-completion {what} lists, got {type(completions).__name__}"
        )
    parts = []
    for i, tokens in enumerate(completions):
        where = f"{what} of completion {i}"
        if isinstance(tokens, (str, bytes, Mapping)):
            raise TypeError(f"{where}: expected a list of per-token entries, got {type(tokens).__name__}")
        parts.append(read(() if tokens is None else tokens, where))
    lengths = np.array([counts.size for counts, _ in parts], dtype=np.intp)
    flat = np.concatenate([values for _, values in parts]) if parts else np.zeros(0)
    counts = np.concatenate([counts for counts, _ in parts]) if parts else np.zeros(0, dtype=np.intp)
    return _finish(flat, counts, lengths, what)


def _read_vllm(tokens: Any, where: str) -> tuple[IntArray, FloatArray]:
    if _is_flat_container(tokens):
        starts = np.asarray(tokens.start_indices, dtype=np.intp)
        per_token = np.asarray(tokens.end_indices, dtype=np.intp) - starts
        index = np.arange(int(per_token.sum())) - np.repeat(np.cumsum(per_token) - per_token, per_token)
        return per_token, np.asarray(tokens.logprobs, dtype=np.float64)[np.repeat(starts, per_token) + index]
    try:  # fast path: every token a dict
        per_token = np.array(list(map(len, tokens)), dtype=np.intp).reshape(-1)
        return per_token, _dict_values(tokens, int(per_token.sum()))
    except (TypeError, ValueError, AttributeError, KeyError):
        pass
    dicts = [{} if entry is None else entry for entry in tokens]  # slow path: None tokens, or a clear error
    for t, entry in enumerate(dicts):
        if not isinstance(entry, dict):
            raise TypeError(
                f"{where}, token {t}: expected a dict (token id -> Logprob) or None, got {type(entry).__name__}"
            )
    per_token = np.fromiter(map(len, dicts), dtype=np.intp, count=len(dicts))
    try:
        return per_token, _dict_values(dicts, int(per_token.sum()))
    except (TypeError, ValueError, AttributeError, KeyError):
        raise TypeError(
            f"{where}: expected every dict value to be a Logprob, a mapping with 'logprob' or a float "
            "(all of one kind, logprob a number)"
        ) from None


def topk_from_vllm(completions: Sequence[Any]) -> TopKLogprobs:
    """Read vLLM's per-token log-prob dicts (``CompletionOutput.logprobs``) of a batch of completions.

    Per completion: a list with one ``dict[token_id, Logprob]`` per generated token (``None`` or ``{}`` for a
    token without log-probs; values may also be mappings with a ``"logprob"`` key, after JSON, or plain floats),
    or a vLLM ``FlatLogprobs`` (flat ``logprobs`` with ``start_indices``/``end_indices`` per position, read
    without building dicts). The sampled token's extra entry (when it is outside the top-k) is kept: it tightens
    the entropy bounds and never changes the margin (it is below the top-k).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Logprob:  # vllm.logprobs.Logprob
    ...     logprob: float
    ...     rank: int | None = None
    >>> topk = topk_from_vllm([[{5: Logprob(-0.1, 1), 9: Logprob(-2.5, 2)}, {3: Logprob(-0.7, 1)}]])
    >>> topk.values.round(2).tolist(), topk.lengths.tolist()
    ([[-0.1, -2.5], [-0.7, -inf]], [2])
    """
    return _gather(completions, "vLLM logprobs", _read_vllm)


def _read_sglang(tokens: Any, where: str) -> tuple[IntArray, FloatArray]:
    tokens = [() if entries is None else entries for entries in tokens]
    per_token = np.fromiter(map(len, tokens), dtype=np.intp, count=len(tokens))
    try:
        values = np.array([entry[0] for entries in tokens for entry in entries], dtype=np.float64)
        if values.shape != (int(per_token.sum()),):
            raise ValueError("one number per entry")
    except (TypeError, IndexError, KeyError, ValueError):
        raise TypeError(
            f"{where}: expected per token a list of (logprob, token_id, text) tuples with a float logprob"
        ) from None
    return per_token, values


def topk_from_sglang(completions: Sequence[Any]) -> TopKLogprobs:
    """Read SGLang's ``meta_info["output_top_logprobs"]`` of a batch of completions: per completion, one list of
    ``(logprob, token_id, text)`` tuples (or lists, after JSON) per generated token, ``None`` without log-probs.

    >>> topk = topk_from_sglang([[[(-0.1, 5, "a"), (-2.5, 9, "b")], [(-0.7, 3, None)]]])
    >>> topk.values.round(2).tolist()
    [[-0.1, -2.5], [-0.7, -inf]]
    """
    return _gather(completions, "SGLang top logprobs", _read_sglang)


def topk_from_ranked(logprobs: Sequence[Sequence[Sequence[float | None]]]) -> TopKLogprobs:
    """Read the rank-sorted log-prob lists TRL's vLLM client returns: per completion, per generated token, the
    entries by ascending rank (``None`` for NaN, skipped), ``trl/generation/vllm_generation.py::extract_logprobs``
    (trl 1.16). With vLLM ``logprobs=N`` a token has the top N and, when it is not among them, the sampled token.

    >>> topk_from_ranked([[[-0.1, -2.5], [-0.7]]]).values.round(2).tolist()
    [[-0.1, -2.5], [-0.7, -inf]]
    """

    def read(tokens: Any, where: str) -> tuple[IntArray, FloatArray]:
        rows = [[float(v) for v in entries if v is not None] for entries in tokens]
        return (
            np.fromiter(map(len, rows), dtype=np.intp, count=len(rows)),
            np.array([v for row in rows for v in row], dtype=np.float64),
        )

    return _gather(logprobs, "ranked logprobs", read)


def sampled_token_logprobs(
    completion_ids: Sequence[Sequence[int]],
    logprobs: Sequence[Sequence[Sequence[float | None]]],
    logprob_token_ids: Sequence[Sequence[Sequence[int]]] | None,
) -> list[list[float | None]]:
    """The sampled token's log-prob per generated token, from TRL's rank-sorted lists (``None`` where vLLM gave
    NaN or the sampled token is not listed). With one entry per token (vLLM ``logprobs=0``) it is that entry; with
    more, the entry whose token id is the sampled one (``logprob_token_ids`` then required).

    >>> sampled_token_logprobs([[7, 3]], [[[-0.1, -2.5], [-0.7, -0.9]]], [[[7, 2], [1, 3]]])
    [[-0.1, -0.9]]
    """
    out: list[list[float | None]] = []
    for i, (ids, rows) in enumerate(zip(completion_ids, logprobs)):
        if len(ids) != len(rows):
            raise ValueError(
                f"logprobs of completion {i}: expected one entry list per token ({len(ids)}), got {len(rows)}"
            )
        if all(len(row) <= 1 for row in rows):
            out.append([row[0] if row else None for row in rows])
            continue
        if logprob_token_ids is None:
            raise ValueError(
                "logprob_token_ids: expected the token ids of the ranked log-probs (several entries per "
                "token), got None"
            )
        picked: list[float | None] = []
        for token, row, row_ids in zip(ids, rows, logprob_token_ids[i]):
            j = next((k for k, t in enumerate(row_ids) if int(t) == int(token)), None)
            picked.append(None if j is None else row[j])
        out.append(picked)
    return out


def topk_from_dense(values: Any, lengths: npt.ArrayLike | None = None) -> TopKLogprobs:
    """Dense top-k log-probs: a list of ``[T_i, k]`` arrays (one per completion), or one ``[N, k]`` array with
    ``lengths`` (tokens per completion; default: one completion). Missing entries are ``-inf``; rows need
    not be sorted. Torch tensors are accepted.

    >>> topk_from_dense([[[-2.5, -0.1], [-0.7, -np.inf]]]).values.round(2).tolist()
    [[-0.1, -2.5], [-0.7, -inf]]
    """

    def as_array(x: Any, name: str) -> FloatArray:
        array = _as_numpy(x, name)
        if array.ndim == 1 and array.size == 0:
            array = array.reshape(0, 1)
        if array.ndim != 2:
            raise ValueError(f"{name}: expected a [tokens, k] array, got shape {array.shape}")
        return array

    if lengths is None and not (isinstance(values, np.ndarray) or hasattr(values, "detach")):
        arrays = [as_array(v, f"values[{i}]") for i, v in enumerate(values)]
        sizes = np.array([a.shape[0] for a in arrays], dtype=np.intp)
        width = max((a.shape[1] for a in arrays), default=1)
        padded = [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=-np.inf) for a in arrays]
        stacked = np.concatenate(padded) if padded else np.zeros((0, width))
    else:
        stacked = as_array(values, "values")
        sizes = np.array([stacked.shape[0]] if lengths is None else np.asarray(lengths).reshape(-1), dtype=np.intp)
        if (sizes < 0).any() or int(sizes.sum()) != stacked.shape[0]:
            raise ValueError(
                f"lengths: expected non-negative token counts summing to {stacked.shape[0]} (the rows), "
                f"got {sizes.tolist()}"
            )
    finite = ~np.isneginf(stacked)
    flat = stacked[finite]
    counts = finite.sum(axis=1).astype(np.intp)
    return _finish(flat, counts, sizes, "dense top-k logprobs")


# -- Per-token statistics on TopKLogprobs (or any [N, K] -inf padded array sorted descending) --------------------


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
    """PixelThink's per-token uncertainty ``clip(1 - (p1 - p2), 0, 1)`` (in float64, the official code's value
    up to its float32 rounding); NaN where fewer than two entries.

    >>> topk_margin_uncertainty(np.log([[0.7, 0.2]])).round(6).tolist()
    [0.5]
    """
    return margin_uncertainty(topk_margin(topk))


def topk_entropy_bounds(
    topk: TopKLogprobs | npt.ArrayLike, *, vocab_size: int | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-token ``(H_lb, H_ub, tail_mass)`` in nats (formulas: the module docstring); ``H_ub`` needs
    ``vocab_size`` (else it is NaN). Tokens without any entry get NaN.

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
        if (n > check_vocab_size(vocab_size)).any():
            raise ValueError(
                f"vocab_size: expected >= the number of reported entries ({int(n.max())}), got {vocab_size}"
            )
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
    return _deepconf(topk, k)[1]


def deepconf_uncertainty(topk: TopKLogprobs | npt.ArrayLike, *, k: int) -> FloatArray:
    """DeepConf confidence mapped to ``[0, 1]`` uncertainty: ``k' exp(-C)``, the top-k' geometric mean
    probability over its maximum ``1/k'`` (ours, monotone decreasing in ``C``). NaN where no entry.

    >>> deepconf_uncertainty(np.log([[0.5, 0.5]]), k=2).round(6).tolist()
    [1.0]
    """
    count, confidence = _deepconf(topk, k)
    return np.asarray(np.clip(count * np.exp(-confidence), 0.0, 1.0), dtype=np.float64)


def _deepconf(topk: TopKLogprobs | npt.ArrayLike, k: int) -> tuple[IntArray, FloatArray]:
    """Per token ``(k', C)``: the entries used and [`deepconf_confidence`][]."""
    if not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"k: expected an int >= 1 (the engine's top-k), got {k!r}")
    values = _as_topk(topk).values[:, :k]
    used = np.isfinite(values)
    count = used.sum(axis=1)
    total = np.where(used, values, 0.0).sum(axis=1)
    return count, np.where(count > 0, -total / np.maximum(count, 1), np.nan)
