"""OpenRLHF adapter: ``reward_func(queries, prompts, labels)`` for ``--reward.remote_url path/to/file.py``, and the
framework-neutral scoring behind it (also used by the ``/get_reward`` HTTP server).

How OpenRLHF 0.11.2 calls a reward file (``openrlhf/utils/agent.py::SingleTurnAgentExecutor``): it loads the file
with ``importlib`` and calls the module-level ``reward_func(queries, prompts, labels)`` once per sample (lists of
length 1) in a worker thread. ``queries`` is ``decode(prompt_ids + response_ids, skip_special_tokens=False)`` (chat
tokens and EOS included), ``prompts`` the chat-formatted prompt string, ``labels`` the raw ``data[label_key]``
(may be a dict). It reads ``rewards``, ``scores`` (in ``[0, 1]``, for dynamic filtering) and ``extra_logs`` (each
value averaged into the training logs) from the returned dict; an exception is logged and the sample gets no
reward.

Here, per sample:

* the response is the query after the prompt (or, when the query does not start with the prompt, e.g. a
  left-truncated prompt, after the last ``response_marker``), with trailing end-of-turn tokens
  (``end_markers``) removed, so it reads like verl's and TRL's ``skip_special_tokens=True`` text;
* a dict label (or a string holding a JSON object) gives the ground truth, difficulty and uncertainty by the
  configured keys; any other label is the ground truth;
* ``scores = clip((reward - low) / (high - low), 0, 1)`` over the reward's bounds (PixelThink: ``[0, 5]``);
* ``extra_logs``: each named component, ``length``, ``over_budget = max(0, length - budget)`` (0 where no
  penalty applies), and ``difficulty``/``uncertainty`` when the reward reads them: all finite, fixed keys.

Configuration: the ``ALR_*`` environment variables and ``ALR_SETTINGS`` file of
:mod:`adaptive_length_reward.adapters.scoring` (read once, on the first call).

>>> from adaptive_length_reward import SoftLengthPenalty, TieredBudget
>>> reward = OpenRLHFReward(SoftLengthPenalty(budget=TieredBudget()))
>>> prompt = "<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\n"
>>> out = reward.score([prompt + "a b c<|im_end|>"], [prompt], [{"difficulty": 2.0}])
>>> out["rewards"], out["scores"], out["extra_logs"]["length"]
([1.0], [1.0], [3.0])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import CONTEXT_FIELDS, RewardBatch
from ..errors import import_optional
from ..reward import Reward
from .scoring import AdapterSettings, SampleScorer, ScoredBatch, reward_from_settings, settings_from_env, split_label

__all__ = ["OpenRLHFReward", "reward_func", "split_response"]


def split_response(query: str, prompt: str | None, settings: AdapterSettings) -> str:
    """The response part of an OpenRLHF query, without trailing end-of-turn markers.

    >>> split_response("<s>U: hi\\nA: yes</s>", "<s>U: hi\\nA: ", AdapterSettings())
    'yes'
    >>> split_response("...t hi\\nA: yes</s>", "<s>U: what hi\\nA: ", AdapterSettings(response_marker="A: "))
    'yes'

    Raises:
        ValueError: the query neither starts with the prompt nor contains ``response_marker`` (a pipeline
            problem, not a model output: the message says which setting fixes it).
    """
    if prompt and query.startswith(prompt):
        response = query[len(prompt):]
    elif settings.response_marker and settings.response_marker in query:
        response = query.rsplit(settings.response_marker, 1)[1]
    else:
        raise ValueError(
            "OpenRLHF reward: queries: expected each query to start with its prompt or to contain the response "
            f"marker (ALR_RESPONSE_MARKER, now {settings.response_marker!r}), got a query starting "
            f"{query[:60]!r} for a prompt starting {(prompt or '')[:60]!r}"
        )
    stripped = True
    while stripped:
        stripped = False
        for marker in settings.end_markers:
            if marker and response.endswith(marker):
                response = response[: -len(marker)]
                stripped = True
    return response


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


class OpenRLHFReward:
    """A library reward in OpenRLHF's ``reward_func(queries, prompts, labels)`` convention.

    Args:
        reward: the reward; default the one ``settings`` names (PixelThink's preset unless configured).
        settings: keys, markers and score range; default from the environment
            (:func:`~adaptive_length_reward.adapters.scoring.settings_from_env`).

    Raises:
        ConfigError: the reward's output range is unbounded and no ``score_range`` is set (``scores`` must
            lie in ``[0, 1]``).
    """

    def __init__(self, reward: Reward | None = None, settings: AdapterSettings | None = None) -> None:
        if settings is not None and not isinstance(settings, AdapterSettings):
            raise TypeError(f"OpenRLHFReward: settings: expected AdapterSettings, got {type(settings).__name__}")
        if reward is not None and not isinstance(reward, Reward):
            raise TypeError(f"OpenRLHFReward: reward: expected a Reward or None, got {type(reward).__name__}")
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
        truths: list[Any] = []
        difficulty: list[Any] = []
        uncertainty: list[Any] = []
        extra: dict[str, list[Any]] = {}
        for i, label in enumerate(label_list):
            truth, d, u, other = split_label(label, self.settings)
            truths.append(truth)
            difficulty.append(d)
            uncertainty.append(u)
            for key, value in other.items():
                if key not in CONTEXT_FIELDS and key != "step":
                    extra.setdefault(key, [None] * n)[i] = value
        context: dict[str, Any] = {"ground_truth": truths}
        if any(d is not None for d in difficulty):
            context["difficulty"] = difficulty
        if any(u is not None for u in uncertainty):
            context["uncertainty"] = uncertainty
        return RewardBatch.from_completions(responses, extra=extra, **context)

    def extra_logs(self, scored: ScoredBatch) -> dict[str, list[float]]:
        """Per-sample values for OpenRLHF's ``extra_logs`` (fixed keys for a given reward; OpenRLHF averages each
        key over the batch, so ``budget`` is logged as the finite ``over_budget`` instead of ``inf``)."""
        logs = {name: _floats(values) for name, values in scored.components.items()}
        length, budget = scored.columns["length"], scored.columns["budget"]
        logs["length"] = _floats(np.nan_to_num(length, nan=0.0))
        over = np.where(np.isfinite(budget), np.maximum(0.0, length - budget), 0.0)
        logs["over_budget"] = _floats(np.nan_to_num(over, nan=0.0))
        for name in ("difficulty", "uncertainty"):
            if name in self.reward.requires:
                logs[name] = _floats(scored.columns[name])
        return logs

    def score(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
              labels: Sequence[Any] | None = None) -> dict[str, Any]:
        """``{"rewards": [...], "scores": [...], "extra_logs": {name: [...]}}`` as plain floats (the HTTP form)."""
        scored = self.scorer.score(self.build_batch(queries, prompts, labels))
        assert scored.scores is not None  # require_scores=True at construction
        return {"rewards": _floats(scored.rewards), "scores": _floats(scored.scores),
                "extra_logs": self.extra_logs(scored)}

    def __call__(self, queries: Sequence[str], prompts: Sequence[str] | None = None,
                 labels: Sequence[Any] | None = None) -> dict[str, Any]:
        """OpenRLHF's reward-file contract: the :meth:`score` dict with float32 tensors."""
        torch = import_optional("torch", extra="torch", purpose="The OpenRLHF reward function")
        out = self.score(queries, prompts, labels)
        return {
            "rewards": torch.tensor(out["rewards"], dtype=torch.float32),
            "scores": torch.tensor(out["scores"], dtype=torch.float32),
            "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in out["extra_logs"].items()},
        }


_CACHED: dict[tuple[tuple[str, str], ...], OpenRLHFReward] = {}


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> dict[str, Any]:
    """OpenRLHF's module-level reward function, configured by the ``ALR_*`` environment variables.

    The reward is built on the first call for a given environment and reused. See :class:`OpenRLHFReward`.
    """
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ALR_")))
    reward = _CACHED.get(key)
    if reward is None:
        reward = _CACHED.setdefault(key, OpenRLHFReward())
    return reward(queries, prompts, labels)

