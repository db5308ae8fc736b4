"""OpenRLHF adapter: ``reward_func(queries, prompts, labels)`` for ``--reward.remote_url path/to/file.py``, and the
framework-neutral scoring behind it (also used by the ``/get_reward`` HTTP server). See docs/openrlhf.md.

OpenRLHF 0.11.2 calls ``reward_func`` once per sample (``openrlhf/utils/agent.py::SingleTurnAgentExecutor``), each
query decoded with its special tokens: :func:`split_response` cuts the response from it and
:func:`~adaptive_length_reward.adapters.scoring.split_label` reads the label. OpenRLHF reads ``rewards``, ``scores``
(in ``[0, 1]``) and ``extra_logs`` (averaged over the batch, so a value that is not finite is logged as 0).

>>> from adaptive_length_reward import SoftLengthPenalty, TieredBudget
>>> reward = OpenRLHFReward(SoftLengthPenalty(budget=TieredBudget()))
>>> prompt = "<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\n"
>>> out = reward.score([prompt + "a b c<|im_end|>"], [prompt], [{"difficulty": 2.0}])
>>> out["rewards"], out["scores"], out["extra_logs"]["length"]
([1.0], [1.0], [3.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..batch import CONTEXT_FIELDS, RewardBatch
from ..errors import import_optional
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


def split_response(query: str, prompt: str | None, settings: AdapterSettings) -> str:
    """The response part of an OpenRLHF query: after the prompt or, when the query does not start with it (e.g. a
    left-truncated prompt), after the last ``response_marker``; without trailing ``end_markers``. ``ValueError``
    when neither applies (a pipeline problem, not a model output: the message says which setting fixes it).

    >>> split_response("<s>U: hi\\nA: yes</s>", "<s>U: hi\\nA: ", AdapterSettings())
    'yes'
    >>> split_response("...t hi\\nA: yes</s>", "<s>U: what hi\\nA: ", AdapterSettings(response_marker="A: "))
    'yes'
    """
    if prompt and query.startswith(prompt):
        response = query[len(prompt):]
    elif settings.response_marker and settings.response_marker in query:
        response = query.rsplit(settings.response_marker, 1)[1]
    else:
        raise ValueError("OpenRLHF reward: queries: expected each query to start with its prompt or to contain the "
                         f"response marker (ALR_RESPONSE_MARKER, now {settings.response_marker!r}), got a query "
                         f"starting {query[:60]!r} for a prompt starting {(prompt or '')[:60]!r}")
    while marker := next((m for m in settings.end_markers if m and response.endswith(m)), None):
        response = response[: -len(marker)]
    return response


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


class OpenRLHFReward:
    """A library reward in OpenRLHF's ``reward_func(queries, prompts, labels)`` convention.

    ``reward`` defaults to the one ``settings`` (keys, markers and score range; default
    :func:`~adaptive_length_reward.adapters.scoring.settings_from_env`) names. Raises ``ConfigError`` when the
    reward's output range is unbounded and no ``score_range`` is set (``scores`` must lie in ``[0, 1]``).
    """

    def __init__(self, reward: Reward | None = None, settings: AdapterSettings | None = None) -> None:
        check_sources("OpenRLHFReward", reward, settings)
        self.settings = settings if settings is not None else settings_from_env()
        self.reward = reward if reward is not None else reward_from_settings(self.settings)
        self.scorer = SampleScorer(self.reward, score_range=self.settings.score_range, require_scores=True)

    @property
    def __name__(self) -> str:
        return self.reward.name

    def build_batch(self, queries: Sequence[str], prompts: Sequence[str] | None,
                    labels: Sequence[Any] | None) -> RewardBatch:
        """The batch scored for one call (responses split from the queries, labels unpacked)."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise TypeError(f"OpenRLHF reward: queries: expected a list of strings, got {type(queries).__name__}")
        n = len(queries)
        prompt_list: list[str | None] = [None] * n if prompts is None else list(prompts)
        label_list: list[Any] = [None] * n if labels is None else list(labels)
        for name, values in (("prompts", prompt_list), ("labels", label_list)):
            if len(values) != n:
                raise ValueError(f"OpenRLHF reward: {name}: expected {n} entries (one per query), got {len(values)}")
        responses = []
        for i, (query, prompt) in enumerate(zip(queries, prompt_list)):
            if not isinstance(query, str):
                raise TypeError(f"OpenRLHF reward: queries[{i}]: expected str, got {type(query).__name__}")
            responses.append(split_response(query, prompt, self.settings))
        parts = [split_label(label, self.settings) for label in label_list]
        extra: dict[str, list[Any]] = {}
        for i, (*_, other) in enumerate(parts):
            for key, value in other.items():
                if key not in CONTEXT_FIELDS and key != "step":
                    extra.setdefault(key, [None] * n)[i] = value
        context: dict[str, Any] = {"ground_truth": [truth for truth, *_ in parts]}
        for k, name in ((1, "difficulty"), (2, "uncertainty")):
            if any(part[k] is not None for part in parts):
                context[name] = [part[k] for part in parts]
        return RewardBatch.from_completions(responses, extra=extra, **context)

    def extra_logs(self, scored: ScoredBatch) -> dict[str, FloatArray]:
        """Per-sample values for OpenRLHF's ``extra_logs``: :attr:`ScoredBatch.logs`, non-finite values as 0."""
        return {key: np.where(np.isfinite(values), values, 0.0) for key, values in scored.logs.items()}

    def score(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
              labels: Sequence[Any] | None = None, *, convert: Callable[[FloatArray], Any] = _floats) -> dict[str, Any]:
        """``{"rewards": [...], "scores": [...], "extra_logs": {name: [...]}}``, each array through ``convert``
        (default: a list of floats, the HTTP form)."""
        scored = self.scorer.score(self.build_batch(queries, prompts, labels))
        assert scored.scores is not None  # require_scores=True at construction
        return {"rewards": convert(scored.rewards), "scores": convert(scored.scores),
                "extra_logs": {key: convert(values) for key, values in self.extra_logs(scored).items()}}

    def __call__(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                 labels: Sequence[Any] | None = None) -> dict[str, Any]:
        """OpenRLHF's reward-file contract: the :meth:`score` dict with float32 tensors."""
        torch = import_optional("torch", extra="torch", purpose="The OpenRLHF reward function")
        return self.score(queries, prompts, labels, convert=lambda values: torch.tensor(values, dtype=torch.float32))


_CACHED: dict[tuple[tuple[str, str], ...], OpenRLHFReward] = {}


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
    """OpenRLHF's module-level reward function, configured by the ``ALR_*`` environment variables.

    The reward is built on the first call for a given environment and reused. See :class:`OpenRLHFReward`.
    """
    key = environ_key()
    reward = _CACHED.get(key) or _CACHED.setdefault(key, OpenRLHFReward())
    return reward(queries, prompts, labels)

