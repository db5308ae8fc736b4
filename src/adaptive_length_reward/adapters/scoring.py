"""What the adapters share: their settings, where the reward comes from, and one scoring-and-logging path.

[`AdapterSettings`][] says which keys of a per-sample dict (verl's ``extra_info``, an OpenRLHF label) hold what,
and which reward to run. Settings come from, in increasing precedence: the defaults (PixelThink's preset,
[`pixelthink`][]), the YAML or JSON file named by ``ALR_SETTINGS``, the single
variables ``ENV_FIELDS``, then keyword arguments. Every adapter (TRL, verl, OpenRLHF) scores through
[`SampleScorer`][] and logs [`ScoredBatch.logs`][adaptive_length_reward.adapters.scoring.ScoredBatch.logs] (docs/trl.md,
"What is logged"): the frameworks only format them.

>>> settings = AdapterSettings(reward={"kind": "soft_length_penalty", "budget": {"kind": "fixed_budget", "budget": 3}})
>>> scorer = SampleScorer(reward_from_settings(settings))
>>> from adaptive_length_reward import RewardBatch
>>> out = scorer.score(RewardBatch(["a b", "a b c d e"]))
>>> out.rewards.tolist(), out.scores.tolist(), out.logs["length"].tolist(), out.logs["over_budget"].tolist()
([1.0, 0.996], [1.0, 0.996], [2.0, 5.0], [0.0, 2.0])
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, field_validator, model_validator

from ..batch import RewardBatch
from ..config import ComponentConfig, Nested, build, config_of, load_config, validated
from ..errors import ConfigError, MissingExtraError, import_optional
from ..reward import Reward
from ..spans import Span

__all__ = [
    "DEFAULT_END_MARKERS",
    "ENV_FIELDS",
    "LOGGED_COLUMNS",
    "NOT_FINITE_LOGGED_AS",
    "AdapterSettings",
    "SampleScorer",
    "ScoredBatch",
    "decode_escapes",
    "finite_metrics",
    "load_settings",
    "reward_from_settings",
    "settings_from_env",
    "split_label",
    "with_missing_context",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

#: What a value that is not finite becomes in [`finite_metrics`][] (what frameworks average over a batch, where
#: one inf or NaN would poison the mean): no budget (inf: no penalty, PixelThink's medium tier), a value the reward
#: did not compute or receive (NaN: no uncertainty, no tier) and a NaN component are all logged as this value.
NOT_FINITE_LOGGED_AS = 0.0

#: Per-sample diagnostics every adapter logs for every reward, NaN where the reward did not compute one.
LOGGED_COLUMNS: tuple[str, ...] = ("length", "budget", "tier", "difficulty", "uncertainty")

#: End-of-turn markers stripped from the end of an OpenRLHF response (its query is decoded with
#: ``skip_special_tokens=False``): ChatML/Qwen, Llama 3, Gemma, Mistral/Llama 2.
DEFAULT_END_MARKERS: tuple[str, ...] = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<eos>",
    "</s>",
)

ENV_SETTINGS = "ALR_SETTINGS"
#: The single ``ALR_*`` environment variables and the settings they set (``ALR_`` + the field, upper case).
ENV_FIELDS = {
    f"ALR_{field.upper()}": field
    for field in (
        "reward_config",
        "ground_truth_key",
        "difficulty_key",
        "uncertainty_key",
        "response_marker",
        "missing_difficulty",
        "missing_uncertainty",
    )
}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def decode_escapes(text: str) -> str:
    r"""``text`` with the backslash escapes ``\n``, ``\t``, ``\r`` and ``\\`` decoded (what a shell passes for
    ``ALR_RESPONSE_MARKER='<|im_start|>assistant\n'``); other backslashes are kept.

    >>> decode_escapes(r"<|im_start|>assistant\n") == "<|im_start|>assistant\n", decode_escapes(r"a\\n\d")
    (True, 'a\\n\\d')
    """
    return re.sub(r"\\([ntr\\])", lambda match: _ESCAPES[match.group(1)], text)


def check_tested_version(
    package: str, found: str, tested: tuple[str, ...], *, owner: str, relies: str, advice: str
) -> str:
    """``found``, or ``RuntimeError`` unless its release (``1.17.0.dev0`` counts as ``1.17.0``) satisfies the
    ``tested`` specifiers; the message says what ``owner`` relies on and the ``advice``."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    spec = ",".join(tested)
    if Version(Version(found).base_version) not in SpecifierSet(spec):
        raise RuntimeError(f"{owner} was tested with {package} {spec} and {relies}; found {package} {found}. {advice}")
    return found


