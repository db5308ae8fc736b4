"""Per-token statistics recorded while a Hugging Face model samples, from the distribution each token was drawn
from: no second forward pass, ``O(tokens)`` scalars kept (docs/uncertainty.md, "Measured at sampling").

:class:`SamplingRecorder` is a forward hook on the model that ``generate`` calls once per decoding step
(``transformers/generation/utils.py::GenerationMixin._sample`` reads ``outputs.logits[:, -1]`` of each call). Per
step it reads that row ``z`` (``[B, V]``), forms the measured distribution and keeps four numbers per row:

* ``distribution="model"`` (default): ``softmax(z / T)``, the policy's distribution at the sampling temperature
  ``T`` before any logits processor (no top-k / top-p / min-p truncation, no suppressed tokens): the distribution the
  forward-pass route recomputes, and vLLM's default ``raw_logprobs`` at ``T = 1`` (PixelThink samples at 1.0).
* ``distribution="sampler"``: the distribution ``torch.multinomial`` draws from, ``softmax`` of ``z / T`` after
  ``suppress_tokens``, top-k, top-p and min-p (transformers' own warpers, in ``generate``'s order: temperature,
  top-k, top-p, min-p); what vLLM calls ``processed_logprobs`` (TRL's setting). Processors that need the whole
  sequence (repetition penalty, n-gram bans) are refused with a clear error.

Statistics (formulas as :mod:`.logits`): ``margin`` ``p1 - p2``; ``entropy`` ``-sum p ln p`` (nats); ``self_certainty``
``KL(U || p)`` (``"model"`` only: infinite on a truncated support); ``nll`` ``-ln p_y`` of the token sampled at that
step (read from the next step's input ids, the last step's from the returned sequences).
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
#: What :class:`SamplingRecorder` records per generated token, in this order.
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
        raise TypeError("SamplingRecorder: expected the hooked model to return logits of shape [B, T, V], got "
                        f"{type(output).__name__}")
    return logits


class SamplingRecorder:
    """Records :data:`SAMPLING_STATISTICS` for every token a model samples inside :meth:`attached`.

    Args:
        temperature: the sampling temperature ``T`` (the logits are divided by it).
        distribution: ``"model"`` or ``"sampler"`` (module docstring).
        top_k, top_p, min_p, suppress_tokens: the sampler's truncation (``"sampler"`` only; ``None``/0/1.0 = off).

    After generation, :meth:`per_completion` cuts the ``[B, steps]`` records to each completion's tokens. One
    recorder records one ``generate`` call; :meth:`attached` starts afresh.
    """

    def __init__(self, *, temperature: float = 1.0, distribution: Distribution = "model", top_k: int | None = None,
                 top_p: float | None = None, min_p: float | None = None,
                 suppress_tokens: Sequence[int] | None = None) -> None:
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
        if distribution not in get_args(Distribution):
            raise ValueError(f"distribution: expected 'model' or 'sampler', got {distribution!r}")
        self.temperature = float(temperature)
        self.distribution: Distribution = distribution
        self._warpers = self._build_warpers(top_k, top_p, min_p, suppress_tokens) if distribution == "sampler" else []
        self._steps: list[Any] = []
        self._nll: list[Any] = []
        self._previous: Any = None

    @staticmethod
    def _build_warpers(top_k: int | None, top_p: float | None, min_p: float | None,
                       suppress_tokens: Sequence[int] | None) -> list[Any]:
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
        self._steps, self._nll, self._previous = [], [], None
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
            if self._previous is not None:
                ids = kwargs.get("input_ids", args[0] if args else None)
                if ids is None:
                    raise TypeError("SamplingRecorder: expected the sampled tokens as input_ids of the next "
                                    "forward call, got none (inputs_embeds only)")
                self._nll.append(-self._previous.gather(1, ids[:, -1:].to(z.device)).squeeze(1))
            logp = torch.log_softmax(z, dim=-1)
            p = logp.exp()
            top = logp.topk(2, dim=-1).values.exp()
            entropy = -torch.linalg.vecdot(p, torch.where(p > 0, logp, torch.zeros_like(logp)))  # 0 ln 0 = 0
            if self.distribution == "model":
                certainty = -logp.mean(-1) - math.log(z.shape[-1])
            else:  # infinite on a truncated support
                certainty = torch.full_like(entropy, float("nan"))
            self._steps.append(torch.stack([top[:, 0] - top[:, 1], entropy, certainty]))
            self._previous = logp

    def per_completion(self, completion_ids: Sequence[Sequence[int]]) -> dict[str, list[FloatArray]]:
        """``{statistic: one float64 array per completion}``, each as long as that completion (its tokens from the
        first step on; TRL cuts a completion after its first EOS). Raises if a completion is longer than the
        number of recorded steps, or the batch sizes differ."""
        torch = _torch()
        if not self._steps:
            raise RuntimeError("SamplingRecorder: nothing was recorded (was generate called inside attached()?)")
        steps = torch.stack(self._steps, dim=-1)  # [3, B, S]
        batch, count = int(steps.shape[1]), int(steps.shape[2])
        lengths = [len(c) for c in completion_ids]
        if len(lengths) != batch or max(lengths, default=0) > count:
            raise ValueError(f"completion_ids: expected {batch} completions of at most {count} tokens (the recorded "
                             f"steps), got {len(lengths)} with lengths up to {max(lengths, default=0)}")
        last = torch.tensor([int(c[count - 1]) if len(c) == count else 0 for c in completion_ids],
                            device=self._previous.device)
        nll = torch.stack([*self._nll, -self._previous.gather(1, last[:, None]).squeeze(1)], dim=-1)
        table = torch.cat([steps, nll[None]]).double().cpu().numpy()  # one transfer: [4, B, S]
        out: dict[str, list[FloatArray]] = {}
        for k, name in enumerate(SAMPLING_STATISTICS):
            out[name] = [table[k, i, :n].copy() for i, n in enumerate(lengths)]
        return out


def generate_with_statistics(model: Any, inputs: dict[str, Any], *, generation_config: Any = None,
                             distribution: Distribution = "model",
                             **generate_kwargs: Any) -> tuple[Any, dict[str, list[FloatArray]]]:
    """``model.generate(**inputs, ...)`` with the statistics of every sampled token, measured at sampling.

    Returns ``(sequences, {statistic: one array per completion})``; a completion runs from the first generated
    token up to and including its first EOS (``generation_config.eos_token_id``), or to the end. Temperature and
    truncation come from the generation config (``generate_kwargs`` override it, as ``generate`` does). For the
    GPU check (benchmarks) and for users outside TRL.
    """
    config = generation_config if generation_config is not None else model.generation_config
    settings = {name: generate_kwargs.get(name, getattr(config, name, None))
                for name in ("temperature", "top_k", "top_p", "min_p", "suppress_tokens", "eos_token_id")}
    recorder = SamplingRecorder(temperature=settings["temperature"] or 1.0, distribution=distribution,
                                top_k=settings["top_k"], top_p=settings["top_p"], min_p=settings["min_p"],
                                suppress_tokens=settings["suppress_tokens"])
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
