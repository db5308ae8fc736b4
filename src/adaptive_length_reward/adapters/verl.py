"""verl adapter (verl 0.9.1): ``compute_score``, token-length reward managers for verl's reward loop and its legacy
registry, and their registration. The agent loops are in [`verl_agent_loop`][];
the ``verl.plugins`` entry point (``adaptive_length_reward_verl_plugin``) registers everything lazily. The YAML/CLI
for each: docs/verl.md.

verl scores one sample per call (``verl/experimental/reward_loop/reward_manager/naive.py::run_single``):
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)``, with the keywords of
``reward.custom_reward_function.reward_kwargs`` merged in (``verl/trainer/ppo/reward.py::get_custom_reward_fn``);
a dict result's ``score`` is the reward, its other keys are logged and must be the same for every sample. Group
rewards (Kimi, ShorterBetter, ALP, GRPO-LEAD, LASER-D) cannot run one sample at a time: per-sample scoring of one
raises [`ConfigError`][], and [`AdaptiveLengthBatchRewardManager`][]
(``adaptive_length_batch``, verl's batch reward-manager interface ``__call__(data, return_dict)``,
``verl/workers/reward_manager/abstract.py``) scores a whole ``DataProto`` in one ``reward.evaluate`` call, its
groups from the ``uid`` column.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..batch import CONTEXT_FIELDS, RewardBatch, group_ids_from_uids
from ..errors import ConfigError, MissingContextError, import_optional
from ..length import PrecomputedLength
from ..reward import Reward
from .scoring import (
    AdapterSettings,
    SampleScorer,
    check_sources,
    check_tested_version,
    environ_key,
    finite_metrics,
    reward_from_settings,
    settings_from_env,
)
from .token_spans import reasoning_token_mask

verl = import_optional("verl", extra="verl", purpose="adaptive_length_reward.adapters.verl")
check_tested_version(
    "verl",
    verl.__version__,
    (">=0.9.1", "<0.10"),
    owner="adaptive_length_reward.adapters.verl",
    relies="subclasses verl's RewardManagerBase, RateLimitedRewardManager and SingleTurnAgentLoop",
    advice="Pin 'verl==0.9.1', or call compute_score from your own reward manager.",
)
# Submodules, not the packages' __init__: verl's two registry packages import each other, and the plugin's import
# hook may import this module while one of them is still running (adaptive_length_reward_verl_plugin).
from verl.experimental.reward_loop.reward_manager import registry as _registry  # noqa: E402
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase  # noqa: E402
from verl.experimental.reward_loop.reward_manager.limited import RateLimitedRewardManager  # noqa: E402
from verl.utils.reward_score import default_compute_score  # noqa: E402
from verl.workers.reward_manager import registry as _legacy_registry  # noqa: E402
from verl.workers.reward_manager.abstract import AbstractRewardManager  # noqa: E402

__all__ = [
    "AGENT_LOOP_NAME",
    "BATCH_REWARD_MANAGER_NAME",
    "MARGIN_AGENT_LOOP_NAME",
    "RATE_LIMITED_REWARD_MANAGER_NAME",
    "REWARD_MANAGER_NAME",
    "TESTED_VERL_VERSIONS",
    "AdaptiveLengthBatchRewardManager",
    "AdaptiveLengthLegacyRewardManager",
    "AdaptiveLengthRateLimitedRewardManager",
    "AdaptiveLengthRewardManager",
    "VerlComputeScore",
    "VerlOptions",
    "compute_score",
    "register_reward_managers",
    "uncertainty_from_logprobs",
]

logger = logging.getLogger(__name__)

#: verl versions this module was tested with; it subclasses ``RewardManagerBase`` and ``SingleTurnAgentLoop``.
TESTED_VERL_VERSIONS = (">=0.9.1", "<0.10")
REWARD_MANAGER_NAME = "adaptive_length"
RATE_LIMITED_REWARD_MANAGER_NAME = "adaptive_length_rate_limited"
#: verl's legacy (whole-batch) registry name of [`AdaptiveLengthBatchRewardManager`][]: group rewards.
BATCH_REWARD_MANAGER_NAME = "adaptive_length_batch"
AGENT_LOOP_NAME = "adaptive_length_single_turn"
MARGIN_AGENT_LOOP_NAME = "adaptive_length_margin"
_AGENT_LOOP_NAMES = frozenset(
    {"UncertaintySingleTurnAgentLoop", "MarginSingleTurnAgentLoop", "attach_rollout_logprobs"}
)


def __getattr__(name: str) -> Any:
    """The agent loops live in [`verl_agent_loop`][] (it imports verl's agent-loop module); re-exported here."""
    if name in _AGENT_LOOP_NAMES:
        from . import verl_agent_loop

        return getattr(verl_agent_loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class VerlOptions(BaseModel):
    """verl-only options of [`compute_score`][] (``reward_kwargs`` keys next to the
    [`AdapterSettings`][] fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uncertainty_measure: Literal["margin", "nll"] = Field(
        default="margin",
        description="what U is: 'margin' (PixelThink's top-2 margin, from the "
        "'adaptive_length_margin' agent loop or a precomputed value) or 'nll' (mean 1 - p_sampled from sampled-token "
        "log-probs: rollout_log_probs or the 'adaptive_length_single_turn' agent loop)",
    )
    on_error: Literal["raise", "fallback"] = Field(
        default="raise",
        description="a sample whose context is missing or malformed: 'raise' (default), or "
        "'fallback': score fallback_score, log a warning, every key present (reward_error 1.0)",
    )
    fallback_score: float | None = Field(default=None, description="the score on_error='fallback' gives")

    @model_validator(mode="after")
    def _consistent(self) -> VerlOptions:
        if self.on_error == "fallback" and (self.fallback_score is None or not math.isfinite(self.fallback_score)):
            raise ValueError(
                f"fallback_score: expected a finite number with on_error='fallback', got {self.fallback_score!r}"
            )
        if self.on_error == "raise" and self.fallback_score is not None:
            raise ValueError(f"fallback_score: expected None unless on_error='fallback', got {self.fallback_score!r}")
        return self


_SETTING_FIELDS = frozenset(AdapterSettings.model_fields) - {"kind"}
_OPTION_FIELDS = frozenset(VerlOptions.model_fields)


def _options(**kwargs: Any) -> VerlOptions:
    try:
        return VerlOptions(**kwargs)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(map(str, problem["loc"])) or "options"
        raise ConfigError(f"verl compute_score: {field}: {problem['msg']}, got {problem.get('input')!r:.80}") from None


def uncertainty_from_logprobs(logprobs: Any) -> float:
    """Sampled-token uncertainty ``mean_t (1 - exp(logprob_t))`` in ``[0, 1]`` (``0.0`` without tokens): what
    ``uncertainty_measure="nll"`` uses.

    Per token [`logprob_uncertainty`][adaptive_length_reward.uncertainty.reduction.logprob_uncertainty] (``1 - p_y``,
    with its one tolerance). PixelThink's margin needs the top-2 (``MarginSingleTurnAgentLoop``).

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


def _sample_name(data_source: Any, extra_info: Mapping[str, Any] | None) -> str:
    """How an error names a verl sample: its data source and dataset index (verl scores one sample per call)."""
    index = (extra_info or {}).get("index") if isinstance(extra_info, Mapping) else None
    where = "" if index is None else f", extra_info['index']={index!r}"
    return f"the verl sample data_source={data_source!r}{where}"


class VerlComputeScore:
    """A library reward as verl's ``compute_score``; picklable (verl ships it to reward workers).

    ``reward`` defaults to the one ``settings`` (keys and sources, default [`AdapterSettings`][]) names;
    ``options`` ([`VerlOptions`][]) say what U is measured as and what a sample with missing context gives.

    Args:
        reward: the library reward; default the one ``settings`` names (PixelThink's preset without one).
        settings: where the reward comes from and which ``extra_info`` keys hold the ground truth, difficulty,
            uncertainty and log-probs (default ``AdapterSettings()``).
        options: verl-only options: the uncertainty measure and the error policy (default ``VerlOptions()``).

    Raises:
        TypeError: ``reward`` is not a library Reward, or ``settings`` not AdapterSettings.
    """

    def __init__(
        self, reward: Reward | None = None, settings: AdapterSettings | None = None, options: VerlOptions | None = None
    ) -> None:
        check_sources("VerlComputeScore", reward, settings)
        self.settings = settings if settings is not None else AdapterSettings()
        self.options = options if options is not None else VerlOptions()
        self._reward = reward
        self._scorers: dict[bool, SampleScorer] = {}  # per instance: no cache keyed on component equality
        self._keys: dict[bool, tuple[str, ...]] = {}

    def reward(self, *, precomputed_length: bool = False) -> Reward:
        """The reward in use; with the default preset and token lengths from the reward manager, the preset
        counts those (``length=PrecomputedLength()``)."""
        if self._reward is not None:
            return self._reward
        if precomputed_length and self.settings.reward is None and self.settings.reward_config is None:
            return _preset_with_precomputed_length(self.settings)
        return reward_from_settings(self.settings)

    @property
    def __name__(self) -> str:
        return self.reward().name

    def build_batch(
        self,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None,
        response_ids: Sequence[int] | None = None,
        response_length: float | None = None,
    ) -> RewardBatch:
        """The one-sample batch scored for one verl call. Sampled-token log-probs become U only with
        ``uncertainty_measure="nll"``; a precomputed ``extra_info[uncertainty_key]`` always wins."""
        s = self.settings
        info = dict(extra_info or {})
        difficulty = _optional_float(info.pop(s.difficulty_key, None), s.difficulty_key)
        uncertainty = _optional_float(info.pop(s.uncertainty_key, None), s.uncertainty_key)
        logprobs = info.pop(s.logprobs_key, None)
        if uncertainty is None and logprobs is not None and self.options.uncertainty_measure == "nll":
            uncertainty = uncertainty_from_logprobs(logprobs)
        extra = {k: (v,) for k, v in info.items() if k not in CONTEXT_FIELDS and k != "step"}
        return RewardBatch(
            completions=(solution_str,),
            ground_truth=(ground_truth,),
            difficulty=np.array([np.nan if difficulty is None else difficulty]),
            uncertainty=None if uncertainty is None else np.array([uncertainty]),
            token_ids=None if response_ids is None else ([int(t) for t in response_ids],),
            lengths=None if response_length is None else np.array([float(response_length)]),
            extra=extra,
        )

    def __call__(
        self,
        data_source: Any = None,
        solution_str: str = "",
        ground_truth: Any = None,
        extra_info: Mapping[str, Any] | None = None,
        *,
        response_ids: Sequence[int] | None = None,
        response_length: float | None = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """Score one response: ``{"score": reward, **metrics}``, the adapters' logged values made finite
        ([`metrics`][adaptive_length_reward.adapters.scoring.ScoredBatch.metrics]), the same keys for every sample of a
        given reward (plus ``reward_error`` with ``on_error="fallback"``). Unknown keywords are ignored.

        A sample without the difficulty or uncertainty the reward needs raises
        [`MissingContextError`][] naming the sample and the fix (or, with
        ``on_error="fallback"``, scores ``fallback_score`` with a warning).

        Args:
            data_source: the sample's ``data_source`` (named in errors).
            solution_str: the decoded response.
            ground_truth: the sample's ground truth (``reward_model.ground_truth``).
            extra_info: the sample's ``extra_info``: difficulty, uncertainty and log-probs under the settings'
                keys; every other entry becomes a batch column.
            response_ids: the response's token ids (from [`AdaptiveLengthRewardManager`][]).
            response_length: the response's length in tokens (from the reward manager); with the default preset
                the length the reward counts.
            **kwargs: ignored (verl passes keywords a reward does not need).

        Returns:
            ``{"score": reward, **metrics}``, one float per key.

        Raises:
            MissingContextError: the sample lacks the difficulty or uncertainty the reward needs
                (``on_error="raise"``).
            TypeError: ``solution_str`` is not a string, ``extra_info`` not a mapping, or a value has the wrong
                type (``on_error="raise"``).
            ValueError: a value the reward cannot score (``on_error="raise"``).
            ConfigError: the reward is configured wrongly (always raised).
        """
        if not isinstance(solution_str, str):
            raise TypeError(f"compute_score: solution_str: expected str, got {type(solution_str).__name__}")
        if extra_info is not None and not isinstance(extra_info, Mapping):
            raise TypeError(f"compute_score: extra_info: expected a dict or None, got {type(extra_info).__name__}")
        counted = response_length is not None
        scorer = self._scorer(counted)
        _check_not_grouped(scorer.reward)
        try:
            batch = self.build_batch(solution_str, ground_truth, extra_info, response_ids, response_length)
            scored = scorer.score(batch)
        except MissingContextError as error:
            problem: Exception = MissingContextError(self._missing_message(error, data_source, extra_info))
            cause: Exception = error
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            kind = TypeError if isinstance(error, TypeError) else ValueError  # subclasses may take other arguments
            problem, cause = kind(f"{_sample_name(data_source, extra_info)}: {error}"), error
        else:
            metrics = scored.metrics()
            self._keys.setdefault(counted, tuple(metrics))
            out = {"score": float(scored.rewards[0]), **{key: float(values[0]) for key, values in metrics.items()}}
            return self._finish(out, error=False)
        if self.options.on_error == "raise":
            raise problem from cause
        return self._fallback(problem, counted, ground_truth)

    def _scorer(self, counted: bool) -> SampleScorer:
        scorer = self._scorers.get(counted)
        if scorer is None:
            scorer = self._scorers[counted] = SampleScorer(self.reward(precomputed_length=counted))
        return scorer

    def _finish(self, out: dict[str, float], *, error: bool) -> dict[str, float]:
        if self.options.on_error == "fallback":
            out["reward_error"] = 1.0 if error else 0.0
        return out

    def _missing_message(
        self, error: MissingContextError, data_source: Any, extra_info: Mapping[str, Any] | None
    ) -> str:
        s, info = self.settings, dict(extra_info or {})
        if info.get(s.difficulty_key) is None:
            fix = (
                f"put the difficulty in extra_info[{s.difficulty_key!r}] (docs/verl.md, 'Data'), or set "
                "reward_kwargs missing_difficulty (a tier name or value; the official loader's is 3.0)"
            )
        elif info.get(s.logprobs_key) is not None and self.options.uncertainty_measure == "margin":
            fix = (
                f"extra_info[{s.logprobs_key!r}] holds sampled-token log-probs only, and uncertainty_measure="
                "'margin' (PixelThink's top-2 margin) needs the top-2: run the 'adaptive_length_margin' agent loop, "
                "or set reward_kwargs uncertainty_measure='nll' to use mean(1 - p_sampled) instead"
            )
        else:
            fix = (
                f"give extra_info[{s.uncertainty_key!r}], or the rollout's: the 'adaptive_length_margin' agent "
                "loop (top-2 margin) or, with uncertainty_measure='nll', the 'adaptive_length' reward manager with "
                "calculate_log_probs=True; or set reward_kwargs missing_uncertainty (official: 0.0)"
            )
        return (
            f"{_sample_name(data_source, extra_info)}: {error} (verl scores one sample per call: 'samples [0]' "
            f"is this sample). Fix: {fix}. See docs/verl.md, 'Missing context'."
        )

    def _fallback(self, problem: Exception, counted: bool, ground_truth: Any) -> dict[str, float]:
        keys = self._keys.get(counted) or self._probe_keys(counted, ground_truth, problem)
        logger.warning("verl compute_score: %s; on_error='fallback': scoring %s", problem, self.options.fallback_score)
        values = finite_metrics({key: [np.nan] for key in keys if key != "budgeted"})
        out = {key: float(values[key][0]) if key in values else 0.0 for key in keys}
        return self._finish({"score": float(self.options.fallback_score or 0.0), **out}, error=True)

    def _probe_keys(self, counted: bool, ground_truth: Any, problem: Exception) -> tuple[str, ...]:
        """The keys of this reward's results, from a sample with every context column (values discarded)."""
        probe = RewardBatch(
            completions=("",),
            ground_truth=(ground_truth,),
            difficulty=np.array([9.0]),
            uncertainty=np.array([0.0]),
            lengths=np.array([0.0]) if counted else None,
        )
        try:
            keys = tuple(self._scorer(counted).score(probe).metrics())
        except Exception as error:
            raise problem from error  # the reward cannot run at all: not a per-sample fallback
        return self._keys.setdefault(counted, keys)


def _check_not_grouped(reward: Reward) -> None:
    """Per-sample scoring of a group-relative reward would score each sample as a group of one: raise instead."""
    if "group_ids" in reward.requires:
        raise ConfigError(
            f"verl compute_score: the reward {reward.name!r} is group-relative (it reads 'group_ids'), and verl's "
            "reward loop scores one sample per call (verl/experimental/reward_loop/reward_loop.py::RewardLoopWorker"
            f".compute_score_batch); expected a per-sample reward here. Score group rewards with the batch manager "
            f"{BATCH_REWARD_MANAGER_NAME!r} (AdaptiveLengthBatchRewardManager: the whole DataProto, groups from its "
            "'uid'); docs/verl.md, 'Group rewards'"
        )


@lru_cache(maxsize=8)
def _preset_with_precomputed_length(settings: AdapterSettings) -> Reward:
    from ..presets import pixelthink

    return pixelthink(
        length=PrecomputedLength(),
        missing_difficulty=settings.missing_difficulty if settings.missing_difficulty is not None else "error",
        missing_uncertainty=settings.missing_uncertainty if settings.missing_uncertainty is not None else "error",
    )


@lru_cache(maxsize=64)
def _compute_score_for(
    environ_key: tuple[tuple[str, str], ...], settings_json: str, options_json: str
) -> VerlComputeScore:
    settings = settings_from_env(dict(environ_key), **json.loads(settings_json))
    return VerlComputeScore(settings=settings, options=_options(**json.loads(options_json)))


def _split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(AdapterSettings fields, VerlOptions fields, the rest)`` of ``reward_kwargs``-style keywords."""
    settings = {k: v for k, v in kwargs.items() if k in _SETTING_FIELDS}
    options = {k: v for k, v in kwargs.items() if k in _OPTION_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in settings and k not in options}
    return settings, options, rest


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward entry point (``reward.custom_reward_function.path`` =
    ``pkg://adaptive_length_reward.adapters.verl``, ``name`` = ``compute_score``).

    Keywords that are [`AdapterSettings`][] fields (``reward_config``,
    ``difficulty_key``, ``missing_uncertainty``, ...) or [`VerlOptions`][] fields (``uncertainty_measure``,
    ``on_error``, ``fallback_score``), from ``reward_kwargs``, configure it on top of the ``ALR_*`` environment
    variables; ``response_ids``/``response_length`` come from [`AdaptiveLengthRewardManager`][]; other keywords
    are ignored. See ``VerlComputeScore.__call__`` for the result.

    Args:
        data_source: the sample's ``data_source``.
        solution_str: the decoded response.
        ground_truth: the sample's ground truth.
        extra_info: the sample's ``extra_info`` (difficulty, uncertainty, log-probs, other columns).
        **kwargs: ``reward_kwargs`` (AdapterSettings and VerlOptions fields), ``response_ids`` and
            ``response_length`` from the reward manager; other keywords are ignored.

    Returns:
        ``{"score": reward, **metrics}``, one float per key (the same keys for every sample of one reward).

    >>> from adaptive_length_reward.adapters.verl import compute_score
    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    >>> out = compute_score("refcocog", answer, gt, {"difficulty": 2.0})
    >>> out["score"], out["length"], out["budget"], out["segmentation_accuracy/box_iou"]
    (5.0, 11.0, 96.0, 1.0)
    """
    settings, options, rest = _split_kwargs(kwargs)
    scorer = _compute_score_for(
        environ_key(),
        json.dumps(settings, sort_keys=True, default=str),
        json.dumps(options, sort_keys=True, default=str),
    )
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


def _manager_compute_score(compute_score: Any, config: Any) -> tuple[Any, AdapterSettings]:
    """The manager's settings (``ALR_*`` then ``reward_kwargs``) and scorer: a user's ``compute_score``, else ours."""
    settings_kw, options_kw, _ = _split_kwargs(_reward_kwargs(config))
    settings = settings_from_env(**settings_kw)
    if compute_score is None or compute_score is default_compute_score:
        compute_score = VerlComputeScore(settings=settings, options=_options(**options_kw))
    return compute_score, settings


class AdaptiveLengthRewardManager(RewardManagerBase):
    """verl reward manager that measures lengths in tokens from the response ids (no re-tokenisation).

    Per sample (``run_single``, same inputs as verl's naive manager) it counts the model-generated tokens
    (``response_mask``) of the valid response, or of its reasoning span with ``length_span="reasoning"``
    ([`reasoning_token_mask`][]), and calls
    ``compute_score(..., response_ids=ids, response_length=n)`` (docs/verl.md). The batch's ``rollout_log_probs``
    go into ``extra_info[logprobs_key]`` unless the agent loop put them there. Errors propagate (verl's
    ``rate_limited`` manager turns them into score 0: use [`AdaptiveLengthRateLimitedRewardManager`][]).

    Args:
        config: verl's config; ``reward.custom_reward_function.reward_kwargs`` holds settings and options (on top
            of the ``ALR_*`` environment variables).
        tokenizer: the policy's tokenizer (decodes responses, finds the reasoning tags).
        compute_score: the run's ``compute_score``: ``None`` or verl's default gives a [`VerlComputeScore`][] from
            the settings; a user's function is called with the same keywords.
        reward_router_address: verl's reward-model router address, stored as verl's managers do.
        reward_model_tokenizer: verl's reward-model tokenizer, stored as verl's managers do.
        **kwargs: other keywords of verl's reward loop (ignored).
    """

    data_source_key = "data_source"

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: Any = None,
        reward_model_tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.compute_score, self.settings = _manager_compute_score(compute_score, config)
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer

    def response_length(self, valid_ids: Sequence[int], model_tokens: Sequence[bool]) -> int:
        """Tokens counted as the response's length (see the class docstring)."""
        if self.settings.length_span == "response":
            return int(sum(bool(m) for m in model_tokens))
        mask = reasoning_token_mask(
            valid_ids, self.tokenizer, open_tag=self.settings.open_tag, close_tag=self.settings.close_tag
        )
        return int((mask & np.asarray(model_tokens, dtype=bool)).sum())

    def _extra_info(self, item: Any, valid: int, model_tokens: Sequence[bool]) -> dict[str, Any]:
        """``extra_info`` as verl's naive manager builds it, plus the rollout's sampled-token log-probs."""
        nt = item.non_tensor_batch
        extra_info = dict(nt.get("extra_info", None) or {})
        tool_extra_fields = nt.get("tool_extra_fields", None)
        if tool_extra_fields is not None:
            extra_info.update(dict(tool_extra_fields).items())
        extra_info["num_turns"] = nt.get("__num_turns__", None)
        extra_info["rollout_reward_scores"] = nt.get("reward_scores", {})
        key = self.settings.logprobs_key
        if extra_info.get(key) is None and "rollout_log_probs" in item.batch.keys():
            logprobs = item.batch["rollout_log_probs"][:valid].tolist()
            extra_info[key] = [lp for lp, m in zip(logprobs, model_tokens) if m]
        return extra_info

    async def _score(self, call: dict[str, Any]) -> Any:
        """Run ``compute_score(**call)`` off the event loop."""
        score_fn: Any = self.compute_score
        return await asyncio.get_running_loop().run_in_executor(None, lambda: score_fn(**call))

    def prepare(self, item: Any) -> tuple[list[int], list[bool], dict[str, Any]]:
        """One ``DataProto`` row's valid response ids, which of them the model generated, and its ``extra_info``."""
        response_ids = item.batch["responses"]
        width = int(response_ids.shape[-1])
        valid = int(item.batch["attention_mask"][-width:].sum())
        valid_ids = [int(t) for t in response_ids[:valid].tolist()]
        model_tokens = (
            item.batch["response_mask"][:valid].bool().tolist()
            if "response_mask" in item.batch.keys()
            else [True] * valid
        )
        return valid_ids, model_tokens, self._extra_info(item, valid, model_tokens)

    async def run_single(self, data: Any) -> dict[str, Any]:
        """Score the last sequence of ``data`` (verl's convention for multi-sequence outputs)."""
        item = data[-1:][0]
        valid_ids, model_tokens, extra_info = self.prepare(item)
        tokenizer: Any = self.tokenizer
        loop = asyncio.get_running_loop()  # the loop run_single runs on (verl's naive manager uses self.loop)
        solution_str = await loop.run_in_executor(None, lambda: tokenizer.decode(valid_ids, skip_special_tokens=True))
        nt = item.non_tensor_batch
        result = await self._score(
            dict(
                data_source=nt[self.data_source_key],
                solution_str=solution_str,
                ground_truth=nt["reward_model"]["ground_truth"],
                extra_info=extra_info,
                response_ids=valid_ids,
                response_length=self.response_length(valid_ids, model_tokens),
            )
        )
        if isinstance(result, Mapping):
            return {"reward_score": float(result["score"]), "reward_extra_info": dict(result)}
        return {"reward_score": float(result), "reward_extra_info": {"acc": float(result)}}


class AdaptiveLengthRateLimitedRewardManager(AdaptiveLengthRewardManager, RateLimitedRewardManager):
    """[`AdaptiveLengthRewardManager`][] under verl's rate limits (``reward.max_concurrent``, ``max_rpm``,
    ``max_tpm``, ``timeout``; ``verl/experimental/reward_loop/reward_manager/limited.py``), with errors raised.

    verl's own ``rate_limited`` manager catches every exception and scores 0 with ``{"error", "acc"}`` as extra info
    (``RateLimitedRewardManager.run_single``), which verl's assembly then fails on (``KeyError 'score'``); here an
    error reaches the user (or ``on_error="fallback"`` applies, every key present), and a timeout raises
    ``TimeoutError`` naming the sample.
    """

    _class_initialized = False  # its own limiters, not those of a RateLimitedRewardManager created before

    async def _score(self, call: dict[str, Any]) -> Any:
        limits: Any = type(self)  # verl's class-level limiters, set by RateLimitedRewardManager.init_class
        if limits._rpm_limiter is not None:
            await limits._rpm_limiter.acquire(1.0)
        if limits._tpm_limiter is not None:
            await limits._tpm_limiter.acquire(limits._estimated_tokens_per_request)
        async with limits._semaphore:
            try:
                return await asyncio.wait_for(super()._score(call), timeout=self.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"{_sample_name(call['data_source'], call['extra_info'])}: compute_score took "
                    f"longer than reward.timeout={self.timeout} s"
                ) from None


class AdaptiveLengthLegacyRewardManager(AbstractRewardManager):
    """[`AdaptiveLengthRewardManager`][] behind verl's legacy interface (``verl.workers.reward_manager``:
    ``__init__(tokenizer, num_examine, compute_score, reward_fn_key, **reward_kwargs)`` and
    ``__call__(data, return_dict)``), registered there as ``adaptive_length``. ``reward_kwargs`` are those of
    ``reward_kwargs`` in the new config (settings and [`VerlOptions`][]).

    Args:
        tokenizer: the policy's tokenizer.
        num_examine: verl's legacy argument, stored as ``num_examine``.
        compute_score: as for [`AdaptiveLengthRewardManager`][].
        reward_fn_key: the ``non_tensor_batch`` key of the data source.
        **reward_kwargs: AdapterSettings and VerlOptions fields.
    """

    def __init__(
        self,
        tokenizer: Any,
        num_examine: int = 0,
        compute_score: Any = None,
        reward_fn_key: str = "data_source",
        **reward_kwargs: Any,
    ) -> None:
        from omegaconf import OmegaConf

        config = OmegaConf.create({"reward": {"custom_reward_function": {"reward_kwargs": reward_kwargs}}})
        self.manager = AdaptiveLengthRewardManager(config, tokenizer, compute_score)
        self.manager.data_source_key = reward_fn_key
        self.num_examine = num_examine

    def __call__(self, data: Any, return_dict: bool = False) -> Any:
        """Score every sample of ``data``: the ``[batch, response]`` reward tensor (the score on each response's
        last valid token), with ``return_dict`` also ``reward_extra_info`` (one list per key)."""
        precomputed = self._extract_reward_from_rm_scores(data, return_dict)
        if precomputed is not None:
            return precomputed

        async def score_all() -> list[dict[str, Any]]:
            return list(await asyncio.gather(*(self.manager.run_single(data[i : i + 1]) for i in range(len(data)))))

        results = self.manager.loop.run_until_complete(score_all())
        tensor = self.manager.assemble_rm_scores(data, [r["reward_score"] for r in results])
        if not return_dict:
            return tensor
        keys = list(results[0]["reward_extra_info"]) if results else []
        return {
            "reward_tensor": tensor,
            "reward_extra_info": {key: [r["reward_extra_info"][key] for r in results] for key in keys},
        }


def _concat(rows: Sequence[RewardBatch]) -> dict[str, Any]:
    """The columns of one-sample batches stacked (``RewardBatch.from_completions`` keywords); an uncertainty or
    extra value one row lacks is NaN / None there."""
    uncertainty = None
    if any(r.uncertainty is not None for r in rows):
        uncertainty = [np.nan if r.uncertainty is None else float(r.uncertainty[0]) for r in rows]
    keys = list(dict.fromkeys(key for r in rows for key in r.extra))
    return dict(
        ground_truth=[r.ground_truth[0] if r.ground_truth else None for r in rows],
        difficulty=[float(r.difficulty[0]) if r.difficulty is not None else np.nan for r in rows],
        uncertainty=uncertainty,
        token_ids=[r.token_ids[0] if r.token_ids else [] for r in rows],
        lengths=[float(r.lengths[0]) if r.lengths is not None else 0.0 for r in rows],
        extra={key: [r.extra[key][0] if key in r.extra else None for r in rows] for key in keys},
    )


def _problem_id(data_source: Any, extra_info: Mapping[str, Any]) -> str | None:
    """``"<data_source>/<split>/<index>"`` (``split`` only where ``extra_info`` has one, as verl's example datasets
    do: train and validation indices then never collide), or None without ``extra_info["index"]``."""
    index = extra_info.get("index")
    if index is None:
        return None
    split = extra_info.get("split")
    return f"{data_source}/{index}" if split is None else f"{data_source}/{split}/{index}"


class AdaptiveLengthBatchRewardManager(AbstractRewardManager):
    """Group rewards under verl: the whole ``DataProto`` scored in one ``reward.evaluate`` call, registered in verl's
    legacy registry as ``adaptive_length_batch`` (the batch interface ``__call__(data, return_dict)`` of
    ``verl/workers/reward_manager/abstract.py``, as verl's own ``BatchRewardManager`` in ``batch.py``).

    verl 0.9.1 scores one sample per call in its reward loop and agent loop
    (``verl/experimental/reward_loop/reward_loop.py::RewardLoopWorker.compute_score_batch``, which also splits a
    batch across workers, and ``verl/experimental/agent_loop/agent_loop.py::_compute_score``): a group reward needs
    the group, so this manager reads every row as [`AdaptiveLengthRewardManager`][] does (token lengths,
    ``extra_info``, decoded text), then builds one [`RewardBatch`][] with

    * ``group_ids``: ``non_tensor_batch["uid"]`` ([`group_ids_from_uids`][]; the
      responses of one prompt share it, adjacent or not);
    * ``problem_id`` (HAPO's history key, unless ``extra_info`` has one): ``"<data_source>/<split>/<index>"`` from
      ``extra_info``'s ``split`` (where present) and ``index``, stable across steps (the dataset index);
    * ``step``: ``meta_info["global_steps"]`` when verl sets it, else the number of this manager's earlier calls.

    Each reward goes on its row's last valid response token (``RewardManagerBase.assemble_rm_scores``).
    ``reward`` (a library [`Reward`][]) wins over ``reward_kwargs``' settings
    (``reward_config``, ...); a user ``compute_score`` function cannot score a batch and raises ConfigError.

    Args:
        tokenizer: the policy's tokenizer.
        num_examine: verl's legacy argument, stored as ``num_examine``.
        compute_score: ``None`` (the library reward from ``reward_kwargs``) or a [`VerlComputeScore`][].
        reward_fn_key: the ``non_tensor_batch`` key of the data source.
        reward: the library reward; default the one ``reward_kwargs`` names.
        **reward_kwargs: AdapterSettings and VerlOptions fields.

    Raises:
        ConfigError: ``compute_score`` is a per-sample function.
    """

    def __init__(
        self,
        tokenizer: Any,
        num_examine: int = 0,
        compute_score: Any = None,
        reward_fn_key: str = "data_source",
        *,
        reward: Reward | None = None,
        **reward_kwargs: Any,
    ) -> None:
        from omegaconf import OmegaConf

        if (
            compute_score is not None
            and compute_score is not default_compute_score
            and not isinstance(compute_score, VerlComputeScore)
        ):
            raise ConfigError(
                f"{type(self).__name__}: compute_score: expected None (the library reward from "
                f"reward_kwargs) or a VerlComputeScore, got {compute_score!r:.80}: a per-sample "
                "function cannot score a group"
            )
        config = OmegaConf.create({"reward": {"custom_reward_function": {"reward_kwargs": reward_kwargs}}})
        self.manager = AdaptiveLengthRewardManager(config, tokenizer, compute_score)
        self.manager.data_source_key = reward_fn_key
        self.num_examine = num_examine
        self.scorer = cast("VerlComputeScore", self.manager.compute_score)  # ours: checked above
        self.reward = reward if reward is not None else self.scorer.reward(precomputed_length=True)
        self._sample_scorer = SampleScorer(self.reward)
        self._calls = 0

    def build_batch(self, data: Any) -> RewardBatch:
        """The one batch scored for ``data`` (see the class docstring)."""
        tokenizer: Any = self.manager.tokenizer
        nt = data.non_tensor_batch
        rows = []
        for i in range(len(data)):
            item = data[i]
            ids, model_tokens, extra_info = self.manager.prepare(item)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            extra_info.setdefault(
                "problem_id", _problem_id(item.non_tensor_batch[self.manager.data_source_key], extra_info)
            )
            rows.append(
                self.scorer.build_batch(
                    text,
                    item.non_tensor_batch["reward_model"]["ground_truth"],
                    extra_info,
                    ids,
                    self.manager.response_length(ids, model_tokens),
                )
            )
        columns = _concat(rows)
        if "problem_id" in columns["extra"] and any(p is None for p in columns["extra"]["problem_id"]):
            del columns["extra"]["problem_id"]  # a reward that needs it names the missing column
        if "uid" in nt:
            columns["group_ids"] = group_ids_from_uids(nt["uid"])
        elif "group_ids" in self.reward.requires:
            raise ValueError(
                f"{type(self).__name__}: data.non_tensor_batch['uid']: expected the prompts' uids "
                f"(the reward {self.reward.name!r} is group-relative), got none (keys: {sorted(nt)})"
            )
        step = data.meta_info.get("global_steps")
        texts = [r.completions[0] for r in rows]
        return RewardBatch.from_completions(texts, step=int(self._calls if step is None else step), **columns)

    def __call__(self, data: Any, return_dict: bool = False) -> Any:
        """The ``[batch, response]`` reward tensor (each reward on its row's last valid token), with
        ``return_dict`` also ``reward_extra_info`` (the logged values, one list per key)."""
        precomputed = self._extract_reward_from_rm_scores(data, return_dict)
        if precomputed is not None:
            return precomputed
        batch = self.build_batch(data)
        try:
            scored = self._sample_scorer.score(batch)
        except MissingContextError as error:
            raise MissingContextError(f"{type(self).__name__}: {error} (docs/verl.md, 'Group rewards')") from error
        self._calls += 1
        tensor = RewardManagerBase.assemble_rm_scores(data, scored.rewards.tolist())
        if not return_dict:
            return tensor
        info = {"score": scored.rewards.tolist(), **{k: v.tolist() for k, v in scored.metrics().items()}}
        return {"reward_tensor": tensor, "reward_extra_info": info}


def register_reward_managers() -> None:
    """Register the managers in verl's reward-loop registry (``adaptive_length``, ``adaptive_length_rate_limited``)
    and its legacy one (``adaptive_length``); idempotent, replaces the plugin's stand-ins for a failed import."""
    tables = (
        (
            _registry,
            _registry.REWARD_MANAGER,
            {
                REWARD_MANAGER_NAME: AdaptiveLengthRewardManager,
                RATE_LIMITED_REWARD_MANAGER_NAME: AdaptiveLengthRateLimitedRewardManager,
            },
        ),
        (
            _legacy_registry,
            _legacy_registry.REWARD_MANAGER_REGISTRY,
            {
                REWARD_MANAGER_NAME: AdaptiveLengthLegacyRewardManager,
                BATCH_REWARD_MANAGER_NAME: AdaptiveLengthBatchRewardManager,
            },
        ),
    )
    for registry, table, classes in tables:
        for name, cls in classes.items():
            if getattr(table.get(name), "__name__", "") == "UnavailableAdaptiveLengthRewardManager":
                del table[name]
            registry.register(name)(cls)
    logger.debug(
        "registered verl reward managers %s",
        [REWARD_MANAGER_NAME, RATE_LIMITED_REWARD_MANAGER_NAME, BATCH_REWARD_MANAGER_NAME],
    )


register_reward_managers()