def check_score_range(score_range: tuple[float, float] | None) -> None:
    """Raise ``ValueError`` unless ``score_range`` is None or finite ``(low, high)`` with ``low < high``."""
    if score_range is not None and not (
        len(score_range) == 2 and all(math.isfinite(v) for v in score_range) and score_range[0] < score_range[1]
    ):
        raise ValueError(f"score_range: expected finite (low, high) with low < high, got {score_range!r}")


class AdapterSettings(ComponentConfig):
    """Settings of the verl and OpenRLHF adapters (frozen; unknown fields are an error). Keys name entries of
    verl's ``extra_info`` or an OpenRLHF dict label; neither ``reward`` nor ``reward_config``: PixelThink's preset."""

    kind: Literal["adapter_settings"] = "adapter_settings"
    reward: Nested | None = Field(default=None, description="the reward as an inline config (a mapping with a kind)")
    reward_config: str | None = Field(default=None, min_length=1, description="path of a YAML/JSON reward config")
    ground_truth_key: str = Field(default="ground_truth", min_length=1, description="key of the ground truth")
    difficulty_key: str = Field(default="difficulty", min_length=1, description="key of the difficulty")
    uncertainty_key: str = Field(default="uncertainty", min_length=1, description="key of a given uncertainty")
    logprobs_key: str = Field(
        default="rollout_logprobs",
        min_length=1,
        description="verl: key of the rollout's sampled-token log-probs in extra_info",
    )
    score_range: tuple[float, float] | None = Field(
        default=None, description="(low, high) mapped to OpenRLHF's scores in [0, 1]; default the reward's bounds"
    )
    response_marker: str | None = Field(
        default=None,
        min_length=1,
        description="OpenRLHF: the text before the response, for a query that does not "
        "start with its prompt (e.g. '<|im_start|>assistant\\n')",
    )
    end_markers: tuple[str, ...] = Field(
        default=DEFAULT_END_MARKERS, description="OpenRLHF: special tokens stripped from the response's end"
    )
    missing_difficulty: float | str | None = Field(
        default=None,
        description="a sample without difficulty: None keeps the reward's rule (PixelThink: an error); "
        "'error', a tier name (e.g. 'medium') or a difficulty value (e.g. 3.0, the official loader's) sets every "
        "budget policy's missing_difficulty",
    )
    missing_uncertainty: float | Literal["error"] | None = Field(
        default=None,
        description="a sample without uncertainty where its budget scales with one: None keeps the "
        "reward's rule (PixelThink: an error); 'error' or a value (e.g. 0.0, the official default)",
    )
    length_span: Span = Field(default="response", description="verl reward manager: count the response or reasoning")
    open_tag: str = Field(default="<think>", min_length=1, description="opening reasoning tag (verl reward manager)")
    close_tag: str = Field(default="</think>", min_length=1, description="closing reasoning tag (verl reward manager)")

    @field_validator("missing_difficulty", "missing_uncertainty", mode="before")
    @classmethod
    def _number_from_text(cls, value: Any) -> Any:  # environment variables are text: "3.0" is the number 3.0
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        return value

    @field_validator("response_marker", mode="after")
    @classmethod
    def _decode_marker(cls, value: str | None) -> str | None:
        return None if value is None else decode_escapes(value)

    @field_validator("end_markers", mode="after")
    @classmethod
    def _decode_markers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(decode_escapes(marker) for marker in value)

    @model_validator(mode="after")
    def _consistent(self) -> AdapterSettings:
        if self.reward is not None and self.reward_config is not None:
            raise ValueError(f"reward_config: expected nothing when reward is given inline, got {self.reward_config!r}")
        check_score_range(self.score_range)
        return self


