"""What the adapters share: their settings, where the reward comes from, and scoring into loggable numbers.

verl and OpenRLHF hand a reward one decoded response at a time, with the ground truth and any per-sample
context packed into a dict (verl's ``extra_info``, OpenRLHF's label). :class:`AdapterSettings` says which keys
hold what and which reward to run; :class:`SampleScorer` runs the reward and returns the numbers each
framework logs, with a fixed set of keys.

Settings come from, in increasing precedence:

1. the defaults below (the reward is PixelThink's preset, :func:`adaptive_length_reward.presets.pixelthink`);
2. a YAML or JSON settings file named by the environment variable ``ALR_SETTINGS``;
3. single environment variables: ``ALR_REWARD_CONFIG`` (a reward config file, see
   :func:`adaptive_length_reward.load_config`), ``ALR_GROUND_TRUTH_KEY``, ``ALR_DIFFICULTY_KEY``,
   ``ALR_UNCERTAINTY_KEY``, ``ALR_RESPONSE_MARKER``;
4. keyword arguments (verl's ``reward.custom_reward_function.reward_kwargs``).

>>> settings = AdapterSettings(reward={"kind": "soft_length_penalty", "budget": {"kind": "fixed_budget", "budget": 3}})
>>> scorer = SampleScorer(reward_from_settings(settings))
>>> from adaptive_length_reward import RewardBatch
>>> out = scorer.score(RewardBatch(["a b", "a b c d e"]))
>>> out.rewards.tolist(), out.scores.tolist(), out.columns["length"].tolist()
([1.0, 0.996], [1.0, 0.996], [2.0, 5.0])
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ..batch import RewardBatch
from ..config import ComponentConfig, Nested, build, load_config, validated
from ..errors import ConfigError, import_optional
from ..reward import Reward

__all__ = [
    "DEFAULT_END_MARKERS",
    "LOGGED_COLUMNS",
    "AdapterSettings",
    "SampleScorer",
    "ScoredBatch",
    "load_settings",
    "reward_from_settings",
    "settings_from_env",
    "split_label",
]

FloatArray = npt.NDArray[np.float64]

#: Per-sample diagnostics every adapter reports, NaN where the reward did not compute one.
LOGGED_COLUMNS: tuple[str, ...] = ("length", "budget", "difficulty", "uncertainty")

#: End-of-turn markers stripped from the end of an OpenRLHF response (its query is decoded with
#: ``skip_special_tokens=False``): ChatML/Qwen, Llama 3, Gemma, Mistral/Llama 2.
DEFAULT_END_MARKERS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>",
                                        "<end_of_turn>", "<eos>", "</s>")

ENV_SETTINGS = "ALR_SETTINGS"
ENV_FIELDS = {
    "ALR_REWARD_CONFIG": "reward_config",
    "ALR_GROUND_TRUTH_KEY": "ground_truth_key",
    "ALR_DIFFICULTY_KEY": "difficulty_key",
    "ALR_UNCERTAINTY_KEY": "uncertainty_key",
    "ALR_RESPONSE_MARKER": "response_marker",
}


class AdapterSettings(ComponentConfig):
    """Settings of the verl and OpenRLHF adapters (frozen; unknown fields are an error).

    Attributes:
        reward: the reward as an inline config (a mapping with a ``kind``); exclusive with ``reward_config``.
        reward_config: path of a YAML/JSON reward config file. Neither given: PixelThink's preset.
        ground_truth_key: key of the ground truth in an OpenRLHF dict label.
        difficulty_key: key of the difficulty in verl's ``extra_info`` / an OpenRLHF dict label.
        uncertainty_key: key of a precomputed uncertainty in ``extra_info`` / the label.
        logprobs_key: key of the rollout's sampled-token log-probs in verl's ``extra_info`` (what
            :class:`~adaptive_length_reward.adapters.verl.UncertaintySingleTurnAgentLoop` writes); used for the
            uncertainty when ``uncertainty_key`` is absent.
        score_range: ``(low, high)`` mapped to OpenRLHF's ``scores`` in ``[0, 1]``; default the reward's
            documented bounds (required when those are infinite).
        response_marker: OpenRLHF only: text that precedes the response in a query (e.g.
            ``"<|im_start|>assistant\\n"``), used when the query does not start with the prompt.
        end_markers: OpenRLHF only: special tokens stripped from the end of the response.
        length_span: verl reward manager only: count the tokens of the whole ``"response"`` or of its
            ``"reasoning"`` span (between ``open_tag`` and ``close_tag``).
        open_tag: opening reasoning tag (verl reward manager).
        close_tag: closing reasoning tag (verl reward manager).
    """

    kind: Literal["adapter_settings"] = "adapter_settings"
    reward: Nested | None = None
    reward_config: str | None = Field(None, min_length=1)
    ground_truth_key: str = Field("ground_truth", min_length=1)
    difficulty_key: str = Field("difficulty", min_length=1)
    uncertainty_key: str = Field("uncertainty", min_length=1)
    logprobs_key: str = Field("rollout_logprobs", min_length=1)
    score_range: tuple[float, float] | None = None
    response_marker: str | None = Field(None, min_length=1)
    end_markers: tuple[str, ...] = DEFAULT_END_MARKERS
    length_span: Literal["response", "reasoning"] = "response"
    open_tag: str = Field("<think>", min_length=1)
    close_tag: str = Field("</think>", min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> AdapterSettings:
        if self.reward is not None and self.reward_config is not None:
            raise ValueError(f"reward_config: expected nothing when reward is given inline, got {self.reward_config!r}")
        if self.score_range is not None:
            low, high = self.score_range
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"score_range: expected finite (low, high) with low < high, got {self.score_range}")
        return self


def _read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: expected an existing YAML or JSON file, got {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        yaml = import_optional("yaml", extra="dev", purpose=f"Reading {what} from YAML")
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what}: expected a mapping in {str(path)!r}, got {type(data).__name__}")
    return dict(data)


def load_settings(path: str | Path, **overrides: Any) -> AdapterSettings:
    """Settings from a YAML/JSON file (its keys are :class:`AdapterSettings` fields), then ``overrides``."""
    values = _read_mapping(path, "adapter settings")
    values.pop("kind", None)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validated("AdapterSettings", AdapterSettings, **values)


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> AdapterSettings:
    """Settings from ``ALR_SETTINGS`` (a file), the single ``ALR_*`` variables, then ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if environ.get(ENV_SETTINGS):
        values = _read_mapping(environ[ENV_SETTINGS], f"{ENV_SETTINGS}")
        values.pop("kind", None)
    for variable, field in ENV_FIELDS.items():
        if environ.get(variable):
            values[field] = environ[variable]
            if field == "reward_config":
                values.pop("reward", None)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            if key == "reward_config":
                values.pop("reward", None)
            if key == "reward":
                values.pop("reward_config", None)
    return validated("AdapterSettings", AdapterSettings, **values)


