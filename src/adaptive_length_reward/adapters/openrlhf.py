"""OpenRLHF adapter: ``reward_func(queries, prompts, labels)`` for ``--reward.remote_url path/to/file.py``, and the
framework-neutral scoring behind it (also used by the ``/get_reward`` HTTP server). See docs/openrlhf.md.

OpenRLHF 0.11.2 calls ``reward_func`` once per sample (``openrlhf/utils/agent.py::SingleTurnAgentExecutor``), each
query decoded with its special tokens: [`split_response`][] cuts the response from it and
[`split_label`][] reads the label. OpenRLHF reads ``rewards``, ``scores``
(in ``[0, 1]``) and ``extra_logs`` (averaged over the batch, so a value that is not finite is logged as 0).

>>> from adaptive_length_reward import SoftLengthPenalty, TieredBudget
>>> reward = OpenRLHFReward(SoftLengthPenalty(budget=TieredBudget()))
>>> prompt = "<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\n"
>>> out = reward.score([prompt + "a b c<|im_end|>"], [prompt], [{"difficulty": 2.0}])
>>> out["rewards"], out["scores"], out["extra_logs"]["length"]
([1.0], [1.0], [3.0])
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..batch import CONTEXT_FIELDS, RewardBatch, consecutive_group_ids
from ..errors import FatalRewardError, MissingContextError, RewardInputError, import_optional
from ..reward import Reward
from .scoring import (
    AdapterSettings,
    FloatArray,
    SampleScorer,
    ScoredBatch,
    check_sources,
    environ_key,
    reward_from_settings,
    settings_from_env,
    split_label,
)

__all__ = ["OpenRLHFReward", "reward_func", "split_response"]

logger = logging.getLogger(__name__)

_MISSING_ADVICE = {
    "difficulty": "add it to the label, or set missing_difficulty (ALR_MISSING_DIFFICULTY, the server's "
    "--missing-difficulty): a tier name such as 'medium' or a value such as 3.0, the official loader's",
    "uncertainty": "add it to the label (OpenRLHF passes the reward no log-probs), or set missing_uncertainty "
    "(ALR_MISSING_UNCERTAINTY, the server's --missing-uncertainty), e.g. 0.0, the official default",
}


def split_response(query: str, prompt: str | None, settings: AdapterSettings) -> str:
    """The response part of an OpenRLHF query: after the prompt or, when the query does not start with it (e.g. a
    left-truncated prompt), after the last ``response_marker`` and whatever follows the marker in the prompt (the
    ``\\n`` of ``<|im_start|>assistant\\n`` when the marker omits it); without trailing ``end_markers``.
    [`RewardInputError`][] when neither applies (a pipeline problem, not a model
    output: the message says which setting fixes it).

    >>> split_response("<s>U: hi\\nA: yes</s>", "<s>U: hi\\nA: ", AdapterSettings())
    'yes'
    >>> split_response("...t hi\\nA: yes</s>", "<s>U: what hi\\nA: ", AdapterSettings(response_marker="A:"))
    'yes'
    """
    marker = settings.response_marker
    if prompt and query.startswith(prompt):
        response = query[len(prompt) :]
    elif marker and marker in query:
        response = query.rsplit(marker, 1)[1]
        tail = prompt.rsplit(marker, 1)[1] if prompt and marker in prompt else ""
        if tail and response.startswith(tail):  # the prompt's text after the marker precedes the response
            response = response[len(tail) :]
    else:
        raise RewardInputError(
            ("queries",),
            "expected each query to start with its prompt or to contain the "
            f"response marker (ALR_RESPONSE_MARKER, now {marker!r}), got a query starting "
            f"{query[:60]!r} for a prompt starting {(prompt or '')[:60]!r}",
        )
    while end := next((m for m in settings.end_markers if m and response.endswith(m)), None):
        response = response[: -len(end)]
    return response


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _number(value: Any, loc: tuple[str | int, ...]) -> float | None:
    """A label's difficulty or uncertainty: a finite number, or None (absent or NaN)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RewardInputError(loc, f"expected a number, got {value!r:.80}", kind="type_error")
    value = float(value)
    if math.isnan(value):
        return None
    if not math.isfinite(value):
        raise RewardInputError(loc, f"expected a finite number, got {value!r}")
    return float(value)