def _read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: expected an existing YAML or JSON file, got {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        try:
            yaml = import_optional("yaml", extra=None, package="pyyaml", purpose=f"Reading {what} from YAML")
        except MissingExtraError as error:
            raise MissingExtraError(f"{error} (or write {str(path)!r} as JSON)") from error.__cause__
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what}: expected a mapping in {str(path)!r}, got {type(data).__name__}")
    return {key: value for key, value in data.items() if key != "kind"}


def environ_key() -> tuple[tuple[str, str], ...]:
    """The ``ALR_*`` environment variables, sorted: what a reward configured from the environment depends on."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ALR_")))


def check_sources(owner: str, reward: Any, settings: Any) -> None:
    """Raise ``TypeError`` unless ``reward`` is a Reward or None and ``settings`` AdapterSettings or None."""
    if reward is not None and not isinstance(reward, Reward):
        raise TypeError(f"{owner}: reward: expected a Reward or None, got {type(reward).__name__}")
    if settings is not None and not isinstance(settings, AdapterSettings):
        raise TypeError(f"{owner}: settings: expected AdapterSettings, got {type(settings).__name__}")


def _overlay(values: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` updated by the non-None ``overrides``; a reward given one way (inline or file) replaces the other."""
    for key, value in overrides.items():
        if value is not None:
            values.pop({"reward": "reward_config", "reward_config": "reward"}.get(key, ""), None)
            values[key] = value
    return values


def load_settings(path: str | Path, **overrides: Any) -> AdapterSettings:
    """Settings from a YAML/JSON file (its keys are [`AdapterSettings`][] fields), then ``overrides``."""
    return validated("AdapterSettings", AdapterSettings, **_overlay(_read_mapping(path, "adapter settings"), overrides))


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> AdapterSettings:
    """Settings from ``ALR_SETTINGS`` (a file), the single ``ALR_*`` variables (``ENV_FIELDS``), then
    ``overrides``."""
    environ = os.environ if environ is None else environ
    values = _read_mapping(environ[ENV_SETTINGS], ENV_SETTINGS) if environ.get(ENV_SETTINGS) else {}
    from_env = {field: environ[variable] for variable, field in ENV_FIELDS.items() if environ.get(variable)}
    return validated("AdapterSettings", AdapterSettings, **_overlay(_overlay(values, from_env), overrides))


@lru_cache(maxsize=16)
def reward_from_settings(settings: AdapterSettings) -> Reward:
    """The reward the settings name (inline config, config file, or PixelThink's preset), with the settings'
    ``missing_difficulty`` / ``missing_uncertainty`` applied ([`with_missing_context`][]); cached per process."""
    if settings.reward is not None:
        reward = build(settings.reward)
    elif settings.reward_config is not None:
        if not Path(settings.reward_config).is_file():
            raise ConfigError(
                f"AdapterSettings: reward_config: expected an existing file, got {settings.reward_config!r}"
            )
        if Path(settings.reward_config).suffix in {".yaml", ".yml"}:  # name the package, not the [dev] extra
            import_optional("yaml", extra=None, package="pyyaml", purpose="Reading reward_config from YAML")
        reward = load_config(settings.reward_config)
    else:
        from ..presets import pixelthink

        reward = pixelthink()
    if not isinstance(reward, Reward):
        raise ConfigError(f"AdapterSettings: reward: expected the config of a reward, got a {type(reward).__name__}")
    return with_missing_context(
        reward, difficulty=settings.missing_difficulty, uncertainty=settings.missing_uncertainty
    )


