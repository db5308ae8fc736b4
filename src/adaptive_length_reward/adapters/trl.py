"""TRL adapter: library rewards as TRL reward functions, and a GRPOTrainer that measures uncertainty.

TRL's ``GRPOTrainer`` calls every reward function once per generation batch as
``reward_func(prompts=..., completions=..., completion_ids=..., **reward_kwargs)``, where ``reward_kwargs``
holds every dataset column (one entry per completion), ``trainer_state``, ``log_extra(column, values)`` and
``log_metric(name, value)`` (``trl/trainer/grpo_trainer.py::_calculate_rewards``, trl 1.16). It expects
``list[float | None]`` back (``None``: that function is skipped for that sample) and names the function by its
``__name__``.

:class:`TRLReward` wraps any :class:`~adaptive_length_reward.reward.Reward` into that convention; it uses only
TRL's public calling convention and imports nothing from TRL. :class:`UncertaintyGRPOTrainer` overrides two
private methods of ``GRPOTrainer`` to hand each completion's uncertainty to the rewards, and refuses TRL
versions outside :data:`TESTED_TRL_VERSIONS`.

>>> from adaptive_length_reward import SoftLengthPenalty, FixedBudget
>>> reward = TRLReward(SoftLengthPenalty(budget=FixedBudget(2)))
>>> reward(prompts=["p", "p"], completions=["a b", "a b c"], completion_ids=[[1, 2], [1, 2, 3]])
[1.0, 0.998]
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ..batch import CONTEXT_FIELDS, RewardBatch
from ..config import ComponentConfig, validated
from ..errors import import_optional
from ..reward import Reward, RewardOutput
from .scoring import LOGGED_COLUMNS

__all__ = [
    "TESTED_TRL_VERSIONS",
    "AsyncTRLReward",
    "TRLReward",
    "UncertaintyGRPOTrainer",
    "check_trl_version",
]

FloatArray = npt.NDArray[np.float64]

#: TRL versions :class:`UncertaintyGRPOTrainer` was tested with (``>=1.16,<2``): it relies on the private
#: ``GRPOTrainer._generate`` and ``GRPOTrainer._tokenize_prompts`` of that line.
TESTED_TRL_VERSIONS = (">=1.16", "<2")


# ------------------------------------------------------------------------------------------------------------
# Reward functions
# ------------------------------------------------------------------------------------------------------------


class TRLRewardConfig(ComponentConfig):
    """Validated settings of :class:`TRLReward` (not a registered component: adapters are not built from configs)."""

    kind: Literal["trl_reward"] = "trl_reward"
    difficulty_column: str | None = Field("difficulty", min_length=1)
    ground_truth_column: str | None = Field("ground_truth", min_length=1)
    uncertainty_column: str | None = Field("uncertainty", min_length=1)
    group_by: str | None = Field("prompt", min_length=1)
    log_components: bool = True
    log_columns: bool = True
    name: str | None = Field(None, min_length=1, pattern=r"^[^/]+$")


def _to_logged(values: Any) -> list[float | None]:
    """Floats for TRL's logs; NaN and inf (a missing value, or no budget) become ``None``."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


_IMAGE_COLUMNS = ("image", "images")