_INDEXED = re.compile(r"^(\w+)\[(\d+)\]: ")
_SAMPLES = re.compile(r"samples \[([\d, ]*)\]")


class OpenRLHFReward:
    """A library reward in OpenRLHF's ``reward_func(queries, prompts, labels)`` convention.

    ``reward`` defaults to the one ``settings`` (keys, markers, score range and missing-context fallbacks; default
    [`settings_from_env`][]) names. Raises ``ConfigError`` when the
    reward's output range is unbounded and no ``score_range`` is set (``scores`` must lie in ``[0, 1]``). Input it
    cannot score (a missing label, a label without the difficulty the reward needs, a value of the wrong type)
    raises [`RewardInputError`][] naming the field, e.g. ``labels[0].difficulty``.

    Args:
        reward: the library reward; default the one ``settings`` names (PixelThink's preset without one).
        settings: label keys, response markers, score range and missing-context fallbacks; default
            ``settings_from_env()`` (the ``ALR_*`` environment variables).

    Raises:
        TypeError: ``reward`` is not a library Reward, or ``settings`` not AdapterSettings.
        ConfigError: the reward's output range is unbounded and no ``score_range`` is set.
    """

    def __init__(self, reward: Reward | None = None, settings: AdapterSettings | None = None) -> None:
        check_sources("OpenRLHFReward", reward, settings)
        self.settings = settings if settings is not None else settings_from_env()
        self.reward = reward if reward is not None else reward_from_settings(self.settings)
        self.scorer = SampleScorer(self.reward, score_range=self.settings.score_range, require_scores=True)
        self._marker_warned = False

    @property
    def __name__(self) -> str:
        return self.reward.name

    def _label_loc(self, labels: Sequence[Any], i: int, column: str) -> tuple[str | int, ...]:
        s = self.settings
        key = {"ground_truth": s.ground_truth_key, "difficulty": s.difficulty_key, "uncertainty": s.uncertainty_key}
        return ("labels", i, key.get(column, column)) if isinstance(_as_mapping(labels[i]), Mapping) else ("labels", i)

    def _check_marker(self, prompt: str | None) -> None:
        marker = self.settings.response_marker
        if marker and prompt and marker not in prompt and not self._marker_warned:
            self._marker_warned = True
            logger.warning(
                "OpenRLHF reward: response_marker %r does not occur in the prompt (ending %r): a query "
                "whose prompt was truncated cannot be split (check the marker's escapes: '\\n' is "
                "decoded)",
                marker,
                prompt[-40:],
            )

    def build_batch(
        self, queries: Sequence[str], prompts: Sequence[str] | None, labels: Sequence[Any] | None
    ) -> RewardBatch:
        """The batch scored for one call (responses split from the queries, labels unpacked and checked)."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise RewardInputError(
                ("queries",), f"expected a list of strings, got {type(queries).__name__}", kind="type_error"
            )
        n = len(queries)
        self._check_lists(n, prompts, labels)
        prompt_list: list[str | None] = [None] * n if prompts is None else list(prompts)
        responses = []
        for i, (query, prompt) in enumerate(zip(queries, prompt_list)):
            for name, value in (("queries", query), ("prompts", prompt)):
                if not isinstance(value, str) and not (name == "prompts" and value is None):
                    raise RewardInputError((name, i), f"expected str, got {type(value).__name__}", kind="type_error")
            self._check_marker(prompt)
            try:
                responses.append(split_response(query, prompt, self.settings))
            except RewardInputError as error:
                raise RewardInputError(("queries", i), error.message) from None
        label_list: list[Any] = [None] * n if labels is None else list(labels)
        parts = [split_label(label, self.settings) for label in label_list]
        context = self._context(label_list, parts)
        extra: dict[str, list[Any]] = {}
        for i, (*_, other) in enumerate(parts):
            for key, value in other.items():
                if key not in CONTEXT_FIELDS and key != "step":
                    extra.setdefault(key, [None] * n)[i] = value
        if prompts is not None and "group_ids" not in context:
            # one group per run of equal prompts: OpenRLHF's n_samples_per_prompt consecutive rows of one prompt
            context["group_ids"] = consecutive_group_ids(prompt_list)
        return RewardBatch.from_completions(responses, extra=extra, **context)

    def _check_lists(self, n: int, prompts: Sequence[str] | None, labels: Sequence[Any] | None) -> None:
        for name, values in (("prompts", prompts), ("labels", labels)):
            if values is not None and (isinstance(values, (str, Mapping)) or not isinstance(values, Sequence)):
                raise RewardInputError(
                    (name,), f"expected a list with one entry per query, got {type(values).__name__}", kind="type_error"
                )
            if values is not None and len(values) != n:
                raise RewardInputError((name,), f"expected {n} entries (one per query), got {len(values)}")
        needs = self.reward.requires & {"ground_truth", "difficulty", "uncertainty"}
        if labels is None and needs:
            raise RewardInputError(
                ("labels",),
                f"missing: the reward {self.reward.name!r} reads {sorted(needs)} from the labels (--data.label_key)",
                kind="missing",
            )

    def _context(self, labels: list[Any], parts: list[tuple[Any, Any, Any, dict[str, Any]]]) -> dict[str, Any]:
        """The batch columns from the labels, each checked: numbers where numbers go, present where required."""
        context: dict[str, Any] = {"ground_truth": [truth for truth, *_ in parts]}
        for k, name in ((1, "difficulty"), (2, "uncertainty")):
            values = [_number(part[k], self._label_loc(labels, i, name)) for i, part in enumerate(parts)]
            for i, value in enumerate(values):  # RewardBatch's rule (and pixelthink_score's): U >= 0, NaN = missing
                if name == "uncertainty" and value is not None and value < 0:
                    raise RewardInputError(self._label_loc(labels, i, name), f"expected a number >= 0, got {value!r}")
            if any(v is not None for v in values):
                context[name] = values
        for i, (truth, *_) in enumerate(parts):
            if "ground_truth" in self.reward.requires and truth is None:
                raise RewardInputError(
                    self._label_loc(labels, i, "ground_truth"),
                    f"missing: the reward {self.reward.name!r} needs a ground truth per label",
                    kind="missing",
                )
            if "difficulty" in self.reward.requires and context.get("difficulty", [None] * len(parts))[i] is None:
                plain = (
                    "" if isinstance(_as_mapping(labels[i]), Mapping) else "a plain label gives only the ground truth; "
                )
                raise RewardInputError(
                    self._label_loc(labels, i, "difficulty"),
                    f"missing: the reward "
                    f"{self.reward.name!r} needs a difficulty per label; {plain}"
                    f"{_MISSING_ADVICE['difficulty']}",
                    kind="missing",
                )
        return context

    def _input_error(self, error: Exception, labels: Sequence[Any] | None) -> RewardInputError:
        """What the reward could not score, as the field of the request that caused it."""
        message = str(error)
        label_list = list(labels) if labels is not None else []
        if isinstance(error, MissingContextError) and "uncertainty" in message:
            found = _SAMPLES.search(message)
            index = [int(i) for i in found.group(1).split(",") if i.strip()] if found else [0]
            i = index[0] if index else 0
            loc = self._label_loc(label_list, i, "uncertainty") if i < len(label_list) else ("labels",)
            return RewardInputError(loc, f"missing: {message}; {_MISSING_ADVICE['uncertainty']}", kind="missing")
        indexed = _INDEXED.match(message)
        if indexed and indexed.group(1) in CONTEXT_FIELDS and int(indexed.group(2)) < len(label_list):
            loc = self._label_loc(label_list, int(indexed.group(2)), indexed.group(1))
            return RewardInputError(loc, message[indexed.end() :])
        return RewardInputError(("labels",), message)

    def extra_logs(self, scored: ScoredBatch) -> dict[str, FloatArray]:
        """Per-sample values for OpenRLHF's ``extra_logs``:
        [`ScoredBatch.metrics`][adaptive_length_reward.adapters.scoring.ScoredBatch.metrics] (finite, with
        ``budgeted``)."""
        return scored.metrics()

    def score(
        self,
        queries: Sequence[str],
        prompts: Sequence[str] | None = None,
        labels: Sequence[Any] | None = None,
        *,
        convert: Callable[[FloatArray], Any] = _floats,
    ) -> dict[str, Any]:
        """``{"rewards": [...], "scores": [...], "extra_logs": {name: [...]}}``, each array through ``convert``
        (default: a list of floats, the HTTP form). Every value is finite; what cannot be scored raises
        [`RewardInputError`][]."""
        batch = self.build_batch(queries, prompts, labels)
        self._check_groups(batch)
        try:
            scored = self.scorer.score(batch)
        except (MissingContextError, ValueError, TypeError) as error:
            raise self._input_error(error, labels) from error
        assert scored.scores is not None  # require_scores=True at construction
        bad = np.flatnonzero(~np.isfinite(scored.rewards))
        if bad.size:
            raise RewardInputError(
                ("labels", int(bad[0])),
                f"the reward {self.reward.name!r} returned "
                f"{scored.rewards[bad[0]]} for this sample; OpenRLHF needs a finite reward",
            )
        return {
            "rewards": convert(scored.rewards),
            "scores": convert(scored.scores),
            "extra_logs": {key: convert(values) for key, values in self.extra_logs(scored).items()},
        }

    def _check_groups(self, batch: RewardBatch) -> None:
        """A group-relative reward needs each prompt's samples in one call: groups of one sample each (OpenRLHF
        0.11.2 calls the reward once per sample, ``openrlhf/utils/agent.py::SingleTurnAgentExecutor``) would score
        every sample against itself, so they raise instead."""
        if "group_ids" not in self.reward.requires or batch.group_ids is None:
            return
        if len(set(batch.group_ids)) == len(batch):
            raise RewardInputError(
                ("prompts",),
                f"the reward {self.reward.name!r} is group-relative and every one "
                f"of the {len(batch)} samples is alone in its group (prompt); expected the "
                "n_samples_per_prompt samples of each prompt in one call (consecutive rows with "
                "the same prompt), but OpenRLHF 0.11.2 scores one sample per call: call "
                "OpenRLHFReward.score on whole groups (docs/openrlhf.md, 'Group rewards')",
            )

    def __call__(
        self, queries: Sequence[str], prompts: Sequence[str] | None = None, labels: Sequence[Any] | None = None
    ) -> dict[str, Any]:
        """OpenRLHF's reward-file contract: the [`score`][] dict with float32 tensors. What cannot be scored
        raises [`FatalRewardError`][] (its cause the original error), which
        OpenRLHF's catch-all ``except Exception`` does not swallow into a missing reward."""
        torch = import_optional("torch", extra="torch", purpose="The OpenRLHF reward function")
        try:
            return self.score(
                queries, prompts, labels, convert=lambda values: torch.tensor(values, dtype=torch.float32)
            )
        except Exception as error:
            raise FatalRewardError(f"OpenRLHF reward {self.__name__!r}: {error}") from error


