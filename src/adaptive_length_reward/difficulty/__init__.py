"""Difficulty scorers: fill the batch's ``difficulty`` column on PixelThink's 1..10 scale.

PixelThink (arXiv 2505.23727) sets each sample's length budget from a difficulty score that a 72B VLM judge gave
once per dataset. Every scorer here (precomputed, judged, online pass rate, heuristic) is a
[`DifficultyScorer`][] writing the same scale ([`scale`][]), so a budget never knows where a score came from.
Importing this package loads neither torch, transformers nor datasets. See docs/difficulty.md.
"""

import warnings
from typing import Any

from ..tiers import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, SCALE_MAX, SCALE_MIN, tier_histogram, tier_names, tier_value
from .heuristic import HeuristicDifficulty, heuristic_difficulty, mask_area_ratio
from .judge import *  # noqa: F403 - exactly the names in judge.__all__
from .judge import __all__ as _judge_names
from .online import EMAPassRateDifficulty, PassRateDifficulty, pass_rate_to_difficulty
from .precomputed import ColumnDifficulty, LookupDifficulty, load_difficulty_table
from .scale import unit_to_scale
from .scorer import DifficultyScorer

__all__ = [
    *_judge_names,
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TIER_NAMES",
    "SCALE_MAX",
    "SCALE_MIN",
    "ColumnDifficulty",
    "DifficultyScorer",
    "EMAPassRateDifficulty",
    "HeuristicDifficulty",
    "LookupDifficulty",
    "PassRateDifficulty",
    "heuristic_difficulty",
    "load_difficulty_table",
    "mask_area_ratio",
    "pass_rate_to_difficulty",
    "tier_histogram",
    "tier_names",
    "tier_value",
    "unit_to_scale",
]

#: Old names kept importable: the scorer was renamed (its old name is an anagram of the runner's, DifficultyJudge)
#: and the cache now stores [`Judgment`][] records themselves.
_RENAMED = {"JudgeDifficulty": "JudgedDifficulty", "CachedJudgment": "Judgment"}


def __getattr__(name: str) -> Any:
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{name} is deprecated; use {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
    return globals()[_RENAMED[name]]
