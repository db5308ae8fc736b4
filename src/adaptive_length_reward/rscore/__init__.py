"""RScore: a judge's 0..10 score of a reasoning chain against reference chains, and PixelThink's efficiency scores.

PixelThink (arXiv 2505.23727, ReasonSeg-Diff evaluation, Table 1) scores each reasoning chain against the
benchmark's short and long reference reasoning (the judge is *unconfirmed*) and combines the mean RScore, gIoU
and mean reasoning tokens into RST, SAT and URSS (*fitted* forms, [`efficiency`][]). [`RScoreJudge`][] asks an
LLM with the difficulty judge's backends, SQLite cache and retry policy; [`ReferenceOverlapRScore`][] is an
opt-in offline stand-in that is **not an LLM judge**. CLI: ``python -m adaptive_length_reward.rscore.cli``
(``alr-rscore``). Importing this package loads neither torch nor transformers. See docs/rscore.md.
"""

from .efficiency import efficiency_by_variant, efficiency_scores, rscore_summary
from .judge import RSCORE_KEY, RScoreItem, RScoreJudge, RScoreSample, as_samples
from .overlap import ReferenceOverlapRScore, token_f1
from .prompt import RSCORE_PROMPT_VERSION, RSCORE_PROMPTS, RSCORE_V1, RScorePrompt
from .reply import RSCORE_MAX, RSCORE_MIN, parse_rscore_reply

__all__ = [
    "RSCORE_KEY",
    "RSCORE_MAX",
    "RSCORE_MIN",
    "RSCORE_PROMPTS",
    "RSCORE_PROMPT_VERSION",
    "RSCORE_V1",
    "RScoreItem",
    "RScoreJudge",
    "RScorePrompt",
    "RScoreSample",
    "ReferenceOverlapRScore",
    "as_samples",
    "efficiency_by_variant",
    "efficiency_scores",
    "parse_rscore_reply",
    "rscore_summary",
    "token_f1",
]