def _set_everywhere(data: Any, overrides: Mapping[str, Any], found: set[str]) -> None:
    """Set each key of ``overrides`` in every mapping of a dumped config that has it; record which were found."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in overrides:
                data[key] = overrides[key]
                found.add(key)
            else:
                _set_everywhere(value, overrides, found)
    elif isinstance(data, (list, tuple)):
        for item in data:
            _set_everywhere(item, overrides, found)


def with_missing_context(
    reward: Reward, *, difficulty: float | str | None = None, uncertainty: float | str | None = None
) -> Reward:
    """``reward`` rebuilt with ``missing_difficulty=difficulty`` and ``missing_uncertainty=uncertainty`` on every
    component that declares them (the budget policies: [`TieredBudget`][],
    [`LinearBudget`][]); ``None`` changes nothing. ``ConfigError`` when the
    reward has no such component (the setting would do nothing) or a component rejects the value.

    >>> from adaptive_length_reward import pixelthink
    >>> with_missing_context(pixelthink(), difficulty="medium") == pixelthink(missing_difficulty="medium")
    True
    """
    overrides = {
        name: value
        for name, value in (("missing_difficulty", difficulty), ("missing_uncertainty", uncertainty))
        if value is not None
    }
    if not overrides:
        return reward
    data = config_of(reward).model_dump()
    found: set[str] = set()
    _set_everywhere(data, overrides, found)
    for name in sorted(set(overrides) - found):
        raise ConfigError(
            f"AdapterSettings: {name}: expected a reward with a budget policy that reads "
            f"{name.removeprefix('missing_')}, got {overrides[name]!r} for the reward {reward.name!r}, "
            "which has none (unset it)"
        )
    rebuilt = build(data)
    logger.info(
        "reward %r: %s set on its budget policies (adapter settings)",
        reward.name,
        ", ".join(f"{k}={v!r}" for k, v in overrides.items()),
    )
    return rebuilt  # type: ignore[no-any-return]


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
    """Rewards plus everything an adapter logs, one value per sample in every array: ``scores`` are the rewards
    mapped to ``[0, 1]`` through the score range (``None`` when no range is known), ``components`` every named
    sub-reward (``/``-joined paths), ``columns`` the numeric columns as floats (``LOGGED_COLUMNS`` and
    ``over_budget`` always there)."""

    rewards: FloatArray
    scores: FloatArray | None
    components: dict[str, FloatArray]
    columns: dict[str, FloatArray]

    @property
    def logs(self) -> dict[str, FloatArray]:
        """What every adapter logs: the columns, then the components (a component wins a name both use)."""
        return {**self.columns, **self.components}

    def metrics(self) -> dict[str, FloatArray]:
        """[`logs`][] made safe for a framework's batch averages: [`finite_metrics`][]."""
        return finite_metrics(self.logs)


def finite_metrics(logs: Mapping[str, Any]) -> dict[str, FloatArray]:
    """Per-sample logs with every value that is not finite replaced by ``NOT_FINITE_LOGGED_AS`` (0.0), plus
    ``budgeted`` (1.0 where ``budget`` is finite, 0.0 where no penalty applies) when ``budget`` is logged, so
    ``mean(budget) / mean(budgeted)`` is the mean budget of the samples that have one. What OpenRLHF's
    ``extra_logs`` and verl's metrics average.

    >>> metrics = finite_metrics({"budget": [96.0, float("inf")], "uncertainty": [float("nan"), 0.4]})
    >>> {key: values.tolist() for key, values in metrics.items()}
    {'budget': [96.0, 0.0], 'uncertainty': [0.0, 0.4], 'budgeted': [1.0, 0.0]}
    """
    out = {}
    for key, values in logs.items():
        array = np.asarray(values, dtype=np.float64)
        out[key] = np.where(np.isfinite(array), array, NOT_FINITE_LOGGED_AS)
    if "budget" in logs and "budgeted" not in logs:
        out["budgeted"] = np.isfinite(np.asarray(logs["budget"], dtype=np.float64)).astype(np.float64)
    return out


def _tier_names(config: Any) -> tuple[str, ...]:
    """The tier names of the first tiered budget in a reward's configuration (empty without one)."""
    if getattr(config, "kind", None) == "tiered_budget":
        return tuple(config.names)
    children = (
        [getattr(config, key) for key in type(config).model_fields]
        if isinstance(config, BaseModel)
        else (list(config) if isinstance(config, tuple) else [])
    )
    return next((names for names in map(_tier_names, children) if names), ())


def _fallbacks(config: Any) -> dict[str, Any]:
    """``{"difficulty": value, "uncertainty": value}``: the first missing-context fallback (not ``"error"``) of each
    in a dumped config."""
    found: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            name = key.removeprefix("missing_")
            if key in ("missing_difficulty", "missing_uncertainty") and value not in ("error", None):
                found.setdefault(name, value)
            elif isinstance(value, (dict, list, tuple)):
                found = {**_fallbacks(value), **found}
    elif isinstance(config, (list, tuple)):
        for item in config:
            found = {**_fallbacks(item), **found}
    return found


