"""The uncertainty-measuring ``GRPOTrainer`` for TRL: [`UncertaintyGRPOTrainer`][].

Importing this module imports TRL and torch; ``from adaptive_length_reward.adapters.trl import
UncertaintyGRPOTrainer`` loads it on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..config import Component, param
from ..errors import import_optional
from ..uncertainty.logits import SequenceMeasure
from ..uncertainty.reduction import Reduction
from .scoring import check_tested_version

__all__ = ["TESTED_TRL_VERSIONS", "UncertaintyGRPOTrainer", "UncertaintyTrainerConfig", "check_trl_version"]

FloatArray = npt.NDArray[np.float64]

#: TRL versions [`UncertaintyGRPOTrainer`][] was tested with (``>=1.16,<2``): it relies on the private
#: ``GRPOTrainer._generate``, ``_generate_single_turn`` and ``_tokenize_prompts`` of that line.
TESTED_TRL_VERSIONS = (">=1.16", "<2")

trl = import_optional("trl", extra="trl", purpose="adaptive_length_reward.adapters.trl_trainer")
torch = import_optional("torch", extra="trl", purpose="adaptive_length_reward.adapters.trl_trainer")


def check_trl_version(version: str | None = None) -> str:
    """Raise ``RuntimeError`` unless ``version`` (default: the installed TRL) is in ``TESTED_TRL_VERSIONS``.

    Only the major version is a hard limit in spirit (TRL may rename private methods in a major release); an
    older 1.x lacks the hooks used here, so it is refused too.
    """
    return check_tested_version(
        "trl",
        version or trl.__version__,
        TESTED_TRL_VERSIONS,
        owner="UncertaintyGRPOTrainer",
        relies="relies on private GRPOTrainer methods (_generate, _generate_single_turn, _tokenize_prompts) of that "
        "line",
        advice="Pin 'trl>=1.16,<2', or compute uncertainty yourself and pass it as a dataset column to TRLReward.",
    )


class UncertaintyTrainerConfig(Component):
    """The uncertainty keywords of [`UncertaintyGRPOTrainer`][], each declared once (the keyword is the
    alias; the attribute of ``trainer.uncertainty_settings`` the name). Not a registered component."""

    kind = "uncertainty_grpo_trainer"

    measure: SequenceMeasure = param(
        default="margin", alias="uncertainty_measure", doc="per token: 1 - (p1 - p2) (PixelThink), H / ln V or 1 - p_y"
    )
    reduction: Reduction = param(
        default="mean", alias="uncertainty_reduction", doc="mean (PixelThink), max, min, quantile"
    )
    quantile: float = param(default=0.9, ge=0.0, le=1.0, alias="uncertainty_quantile", doc="for reduction='quantile'")
    span: Literal["completion", "reasoning"] = param(
        default="completion", alias="uncertainty_span", doc="every generated token (PixelThink) or the reasoning"
    )
    open_tag: str = param(default="<think>", min_length=1, doc="opening reasoning tag (span='reasoning')")
    close_tag: str = param(default="</think>", min_length=1, doc="closing reasoning tag")
    source: Literal["auto", "sampling", "forward", "logprobs"] = param(
        default="auto",
        alias="uncertainty_source",
        doc="'sampling' (= 'auto'): measured where the tokens are sampled; 'forward': an extra forward pass; "
        "'logprobs': the backend's sampled-token log-probs (measure='nll' only)",
    )
    distribution: Literal["model", "sampler"] = param(
        default="model",
        alias="uncertainty_distribution",
        doc="'model': softmax(logits / T) before top-k/top-p; 'sampler': after them (what is sampled from)",
    )
    temperature: float | None = param(
        default=None,
        gt=0.0,
        alias="uncertainty_temperature",
        doc="the logits are divided by it (default the sampling temperature args.temperature)",
    )
    entropy_cap: float | None = param(default=None, gt=0.0, doc="normalise entropy by this instead of ln V")
    batch_size: int | None = param(
        default=None,
        ge=1,
        alias="uncertainty_batch_size",
        doc="completions per forward pass (default per_device_train_batch_size)",
    )
    top_logprobs: int = param(
        default=5,
        ge=2,
        alias="uncertainty_top_logprobs",
        doc="vLLM logprobs=N asked for under measure='margin' (PixelThink: 5)",
    )
    empty_span: Literal["nan", "error"] = param(
        default="nan",
        alias="uncertainty_empty_span",
        doc="a completion without a token to measure: NaN (the budget's missing_uncertainty rule) or an error",
    )
    column: str = param(default="uncertainty", min_length=1, alias="uncertainty_column", doc="the reward kwarg")


#: Multimodal fields the forward pass knows how to cut per sample (Qwen-VL family and per-token type ids).
_PER_TOKEN_FIELDS = ("token_type_ids", "mm_token_type_ids")
#: Generation settings the ``"sampler"`` distribution cannot replay (they need the whole sequence), with their
#: neutral values.
_UNREPLAYABLE = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "min_new_tokens": (None, 0),
    "sequence_bias": (None,),
    "top_h": (None,),
}


class UncertaintyGRPOTrainer(trl.GRPOTrainer):  # type: ignore[misc, name-defined]
    """``trl.GRPOTrainer`` that measures each completion's uncertainty ``U`` in ``[0, 1]`` and passes it to the
    reward functions as the ``uncertainty`` keyword (``uncertainty_column``), where
    [`TRLReward`][adaptive_length_reward.adapters.trl.TRLReward] reads it (PixelThink's hard-tier budget
    ``256 + 25 U``).

    Routes (docs/uncertainty.md has the table backend x measure):

    * ``uncertainty_source="sampling"`` (what ``"auto"`` means): measured where the tokens are sampled, no extra
      forward pass. With transformers ``generate`` a
      [`SamplingRecorder`][adaptive_length_reward.uncertainty.sampling.SamplingRecorder] hooks the model during TRL's
      ``generate`` call (``grpo_trainer.py::_generate_single_turn``, the ``unwrapped_model.generate`` branch) and
      keeps one number per token (its measure). With vLLM the client is asked for
      ``logprobs=uncertainty_top_logprobs`` (TRL asks for 0, ``grpo_trainer.py::__init__``) and the margin comes
      from the top two by rank (PixelThink's official ``vllm_rollout_spmd.py``); ``"entropy"`` is refused there
      (top-k cannot give it), ``"nll"`` uses the sampled token's log-prob. With a ``rollout_func``, it must
      return the ``uncertainty`` field itself, except for ``"nll"`` (read from its ``logprobs``).
    * ``"forward"``: one no-grad forward pass over prompt + completion per micro-batch, then
      [`sequence_uncertainty`][adaptive_length_reward.uncertainty.logits.sequence_uncertainty].
    * ``"logprobs"``: ``1 - p_y`` from the backend's sampled-token log-probs; only with ``uncertainty_measure="nll"``.

    A completion with no token to measure (``uncertainty_span="reasoning"`` without tags) gets NaN, which the
    budget's ``missing_uncertainty`` rule handles, or an error (``uncertainty_empty_span="error"``). Overrides
    ``_tokenize_prompts``, ``_generate_single_turn`` and ``_generate``, private to ``trl/trainer/grpo_trainer.py`` in
    trl ``TESTED_TRL_VERSIONS`` (other versions are refused). Keywords: ``GRPOTrainer``'s, plus those
    [`UncertaintyTrainerConfig`][] declares. See docs/trl.md.

    Args:
        *args: ``trl.GRPOTrainer``'s positional arguments (``model``, ``reward_funcs``, ``args``...).
        **kwargs: ``trl.GRPOTrainer``'s keywords, plus the ``uncertainty_*`` keywords (and ``open_tag``,
            ``close_tag``, ``entropy_cap``) that [`UncertaintyTrainerConfig`][] declares, with their defaults.

    Raises:
        RuntimeError: the installed trl is outside ``TESTED_TRL_VERSIONS``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_trl_version()
        keys = {f.key for f in UncertaintyTrainerConfig.fields()}
        self.uncertainty_settings = UncertaintyTrainerConfig(**{k: kwargs.pop(k) for k in list(kwargs) if k in keys})
        super().__init__(*args, **kwargs)
        self._alr_prompt_fields: dict[str, Any] | None = None
        self._alr_per_token: list[FloatArray] | None = None
        self._alr_check_route()

    # -- which route, checked once -----------------------------------------------------------------------------
    def _alr_route(self) -> str:
        """``"sampling"``, ``"rollout"`` (a rollout_func generates), ``"forward"`` or ``"logprobs"``."""
        source = self.uncertainty_settings.source
        if source in ("auto", "sampling"):
            return "rollout" if self.rollout_func is not None else "sampling"
        return source

    def _alr_check_route(self) -> None:
        """Raise now, naming the fix, for a route this configuration cannot take; ask vLLM for top-k log-probs."""
        s, route, where = self.uncertainty_settings, self._alr_route(), "UncertaintyGRPOTrainer"
        if route == "logprobs" and s.measure != "nll":
            raise ValueError(
                f"{where}: uncertainty_source='logprobs' gives the sampled token's 1 - p_y only: expected "
                f"uncertainty_measure='nll', got {s.measure!r} (for the margin use uncertainty_source="
                "'sampling', which asks vLLM for top-k log-probs, or 'forward')"
            )
        if route != "sampling":
            return
        if self.tools or self.use_transformers_continuous_batching:
            what = "tool calls" if self.tools else "use_transformers_continuous_batching"
            raise ValueError(
                f"{where}: uncertainty_source='sampling' does not support {what}; set uncertainty_source='forward'"
            )
        if self.use_vllm:
            self._alr_check_vllm()
            return
        if s.distribution == "sampler":
            if s.temperature is not None and s.temperature != self.temperature:
                raise ValueError(
                    f"{where}: uncertainty_temperature: expected None or the sampling temperature "
                    f"{self.temperature} with uncertainty_distribution='sampler', got {s.temperature}"
                )
            for name, neutral in _UNREPLAYABLE.items():
                value = getattr(self.generation_config, name, None)
                if value not in neutral:
                    raise ValueError(
                        f"{where}: uncertainty_distribution='sampler' cannot replay generation setting "
                        f"{name}={value!r}; expected it off, or uncertainty_distribution='model'"
                    )

    def _alr_check_vllm(self) -> None:
        """The vLLM route: refuse what top-k log-probs cannot give; ask for the top ``top_logprobs`` entries."""
        s, where = self.uncertainty_settings, "UncertaintyGRPOTrainer"
        if s.measure == "entropy":
            raise ValueError(
                f"{where}: uncertainty_measure='entropy' needs the full distribution, which vLLM does not "
                "return (only top-k log-probs); set uncertainty_source='forward' or "
                "uncertainty_measure='margin'"
            )
        neutral = (
            self.temperature == 1.0
            and self.top_p in (None, 1.0)
            and self.top_k in (None, 0, -1)
            and not self.min_p
            and self.repetition_penalty in (None, 1.0)
        )
        if s.distribution == "model" and not neutral:
            raise ValueError(
                f"{where}: TRL runs vLLM with logprobs_mode='processed_logprobs' (after temperature, "
                "top-k, top-p, min-p), which differs from uncertainty_distribution='model' at temperature "
                f"{self.temperature}, top_p {self.top_p}, top_k {self.top_k}, min_p {self.min_p}; set "
                "uncertainty_distribution='sampler', or uncertainty_source='forward'"
            )
        if s.temperature is not None and s.temperature != self.temperature:
            raise ValueError(
                f"{where}: uncertainty_temperature: vLLM measures at the sampling temperature "
                f"{self.temperature}, got {s.temperature}; set uncertainty_source='forward' for another"
            )
        if s.measure == "margin":
            generation = self.vllm_generation
            generation.logprobs = max(int(generation.logprobs or 0), s.top_logprobs)

    # -- overridden private hooks (trl/trainer/grpo_trainer.py, trl 1.16) ------------------------------------
    def _tokenize_prompts(self, prompts: list[Any]) -> Any:
        """``GRPOTrainer._tokenize_prompts``, keeping the multimodal fields for the uncertainty forward pass."""
        result = super()._tokenize_prompts(prompts)
        self._alr_prompt_fields = dict(result[2]) if len(result) == 3 and isinstance(result[2], Mapping) else None
        return result

    def _generate_single_turn(
        self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: int, has_tool_images: bool = False
    ) -> Any:
        """``GRPOTrainer._generate_single_turn``, measuring at sampling on the ``"sampling"`` route."""
        if self._alr_route() != "sampling":
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if self.use_vllm:
            return self._alr_vllm_turn(prompt_ids, images, num_generations)
        from ..uncertainty.sampling import SamplingRecorder

        s, config = self.uncertainty_settings, self.generation_config
        sampler = s.distribution == "sampler"
        recorder = SamplingRecorder(
            temperature=s.temperature or config.temperature or 1.0,
            distribution=s.distribution,
            top_k=config.top_k if sampler else None,
            top_p=config.top_p if sampler else None,
            min_p=config.min_p if sampler else None,
            suppress_tokens=config.suppress_tokens if sampler else None,
            stats=(s.measure,),
        )
        with recorder.attached(self.accelerator.unwrap_model(self.model_wrapped)):
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        stats = recorder.per_completion(completion_ids)[s.measure]
        unit = self._alr_unit(np.concatenate(stats)) if stats else np.zeros(0)
        self._alr_per_token = np.split(unit, np.cumsum([len(v) for v in stats])[:-1]) if stats else []
        return completion_ids, logprobs

    def _alr_vllm_turn(self, prompt_ids: Any, images: Any, num_generations: int) -> Any:
        """TRL's vLLM branch of ``_generate_single_turn`` (weight sync, then ``vllm_generation.generate``), keeping
        the top-k log-probs TRL drops; returns the sampled tokens' log-probs for TRL's importance sampling."""
        from trl.extras.profiling import profiling_context

        from ..uncertainty import logprob_uncertainty
        from ..uncertainty.topk import sampled_token_logprobs, topk_from_ranked, topk_margin_uncertainty

        if self.state.global_step != getattr(self, "_last_loaded_step", None):
            with profiling_context(self, "sync_weights"):
                self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step
        _, completion_ids, ranked, ranked_ids = self.vllm_generation.generate(
            prompts=prompt_ids,
            images=images,
            num_generations=num_generations,
            profiler=profiling_context(self, "vLLM.generate"),
        )
        if ranked is None:
            raise ValueError(
                "UncertaintyGRPOTrainer: the vLLM backend returned no log-probs; expected them for "
                "uncertainty_source='sampling' (set uncertainty_source='forward')"
            )
        sampled = sampled_token_logprobs(completion_ids, ranked, ranked_ids)
        if self.uncertainty_settings.measure == "nll":
            self._alr_per_token = [
                logprob_uncertainty(
                    np.array([np.nan if v is None else v for v in row], dtype=float), where="vLLM logprobs"
                )
                for row in sampled
            ]
        else:
            topk = topk_from_ranked(ranked)
            if topk.counts.size and int(topk.counts.max()) < 2:
                raise ValueError(
                    "UncertaintyGRPOTrainer: uncertainty_measure='margin' needs the top-2 log-probs per "
                    "token, got only the sampled token's (vLLM logprobs=0); ask for more with "
                    "uncertainty_top_logprobs (>= 2, vLLM logprobs=N), or set uncertainty_measure='nll'"
                )
            self._alr_per_token = topk.split(topk_margin_uncertainty(topk))
        return completion_ids, sampled

    def _alr_unit(self, values: FloatArray) -> FloatArray:
        """Per-token values of ``measure`` (margin ``p1 - p2``, entropy in nats, NLL) as uncertainty in [0, 1]."""
        from ..uncertainty import unit_uncertainty

        s = self.uncertainty_settings
        return unit_uncertainty(s.measure, values, vocab_size=self._alr_vocab_size(), entropy_cap=s.entropy_cap)

    def _alr_vocab_size(self) -> int:
        model = self.accelerator.unwrap_model(self.model_wrapped)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        return int(head.weight.shape[0]) if head is not None else len(self._tokenizer)

    def _generate(self, prompts: list[Any]) -> Any:
        """``GRPOTrainer._generate`` plus one uncertainty per completion in ``extra_fields``."""
        self._alr_prompt_fields, self._alr_per_token = None, None
        result = super()._generate(prompts)
        if not isinstance(result, tuple) or len(result) != 8:
            raise RuntimeError(
                f"UncertaintyGRPOTrainer: GRPOTrainer._generate returned {type(result).__name__} of "
                f"length {len(result) if isinstance(result, tuple) else '?'}, expected the 8-tuple of "
                f"trl {','.join(TESTED_TRL_VERSIONS)} (found trl {trl.__version__})"
            )
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images = result
        s = self.uncertainty_settings
        if s.column in extra_fields:  # a rollout_func returned it: nothing is recomputed
            return result
        values = self._alr_measure(prompt_ids, completion_ids, tool_mask, logprobs, images, tool_images)
        self._alr_check_empty(values)
        finite = values[np.isfinite(values)]
        if finite.size:
            self._metrics["train" if self.model.training else "eval"][f"{s.column}/mean"].append(float(finite.mean()))
        extra_fields = {**extra_fields, s.column: [float(v) for v in values]}
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images

    def _alr_measure(
        self, prompt_ids: Any, completion_ids: Any, tool_mask: Any, logprobs: Any, images: Any, tool_images: Any
    ) -> FloatArray:
        """One uncertainty per completion by the configured route (NaN where no token is measured)."""
        s, route = self.uncertainty_settings, self._alr_route()
        if route == "rollout":
            if s.measure != "nll" or logprobs is None:
                raise ValueError(
                    f"UncertaintyGRPOTrainer: with a rollout_func, expected it to return the "
                    f"{s.column!r} field (e.g. from top-k log-probs, topk_margin_uncertainty) for "
                    f"uncertainty_measure={s.measure!r}; or set uncertainty_source='forward'"
                    + ("" if logprobs is None else ", or uncertainty_measure='nll'")
                )
            route = "logprobs"
        if route == "logprobs":
            if logprobs is None:
                raise ValueError(
                    "UncertaintyGRPOTrainer: uncertainty_source: expected 'forward' or 'sampling' when "
                    "the generation backend returns no log-probs (transformers generate), got 'logprobs'"
                )
            return self._uncertainty_from_logprobs(completion_ids, logprobs, tool_mask)
        if route == "sampling":
            if self._alr_per_token is None:
                raise RuntimeError(
                    "UncertaintyGRPOTrainer: nothing was recorded at sampling (was "
                    "_generate_single_turn bypassed?); set uncertainty_source='forward'"
                )
            return self._uncertainty_from_tokens(self._alr_per_token, completion_ids, tool_mask)
        if tool_images and any(tool_images):
            raise NotImplementedError(
                "UncertaintyGRPOTrainer: completions that contain tool images are not supported by the forward pass"
            )
        return self._uncertainty_from_forward(prompt_ids, completion_ids, tool_mask, images)

    def _alr_check_empty(self, values: FloatArray) -> None:
        empty = np.flatnonzero(np.isnan(values))
        if empty.size and self.uncertainty_settings.empty_span == "error":
            raise ValueError(
                f"UncertaintyGRPOTrainer: completions {empty[:10].tolist()} have no token to measure "
                f"(uncertainty_span={self.uncertainty_settings.span!r}); set "
                "uncertainty_empty_span='nan' to hand them to the budget's missing_uncertainty rule"
            )

    # -- the routes -----------------------------------------------------------------------------------------
    def _span_masks(self, ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """``valid``, narrowed to each completion's reasoning span when ``uncertainty_span="reasoning"``
        (found on the decoded tokens,
        [`reasoning_token_mask`][adaptive_length_reward.adapters.token_spans.reasoning_token_mask])."""
        s = self.uncertainty_settings
        if s.span == "completion":
            return valid
        from .token_spans import reasoning_token_mask

        keep = np.zeros_like(valid)
        for i in range(ids.shape[0]):
            positions = np.flatnonzero(valid[i])
            if positions.size:
                last = int(positions[-1]) + 1
                keep[i, :last] = reasoning_token_mask(
                    ids[i, :last].tolist(), self._tokenizer, open_tag=s.open_tag, close_tag=s.close_tag
                )
        return keep & valid

    def _token_masks(
        self, completion_ids: Sequence[Sequence[int]], tool_mask: Sequence[Sequence[int]] | None, shape: tuple[int, ...]
    ) -> npt.NDArray[np.bool_]:
        """Which padded positions are measured: the model's tokens (``tool_mask``) within the span."""
        from ..uncertainty import pad_ragged

        ids, valid = pad_ragged([[float(t) for t in row] for row in completion_ids], fill=0.0)
        if ids.shape != shape:
            raise ValueError(
                f"UncertaintyGRPOTrainer: expected one value per completion token, got shape {shape} for "
                f"completion ids of shape {ids.shape}"
            )
        if tool_mask is not None:
            model_tokens, _ = pad_ragged([[float(m) for m in row] for row in tool_mask], fill=0.0)
            valid &= model_tokens.astype(bool)
        return self._span_masks(ids.astype(np.int64), valid)

    def _uncertainty_from_tokens(
        self,
        per_token: Sequence[FloatArray],
        completion_ids: Sequence[Sequence[int]],
        tool_mask: Sequence[Sequence[int]] | None,
    ) -> FloatArray:
        """``reduction`` of per-token uncertainties (NaN entries skipped) over the measured positions."""
        from ..uncertainty import pad_ragged, reduce_tokens

        s = self.uncertainty_settings
        values, _ = pad_ragged(list(per_token))
        keep = self._token_masks(completion_ids, tool_mask, values.shape)
        return reduce_tokens(values, keep, how=s.reduction, q=s.quantile, empty_value=np.nan)

    def _uncertainty_from_logprobs(
        self,
        completion_ids: Sequence[Sequence[int]],
        logprobs: Sequence[Sequence[Any]],
        tool_mask: Sequence[Sequence[int]] | None,
    ) -> FloatArray:
        """``reduction`` of ``1 - p_y`` over the sampled tokens' log-probs (``None`` entries are skipped)."""
        from ..uncertainty import logprob_uncertainty

        rows = [np.array([np.nan if lp is None else float(lp) for lp in row], dtype=float) for row in logprobs]
        per_token = [logprob_uncertainty(row[None], where="UncertaintyGRPOTrainer: logprobs")[0] for row in rows]
        return self._uncertainty_from_tokens(per_token, completion_ids, tool_mask)

    def _uncertainty_from_forward(
        self,
        prompt_ids: Sequence[Sequence[int]],
        completion_ids: Sequence[Sequence[int]],
        tool_mask: Sequence[Sequence[int]] | None,
        images: Sequence[Any] | None,
    ) -> FloatArray:
        """One no-grad forward pass over prompt + completion per micro-batch, then the fused estimator."""
        from ..uncertainty import sequence_uncertainty

        s = self.uncertainty_settings
        n = len(completion_ids)
        if n == 0:
            return np.zeros(0)
        fields = self._alr_prompt_fields or {}
        num_images = [len(x) if x else 0 for x in images] if images is not None else [0] * n
        size = s.batch_size or self.args.per_device_train_batch_size or n
        if not _splittable(fields, n):
            size = n  # unknown multimodal layout: one forward over the whole batch keeps it intact
        temperature = s.temperature if s.temperature is not None else float(self.temperature or 1.0)
        device = self.accelerator.device
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        out = []
        for start in range(0, n, size):
            stop = min(start + size, n)
            prompts = [list(p) for p in prompt_ids[start:stop]]
            completions = [list(c) for c in completion_ids[start:stop]]
            width_p = max(len(p) for p in prompts)
            width_c = max(1, max(len(c) for c in completions))
            ids = torch.full((stop - start, width_p + width_c), pad_id, dtype=torch.long)
            attention = torch.zeros_like(ids)
            valid = np.zeros((stop - start, width_c), dtype=bool)
            for i, (p, c) in enumerate(zip(prompts, completions)):  # prompts left-padded, completions right-padded
                ids[i, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c, dtype=torch.long)
                attention[i, width_p - len(p) : width_p + len(c)] = 1
                if c:
                    valid[i, : len(c)] = True if tool_mask is None else np.asarray(tool_mask[start + i], dtype=bool)
            inputs = {
                "input_ids": ids,
                "attention_mask": attention,
                **_slice_fields(fields, start, stop, n, num_images, width_p, width_c),
            }
            inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
            keep = self._span_masks(ids[:, width_p:].numpy(), valid)
            with torch.no_grad(), self.accelerator.autocast():
                logits = self.model(**inputs, logits_to_keep=width_c + 1).logits[:, :-1, :]
            out.append(
                sequence_uncertainty(
                    logits,
                    mask=torch.as_tensor(keep, device=logits.device),
                    measure=s.measure,
                    token_ids=inputs["input_ids"][:, width_p:] if s.measure == "nll" else None,
                    reduction=s.reduction,
                    quantile=s.quantile,
                    entropy_cap=s.entropy_cap,
                    temperature=temperature,
                    empty_value=np.nan,
                )
            )
            del logits
        return np.concatenate(out)


def _splittable(fields: Mapping[str, Any], n: int) -> bool:
    """Whether every multimodal field can be cut per sample (so micro-batches are possible)."""

    def per_sample(key: str, value: Any) -> bool:
        if key in _PER_TOKEN_FIELDS or (key in ("pixel_values", "image_grid_thw") and "image_grid_thw" in fields):
            return True
        return hasattr(value, "shape") and len(value.shape) > 0 and value.shape[0] == n

    return all(per_sample(key, value) for key, value in fields.items())


def _tensor(value: Any) -> Any:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _slice_fields(
    fields: Mapping[str, Any], start: int, stop: int, n: int, num_images: Sequence[int], width_p: int, width_c: int
) -> dict[str, Any]:
    """The multimodal inputs of samples ``start:stop``, laid out like TRL's own forward pass
    (``grpo_trainer.py::_get_per_token_logps_and_entropies``): Qwen-VL ``pixel_values`` rows follow
    ``image_grid_thw``; per-token type ids are left-padded like the prompt and zero over the completion."""
    whole = start == 0 and stop == n
    sliced: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _PER_TOKEN_FIELDS:
            rows = value[start:stop]
            tensor = torch.zeros((stop - start, width_p + width_c), dtype=torch.long)
            for i, row in enumerate(rows):
                row = torch.as_tensor(row, dtype=torch.long).reshape(-1)
                tensor[i, width_p - len(row) : width_p] = row
            sliced[key] = tensor
        elif key == "pixel_values" and "image_grid_thw" in fields:
            grid = torch.as_tensor(np.asarray(fields["image_grid_thw"]))
            per_image = grid.prod(dim=-1)
            image_start, image_stop = sum(num_images[:start]), sum(num_images[:stop])
            rows = slice(int(per_image[:image_start].sum()), int(per_image[:image_stop].sum()))
            sliced[key] = _tensor(value)[rows]
            sliced["image_grid_thw"] = grid[image_start:image_stop]
        elif key != "image_grid_thw":
            sliced[key] = _tensor(value) if whole else _tensor(value)[start:stop]
    if "pixel_values" in sliced and len(sliced["pixel_values"]) == 0:
        sliced.pop("pixel_values")
        sliced.pop("image_grid_thw", None)
    return sliced
