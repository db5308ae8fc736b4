"""A VLM judge that rates each sample's difficulty, as PixelThink does once per dataset.

PixelThink (arXiv 2505.23727, Sec. 3.2) shows an external judge (Qwen2.5-VL-72B) the image, the referring
expression, and the target's mask proportion and position, and has it rate scene complexity, segmentation
challenge and linguistic ambiguity from 1 to 10; the sample's difficulty is their mean. One module per concern
(prompt, reply, backends, runner, cache, scorer): see docs/difficulty.md.
"""

from .backends import JudgeBackend, JudgeRequestError, JudgeTransportError, OpenAICompatibleBackend, TransformersBackend
from .cache import Judgment, JudgmentCache
from .prompt import PIXELTHINK_V1, PROMPT_VERSION, PROMPTS, JudgePrompt, TargetGeometry, parse_box
from .reply import ASPECTS, JudgeReplyError, combine_aspects, parse_judge_reply
from .runner import DifficultyJudge, JudgeInputError, JudgeSample, load_image
from .scorer import JudgedDifficulty

__all__ = [
    "ASPECTS",
    "PIXELTHINK_V1",
    "PROMPTS",
    "PROMPT_VERSION",
    "DifficultyJudge",
    "JudgeBackend",
    "JudgeInputError",
    "JudgePrompt",
    "JudgeReplyError",
    "JudgeRequestError",
    "JudgeSample",
    "JudgeTransportError",
    "JudgedDifficulty",
    "Judgment",
    "JudgmentCache",
    "OpenAICompatibleBackend",
    "TargetGeometry",
    "TransformersBackend",
    "combine_aspects",
    "load_image",
    "parse_box",
    "parse_judge_reply",
]