def _default_reward() -> Reward:
    """PixelThink's reward (the library preset), the adapters' default."""
    from .. import presets

    reward = presets.pixelthink()
    if not isinstance(reward, Reward):  # pragma: no cover - guards a preset returning the wrong type
        raise TypeError(f"presets.pixelthink(): expected a Reward, got {type(reward).__name__}")
    return reward


@lru_cache(maxsize=16)
def reward_from_settings(settings: AdapterSettings) -> Reward:
    """The reward the settings name (inline config, config file, or PixelThink's preset); cached per process."""
    if settings.reward is not None:
        reward = build(settings.reward)
    elif settings.reward_config is not None:
        if not Path(settings.reward_config).is_file():
            raise ConfigError(
                f"AdapterSettings: reward_config: expected an existing file, got {settings.reward_config!r}")
        reward = load_config(settings.reward_config)
    else:
        return _default_reward()
    if not isinstance(reward, Reward):
        raise ConfigError(f"AdapterSettings: reward: expected the config of a reward, got a {type(reward).__name__}")
    return reward


def split_label(label: Any, settings: AdapterSettings) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(ground_truth, difficulty, uncertainty, other fields)`` from a label or ``extra_info``-like value.

    A mapping is read by the configured keys (a missing key gives ``None``; other keys are returned as
    extra columns). A string holding a JSON object is parsed and read the same way. Anything else is the
    ground truth itself, with no difficulty or uncertainty.

    >>> split_label({"ground_truth": "4", "difficulty": 6.0, "id": 3}, AdapterSettings())
    ('4', 6.0, None, {'id': 3})
    >>> split_label("4", AdapterSettings())
    ('4', None, None, {})
    """
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            parsed = json.loads(label)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            label = parsed
    if not isinstance(label, Mapping):
        return label, None, None, {}
    keys = (settings.ground_truth_key, settings.difficulty_key, settings.uncertainty_key)
    other = {k: v for k, v in label.items() if k not in keys}
    return label.get(keys[0]), label.get(keys[1]), label.get(keys[2]), other


@dataclass(frozen=True)
class ScoredBatch:
    """Rewards plus everything an adapter logs, one value per sample in every array.

    Attributes:
        rewards: the reward's output.
        scores: rewards mapped to ``[0, 1]`` through the score range (``None`` when no range is known).
        components: every named sub-reward (``/``-joined paths), e.g. ``"accuracy"``.
        columns: :data:`LOGGED_COLUMNS` as floats, NaN where the reward did not report one; ``budget`` is
            ``inf`` where no length penalty applies (PixelThink's medium tier).
    """

    rewards: FloatArray
    scores: FloatArray | None
    components: dict[str, FloatArray]
    columns: dict[str, FloatArray]


def _float_or_nan(values: Any, n: int) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return np.full(n, np.nan)
    return array if array.shape == (n,) else np.full(n, np.nan)


class SampleScorer:
    """Runs a reward on a batch and returns :class:`ScoredBatch` (rewards, scores, components, columns).

    Args:
        reward: any library reward.
        score_range: ``(low, high)`` for ``scores = clip((r - low) / (high - low), 0, 1)``; default the reward's
            :attr:`~adaptive_length_reward.reward.Reward.bounds` when both are finite.
        require_scores: raise :class:`~adaptive_length_reward.errors.ConfigError` at construction when no
            finite range is known (OpenRLHF needs scores; verl does not).
    """

    def __init__(self, reward: Reward, *, score_range: tuple[float, float] | None = None,
                 require_scores: bool = False) -> None:
        if not isinstance(reward, Reward):
            raise TypeError(f"SampleScorer: reward: expected a Reward, got {type(reward).__name__}")
        self.reward = reward
        if score_range is None:
            low, high = reward.bounds
            score_range = (low, high) if math.isfinite(low) and math.isfinite(high) and low < high else None
        elif not (len(score_range) == 2 and all(math.isfinite(v) for v in score_range)
                  and score_range[0] < score_range[1]):
            raise ConfigError(
                f"SampleScorer: score_range: expected finite (low, high) with low < high, got {score_range!r}")
        if score_range is None and require_scores:
            raise ConfigError(
                f"SampleScorer: score_range: expected (low, high) because the reward {reward.name!r} has bounds "
                f"{reward.bounds} (scores in [0, 1] need a finite range), got None"
            )
        self.score_range = None if score_range is None else (float(score_range[0]), float(score_range[1]))

    def score(self, batch: RewardBatch) -> ScoredBatch:
        """Evaluate the reward on ``batch``."""
        output = self.reward.evaluate(batch)
        n = len(batch)
        rewards = np.asarray(output.rewards, dtype=np.float64)
        scores = None
        if self.score_range is not None:
            low, high = self.score_range
            scores = np.clip((rewards - low) / (high - low), 0.0, 1.0)
        components = {name: np.asarray(values, dtype=np.float64) for name, values in output.components.items()}
        columns = {name: _float_or_nan(output.columns.get(name, np.full(n, np.nan)), n) for name in LOGGED_COLUMNS}
        for name in ("difficulty", "uncertainty"):  # context the reward did not read is still worth logging
            if np.isnan(columns[name]).all() and batch.has(name):
                columns[name] = _float_or_nan(batch.column(name), n)
        return ScoredBatch(rewards, scores, components, columns)
