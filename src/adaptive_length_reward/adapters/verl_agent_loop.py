"""verl agent loops (verl 0.9.1) that hand the rollout's uncertainty to the reward (docs/verl.md, "Uncertainty").

* [`MarginSingleTurnAgentLoop`][] (``adaptive_length_margin``): PixelThink's U, the mean over the response's
  tokens of ``clip(1 - (p1 - p2), 0, 1)`` from the top-k log-probs (arXiv 2505.23727; official
  ``verl/workers/rollout/vllm_rollout_spmd.py::compute_uncertainty_from_logprob_dict``, ``logprobs=5``). verl's
  rollout servers return only the sampled token's log-prob for generated tokens (``vllm_async_server.py::generate``
  sets ``logprobs=0``), so after generating, the loop asks the same server for the *prompt* log-probs of prompt +
  response (``prompt_logprobs=k``, ``max_tokens=1``), which verl's vLLM server returns rank-ordered in
  ``extra_fields["prompt_logprobs"]`` (``vllm_rollout/utils.py::extract_prompt_logprobs``).
* [`UncertaintySingleTurnAgentLoop`][] (``adaptive_length_single_turn``): copies the sampled-token log-probs into
  ``extra_fields``, for ``uncertainty_measure="nll"`` (``mean 1 - p_sampled``, not PixelThink's measure).

The plugin (``adaptive_length_reward_verl_plugin``) registers both names without importing this module.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import uuid4

import numpy as np

from ..errors import import_optional
from ..uncertainty.topk import topk_from_dense, topk_margin_uncertainty

import_optional("verl", extra="verl", purpose="adaptive_length_reward.adapters.verl_agent_loop")
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput  # noqa: E402
from verl.experimental.agent_loop.agent_loop import register as register_agent_loop  # noqa: E402
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop  # noqa: E402

__all__ = [
    "MarginSingleTurnAgentLoop",
    "UncertaintySingleTurnAgentLoop",
    "attach_rollout_logprobs",
    "response_margin_uncertainty",
]

AGENT_LOOP_NAME = "adaptive_length_single_turn"
MARGIN_AGENT_LOOP_NAME = "adaptive_length_margin"


def attach_rollout_logprobs(output: Any, key: str = "rollout_logprobs") -> Any:
    """Copy the log-probs of the model-generated response tokens into ``output.extra_fields[key]``.

    verl passes ``extra_fields`` to the streaming reward as ``tool_extra_fields``, which the reward managers
    merge into ``extra_info`` (``agent_loop.py::_compute_score``); ``compute_score`` with
    ``uncertainty_measure="nll"`` turns them into ``mean_t (1 - p_t)``. ``ValueError`` when the rollout returned
    none (``calculate_log_probs`` off).
    """
    if not isinstance(output, AgentLoopOutput):
        raise TypeError(f"attach_rollout_logprobs: output: expected an AgentLoopOutput, got {type(output).__name__}")
    if output.response_logprobs is None:
        raise ValueError(
            "attach_rollout_logprobs: the rollout returned no response log-probs; expected "
            "actor_rollout_ref.rollout.calculate_log_probs=True, got log-probs None"
        )
    mask = output.response_mask
    output.extra_fields[key] = [float(lp) for lp, m in zip(output.response_logprobs, mask) if m]
    return output


@register_agent_loop(AGENT_LOOP_NAME)
class UncertaintySingleTurnAgentLoop(SingleTurnAgentLoop):
    """verl's ``SingleTurnAgentLoop`` that also puts the response's sampled-token log-probs into
    ``extra_fields["rollout_logprobs"]`` ([`attach_rollout_logprobs`][]): U = ``mean_t (1 - p_t)`` with
    ``uncertainty_measure="nll"``; not PixelThink's margin ([`MarginSingleTurnAgentLoop`][]).

    verl's agent-loop worker constructs it with ``SingleTurnAgentLoop``'s arguments (registered as
    ``adaptive_length_single_turn``; docs/verl.md).

    Attributes:
        logprobs_key: the ``extra_fields`` key of the log-probs (the default of ``AdapterSettings.logprobs_key``).
    """

    logprobs_key = "rollout_logprobs"

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        output = await super().run(sampling_params, **kwargs)
        return attach_rollout_logprobs(output, self.logprobs_key)


def response_margin_uncertainty(prompt_logprobs: Any, prompt_length: int, response_mask: Any) -> float:
    """PixelThink's U of one response from verl's ``extra_fields["prompt_logprobs"]`` of prompt + response.

    Row ``i`` of ``prompt_logprobs`` holds the top-k log-probs (by rank, ``None`` where absent) of the distribution
    that produced token ``i + 1`` (verl drops vLLM's ``None`` for token 0 and pads one row at the end), so response
    token ``t`` (at position ``prompt_length + t``) reads row ``prompt_length + t - 1``. The mean of
    ``clip(1 - (p1 - p2), 0, 1)`` over the tokens where ``response_mask`` is 1 (EOS included, as generated);
    ``0.0`` for an empty response, like the official code.
    """
    mask = np.asarray(response_mask, dtype=bool)
    rows = list(prompt_logprobs)[prompt_length - 1 : prompt_length - 1 + mask.size]
    if len(rows) != mask.size:
        raise ValueError(
            f"prompt_logprobs: expected a row for each of the {mask.size} response tokens after the "
            f"{prompt_length} prompt tokens, got {len(prompt_logprobs)} rows"
        )
    if not mask.any():
        return 0.0
    width = max(len(row) for row in rows)
    dense = np.array(
        [[-math.inf if v is None else float(v) for v in row] + [-math.inf] * (width - len(row)) for row in rows],
        dtype=np.float64,
    )[mask]
    if width < 2 or np.isneginf(dense[:, 1]).any():
        raise ValueError(
            f"prompt_logprobs: PixelThink's margin needs the top-2 log-probs of every response token, "
            f"got {width} per token (ask for prompt_logprobs >= 2)"
        )
    return float(np.mean(topk_margin_uncertainty(topk_from_dense([dense]))))


@register_agent_loop(MARGIN_AGENT_LOOP_NAME)
class MarginSingleTurnAgentLoop(SingleTurnAgentLoop):
    """verl's ``SingleTurnAgentLoop`` that also measures PixelThink's U on the rollout server and puts it into
    ``extra_fields[uncertainty_key]`` (the reward's ``extra_info``; a given U wins over any other source).

    After generating, it sends prompt + response back to the same server with ``prompt_logprobs=top_k`` and
    ``max_tokens=1`` (one prefill per sample on the inference engine, not on the trainer) and reduces the response
    rows with [`response_margin_uncertainty`][]. The request sets temperature 1.0 and no top-k/top-p, so whether
    vLLM computes prompt log-probs from the raw logits or after the request's processing, U is measured at
    temperature 1.0 without truncation (PixelThink's rollout setting), whatever the rollout's own. A server that
    returns no ``prompt_logprobs`` (verl's SGLang server) raises a ``RuntimeError``.

    verl's agent-loop worker constructs it with ``SingleTurnAgentLoop``'s arguments (registered as
    ``adaptive_length_margin``; docs/verl.md).

    Attributes:
        top_k: the ``prompt_logprobs`` asked for (the official ``logprobs=5``; the margin uses the top 2).
        uncertainty_key: the ``extra_fields`` key of U (the default of ``AdapterSettings.uncertainty_key``).
    """

    top_k = 5  # the official logprobs=5; the margin uses the top 2
    uncertainty_key = "uncertainty"

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        output = await super().run(sampling_params, **kwargs)
        output.extra_fields[self.uncertainty_key] = await self.margin_uncertainty(output)
        return output

    async def margin_uncertainty(self, output: Any) -> float:
        """U of ``output`` from one ``prompt_logprobs`` request to the rollout server."""
        if not output.response_ids:
            return 0.0
        mm = output.multi_modal_data or {}
        scored = await self.server_manager.generate(
            request_id=uuid4().hex,
            prompt_ids=list(output.prompt_ids) + list(output.response_ids),
            sampling_params={"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": self.top_k},
            image_data=mm.get("images"),
            video_data=mm.get("videos"),
            audio_data=mm.get("audios"),
            mm_processor_kwargs=output.mm_processor_kwargs,
        )
        rows = (scored.extra_fields or {}).get("prompt_logprobs")
        if rows is None:
            raise RuntimeError(
                "MarginSingleTurnAgentLoop: the rollout server returned no prompt_logprobs (extra_fields keys "
                f"{sorted(scored.extra_fields or {})}); verl's vLLM server returns them "
                "(actor_rollout_ref.rollout.name=vllm). Other backends cannot give PixelThink's top-2 margin: use "
                "the 'adaptive_length_single_turn' agent loop with reward_kwargs uncertainty_measure='nll'"
            )
        return response_margin_uncertainty(rows, len(output.prompt_ids), output.response_mask)