class SampleScorer:
    """Runs a reward on a batch and returns [`ScoredBatch`][]: the one scoring path of every adapter.

    ``scores = clip((r - low) / (high - low), 0, 1)`` over ``score_range``, default the reward's
    [`bounds`][adaptive_length_reward.reward.Reward.bounds] when both are finite. ``require_scores`` raises
    [`ConfigError`][] at construction when no finite range is known (OpenRLHF
    needs scores; TRL and verl do not).
    """

    def __init__(
        self, reward: Reward, *, score_range: tuple[float, float] | None = None, require_scores: bool = False
    ) -> None:
        if not isinstance(reward, Reward):
            raise TypeError(f"SampleScorer: reward: expected a Reward, got {type(reward).__name__}")
        self.reward = reward
        try:
            check_score_range(score_range)
        except ValueError as error:
            raise ConfigError(f"SampleScorer: {error}") from None
        if score_range is None:
            low, high = reward.bounds
            score_range = (low, high) if math.isfinite(low) and math.isfinite(high) and low < high else None
        if score_range is None and require_scores:
            raise ConfigError(
                f"SampleScorer: score_range: expected (low, high) because the reward {reward.name!r} has "
                f"bounds {reward.bounds} (scores in [0, 1] need a finite range), got None"
            )
        self.score_range = None if score_range is None else (float(score_range[0]), float(score_range[1]))
        self._tiers = {name: float(i) for i, name in enumerate(_tier_names(config_of(reward)))}
        self._fallbacks = _fallbacks(config_of(reward).model_dump())

    def score(self, batch: RewardBatch) -> ScoredBatch:
        """Evaluate the reward on ``batch``; see the module docstring for what is logged."""
        output = self.reward.evaluate(batch)
        self._log_fallbacks(batch)
        rewards = np.asarray(output.rewards, dtype=np.float64)
        scores = None
        if self.score_range is not None:
            low, high = self.score_range
            scores = np.clip((rewards - low) / (high - low), 0.0, 1.0)
        components = {name: np.asarray(values, dtype=np.float64) for name, values in output.components.items()}
        return ScoredBatch(rewards, scores, components, self._columns(output.columns, batch))

    def _log_fallbacks(self, batch: RewardBatch) -> None:
        """Log (INFO) how many samples a configured missing-context fallback applied to."""
        for column, fallback in self._fallbacks.items():
            absent = (
                np.isnan(np.asarray(batch.column(column), dtype=np.float64))
                if batch.has(column)
                else (np.ones(len(batch), dtype=bool))
            )
            if absent.any():
                where = " where its budget scales with it" if column == "uncertainty" else ""
                logger.info(
                    "reward %r: %d of %d samples without %s: missing_%s=%r applies%s",
                    self.reward.name,
                    int(absent.sum()),
                    absent.size,
                    column,
                    column,
                    fallback,
                    where,
                )

    def _columns(self, reported: Mapping[str, Any], batch: RewardBatch) -> dict[str, FloatArray]:
        n = len(batch)
        found = {name: batch.column(name) for name in ("difficulty", "uncertainty") if batch.has(name)}
        found.update(reported)
        columns = {name: np.full(n, np.nan) for name in LOGGED_COLUMNS}
        for key, values in found.items():
            array = np.asarray(values)
            if array.shape != (n,) or "/" in key:  # qualified columns come and go with the values
                continue
            if key == "tier" and array.dtype.kind == "U":
                columns[key] = np.array([self._tiers.get(name, np.nan) for name in array.tolist()], dtype=np.float64)
            elif array.dtype.kind in "biuf" or (key in columns and array.dtype.kind == "O"):
                with contextlib.suppress(TypeError, ValueError):  # objects that are not numbers: left NaN
                    columns[key] = np.asarray(array, dtype=np.float64)
        length, budget = columns["length"], columns["budget"]
        over = np.where(np.isfinite(budget) & np.isfinite(length), np.maximum(0.0, length - budget), 0.0)
        columns["over_budget"] = over
        return columns


def finite_or_none(values: Any) -> list[float | None]:
    """Plain floats for logs and JSON; NaN and inf (a missing value, or no budget) become ``None``."""
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]