def _as_mapping(label: Any) -> Any:
    """The label as [`split_label`][] reads it: a JSON object string parsed, anything else unchanged."""
    if isinstance(label, str) and label.lstrip().startswith("{"):
        import json

        try:
            return json.loads(label)
        except json.JSONDecodeError:
            return label
    return label


_CACHED: dict[tuple[tuple[str, str], ...], OpenRLHFReward] = {}


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
    """OpenRLHF's module-level reward function, configured by the ``ALR_*`` environment variables.

    The reward is built on the first call for a given environment and reused. See [`OpenRLHFReward`][]; a bad
    configuration, like input that cannot be scored, raises [`FatalRewardError`][].

    Args:
        queries: prompt plus response, one text per sample, as OpenRLHF passes them.
        prompts: the prompts (a response is its query after its prompt).
        labels: one label per sample: the ground truth, or a mapping with the ground truth, difficulty and
            uncertainty under the settings' keys.

    Returns:
        ``{"rewards": ..., "scores": ..., "extra_logs": {...}}`` with float32 tensors.

    Raises:
        FatalRewardError: the ``ALR_*`` settings are wrong, or a sample cannot be scored (the cause attached).
    """
    key = environ_key()
    reward = _CACHED.get(key)
    if reward is None:
        try:
            reward = _CACHED.setdefault(key, OpenRLHFReward())
        except Exception as error:
            raise FatalRewardError(f"OpenRLHF reward file: the ALR_* settings: {error}") from error
    return reward(queries, prompts, labels)
