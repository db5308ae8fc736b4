"""Per-token statistics recorded while a Hugging Face model samples, from the distribution each token was drawn
from: no second forward pass, ``O(tokens)`` scalars kept (docs/uncertainty.md, "Measured at sampling").

[`SamplingRecorder`][] is a forward hook on the model that ``generate`` calls once per decoding step
(``transformers/generation/utils.py::GenerationMixin._sample`` reads ``outputs.logits[:, -1]`` of each call). Per
step it reads that row ``z`` (``[B, V]``), forms the measured distribution and keeps four numbers per row:

* ``distribution="model"`` (default): ``softmax(z / T)``, the policy's distribution at the sampling temperature
  ``T`` before any logits processor (no top-k / top-p / min-p truncation, no suppressed tokens): the distribution the
  forward-pass route recomputes, and vLLM's default ``raw_logprobs`` at ``T = 1`` (PixelThink samples at 1.0).
* ``distribution="sampler"``: the distribution ``torch.multinomial`` draws from, ``softmax`` of ``z / T`` after
  ``suppress_tokens``, top-k, top-p and min-p (transformers' own warpers, in ``generate``'s order: temperature,
  top-k, top-p, min-p); what vLLM calls ``processed_logprobs`` (TRL's setting). Processors that need the whole
  sequence (repetition penalty, n-gram bans) are refused with a clear error.

Statistics (formulas as [`logits`][]): ``margin`` ``p1 - p2``; ``entropy`` ``-sum p ln p`` (nats); ``self_certainty``
``KL(U || p)`` (``"model"`` only: infinite on a truncated support); ``nll`` ``-ln p_y`` of the token sampled at that
step (read from the next step's input ids, the last step's from the returned sequences). Per step and statistic
one or two reductions over the ``[B, V]`` row; only the selected statistics (``stats``) are computed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from ..errors import import_optional

__all__ = ["SAMPLING_STATISTICS", "SamplingRecorder", "generate_with_statistics"]

Distribution = Literal["model", "sampler"]
#: What [`SamplingRecorder`][] records per generated token, in this order.
SAMPLING_STATISTICS: tuple[str, ...] = ("margin", "entropy", "self_certainty", "nll")
FloatArray = npt.NDArray[np.float64]
_NO_IDS: Any = None  # the warpers below read the scores only


def _torch() -> Any:
    return import_optional("torch", extra="torch", purpose="Uncertainty recorded at sampling")


def _logits_of(output: Any) -> Any:
    """The ``[B, T, V]`` logits of a model output (a ``ModelOutput``, a dict or a tuple)."""
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    if logits is None or getattr(logits, "dim", lambda: 0)() != 3:
        raise TypeError(
            "SamplingRecorder: expected the hooked model to return logits of shape [B, T, V], got "
            f"{type(output).__name__}"
        )
    return logits


class SamplingRecorder:
    """Records ``SAMPLING_STATISTICS`` for every token a model samples inside [`attached`][].

    Args:
        temperature: the sampling temperature ``T`` (the logits are divided by it).
        distribution: ``"model"`` or ``"sampler"`` (module docstring).
        top_k: the sampler's top-k truncation (``"sampler"`` only; ``None`` or 0 = off).
        top_p: its top-p (nucleus) truncation (``"sampler"`` only; ``None`` or 1.0 = off).
        min_p: its min-p truncation (``"sampler"`` only; ``None`` or 0 = off).
        suppress_tokens: token ids the sampler never samples (``"sampler"`` only; ``None`` = none).
        stats: which of ``SAMPLING_STATISTICS`` to record (default all); each costs one or two row reductions
            per step, so a trainer that needs one measure records only that one.

    After generation, [`per_completion`][] cuts the ``[B, steps]`` records to each completion's tokens. One
    recorder records one ``generate`` call; [`attached`][] starts afresh.
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        distribution: Distribution = "model",
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        suppress_tokens: Sequence[int] | None = None,
        stats: Sequence[str] = SAMPLING_STATISTICS,
    ) -> None:
        unknown = [name for name in stats if name not in SAMPLING_STATISTICS]
        if unknown or not stats or isinstance(stats, str):
            raise ValueError(f"stats: expected a non-empty selection of {list(SAMPLING_STATISTICS)}, got {stats!r}")
        if not (
            isinstance(temperature, (int, float))
            and not isinstance(temperature, bool)
            and math.isfinite(temperature)
            and temperature > 0
        ):
            raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
        if distribution not in get_args(Distribution):
            raise ValueError(f"distribution: expected 'model' or 'sampler', got {distribution!r}")
        self.temperature = float(temperature)
        self.distribution: Distribution = distribution
        self._warpers = self._build_warpers(top_k, top_p, min_p, suppress_tokens) if distribution == "sampler" else []
        self.stats = tuple(name for name in SAMPLING_STATISTICS if name in stats)
        self._steps: dict[str, list[Any]] = {}
        self._previous: Any = None  # the last step's (scaled logits, log-normaliser), for the NLL of its token

    @staticmethod
    def _build_warpers(
        top_k: int | None, top_p: float | None, min_p: float | None, suppress_tokens: Sequence[int] | None
    ) -> list[Any]:
        """transformers' processors for the truncation, in ``GenerationMixin._get_logits_processor``'s order."""
        from transformers.generation.logits_process import (
            MinPLogitsWarper,
            SuppressTokensLogitsProcessor,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        warpers: list[Any] = []
        if suppress_tokens:
            warpers.append(lambda z: SuppressTokensLogitsProcessor(list(suppress_tokens), device=z.device)(_NO_IDS, z))
        if top_k is not None and top_k != 0:
            warpers.append(lambda z: TopKLogitsWarper(top_k=int(top_k))(_NO_IDS, z))
        if top_p is not None and top_p < 1.0:
            warpers.append(lambda z: TopPLogitsWarper(top_p=float(top_p))(_NO_IDS, z))
        if min_p is not None and min_p > 0.0:
            warpers.append(lambda z: MinPLogitsWarper(min_p=float(min_p))(_NO_IDS, z))
        return warpers

    @contextlib.contextmanager
    def attached(self, model: Any) -> Iterator[SamplingRecorder]:
        """Record every forward call of ``model`` (the module ``generate`` runs; for a PEFT model its base model)
        while the block runs."""
        target = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._steps, self._previous = {name: [] for name in self.stats}, None
        handle = target.register_forward_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        torch = _torch()
        with torch.no_grad():
            z = _logits_of(output)[:, -1].float()
            if self.temperature != 1.0:
                z = z / self.temperature
            for warp in self._warpers:
                z = warp(z)
            lse = torch.logsumexp(z, dim=-1)
            steps = self._steps
            if "nll" in steps:
                if self._previous is not None:
                    ids = kwargs.get("input_ids", args[0] if args else None)
                    if ids is None:
                        raise TypeError(
                            "SamplingRecorder: expected the sampled tokens as input_ids of the next "
                            "forward call, got none (inputs_embeds only)"
                        )
                    z_prev, lse_prev = self._previous
                    steps["nll"].append(lse_prev - z_prev.gather(1, ids[:, -1:].to(z.device)).squeeze(1))
                self._previous = (z, lse)
            if "margin" in steps:
                top = (z.topk(2, dim=-1).values - lse[:, None]).exp()
                steps["margin"].append(top[:, 0] - top[:, 1])
            if "entropy" in steps:  # H = -sum_j p_j ln p_j, 0 ln 0 = 0 (lse - sum p z would cancel for large logits)
                steps["entropy"].append(torch.special.entr((z - lse[:, None]).exp()).sum(-1))
            if "self_certainty" in steps:  # KL(U || p) = lse - mean(z) - ln V; infinite on a truncated support
                steps["self_certainty"].append(
                    lse - z.mean(-1) - math.log(z.shape[-1])
                    if self.distribution == "model"
                    else torch.full_like(lse, float("nan"))
                )

    def per_completion(self, completion_ids: Sequence[Sequence[int]]) -> dict[str, list[FloatArray]]:
        """``{statistic: one float64 array per completion}``, each as long as that completion (its tokens from the
        first step on; TRL cuts a completion after its first EOS). Raises if a completion is longer than the
        number of recorded steps, or the batch sizes differ."""
        torch = _torch()
        count = len(self._steps.get(self.stats[0], ())) if self._steps else 0
        if self.stats[0] == "nll" and self._previous is not None:
            count += 1  # the last step's NLL is resolved below
        if count == 0:
            raise RuntimeError("SamplingRecorder: nothing was recorded (was generate called inside attached()?)")
        batch = (
            int(self._previous[0].shape[0])
            if self._previous is not None
            else int(self._steps[self.stats[0]][0].shape[0])
        )
        lengths = [len(c) for c in completion_ids]
        if len(lengths) != batch or max(lengths, default=0) > count:
            raise ValueError(
                f"completion_ids: expected {batch} completions of at most {count} tokens (the recorded "
                f"steps), got {len(lengths)} with lengths up to {max(lengths, default=0)}"
            )
        columns = dict(self._steps)
        if "nll" in columns:
            z_last, lse_last = self._previous
            last = torch.tensor(
                [int(c[count - 1]) if len(c) == count else 0 for c in completion_ids], device=z_last.device
            )
            columns["nll"] = [*columns["nll"], lse_last - z_last.gather(1, last[:, None]).squeeze(1)]
        table = torch.stack([torch.stack(columns[name], dim=-1) for name in self.stats])
        values = table.double().cpu().numpy()  # one transfer: [statistics, B, steps]
        return {name: [values[k, i, :n].copy() for i, n in enumerate(lengths)] for k, name in enumerate(self.stats)}


def generate_with_statistics(
    model: Any,
    inputs: dict[str, Any],
    *,
    generation_config: Any = None,
    distribution: Distribution = "model",
    stats: Sequence[str] = SAMPLING_STATISTICS,
    **generate_kwargs: Any,
) -> tuple[Any, dict[str, list[FloatArray]]]:
    """``model.generate(**inputs, ...)`` with the statistics of every sampled token, measured at sampling.

    Returns ``(sequences, {statistic: one array per completion})``; a completion runs from the first generated
    token up to and including its first EOS (``generation_config.eos_token_id``), or to the end. Temperature and
    truncation come from the generation config (``generate_kwargs`` override it, as ``generate`` does). For the
    GPU check (benchmarks) and for users outside TRL.
    """
    config = generation_config if generation_config is not None else model.generation_config
    settings = {
        name: generate_kwargs.get(name, getattr(config, name, None))
        for name in ("temperature", "top_k", "top_p", "min_p", "suppress_tokens", "eos_token_id")
    }
    recorder = SamplingRecorder(
        temperature=settings["temperature"] or 1.0,
        distribution=distribution,
        top_k=settings["top_k"],
        top_p=settings["top_p"],
        min_p=settings["min_p"],
        suppress_tokens=settings["suppress_tokens"],
        stats=stats,
    )
    with recorder.attached(model):
        sequences = model.generate(**inputs, generation_config=generation_config, **generate_kwargs)
    eos = settings["eos_token_id"]
    eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
    prompt_width = int(inputs["input_ids"].shape[1])
    completions = []
    for row in sequences[:, prompt_width:].tolist():
        stop = next((j + 1 for j, t in enumerate(row) if t in eos_ids), len(row))
        completions.append(row[:stop])
    return sequences, recorder.per_completion(completions)
