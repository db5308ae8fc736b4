"""Difficulty scorers: fill the batch's ``difficulty`` column on PixelThink's 1..10 scale.

PixelThink (arXiv 2505.23727) sets each sample's length budget from a difficulty score that a 72B VLM judge gave
once per dataset. This subpackage offers that judge and cheaper options behind one interface,
:class:`DifficultyScorer` (a :class:`~adaptive_length_reward.reward.ContextProvider` that provides
``"difficulty"``), all writing the same scale (:mod:`.scale`: 1 = very easy .. 10 = very hard; tiers from
thresholds, PixelThink's 3.5 and 5.0 by default):

* precomputed: :class:`ColumnDifficulty` (a dataset column), :class:`LookupDifficulty` (the official
  ``image_id`` -> ``difficulty_score_model`` table) with an explicit, counted missing-key policy;
* judged: :class:`DifficultyJudge` / :class:`JudgeDifficulty` with a versioned prompt, robust reply parsing, a
  local transformers or OpenAI-compatible HTTP backend, and a resumable SQLite :class:`JudgmentCache`; the
  ``alr-difficulty`` CLI annotates whole datasets with it;
* online: :class:`PassRateDifficulty` (the GRPO group's solve rate) and :class:`EMAPassRateDifficulty` (its
  per-prompt moving average with JSON-serialisable state);
* heuristic: :class:`HeuristicDifficulty` (mask area ratio and expression length), a documented baseline.

Importing this package loads neither torch, transformers nor datasets.
"""

from .backends import (
    JudgeBackend,
    JudgeRequestError,
    JudgeTransportError,
    OpenAICompatibleBackend,
    TransformersBackend,
)
from .cache import CachedJudgment, JudgmentCache
from .heuristic import HeuristicDifficulty, heuristic_difficulty, mask_area_ratio
from .judge import (
    ASPECTS,
    PIXELTHINK_V1,
    PROMPT_VERSION,
    PROMPTS,
    DifficultyJudge,
    JudgeDifficulty,
    JudgeInputError,
    JudgePrompt,
    JudgeReplyError,
    JudgeSample,
    Judgment,
    TargetGeometry,
    combine_aspects,
    parse_judge_reply,
)
from .online import EMAPassRateDifficulty, PassRateDifficulty, pass_rate_to_difficulty
from .precomputed import ColumnDifficulty, LookupDifficulty, load_difficulty_table
from .scale import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TIER_NAMES,
    SCALE_MAX,
    SCALE_MIN,
    tier_histogram,
    tier_names,
    tier_value,
    unit_to_scale,
)
from .scorer import DifficultyScorer

__all__ = [
    "ASPECTS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TIER_NAMES",
    "PIXELTHINK_V1",
    "PROMPTS",
    "PROMPT_VERSION",
    "SCALE_MAX",
    "SCALE_MIN",
    "CachedJudgment",
    "ColumnDifficulty",
    "DifficultyJudge",
    "DifficultyScorer",
    "EMAPassRateDifficulty",
    "HeuristicDifficulty",
    "JudgeBackend",
    "JudgeDifficulty",
    "JudgeInputError",
    "JudgePrompt",
    "JudgeReplyError",
    "JudgeRequestError",
    "JudgeSample",
    "JudgeTransportError",
    "Judgment",
    "JudgmentCache",
    "LookupDifficulty",
    "OpenAICompatibleBackend",
    "PassRateDifficulty",
    "TargetGeometry",
    "TransformersBackend",
    "combine_aspects",
    "heuristic_difficulty",
    "load_difficulty_table",
    "mask_area_ratio",
    "parse_judge_reply",
    "pass_rate_to_difficulty",
    "tier_histogram",
    "tier_names",
    "tier_value",
    "unit_to_scale",
]
