"""The uncertainty-measuring ``GRPOTrainer`` for TRL: :class:`UncertaintyGRPOTrainer`.

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

#: TRL versions :class:`UncertaintyGRPOTrainer` was tested with (``>=1.16,<2``): it relies on the private
#: ``GRPOTrainer._generate`` and ``GRPOTrainer._tokenize_prompts`` of that line.
TESTED_TRL_VERSIONS = (">=1.16", "<2")

trl = import_optional("trl", extra="trl", purpose="adaptive_length_reward.adapters.trl_trainer")
torch = import_optional("torch", extra="trl", purpose="adaptive_length_reward.adapters.trl_trainer")


def check_trl_version(version: str | None = None) -> str:
    """Raise ``RuntimeError`` unless ``version`` (default: the installed TRL) is in :data:`TESTED_TRL_VERSIONS`.

    Only the major version is a hard limit in spirit (TRL may rename private methods in a major release); an
    older 1.x lacks the hooks used here, so it is refused too.
    """
    return check_tested_version(
        "trl", version or trl.__version__, TESTED_TRL_VERSIONS, owner="UncertaintyGRPOTrainer",
        relies="relies on private GRPOTrainer methods (_generate, _tokenize_prompts) of that line",
        advice="Pin 'trl>=1.16,<2', or compute uncertainty yourself and pass it as a dataset column to TRLReward.")


class UncertaintyTrainerConfig(Component):
    """The uncertainty keywords of :class:`UncertaintyGRPOTrainer`, each declared once (the keyword is the
    alias; the attribute of ``trainer.uncertainty_settings`` the name). Not a registered component."""

    kind = "uncertainty_grpo_trainer"

    measure: SequenceMeasure = param(
        default="margin", alias="uncertainty_measure", doc="per token: 1 - (p1 - p2) (PixelThink), H / ln V or 1 - p_y")
    reduction: Reduction = param(default="mean", alias="uncertainty_reduction", doc="mean (PixelThink), max, min, "
                                 "quantile")
    quantile: float = param(default=0.9, ge=0.0, le=1.0, alias="uncertainty_quantile", doc="for reduction='quantile'")
    span: Literal["completion", "reasoning"] = param(
        default="completion", alias="uncertainty_span", doc="every generated token (PixelThink) or the reasoning")
    open_tag: str = param(default="<think>", min_length=1, doc="opening reasoning tag (span='reasoning')")
    close_tag: str = param(default="</think>", min_length=1, doc="closing reasoning tag")
    source: Literal["auto", "forward", "logprobs"] = param(
        default="auto", alias="uncertainty_source", doc="'auto': the rollout's log-probs when there are any")
    temperature: float | None = param(
        default=None, gt=0.0, alias="uncertainty_temperature",
        doc="the logits are divided by it (default the sampling temperature args.temperature)")
    entropy_cap: float | None = param(default=None, gt=0.0, doc="normalise entropy by this instead of ln V")
    batch_size: int | None = param(default=None, ge=1, alias="uncertainty_batch_size",
                                   doc="completions per forward pass (default per_device_train_batch_size)")
    column: str = param(default="uncertainty", min_length=1, alias="uncertainty_column", doc="the reward kwarg")


#: Multimodal fields the forward pass knows how to cut per sample (Qwen-VL family and per-token type ids).
_PER_TOKEN_FIELDS = ("token_type_ids", "mm_token_type_ids")


class UncertaintyGRPOTrainer(trl.GRPOTrainer):  # type: ignore[misc, name-defined]
    """``trl.GRPOTrainer`` that measures each completion's uncertainty ``U`` in ``[0, 1]`` and passes it to the
    reward functions as the ``uncertainty`` keyword (``uncertainty_column``), where
    :class:`~adaptive_length_reward.adapters.trl.TRLReward` reads it (PixelThink's hard-tier budget ``256 + 25 U``).

    ``uncertainty_source="forward"`` (``"auto"`` without vLLM): one no-grad forward pass over prompt + completion
    per micro-batch, then :func:`~adaptive_length_reward.uncertainty.logits.sequence_uncertainty` (``"margin"`` is
    PixelThink's, arXiv 2505.23727; official ``verl/workers/rollout/vllm_rollout/vllm_rollout_spmd.py``).
    ``"logprobs"`` (``"auto"`` with vLLM): TRL asks vLLM only for the sampled token's log-prob (``logprobs=0``,
    ``grpo_trainer.py::__init__``), so ``U`` reduces ``1 - p_y`` whatever ``measure`` says. Overrides
    ``_tokenize_prompts`` and ``_generate``, private to ``trl/trainer/grpo_trainer.py`` in trl
    :data:`TESTED_TRL_VERSIONS` (other versions are refused). Keywords: ``GRPOTrainer``'s, plus those
    :class:`UncertaintyTrainerConfig` declares. See docs/trl.md.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_trl_version()
        keys = {f.key for f in UncertaintyTrainerConfig.fields()}
        self.uncertainty_settings = UncertaintyTrainerConfig(**{k: kwargs.pop(k) for k in list(kwargs) if k in keys})
        super().__init__(*args, **kwargs)
        self._alr_prompt_fields: dict[str, Any] | None = None

    # -- overridden private hooks (trl/trainer/grpo_trainer.py, trl 1.16) ------------------------------------
    def _tokenize_prompts(self, prompts: list[Any]) -> Any:
        """``GRPOTrainer._tokenize_prompts``, keeping the multimodal fields for the uncertainty forward pass."""
        result = super()._tokenize_prompts(prompts)
        self._alr_prompt_fields = dict(result[2]) if len(result) == 3 and isinstance(result[2], Mapping) else None
        return result

    def _generate(self, prompts: list[Any]) -> Any:
        """``GRPOTrainer._generate`` plus one uncertainty per completion in ``extra_fields``."""
        self._alr_prompt_fields = None
        result = super()._generate(prompts)
        if not isinstance(result, tuple) or len(result) != 8:
            raise RuntimeError(f"UncertaintyGRPOTrainer: GRPOTrainer._generate returned {type(result).__name__} of "
                               f"length {len(result) if isinstance(result, tuple) else '?'}, expected the 8-tuple of "
                               f"trl {','.join(TESTED_TRL_VERSIONS)} (found trl {trl.__version__})")
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images = result
        s = self.uncertainty_settings
        if s.column in extra_fields:  # a rollout_func returned it: nothing is recomputed
            return result
        source = s.source if s.source != "auto" else ("logprobs" if logprobs is not None else "forward")
        if source == "logprobs" and logprobs is None:
            raise ValueError("UncertaintyGRPOTrainer: uncertainty_source: expected 'forward' or 'auto' when the "
                             "generation backend returns no log-probs (transformers generate), got 'logprobs'")
        if source == "forward" and tool_images and any(tool_images):
            raise NotImplementedError("UncertaintyGRPOTrainer: completions that contain tool images are not supported "
                                      "by the forward pass; use uncertainty_source='logprobs' with vLLM")
        if source == "logprobs":
            values = self._uncertainty_from_logprobs(completion_ids, logprobs, tool_mask)
        else:
            values = self._uncertainty_from_forward(prompt_ids, completion_ids, tool_mask, images)
        if len(values):
            self._metrics["train" if self.model.training else "eval"][f"{s.column}/mean"].append(float(np.mean(values)))
        extra_fields = {**extra_fields, s.column: [float(v) for v in values]}
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images

    # -- the two routes -------------------------------------------------------------------------------------
    def _span_masks(self, ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """``valid``, narrowed to each completion's reasoning span when ``uncertainty_span="reasoning"``
        (found on the decoded tokens, :func:`~adaptive_length_reward.adapters.token_spans.reasoning_token_mask`)."""
        s = self.uncertainty_settings
        if s.span == "completion":
            return valid
        from .token_spans import reasoning_token_mask

        keep = np.zeros_like(valid)
        for i in range(ids.shape[0]):
            positions = np.flatnonzero(valid[i])
            if positions.size:
                last = int(positions[-1]) + 1
                keep[i, :last] = reasoning_token_mask(ids[i, :last].tolist(), self._tokenizer, open_tag=s.open_tag,
                                                      close_tag=s.close_tag)
        return keep & valid

    def _uncertainty_from_logprobs(self, completion_ids: Sequence[Sequence[int]], logprobs: Sequence[Sequence[Any]],
                                   tool_mask: Sequence[Sequence[int]] | None) -> FloatArray:
        """``reduction`` of ``1 - p_y`` over the sampled tokens' log-probs (``None`` entries are skipped)."""
        from ..uncertainty import logprob_uncertainty, pad_ragged, reduce_tokens

        s = self.uncertainty_settings
        values, valid = pad_ragged([[np.nan if lp is None else float(lp) for lp in row] for row in logprobs])
        ids, _ = pad_ragged([[float(t) for t in row] for row in completion_ids], fill=0.0)
        if ids.shape != values.shape:
            raise ValueError(f"UncertaintyGRPOTrainer: logprobs: expected one per completion token, got shape "
                             f"{values.shape} for completion ids of shape {ids.shape}")
        if tool_mask is not None:
            model_tokens, _ = pad_ragged([[float(m) for m in row] for row in tool_mask], fill=0.0)
            valid &= model_tokens.astype(bool)
        keep = self._span_masks(ids.astype(np.int64), valid)
        per_token = logprob_uncertainty(np.where(keep, values, np.nan), where="UncertaintyGRPOTrainer: logprobs")
        return reduce_tokens(per_token, keep, how=s.reduction, q=s.quantile)

    def _uncertainty_from_forward(self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
                                  tool_mask: Sequence[Sequence[int]] | None,
                                  images: Sequence[Any] | None) -> FloatArray:
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
                ids[i, width_p - len(p):width_p + len(c)] = torch.tensor(p + c, dtype=torch.long)
                attention[i, width_p - len(p):width_p + len(c)] = 1
                if c:
                    valid[i, :len(c)] = True if tool_mask is None else np.asarray(tool_mask[start + i], dtype=bool)
            inputs = {"input_ids": ids, "attention_mask": attention,
                      **_slice_fields(fields, start, stop, n, num_images, width_p, width_c)}
            inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
            keep = self._span_masks(ids[:, width_p:].numpy(), valid)
            with torch.no_grad(), self.accelerator.autocast():
                logits = self.model(**inputs, logits_to_keep=width_c + 1).logits[:, :-1, :]
            out.append(sequence_uncertainty(
                logits, mask=torch.as_tensor(keep, device=logits.device), measure=s.measure,
                token_ids=inputs["input_ids"][:, width_p:] if s.measure == "nll" else None,
                reduction=s.reduction, quantile=s.quantile, entropy_cap=s.entropy_cap, temperature=temperature,
            ))
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


def _slice_fields(fields: Mapping[str, Any], start: int, stop: int, n: int, num_images: Sequence[int],
                  width_p: int, width_c: int) -> dict[str, Any]:
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
                tensor[i, width_p - len(row):width_p] = row
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
