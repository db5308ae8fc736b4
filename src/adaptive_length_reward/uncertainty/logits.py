"""Per-token uncertainty statistics from full logits, in one fused pass over row chunks (docs/uncertainty.md).

Per row of ``z = logits / temperature``, five reductions accumulate in float32 whatever the input dtype:
``m1 = max z``, ``m2`` the second largest (``m1`` on a tie), ``s = sum exp(z - m1)``,
``b = sum exp(z - m1) (z - m1)`` and ``t = sum z``; then, in float64 on ``N`` numbers only:

* ``entropy`` ``H = ln s - b / s``, in ``[0, ln V]`` (the identity ``H = logsumexp(z) - sum_j p_j z_j`` of verl
  ``verl/utils/torch_functional.py::entropy_from_logits`` and TRL, shifted by ``m1`` so no term overflows);
* ``margin`` ``p1 - p2 = (1 - e^(m2 - m1)) / s``, in ``[0, 1]``; PixelThink's token uncertainty is ``1 - margin``
  (arXiv 2505.23727; official ``vllm_rollout_spmd.py::compute_uncertainty_from_logprob_dict``);
* ``self_certainty`` ``KL(U || p) = ln s + m1 - t / V - ln V``, in ``[0, inf)`` (Kang et al. 2025, arXiv
  2502.18581; higher means more confident);
* ``nll`` ``-ln p_y = ln s - (z_y - m1)`` of the sampled token ``y``.

Only the rows under ``mask`` are read, ``C`` at a time (``C`` bounded by a memory budget); torch is imported inside
the functions, so importing this module costs nothing. A row whose float32 pass does not stay finite although its
logits are finite (spread wider than float32 holds, e.g. ``[3e38, -3e38]``; float64 logits beyond float32's range; a
small temperature) is recomputed in float64, so finite logits always give finite statistics (self-certainty and NLL
saturate at float32's largest value); NaN or infinite logits raise.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from ..errors import import_optional
from .reduction import Reduction, reduce_tokens, unit_uncertainty

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "STATISTICS",
    "default_memory_budget",
    "rows_per_chunk",
    "sequence_uncertainty",
    "token_entropy",
    "token_margin",
    "token_nll",
    "token_self_certainty",
    "token_statistics",
]

Statistic = Literal["entropy", "margin", "self_certainty", "nll"]
#: The per-token measures [`sequence_uncertainty`][] maps to ``[0, 1]``.
SequenceMeasure = Literal["margin", "entropy", "nll"]

#: Names [`token_statistics`][] computes.
STATISTICS: tuple[str, ...] = get_args(Statistic)

_DEFAULT_STATS: tuple[str, ...] = ("entropy", "margin", "self_certainty")
_CPU_BUDGET = 16 * 2**20
_CUDA_BUDGET = 1024 * 2**20
# Chunks that stay in the last-level cache run faster on CPU: two float32 buffers of this many bytes.
_CPU_CACHE_BYTES = 4 * 2**20
_MIN_BLOCKED_VOCAB = 4096


def _torch() -> Any:
    return import_optional("torch", extra="torch", purpose="Uncertainty from full logits")


def default_memory_budget(device: str | Any = "cpu") -> int:
    """Default extra memory (bytes) one [`token_statistics`][] call may use: 16 MiB on CPU, 1 GiB on CUDA.

    >>> default_memory_budget("cpu") // 2**20
    16
    """
    kind = device if isinstance(device, str) else getattr(device, "type", str(device))
    return _CUDA_BUDGET if str(kind).startswith("cuda") else _CPU_BUDGET


def rows_per_chunk(
    vocab_size: int, itemsize: int, *, memory_budget_bytes: int, device: str = "cpu", compiled: bool = False
) -> int:
    """How many rows one chunk holds so the extra memory stays under ``memory_budget_bytes``.

    The eager path keeps, per row, two float32 buffers (``8 V`` bytes) plus a copy of the row in its own dtype
    when rows are gathered (``itemsize * V``); the compiled path keeps only the gathered copy. On CPU the
    chunk is further capped so the float32 buffers stay cache-resident (4 MiB each), which is faster. At least
    one row is always processed, so a budget below one row's footprint is exceeded by that row.

    >>> rows_per_chunk(151936, 2, memory_budget_bytes=16 * 2**20)
    6
    >>> rows_per_chunk(32000, 2, memory_budget_bytes=16 * 2**20)
    32
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size: expected >= 1, got {vocab_size}")
    if memory_budget_bytes < 1:
        raise ValueError(f"memory_budget_bytes: expected a positive number of bytes, got {memory_budget_bytes}")
    per_row = vocab_size * (itemsize if compiled else 8 + itemsize)
    rows = memory_budget_bytes // per_row
    if not device.startswith("cuda"):
        rows = min(rows, _CPU_CACHE_BYTES // (4 * vocab_size))
    return max(1, int(rows))


def _block_size(vocab_size: int) -> int:
    """Largest block width in [32, 512] dividing ``vocab_size`` (0 when none does or the vocabulary is small)."""
    if vocab_size < _MIN_BLOCKED_VOCAB:
        return 0
    return next((width for width in range(512, 31, -1) if vocab_size % width == 0), 0)


# -- Per-chunk kernels. Both return float32 rows of (m1, m2, s, b, t); m2 only when asked (else m1). -------------


def _top_two(z: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Largest and second largest entry of each row of ``z`` (float32 [C, V]), ties counted twice, and the
    column of the largest.

    With ``groups = G > 0`` (``G`` divides ``V``) the columns are dealt into ``G`` interleaved groups (column
    ``j`` in group ``j mod G``): the group maxima are one reduction over the outer axis of a ``[C, V/G, G]``
    view (contiguous inner axis, so it vectorises), and only the winning group (``V/G`` columns) is searched
    for the runner-up. Exact: the second largest entry is either the best of another group or the second
    best of the winning group.
    """
    torch = _torch()
    rows, vocab = z.shape
    if groups == 0:
        top = z.topk(2, dim=-1)
        return top.values[:, 0], top.values[:, 1], top.indices[:, 0]
    dealt = z.view(rows, vocab // groups, groups)
    best, which = dealt.amax(1).topk(2, dim=-1)
    column = torch.gather(dealt, 2, which[:, None, :1].expand(rows, vocab // groups, 1)).squeeze(2)
    inside, where = column.topk(2, dim=-1)
    return best[:, 0], torch.maximum(best[:, 1], inside[:, 1]), where[:, 0] * groups + which[:, 0]


class _EagerChunks:
    """Plain PyTorch ops over row chunks with two reused float32 buffers (the fallback path)."""

    def __init__(self, rows: int, vocab: int, device: Any, *, second: bool, entropy: bool) -> None:
        torch = _torch()
        self.z = torch.empty(rows, vocab, dtype=torch.float32, device=device)
        self.e = torch.empty(rows, vocab, dtype=torch.float32, device=device)
        self.block = _block_size(vocab)
        self.second, self.entropy = second, entropy

    def __call__(self, chunk: torch.Tensor, temperature: float, out: torch.Tensor) -> None:
        torch = _torch()
        n = chunk.shape[0]
        z, e = self.z[:n], self.e[:n]
        z.copy_(chunk)
        if temperature != 1.0:
            z.div_(temperature)
        torch.sum(z, dim=-1, out=out[4])
        top = None
        if self.second:
            m1, m2, top = _top_two(z, self.block)
            out[1].copy_(m2)
        else:
            m1 = torch.amax(z, dim=-1)
        out[0].copy_(m1)
        z.sub_(m1[:, None])
        # p = softmax(z - m1) = e / S: torch's fused softmax kernel computes the exponentials faster than
        # torch.exp on CPU. The largest p is exp(0) / S = 1 / S, so s = S * sum(p) = sum(p) / p_max and
        # b = sum(e (z - m1)) = (p . (z - m1)) / p_max: exact identities, one float32 rounding each.
        torch.softmax(z, dim=-1, out=e)
        p_max = torch.amax(e, dim=-1) if top is None else e.gather(1, top[:, None]).squeeze(1)
        torch.sum(e, dim=-1, out=out[2])
        out[2].div_(p_max)
        if self.entropy:
            torch.linalg.vecdot(e, z, out=out[3])
            out[3].div_(p_max)


def _fused_chunk(chunk: torch.Tensor, temperature: torch.Tensor, block: int, second: bool) -> Any:
    """One chunk's (m1, m2, s, b, t) as a [5, C] float32 tensor; written for ``torch.compile`` to fuse.

    Sums run in two levels (over blocks of ``block`` columns, then over blocks) to keep float32 rounding of
    the 152k-term sums near 1e-7 relative.
    """
    torch = _torch()
    rows, vocab = chunk.shape
    z = chunk.float() / temperature
    blocks = z.view(rows, vocab // block, block) if block else z.view(rows, 1, vocab)
    block_max = blocks.amax(-1)
    m1 = block_max.amax(-1)
    if second:
        if block:
            best, which = block_max.topk(2, dim=-1)
            winner = torch.gather(blocks, 1, which[:, :1, None].expand(rows, 1, block)).squeeze(1)
            m2 = torch.maximum(best[:, 1], winner.topk(2, dim=-1).values[:, 1])
        else:
            m2 = z.topk(2, dim=-1).values[:, 1]
    else:
        m2 = m1
    d = blocks - m1[:, None, None]
    e = d.exp()
    s = e.sum(-1).sum(-1)
    b = (e * d).sum(-1).sum(-1)
    t = blocks.sum(-1).sum(-1)
    return torch.stack([m1, m2, s, b, t])


_COMPILED: dict[str, Any] = {}
_COMPILE_LOCK = threading.Lock()


def _compiled_kernel() -> Callable[..., Any] | None:
    """The compiled chunk kernel, or None after a failed compilation in this process (then: eager)."""
    with _COMPILE_LOCK:
        if "kernel" not in _COMPILED:
            torch = _torch()
            _COMPILED["kernel"] = torch.compile(_fused_chunk, dynamic=False)
        return _COMPILED["kernel"]  # type: ignore[no-any-return]


def _check_inputs(
    logits: Any,
    mask: Any,
    token_ids: Any,
    temperature: float,
    stats: Sequence[str],
    chunk_rows: Any,
    memory_budget_bytes: Any,
    fill_value: Any,
) -> tuple[Any, Any]:
    """Raise naming the first bad argument; return ``mask`` (bool) and, for ``"nll"``, ``token_ids`` as tensors."""
    torch = _torch()
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits: expected a torch.Tensor of shape [..., V], got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits: expected a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"logits: expected shape [N, V] or [B, T, V], got {tuple(logits.shape)}")
    if logits.shape[-1] < 2:
        raise ValueError(f"logits: expected a vocabulary of at least 2 entries, got V = {logits.shape[-1]}")
    if not (
        isinstance(temperature, (int, float))
        and not isinstance(temperature, bool)
        and math.isfinite(temperature)
        and temperature > 0
    ):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    unknown = [s for s in stats if s not in STATISTICS]
    if unknown or not stats:
        raise ValueError(f"stats: expected a non-empty selection of {list(STATISTICS)}, got {list(stats)!r}")
    if chunk_rows is not None and (not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1):
        raise ValueError(f"chunk_rows: expected an int >= 1, got {chunk_rows!r}")
    if memory_budget_bytes is not None and (not isinstance(memory_budget_bytes, int) or memory_budget_bytes < 1):
        raise ValueError(f"memory_budget_bytes: expected a positive int, got {memory_budget_bytes!r}")
    if not isinstance(fill_value, (int, float)) or isinstance(fill_value, bool):
        raise TypeError(f"fill_value: expected a float, got {type(fill_value).__name__}")
    if mask is not None:
        mask = _per_position(mask, "mask", logits)
        if mask.dtype != torch.bool:
            if mask.is_floating_point() or mask.is_complex() or ((mask != 0) & (mask != 1)).any():
                raise ValueError(f"mask: expected booleans or 0/1 integers, got dtype {mask.dtype}")
            mask = mask != 0
    if "nll" not in stats:
        return mask, None
    if token_ids is None:
        raise ValueError("token_ids: expected the sampled token ids (shape logits.shape[:-1]) for stat 'nll', got None")
    token_ids = _per_position(token_ids, "token_ids", logits)
    if token_ids.is_floating_point() or token_ids.dtype == torch.bool:
        raise TypeError(f"token_ids: expected an integer tensor, got dtype {token_ids.dtype}")
    return mask, token_ids


def _per_position(value: Any, name: str, logits: Any) -> Any:
    """``value`` as a tensor on the logits' device, checked to have one entry per position."""
    value = _torch().as_tensor(value, device=logits.device)
    lead = tuple(logits.shape[:-1])
    if tuple(value.shape) != lead:
        raise ValueError(f"{name}: expected shape {lead} (logits.shape[:-1]), got {tuple(value.shape)}")
    return value


def _position(index: int, rows: Any, lead: tuple[int, ...]) -> tuple[int, ...]:
    """The position (an index into ``logits.shape[:-1]``) of the ``index``-th computed row."""
    row = index if rows is None else int(rows[index])
    return tuple(int(i) for i in np.unravel_index(row, lead))


def _gather_rows(logits: Any, flat: Any) -> Any:
    """The ``[len(flat), V]`` logits at the flat positions ``flat`` (copying no more than those rows)."""
    torch = _torch()
    try:
        return logits.view(-1, logits.shape[-1]).index_select(0, flat)
    except RuntimeError:  # not viewable as [N, V]
        return logits[torch.unravel_index(flat, tuple(logits.shape[:-1]))]


def _raise_non_finite(logits: Any, rows: Any, index: int, values: Any, more: int) -> None:
    """Raise a ValueError naming the position of computed row ``index`` (whose logits ``values`` are NaN or inf)."""
    torch = _torch()
    position = _position(index, rows, tuple(logits.shape[:-1]))
    kinds = [
        name
        for name, hit in (
            ("nan", torch.isnan(values).any()),
            ("+inf", torch.isposinf(values).any()),
            ("-inf", torch.isneginf(values).any()),
        )
        if bool(hit)
    ]
    got = " and ".join(kinds) or "values whose quotient by the temperature overflows float64"
    extra = f" (and up to {more} more positions)" if more else ""
    raise ValueError(
        f"logits: expected finite values, got {got} at position {position}{extra}; masked-out positions "
        "are never read, so pass mask= to exclude padding"
    )


def _reductions(job: _Job, chosen: Sequence[str]) -> tuple[Any, Any]:
    """The per-row ``(m1, m2, s, b, t / V)`` and the sampled tokens' scaled logits, widened to float64 (float32 on
    MPS, which has no float64).

    Rows whose float32 pass did not stay finite are either NaN/inf logits (``ValueError`` naming the first position)
    or finite logits spread wider than float32 holds (``[3e38, -3e38]``: ``z - m1`` overflows and ``0 * -inf`` turns
    ``b`` into NaN; float64 logits beyond float32's range; a small temperature): those rows are recomputed in
    float64 with the limits written out (``e^d d -> 0`` as ``d -> -inf``; the mean as ``sum(z / V)``, which cannot
    overflow), so every finite input gets finite statistics.
    """
    torch = _torch()
    device = job.logits.device
    wide = torch.float32 if device.type == "mps" else torch.float64
    raw = job.raw.to(wide)
    raw[4] /= job.vocab
    token = None if job.token_logit is None else job.token_logit.to(wide)
    used = [0, 2, 4] + ([1] if "margin" in chosen else []) + ([3] if "entropy" in chosen else [])
    bad = ~torch.isfinite(job.raw[used]).all(0)
    if token is not None:
        bad |= ~torch.isfinite(job.token_logit)
    flagged = bad.nonzero().squeeze(1)
    for start in range(0, int(flagged.numel()), 64):  # 64 rows at a time bounds the float64 copy
        index = flagged[start : start + 64]
        flat = index if job.rows is None else job.rows[index]
        z = _gather_rows(job.logits, flat).to(device="cpu" if device.type == "mps" else device, dtype=torch.float64)
        z = z / job.temperature if job.temperature != 1.0 else z
        broken = ~torch.isfinite(z).all(1)
        if bool(broken.any()):
            first = int(broken.nonzero()[0, 0])
            _raise_non_finite(
                job.logits,
                job.rows,
                int(index[first]),
                _gather_rows(job.logits, flat[first : first + 1]),
                int(flagged.numel()) - start - first - 1,
            )
        m1 = z.amax(1)
        d = z - m1[:, None]
        e = d.exp()
        exact = [
            m1,
            z.topk(2, dim=1).values[:, 1],
            e.sum(1),
            torch.where(e > 0, e * d, 0.0).sum(1),
            (z / job.vocab).sum(1),
        ]
        raw[:, index] = torch.stack(exact).to(device=device, dtype=wide)
        if token is not None:
            token[index] = z.gather(1, job.ids[flat][:, None].to(z.device)).squeeze(1).to(device=device, dtype=wide)
    return raw, token


def token_statistics(
    logits: torch.Tensor,
    *,
    mask: torch.Tensor | npt.ArrayLike | None = None,
    token_ids: torch.Tensor | npt.ArrayLike | None = None,
    temperature: float = 1.0,
    stats: Iterable[str] | None = None,
    memory_budget_bytes: int | None = None,
    chunk_rows: int | None = None,
    compile: bool = False,
    fill_value: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Per-token entropy, margin, self-certainty and sampled-token NLL from full logits, in one pass.

    Formulas and sources: the module docstring.

    Args:
        logits: ``[N, V]`` or ``[B, T, V]`` (any leading shape), any floating dtype, CPU or CUDA; need not be
            contiguous (e.g. ``logits[:, :-1]``). No gradient flows through the results.
        mask: booleans (or 0/1) of shape ``logits.shape[:-1]``; false positions are neither read nor checked
            and get ``fill_value`` (``float('nan')`` is allowed). ``None`` computes every position.
        token_ids: the sampled token per position (shape ``logits.shape[:-1]``); required for ``"nll"``.
        stats: any of ``STATISTICS``; default the first three, plus ``"nll"`` when ``token_ids`` is given.
        memory_budget_bytes: extra memory the call may use (default [`default_memory_budget`][]); sets the
            chunk size through [`rows_per_chunk`][], unless ``chunk_rows`` gives it.
        compile: run each chunk through a ``torch.compile``-d kernel (first call compiles, seconds); if
            compilation fails the eager path runs and a ``RuntimeWarning`` says why.

    Returns:
        ``{name: float32 tensor of shape logits.shape[:-1]}`` on the logits' device, for each requested stat,
        clamped to its range. ``ValueError`` names NaN or infinite logits at a computed position, a token id
        outside ``[0, V)``, or a bad argument.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    >>> out = token_statistics(logits, token_ids=torch.tensor([0, 2]))
    >>> [round(v, 4) for v in out["entropy"].tolist()], [round(v, 4) for v in out["margin"].tolist()]
    ([0.8324, 1.0986], [0.4205, 0.0])
    >>> [round(v, 4) for v in out["nll"].tolist()]
    [0.4076, 1.0986]
    """
    torch = _torch()
    chosen = (
        tuple(dict.fromkeys(stats))
        if stats is not None
        else (_DEFAULT_STATS + (("nll",) if token_ids is not None else ()))
    )
    mask_t, ids_t = _check_inputs(
        logits, mask, token_ids, temperature, chosen, chunk_rows, memory_budget_bytes, fill_value
    )
    lead = tuple(logits.shape[:-1])
    with torch.no_grad():
        job = _Job(logits.detach(), mask_t, ids_t, temperature)
        outputs = {
            name: torch.full(lead, float(fill_value), dtype=torch.float32, device=logits.device) for name in chosen
        }
        if job.n_rows == 0:
            return outputs
        job.run(chosen, memory_budget_bytes, chunk_rows, compile)
        raw, token_logit = _reductions(job, chosen)
        for name, column in _combine(raw, token_logit, job.vocab, chosen).items():
            target = outputs[name].view(-1)
            if job.rows is None:
                target.copy_(column)
            else:
                target.index_copy_(0, job.rows, column.to(torch.float32))
    return outputs


class _Job:
    """The rows one [`token_statistics`][] call computes, and where their reductions go.

    ``rows`` are the flat indices of the computed positions (``None``: every position, read as contiguous slices
    without a gather); ``take(start, stop)`` gives the logits of computed rows ``start..stop``; ``raw`` receives
    the per-row ``(m1, m2, s, b, t)`` and ``token_logit`` the sampled tokens' scaled logits (for ``"nll"``).
    """

    raw: Any = None
    token_logit: Any = None

    def __init__(self, logits: Any, mask: Any, ids: Any, temperature: float) -> None:
        """The computed rows (under ``mask``) and the sampled ids, checked to lie in ``[0, V)`` there."""
        lead, self.vocab = tuple(logits.shape[:-1]), int(logits.shape[-1])
        self.logits, self.temperature = logits, temperature
        self.rows = rows = None if mask is None or bool(mask.all()) else mask.reshape(-1).nonzero().squeeze(1)
        self.n_rows = math.prod(lead) if rows is None else int(rows.numel())
        self.take = _row_taker(logits, rows)
        self.ids: Any = None if ids is None else ids.reshape(-1).to(_torch().int64)
        if self.ids is not None:
            picked = self.ids if rows is None else self.ids[rows]
            outside = (picked < 0) | (picked >= self.vocab)
            if bool(outside.any()):
                bad = int(outside.nonzero()[0, 0])
                raise ValueError(
                    f"token_ids: expected ids in [0, {self.vocab}), got {int(picked[bad])} at position "
                    f"{_position(bad, rows, lead)}"
                )

    def run(
        self, chosen: Sequence[str], memory_budget_bytes: int | None, chunk_rows: int | None, compile: bool
    ) -> None:
        """Fill ``raw`` (and ``token_logit``): through the compiled kernel when asked and it compiles, else eagerly."""
        torch = _torch()
        device = self.logits.device
        self.raw = torch.empty(5, self.n_rows, dtype=torch.float32, device=device)
        if self.ids is not None:
            self.token_logit = torch.empty(self.n_rows, dtype=torch.float32, device=device)
        budget = default_memory_budget(device) if memory_budget_bytes is None else memory_budget_bytes

        def size(compiled: bool) -> int:  # the compiled kernel keeps one static chunk shape (no recompiles)
            rows = chunk_rows or rows_per_chunk(
                self.vocab,
                self.logits.element_size(),
                memory_budget_bytes=budget,
                device=device.type,
                compiled=compiled,
            )
            return rows if compiled else min(rows, self.n_rows)

        kernel = _compiled_kernel() if compile else None
        if kernel is not None:
            try:
                self._run_compiled(kernel, size(True), second="margin" in chosen)
                return
            except Exception as error:  # compiler/backend failures only (re-raised otherwise); eager re-runs the maths
                if not _is_compile_failure(error):
                    raise
                _COMPILED["kernel"] = None
                reason = f"{type(error).__name__}: {str(error)[:200]}"
                warnings.warn(
                    f"token_statistics: torch.compile failed ({reason}); using the eager path for the rest "
                    "of this process",
                    RuntimeWarning,
                    stacklevel=3,
                )
        chunks = size(False)
        eager = _EagerChunks(chunks, self.vocab, device, second="margin" in chosen, entropy="entropy" in chosen)
        for start, stop, chunk in self._chunks(chunks):
            eager(chunk, float(self.temperature), self.raw[:, start:stop])

    def _chunks(self, size: int) -> Iterator[tuple[int, int, Any]]:
        """``(start, stop, logits of computed rows start..stop)`` per ``size`` rows; fills ``token_logit`` too."""
        for start in range(0, self.n_rows, size):
            stop = min(start + size, self.n_rows)
            chunk = self.take(start, stop)
            if self.token_logit is not None:
                picked = self.ids[start:stop] if self.rows is None else self.ids[self.rows[start:stop]]
                values = chunk.gather(1, picked[:, None]).squeeze(1).float()
                self.token_logit[start:stop] = values / self.temperature if self.temperature != 1.0 else values
            yield start, stop, chunk

    def _run_compiled(self, kernel: Callable[..., Any], size: int, *, second: bool) -> None:
        torch = _torch()
        block, device = _block_size(self.vocab), self.logits.device
        temp = torch.tensor(float(self.temperature), dtype=torch.float32, device=device)
        staging = None
        for start, stop, chunk in self._chunks(size):
            if stop - start < size:  # keep one static shape: pad the last chunk with zero rows (results dropped)
                if staging is None:
                    staging = torch.zeros(size, self.vocab, dtype=self.logits.dtype, device=device)
                staging[: stop - start].copy_(chunk)
                chunk = staging
            self.raw[:, start:stop] = kernel(chunk, temp, block, second)[:, : stop - start]


def _row_taker(logits: torch.Tensor, rows: torch.Tensor | None) -> Callable[[int, int], torch.Tensor]:
    """``take(start, stop)`` -> the [stop - start, V] logits of computed rows start..stop (a view when possible)."""
    torch = _torch()
    try:
        flat = logits.view(-1, logits.shape[-1])
    except RuntimeError:  # not viewable as [N, V] (e.g. logits[:, :-1]): gather by coordinates, copying no more
        lead = tuple(logits.shape[:-1])

        def take(start: int, stop: int) -> Any:
            index = rows[start:stop] if rows is not None else torch.arange(start, stop, device=logits.device)
            return logits[torch.unravel_index(index, lead)]

        return take
    if rows is None:
        return lambda start, stop: flat[start:stop]
    return lambda start, stop: flat.index_select(0, rows[start:stop])


def _is_compile_failure(error: BaseException) -> bool:
    """Whether an exception comes from the torch.compile stack (dynamo/inductor/C++ toolchain)."""
    module = type(error).__module__ or ""
    if module.startswith(("torch._dynamo", "torch._inductor", "torch.fx")):
        return True
    text = f"{type(error).__name__}: {error}"
    return any(
        word in text
        for word in ("BackendCompilerFailed", "InductorError", "CppCompileError", "compiler", "Dynamo", "inductor")
    )


def _combine(
    raw: torch.Tensor, token_logit: torch.Tensor | None, vocab: int, chosen: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The statistics from the widened per-row reductions ``(m1, m2, s, b, t / V)`` (``_reductions``).

    Self-certainty and NLL are unbounded: past float32's largest value (logits spread wider than ``3.4e38``) they
    saturate there, so the float32 results stay finite.
    """
    torch = _torch()
    m1, m2, s, b, mean = raw
    log_s = torch.log(s)
    log_v = math.log(vocab)
    top = float(torch.finfo(torch.float32).max)
    out: dict[str, Any] = {}
    if "entropy" in chosen:
        out["entropy"] = (log_s - b / s).clamp_(0.0, log_v)
    if "margin" in chosen:
        out["margin"] = ((1.0 - torch.exp(m2 - m1)) / s).clamp_(0.0, 1.0)
    if "self_certainty" in chosen:
        out["self_certainty"] = (log_s + (m1 - mean) - log_v).clamp_(0.0, top)
    if "nll" in chosen:
        assert token_logit is not None
        # ln s - (z_y - m1): the difference is exact in float64, so the result does not depend on a constant
        # added to the logits (ln s + m1 - z_y rounds ln s + m1 first and loses small NLLs to cancellation).
        out["nll"] = (log_s - (token_logit - m1)).clamp_(0.0, top)
    return out


def token_entropy(logits: torch.Tensor, *, mask: Any = None, temperature: float = 1.0, **options: Any) -> torch.Tensor:
    """Shannon entropy ``H = -sum_j p_j ln p_j`` (nats) per position; see [`token_statistics`][].

    >>> import torch
    >>> round(float(token_entropy(torch.zeros(1, 4))[0]), 6) == round(math.log(4), 6)
    True
    """
    return token_statistics(logits, mask=mask, temperature=temperature, stats=("entropy",), **options)["entropy"]


def token_margin(logits: torch.Tensor, *, mask: Any = None, temperature: float = 1.0, **options: Any) -> torch.Tensor:
    """Top-1 minus top-2 probability ``p1 - p2`` per position (PixelThink's token uncertainty is ``1 - margin``).

    >>> import torch
    >>> round(float(token_margin(torch.tensor([[0.0, 0.0, -1e4]]))[0]), 6)
    0.0
    """
    return token_statistics(logits, mask=mask, temperature=temperature, stats=("margin",), **options)["margin"]


def token_self_certainty(
    logits: torch.Tensor, *, mask: Any = None, temperature: float = 1.0, **options: Any
) -> torch.Tensor:
    """Self-certainty ``KL(U || p) = -ln V - (1/V) sum_j ln p_j`` per position (arXiv 2502.18581).

    >>> import torch
    >>> float(token_self_certainty(torch.zeros(1, 8))[0])
    0.0
    """
    return token_statistics(logits, mask=mask, temperature=temperature, stats=("self_certainty",), **options)[
        "self_certainty"
    ]


def token_nll(
    logits: torch.Tensor, token_ids: Any, *, mask: Any = None, temperature: float = 1.0, **options: Any
) -> torch.Tensor:
    """Negative log-likelihood ``-ln p_y`` of the sampled token ``y`` per position.

    >>> import torch
    >>> round(float(token_nll(torch.zeros(1, 4), torch.tensor([3]))[0]), 6) == round(math.log(4), 6)
    True
    """
    return token_statistics(logits, mask=mask, token_ids=token_ids, temperature=temperature, stats=("nll",), **options)[
        "nll"
    ]


def sequence_uncertainty(
    logits: torch.Tensor,
    *,
    mask: Any = None,
    measure: SequenceMeasure = "margin",
    token_ids: Any = None,
    reduction: Reduction = "mean",
    quantile: float = 0.9,
    entropy_cap: float | None = None,
    nll_cap: float | None = None,
    empty_value: float = 0.0,
    temperature: float = 1.0,
    **options: Any,
) -> npt.NDArray[np.float64]:
    """One uncertainty in ``[0, 1]`` per sequence from ``[B, T, V]`` logits: per-token values, then a reduction.

    Per token (normalisations in [`reduction`][]): ``"margin"``
    ``1 - (p1 - p2)`` (PixelThink); ``"entropy"`` ``H / ln V`` (or ``H / entropy_cap``, clipped);
    ``"nll"`` ``1 - p_y`` (or ``nll / nll_cap``, clipped). Then ``reduction`` over the positions where ``mask``
    is true (pass a reasoning-span mask from [`reasoning_span_mask`][]
    to measure the reasoning only); a sequence without any such position gets ``empty_value``.

    >>> import torch
    >>> logits = torch.zeros(2, 3, 4)
    >>> sequence_uncertainty(logits, mask=torch.tensor([[1, 1, 0], [0, 0, 0]]), measure="entropy").tolist()
    [1.0, 0.0]
    """
    torch = _torch()
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits: expected a [B, T, V] tensor, got {getattr(logits, 'shape', type(logits).__name__)}")
    if measure not in get_args(SequenceMeasure):
        raise ValueError(f"measure: expected 'margin', 'entropy' or 'nll', got {measure!r}")
    values = (
        token_statistics(
            logits,
            mask=mask,
            token_ids=token_ids,
            temperature=temperature,
            stats=(measure,),
            fill_value=float("nan"),
            **options,
        )[measure]
        .cpu()
        .numpy()
        .astype(np.float64)
    )
    per_token = unit_uncertainty(
        measure, values, vocab_size=int(logits.shape[-1]), entropy_cap=entropy_cap, nll_cap=nll_cap
    )
    keep = None if mask is None else torch.as_tensor(mask).bool().cpu().numpy()
    return reduce_tokens(per_token, keep, how=reduction, q=quantile, empty_value=empty_value)
