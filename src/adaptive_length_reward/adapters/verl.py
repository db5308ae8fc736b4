"""verl adapter (verl 0.9.1): ``compute_score``, a token-length reward manager, an agent loop that hands the
rollout's log-probs to the reward, and the ``verl.plugins`` registration. The YAML/CLI for each: docs/verl.md.

verl scores one sample per call (``verl/experimental/reward_loop/reward_manager/naive.py::run_single``):
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)``, with the keywords of
``reward.custom_reward_function.reward_kwargs`` merged in (``verl/trainer/ppo/reward.py::get_custom_reward_fn``);
a dict result's ``score`` is the reward, its other keys are logged and must be the same for every sample. Group
rewards (Kimi, ShorterBetter, ALP) cannot run one sample at a time. Importing this module registers
:class:`AdaptiveLengthRewardManager` (``"adaptive_length"``) and :class:`UncertaintySingleTurnAgentLoop`
(``"adaptive_length_single_turn"``) with verl.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..batch import CONTEXT_FIELDS, RewardBatch
from ..errors import import_optional
from ..length import PrecomputedLength
from ..reward import Reward
from .scoring import (
    AdapterSettings,
    SampleScorer,
    check_sources,
    check_tested_version,
    environ_key,
    reward_from_settings,
    settings_from_env,
)
from .token_spans import reasoning_token_mask

verl = import_optional("verl", extra="verl", purpose="adaptive_length_reward.adapters.verl")
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput  # noqa: E402
from verl.experimental.agent_loop.agent_loop import register as register_agent_loop  # noqa: E402
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop  # noqa: E402
from verl.experimental.reward_loop.reward_manager import register as register_reward_manager  # noqa: E402
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase  # noqa: E402
from verl.utils.reward_score import default_compute_score  # noqa: E402

__all__ = [
    "AGENT_LOOP_NAME",
    "REWARD_MANAGER_NAME",
    "TESTED_VERL_VERSIONS",
    "AdaptiveLengthRewardManager",
    "UncertaintySingleTurnAgentLoop",
    "VerlComputeScore",
    "attach_rollout_logprobs",
    "compute_score",
    "uncertainty_from_logprobs",
]

#: verl versions this module was tested with; it subclasses ``RewardManagerBase`` and ``SingleTurnAgentLoop``.
TESTED_VERL_VERSIONS = (">=0.9.1", "<0.10")
REWARD_MANAGER_NAME = "adaptive_length"
AGENT_LOOP_NAME = "adaptive_length_single_turn"

_SETTING_FIELDS = frozenset(AdapterSettings.model_fields) - {"kind"}


check_tested_version("verl", verl.__version__, TESTED_VERL_VERSIONS, owner="adaptive_length_reward.adapters.verl",
                     relies="subclasses verl's RewardManagerBase and SingleTurnAgentLoop",
                     advice="Pin 'verl==0.9.1', or call compute_score from your own reward manager.")


def uncertainty_from_logprobs(logprobs: Any) -> float:
    """Sampled-token uncertainty ``mean_t (1 - exp(logprob_t))`` in ``[0, 1]`` (``0.0`` without tokens).

    Per token :func:`adaptive_length_reward.uncertainty.logprob_uncertainty` (``1 - p_y``, with its one
    tolerance); verl's rollout returns only the sampled token's log-prob, so margin or entropy are not available.

    >>> round(uncertainty_from_logprobs([0.0, math.log(0.5)]), 6)
    0.25
    """
    from ..uncertainty import logprob_uncertainty, reduce_ragged

    return float(reduce_ragged([logprob_uncertainty(np.asarray(logprobs, dtype=np.float64).reshape(-1))])[0])


def _optional_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"extra_info[{name!r}]: expected a number or None, got {value!r:.80}") from None
    return None if math.isnan(number) else number


class VerlComputeScore:
    """A library reward as verl's ``compute_score``; picklable (verl ships it to reward workers).

    ``reward`` defaults to the one ``settings`` (keys and sources, default :class:`AdapterSettings`) names.
    """

    def __init__(self, reward: Reward | None = None, settings: AdapterSettings | None = None) -> None:
        check_sources("VerlComputeScore", reward, settings)
        self.settings = settings if settings is not None else AdapterSettings()
        self._reward = reward
        self._scorers: dict[bool, SampleScorer] = {}  # per instance: no cache keyed on component equality

    def reward(self, *, precomputed_length: bool = False) -> Reward:
        """The reward in use; with the default preset and token lengths from the reward manager, the preset
        counts those (``length=PrecomputedLength()``)."""
        if self._reward is not None:
            return self._reward
        if precomputed_length and self.settings.reward is None and self.settings.reward_config is None:
            return _preset_with_precomputed_length()
        return reward_from_settings(self.settings)

    @property
    def __name__(self) -> str:
        return self.reward().name

    def build_batch(self, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None,
                    response_ids: Sequence[int] | None = None, response_length: float | None = None) -> RewardBatch:
        """The one-sample batch scored for one verl call."""
        s = self.settings
        info = dict(extra_info or {})
        difficulty = _optional_float(info.pop(s.difficulty_key, None), s.difficulty_key)
        uncertainty = _optional_float(info.pop(s.uncertainty_key, None), s.uncertainty_key)
        logprobs = info.pop(s.logprobs_key, None)
        if uncertainty is None and logprobs is not None:
            uncertainty = uncertainty_from_logprobs(logprobs)
        extra = {k: (v,) for k, v in info.items() if k not in CONTEXT_FIELDS and k != "step"}
        return RewardBatch(
            completions=(solution_str,), ground_truth=(ground_truth,),
            difficulty=np.array([np.nan if difficulty is None else difficulty]),
            uncertainty=None if uncertainty is None else np.array([uncertainty]),
            token_ids=None if response_ids is None else ([int(t) for t in response_ids],),
            lengths=None if response_length is None else np.array([float(response_length)]),
            extra=extra,
        )

    def __call__(self, data_source: Any = None, solution_str: str = "", ground_truth: Any = None,
                 extra_info: Mapping[str, Any] | None = None, *, response_ids: Sequence[int] | None = None,
                 response_length: float | None = None, **kwargs: Any) -> dict[str, float]:
        """Score one response: ``{"score": reward, **logs}`` with the adapters' logged values
        (:attr:`~adaptive_length_reward.adapters.scoring.ScoredBatch.logs`), the same keys for every sample of a
        given reward. Unknown keywords (other managers' extras) are ignored.
        """
        if not isinstance(solution_str, str):
            raise TypeError(f"compute_score: solution_str: expected str, got {type(solution_str).__name__}")
        if extra_info is not None and not isinstance(extra_info, Mapping):
            raise TypeError(f"compute_score: extra_info: expected a dict or None, got {type(extra_info).__name__}")
        batch = self.build_batch(solution_str, ground_truth, extra_info, response_ids, response_length)
        counted = response_length is not None
        scorer = self._scorers.get(counted) or self._scorers.setdefault(
            counted, SampleScorer(self.reward(precomputed_length=counted)))
        scored = scorer.score(batch)
        return {"score": float(scored.rewards[0]), **{key: float(values[0]) for key, values in scored.logs.items()}}


@lru_cache(maxsize=1)
def _preset_with_precomputed_length() -> Reward:
    from ..presets import pixelthink

    return pixelthink(length=PrecomputedLength())


@lru_cache(maxsize=64)
def _compute_score_for(environ_key: tuple[tuple[str, str], ...], settings_json: str) -> VerlComputeScore:
    settings = settings_from_env(dict(environ_key), **json.loads(settings_json))
    return VerlComputeScore(settings=settings)


def _settings_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _SETTING_FIELDS}


def compute_score(data_source: Any = None, solution_str: str = "", ground_truth: Any = None,
                  extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, float]:
    """verl's custom reward entry point (``reward.custom_reward_function.path`` = this module's file, ``name`` =
    ``compute_score``).

    Keywords that are :class:`~adaptive_length_reward.adapters.scoring.AdapterSettings` fields
    (``reward_config``, ``difficulty_key``, ...; from ``reward_kwargs``) configure it, on top of the ``ALR_*``
    environment variables; ``response_ids``/``response_length`` come from :class:`AdaptiveLengthRewardManager`;
    other keywords are ignored. See :meth:`VerlComputeScore.__call__` for the result.

    >>> from adaptive_length_reward.adapters.verl import compute_score
    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    >>> out = compute_score("refcocog", answer, gt, {"difficulty": 2.0})
    >>> out["score"], out["length"], out["budget"], out["segmentation_accuracy/box_iou"]
    (5.0, 11.0, 96.0, 1.0)
    """
    settings = _settings_kwargs(kwargs)
    scorer = _compute_score_for(environ_key(), json.dumps(settings, sort_keys=True, default=str))
    rest = {k: v for k, v in kwargs.items() if k not in settings}
    return scorer(data_source, solution_str, ground_truth, extra_info, **rest)


def _reward_kwargs(config: Any) -> dict[str, Any]:
    """``config.reward.custom_reward_function.reward_kwargs`` as a plain dict (``{}`` when absent)."""
    from omegaconf import OmegaConf  # ships with verl

    try:
        kwargs = config["reward"]["custom_reward_function"].get("reward_kwargs", None)
    except (KeyError, TypeError, AttributeError):  # no such section (or it is None)
        return {}
    if OmegaConf.is_config(kwargs):
        kwargs = OmegaConf.to_container(kwargs, resolve=True)
    return dict(kwargs or {})


@register_reward_manager(REWARD_MANAGER_NAME)
class AdaptiveLengthRewardManager(RewardManagerBase):
    """verl reward manager that measures lengths in tokens from the response ids (no re-tokenisation).

    Per sample (``run_single``, same inputs as verl's naive manager) it counts the model-generated tokens
    (``response_mask``) of the valid response, or of its reasoning span with ``length_span="reasoning"``
    (:func:`~adaptive_length_reward.adapters.token_spans.reasoning_token_mask`), and calls
    ``compute_score(..., response_ids=ids, response_length=n)`` (docs/verl.md). The batch's ``rollout_log_probs``
    go into ``extra_info[logprobs_key]`` unless the agent loop put them there.
    """

    def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, reward_router_address: Any = None,
                 reward_model_tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.settings = settings_from_env(**_settings_kwargs(_reward_kwargs(config)))
        if compute_score is None or compute_score is default_compute_score:
            self.compute_score = VerlComputeScore(settings=self.settings)
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer

    def response_length(self, valid_ids: Sequence[int], model_tokens: Sequence[bool]) -> int:
        """Tokens counted as the response's length (see the class docstring)."""
        if self.settings.length_span == "response":
            return int(sum(bool(m) for m in model_tokens))
        mask = reasoning_token_mask(valid_ids, self.tokenizer, open_tag=self.settings.open_tag,
                                    close_tag=self.settings.close_tag)
        return int((mask & np.asarray(model_tokens, dtype=bool)).sum())

    async def run_single(self, data: Any) -> dict[str, Any]:
        """Score the last sequence of ``data`` (verl's convention for multi-sequence outputs)."""
        data = data[-1:]
        item = data[0]
        response_ids = item.batch["responses"]
        width = int(response_ids.shape[-1])
        valid = int(item.batch["attention_mask"][-width:].sum())
        valid_ids = [int(t) for t in response_ids[:valid].tolist()]
        keys = set(item.batch.keys())
        model_tokens = (item.batch["response_mask"][:valid].bool().tolist() if "response_mask" in keys
                        else [True] * valid)
        nt = item.non_tensor_batch
        extra_info = dict(nt.get("extra_info", None) or {})
        tool_extra_fields = nt.get("tool_extra_fields", None)
        if tool_extra_fields is not None:
            extra_info.update(dict(tool_extra_fields).items())
        extra_info["num_turns"] = nt.get("__num_turns__", None)
        extra_info["rollout_reward_scores"] = nt.get("reward_scores", {})
        key = self.settings.logprobs_key
        if extra_info.get(key) is None and "rollout_log_probs" in keys:
            logprobs = item.batch["rollout_log_probs"][:valid].tolist()
            extra_info[key] = [lp for lp, m in zip(logprobs, model_tokens) if m]
        length = self.response_length(valid_ids, model_tokens)
        loop = asyncio.get_running_loop()  # the loop run_single runs on (verl's naive manager uses self.loop)
        tokenizer: Any = self.tokenizer
        score_fn: Any = self.compute_score
        solution_str = await loop.run_in_executor(None, lambda: tokenizer.decode(valid_ids, skip_special_tokens=True))
        call = dict(data_source=nt["data_source"], solution_str=solution_str,
                    ground_truth=nt["reward_model"]["ground_truth"], extra_info=extra_info,
                    response_ids=valid_ids, response_length=length)
        result = await loop.run_in_executor(None, lambda: score_fn(**call))
        if isinstance(result, Mapping):
            return {"reward_score": float(result["score"]), "reward_extra_info": dict(result)}
        return {"reward_score": float(result), "reward_extra_info": {"acc": float(result)}}


def attach_rollout_logprobs(output: Any, key: str = "rollout_logprobs") -> Any:
    """Copy the log-probs of the model-generated response tokens into ``output.extra_fields[key]``.

    verl passes ``extra_fields`` to the streaming reward as ``tool_extra_fields``, which the reward managers
    merge into ``extra_info`` (``agent_loop.py::_compute_score``); :func:`compute_score` turns them into the
    sampled-token uncertainty. ``ValueError`` when the rollout returned none (``calculate_log_probs`` off).
    """
    if not isinstance(output, AgentLoopOutput):
        raise TypeError(f"attach_rollout_logprobs: output: expected an AgentLoopOutput, got {type(output).__name__}")
    if output.response_logprobs is None:
        raise ValueError("attach_rollout_logprobs: the rollout returned no response log-probs; expected "
                         "actor_rollout_ref.rollout.calculate_log_probs=True, got log-probs None")
    mask = output.response_mask
    output.extra_fields[key] = [float(lp) for lp, m in zip(output.response_logprobs, mask) if m]
    return output


@register_agent_loop(AGENT_LOOP_NAME)
class UncertaintySingleTurnAgentLoop(SingleTurnAgentLoop):
    """verl's ``SingleTurnAgentLoop`` that also puts the response's sampled-token log-probs into
    ``extra_fields["rollout_logprobs"]`` (:func:`attach_rollout_logprobs`), so the reward sees an uncertainty.

    Only sampled-token log-probs exist at this point in verl (no top-k; RFC verl#7735), so the uncertainty is
    the sampled-token measure ``mean_t (1 - p_t)``, not PixelThink's top-2 margin.
    """

    logprobs_key = "rollout_logprobs"

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        output = await super().run(sampling_params, **kwargs)
        return attach_rollout_logprobs(output, self.logprobs_key)