def _same_image(a: Any, b: Any) -> bool:
    """Whether two dataset image values show the same pixels (PIL images, arrays, paths, or lists of them).

    TRL loads the dataset row once per generation, so the completions of one prompt carry equal images that
    are usually distinct objects: identity alone is not enough, and pixels are compared when it fails.
    """
    if a is b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_image(x, y) for x, y in zip(a, b))
    if hasattr(a, "mode") and hasattr(a, "tobytes") and hasattr(b, "mode") and hasattr(b, "tobytes"):  # PIL
        return bool(a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes())
    if hasattr(a, "shape") and hasattr(b, "shape"):  # numpy arrays, CPU tensors
        return bool(tuple(a.shape) == tuple(b.shape) and np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _consecutive_groups(prompts: Sequence[Any], images: Sequence[Any] | None = None) -> list[int]:
    """Group id per completion: a new group starts wherever the prompt (or its image) differs from the
    previous one.

    TRL's ``RepeatSampler`` puts the ``num_generations`` completions of one prompt next to each other within a
    process, so equal neighbours are one GRPO group. (A group may span processes; see ``docs/trl.md``.) For
    vision-language datasets the image is part of the prompt: two neighbouring samples that ask the same
    question about different images are different groups.
    """
    ids: list[int] = []
    for i, prompt in enumerate(prompts):
        if i == 0:
            ids.append(0)
            continue
        same = prompt == prompts[i - 1] and (images is None or _same_image(images[i], images[i - 1]))
        ids.append(ids[-1] if same else ids[-1] + 1)
    return ids


class TRLReward:
    """A library reward as a TRL reward function: picklable, with a fixed ``__name__``.

    Per call it builds one :class:`~adaptive_length_reward.batch.RewardBatch` from TRL's arguments:

    ===========================  ===============================================================================
    batch column                 from
    ===========================  ===============================================================================
    ``completions``/``reasoning``  ``completions`` (standard strings or conversational messages; a message's
                                 ``reasoning_content``/``thinking`` field fills ``reasoning``)
    ``token_ids``                ``completion_ids``
    ``difficulty``               the dataset column ``difficulty_column`` (``None`` entries: missing)
    ``ground_truth``             the dataset column ``ground_truth_column``
    ``uncertainty``              the column ``uncertainty_column`` (what :class:`UncertaintyGRPOTrainer` adds)
    ``group_ids``                ``group_by="prompt"``: runs of equal consecutive prompts (and equal images, from
                                 an ``image``/``images`` column when there is one); another string: that
                                 dataset column; ``None``: no groups
    ``step``                     ``trainer_state.global_step``
    extra columns                every other keyword that holds one value per completion (others are ignored)
    ===========================  ===============================================================================

    Logging (when TRL passes the hooks): ``log_metric(f"{name}/{component}", mean)`` for every named component
    of a composite reward and ``log_metric(f"{name}/mean_{column}", mean)`` for ``length``, ``budget``
    (finite budgets only), ``difficulty`` and ``uncertainty``; ``log_extra(f"{name}/{column}", values)`` with
    the per-sample values (``None`` where missing, or where no length penalty applies for ``budget``).

    A reward that returns NaN for a sample (documented per reward) gives ``None`` there, which TRL treats as
    "this function does not score this sample".

    Args:
        reward: any library reward.
        difficulty_column: dataset column holding the difficulty (``None``: do not read one).
        ground_truth_column: dataset column holding the reference answer (``None``: do not read one).
        uncertainty_column: column holding the per-completion uncertainty (``None``: do not read one).
        group_by: ``"prompt"``, a dataset column name, or ``None``.
        log_components: call ``log_metric`` with the component means.
        log_columns: call ``log_extra``/``log_metric`` with the per-sample diagnostics.
        name: the ``__name__`` TRL logs under (default the reward's name).
    """

    def __init__(
        self,
        reward: Reward,
        *,
        difficulty_column: str | None = "difficulty",
        ground_truth_column: str | None = "ground_truth",
        uncertainty_column: str | None = "uncertainty",
        group_by: str | None = "prompt",
        log_components: bool = True,
        log_columns: bool = True,
        name: str | None = None,
    ) -> None:
        owner = type(self).__qualname__
        if not isinstance(reward, Reward):
            raise TypeError(f"{owner}: reward: expected a Reward, got {type(reward).__name__}")
        self.settings = validated(
            owner, TRLRewardConfig, difficulty_column=difficulty_column, ground_truth_column=ground_truth_column,
            uncertainty_column=uncertainty_column, group_by=group_by, log_components=log_components,
            log_columns=log_columns, name=name,
        )
        self.reward = reward

    @property
    def __name__(self) -> str:
        return self.settings.name or self.reward.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reward!r}, name={self.__name__!r})"

    # -- batch ----------------------------------------------------------------------------------------------
    def build_batch(
        self,
        prompts: Sequence[Any] | None,
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any = None,
        **columns: Any,
    ) -> RewardBatch:
        """The :class:`RewardBatch` this function scores for one TRL call (see the class docstring)."""
        s = self.settings
        n = len(completions)
        context: dict[str, Any] = {}
        mapped = {s.difficulty_column: "difficulty", s.ground_truth_column: "ground_truth",
                  s.uncertainty_column: "uncertainty"}
        for column, field in mapped.items():
            if column is not None and columns.get(column) is not None:
                context[field] = columns[column]
        if completion_ids is not None:
            context["token_ids"] = [list(ids) for ids in completion_ids]
        if s.group_by == "prompt":
            if prompts is not None:
                images = next((columns[c] for c in _IMAGE_COLUMNS
                               if isinstance(columns.get(c), (list, tuple)) and len(columns[c]) == len(prompts)), None)
                context["group_ids"] = _consecutive_groups(prompts, images)
        elif s.group_by is not None and columns.get(s.group_by) is not None:
            context["group_ids"] = list(columns[s.group_by])
        step = getattr(trainer_state, "global_step", 0) if trainer_state is not None else 0
        extra = {
            key: values for key, values in columns.items()
            if key not in mapped and key not in CONTEXT_FIELDS and key != "step"
            and isinstance(values, (list, tuple)) and len(values) == n
        }
        return RewardBatch.from_completions(completions, step=int(step or 0), extra=extra, **context)

    # -- call -----------------------------------------------------------------------------------------------
    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        trainer_state: Any = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **dataset_columns: Any,
    ) -> list[float | None]:
        """Score one TRL generation batch; see the class docstring for the mapping and logging."""
        if completions is None:
            raise TypeError(f"{type(self).__name__}: completions: expected the completions TRL passes, got None")
        batch = self.build_batch(prompts, completions, completion_ids, trainer_state, **dataset_columns)
        output = self.reward.evaluate(batch)
        self._log(output, batch, log_extra, log_metric)
        return [float(r) if not math.isnan(r) else None for r in output.rewards.tolist()]

    def _log(self, output: RewardOutput, batch: RewardBatch, log_extra: Callable[[str, list[Any]], None] | None,
             log_metric: Callable[[str, float], None] | None) -> None:
        name = self.__name__
        if log_metric is not None and self.settings.log_components:
            for component, raw in output.components.items():
                values = np.asarray(raw, dtype=np.float64)
                if np.isfinite(values).any():
                    log_metric(f"{name}/{component}", float(np.mean(values[np.isfinite(values)])))
        if not self.settings.log_columns:
            return
        for column in LOGGED_COLUMNS:
            found: Any = output.columns.get(column)
            if found is None and column in ("difficulty", "uncertainty") and batch.has(column):
                found = batch.column(column)
            if found is None:
                continue
            try:
                floats = np.asarray(found, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                continue
            if log_extra is not None:
                log_extra(f"{name}/{column}", _to_logged(floats))
            finite = floats[np.isfinite(floats)]
            if log_metric is not None and finite.size:
                log_metric(f"{name}/mean_{column}", float(finite.mean()))


class AsyncTRLReward(TRLReward):
    """:class:`TRLReward` with an ``async`` ``__call__`` that scores in a worker thread.

    TRL gathers async reward functions concurrently (``asyncio.gather`` on its own event loop,
    ``grpo_trainer.py::_calculate_rewards``), so an expensive reward (e.g. segmentation with a mask model)
    overlaps with other async rewards instead of blocking them. Results are identical to :class:`TRLReward`.
    """

    async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        return await asyncio.to_thread(TRLReward.__call__, self, *args, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# Uncertainty-aware GRPOTrainer
# ------------------------------------------------------------------------------------------------------------

trl = import_optional("trl", extra="trl", purpose="adaptive_length_reward.adapters.trl")
torch = import_optional("torch", extra="trl", purpose="adaptive_length_reward.adapters.trl")


def check_trl_version(version: str | None = None) -> str:
    """Raise ``RuntimeError`` unless ``version`` (default: the installed TRL) is in :data:`TESTED_TRL_VERSIONS`.

    Only the major version is a hard limit in spirit (TRL may rename private methods in a major release); an
    older 1.x lacks the hooks used here, so it is refused too.
    """
    from packaging.version import Version

    version = version or trl.__version__
    parsed = Version(version)
    if not (Version("1.16") <= Version(parsed.base_version) < Version("2")):
        raise RuntimeError(
            f"UncertaintyGRPOTrainer was tested with trl {','.join(TESTED_TRL_VERSIONS)} and relies on private "
            f"GRPOTrainer methods (_generate, _tokenize_prompts) of that line; found trl {version}. Pin "
            "'trl>=1.16,<2', or compute uncertainty yourself and pass it as a dataset column to TRLReward."
        )
    return version


class UncertaintyTrainerConfig(ComponentConfig):
    """Validated uncertainty settings of :class:`UncertaintyGRPOTrainer`."""

    kind: Literal["uncertainty_grpo_trainer"] = "uncertainty_grpo_trainer"
    measure: Literal["margin", "entropy", "nll"] = "margin"
    reduction: Literal["mean", "max", "min", "quantile"] = "mean"
    quantile: float = Field(0.9, ge=0.0, le=1.0)
    span: Literal["completion", "reasoning"] = "completion"
    open_tag: str = Field("<think>", min_length=1)
    close_tag: str = Field("</think>", min_length=1)
    source: Literal["auto", "forward", "logprobs"] = "auto"
    temperature: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    entropy_cap: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    batch_size: int | None = Field(None, ge=1)
    column: str = Field("uncertainty", min_length=1)


#: Multimodal fields the forward pass knows how to cut per sample (Qwen-VL family and per-token type ids).
_PER_TOKEN_FIELDS = ("token_type_ids", "mm_token_type_ids")


class UncertaintyGRPOTrainer(trl.GRPOTrainer):  # type: ignore[misc, name-defined]
    """``trl.GRPOTrainer`` that measures each completion's uncertainty and passes it to the reward functions.

    After TRL generates (``_generate``), every completion gets one uncertainty ``U`` in ``[0, 1]``, added to the
    reward kwargs as ``uncertainty`` (``uncertainty_column``) next to the dataset columns; :class:`TRLReward`
    reads it into the batch, so PixelThink's hard-tier budget ``256 + 25 U`` sees it.

    Where ``U`` comes from (``uncertainty_source``):

    * ``"forward"`` (``"auto"`` without vLLM): one no-grad forward pass of the policy over prompt + completion
      (with ``pixel_values``/``image_grid_thw`` for VLMs), in micro-batches of ``uncertainty_batch_size``
      (default ``per_device_train_batch_size``); per token the fused estimator
      :func:`~adaptive_length_reward.uncertainty.logits.sequence_uncertainty` computes ``measure``:
      ``"margin"`` ``1 - (p1 - p2)`` (PixelThink, arXiv 2505.23727; official
      ``verl/workers/rollout/vllm_rollout/vllm_rollout_spmd.py``), ``"entropy"`` ``H / ln V`` (or
      ``H / entropy_cap``) or ``"nll"`` ``1 - p_y``; then ``reduction`` over the completion's tokens (or its
      reasoning span with ``uncertainty_span="reasoning"``).
    * ``"logprobs"`` (``"auto"`` with vLLM, or a ``rollout_func`` that returns log-probs): TRL asks vLLM only for
      the sampled token's log-prob (``logprobs=0``, ``grpo_trainer.py::__init__``), so ``U`` is the
      sampled-token measure ``1 - p_y`` reduced the same way, whatever ``measure`` says. vLLM reports them after
      temperature (``processed_logprobs``).

    A ``rollout_func`` that already returns an ``uncertainty`` field wins; nothing is recomputed.

    Overridden: ``_tokenize_prompts`` (keeps the processor's multimodal fields for the forward pass) and
    ``_generate`` (adds the column), both private to ``trl/trainer/grpo_trainer.py`` in trl
    :data:`TESTED_TRL_VERSIONS`; the constructor refuses other versions with a clear message.

    Args:
        *args: ``GRPOTrainer`` positional arguments.
        uncertainty_measure: ``"margin"`` (default, PixelThink), ``"entropy"`` or ``"nll"``.
        uncertainty_reduction: ``"mean"`` (default, PixelThink), ``"max"``, ``"min"`` or ``"quantile"``.
        uncertainty_quantile: the quantile for ``"quantile"``.
        uncertainty_span: ``"completion"`` (every generated token, PixelThink) or ``"reasoning"``.
        open_tag: opening reasoning tag (``uncertainty_span="reasoning"``).
        close_tag: closing reasoning tag.
        uncertainty_source: ``"auto"``, ``"forward"`` or ``"logprobs"``.
        uncertainty_temperature: the logits are divided by it (default the sampling temperature
            ``args.temperature``, i.e. the distribution the tokens were drawn from; PixelThink samples and
            measures at 1.0).
        entropy_cap: normalise entropy by this cap instead of ``ln V``.
        uncertainty_batch_size: completions per forward pass.
        uncertainty_column: the reward kwarg name.
        **kwargs: ``GRPOTrainer`` keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        uncertainty_measure: Literal["margin", "entropy", "nll"] = "margin",
        uncertainty_reduction: Literal["mean", "max", "min", "quantile"] = "mean",
        uncertainty_quantile: float = 0.9,
        uncertainty_span: Literal["completion", "reasoning"] = "completion",
        open_tag: str = "<think>",
        close_tag: str = "</think>",
        uncertainty_source: Literal["auto", "forward", "logprobs"] = "auto",
        uncertainty_temperature: float | None = None,
        entropy_cap: float | None = None,
        uncertainty_batch_size: int | None = None,
        uncertainty_column: str = "uncertainty",
        **kwargs: Any,
    ) -> None:
        check_trl_version()
        self.uncertainty_settings = validated(
            "UncertaintyGRPOTrainer", UncertaintyTrainerConfig, measure=uncertainty_measure,
            reduction=uncertainty_reduction, quantile=uncertainty_quantile, span=uncertainty_span,
            open_tag=open_tag, close_tag=close_tag, source=uncertainty_source, temperature=uncertainty_temperature,
            entropy_cap=entropy_cap, batch_size=uncertainty_batch_size, column=uncertainty_column,
        )
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
            raise RuntimeError(
                f"UncertaintyGRPOTrainer: GRPOTrainer._generate returned {type(result).__name__} of length "
                f"{len(result) if isinstance(result, tuple) else '?'}, expected the 8-tuple of trl "
                f"{','.join(TESTED_TRL_VERSIONS)} (found trl {trl.__version__})"
            )
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images = result
        s = self.uncertainty_settings
        if s.column not in extra_fields:
            source = s.source if s.source != "auto" else ("logprobs" if logprobs is not None else "forward")
            if source == "logprobs":
                if logprobs is None:
                    raise ValueError(
                        "UncertaintyGRPOTrainer: uncertainty_source: expected 'forward' or 'auto' when the generation "
                        "backend returns no log-probs (transformers generate), got 'logprobs'"
                    )
                values = self._uncertainty_from_logprobs(completion_ids, logprobs, tool_mask)
            else:
                if tool_images and any(tool_images):
                    raise NotImplementedError(
                        "UncertaintyGRPOTrainer: completions that contain tool images are not supported by the "
                        "forward pass; use uncertainty_source='logprobs' with vLLM"
                    )
                values = self._uncertainty_from_forward(prompt_ids, completion_ids, tool_mask, images)
            extra_fields = {**extra_fields, s.column: [float(v) for v in values]}
            mode = "train" if self.model.training else "eval"
            if len(values):
                self._metrics[mode][f"{s.column}/mean"].append(float(np.mean(values)))
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
        from ..uncertainty import normalized_nll, pad_ragged, reduce_tokens

        s = self.uncertainty_settings
        nll = [[math.nan if lp is None else -float(lp) for lp in row] for row in logprobs]
        values, valid = pad_ragged(nll)
        ids, _ = pad_ragged([[float(t) for t in row] for row in completion_ids], fill=0.0)
        if ids.shape != values.shape:
            raise ValueError(f"UncertaintyGRPOTrainer: logprobs: expected one per completion token, got shape "
                             f"{values.shape} for completion ids of shape {ids.shape}")
        if tool_mask is not None:
            model_tokens, _ = pad_ragged([[float(m) for m in row] for row in tool_mask], fill=0.0)
            valid &= model_tokens.astype(bool)
        keep = self._span_masks(ids.astype(np.int64), valid)
        per_token = normalized_nll(np.where(keep, values, np.nan))
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
            for i, (p, c) in enumerate(zip(prompts, completions)):
                ids[i, width_p - len(p):width_p] = torch.tensor(p, dtype=torch.long)
                attention[i, width_p - len(p):width_p] = 1
                if c:
                    ids[i, width_p:width_p + len(c)] = torch.tensor(c, dtype=torch.long)
                    attention[i, width_p:width_p + len(c)] = 1
                    valid[i, :len(c)] = True if tool_mask is None else np.asarray(tool_mask[start + i], dtype=bool)
            inputs = {"input_ids": ids, "attention_mask": attention,
                      **_slice_fields(fields, start, stop, n, num_images, [len(p) for p in prompts], width_p, width_c)}
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
    for key, value in fields.items():
        if key in ("pixel_values", "image_grid_thw") and "image_grid_thw" in fields:
            continue
        if key in _PER_TOKEN_FIELDS:
            continue
        if hasattr(value, "shape") and len(value.shape) and value.shape[0] == n:
            continue
        return False
    return True


def _slice_fields(fields: Mapping[str, Any], start: int, stop: int, n: int, num_images: Sequence[int],
                  prompt_lengths: Sequence[int], width_p: int, width_c: int) -> dict[str, Any]:
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
            value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            grid = torch.as_tensor(np.asarray(fields["image_grid_thw"]))
            per_image = grid.prod(dim=-1)
            image_start, image_stop = sum(num_images[:start]), sum(num_images[:stop])
            row_start = int(per_image[:image_start].sum())
            row_stop = int(per_image[:image_stop].sum())
            sliced[key] = value[row_start:row_stop]
            sliced["image_grid_thw"] = grid[image_start:image_stop]
        elif key == "image_grid_thw":
            continue
        else:
            value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            sliced[key] = value if whole else value[start:stop]
    if "pixel_values" in sliced and len(sliced["pixel_values"]) == 0:
        sliced.pop("pixel_values")
        sliced.pop("image_grid_thw", None)
    return sliced
