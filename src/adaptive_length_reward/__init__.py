"""adaptive-length-reward: difficulty- and uncertainty-aware length rewards for GRPO training.

PixelThink's reward (arXiv 2505.23727, :func:`pixelthink`): task accuracy times a soft length score whose budget
depends on the sample's difficulty and the policy's uncertainty; with it every peer length reward, budget policies,
length counters, segmentation rewards and metrics, difficulty scorers, uncertainty estimators and adapters for TRL,
verl and OpenRLHF, all as picklable reward objects over one :class:`RewardBatch`. Importing it loads neither torch
nor any RL framework.
"""

from . import conventions, difficulty, functional, metrics, presets, segmentation, spans, tiers, uncertainty
from .batch import CONTEXT_FIELDS, Completion, RewardBatch
from .budgets import NO_PENALTY, BudgetPolicy, Budgets, ColumnBudget, FixedBudget, LinearBudget, TieredBudget
from .config import ComponentConfig, build, load_config, registered_kinds
from .errors import ConfigError, FatalRewardError, MissingContextError, MissingExtraError, RewardInputError
from .functional import soft_length_penalty
from .length import (
    LengthCounter,
    PrecomputedLength,
    TokenCount,
    TokenIdCount,
    WhitespaceWords,
    count_words,
    extract_reasoning,
    reasoning_span,
)
from .metrics import MaskIoU, SegmentationReport
from .penalties import (
    AdaptThinkReward,
    ALPReward,
    CosineLengthReward,
    DAPOOverlongPenalty,
    GRPOLeadReward,
    HAPOReward,
    KimiLengthReward,
    L1ExactReward,
    L1MaxReward,
    LASERDReward,
    LASERReward,
    ShorterBetterReward,
    SoftLengthPenalty,
)
from .presets import pixelthink, pixelthink_score, seg_zero
from .reward import (
    Clip,
    ColumnReward,
    ContextProvider,
    Gate,
    Product,
    Reward,
    RewardOutput,
    WeightedSum,
    WithContext,
)
from .schedules import ConstantSchedule, CosineSchedule, LinearSchedule, Schedule, StepSchedule
from .segmentation import (
    BoxIoUReward,
    BoxL1Reward,
    PointMatchReward,
    SegmentationAccuracy,
    SegmentationFormatReward,
    ThinkingFormatReward,
)
from .tiers import TierLayout
from .uncertainty import UncertaintyEstimator

__version__ = "0.1.0"  # the one place: pyproject.toml reads it ([tool.setuptools.dynamic])

__all__ = [
    "CONTEXT_FIELDS",
    "NO_PENALTY",
    "ALPReward",
    "AdaptThinkReward",
    "BoxIoUReward",
    "BoxL1Reward",
    "BudgetPolicy",
    "Budgets",
    "Clip",
    "ColumnBudget",
    "ColumnReward",
    "Completion",
    "ComponentConfig",
    "ConfigError",
    "ConstantSchedule",
    "ContextProvider",
    "CosineLengthReward",
    "CosineSchedule",
    "DAPOOverlongPenalty",
    "FatalRewardError",
    "FixedBudget",
    "GRPOLeadReward",
    "Gate",
    "HAPOReward",
    "KimiLengthReward",
    "L1ExactReward",
    "L1MaxReward",
    "LASERDReward",
    "LASERReward",
    "LengthCounter",
    "LinearBudget",
    "LinearSchedule",
    "MaskIoU",
    "MissingContextError",
    "MissingExtraError",
    "PointMatchReward",
    "PrecomputedLength",
    "Product",
    "Reward",
    "RewardBatch",
    "RewardInputError",
    "RewardOutput",
    "Schedule",
    "SegmentationAccuracy",
    "SegmentationFormatReward",
    "SegmentationReport",
    "ShorterBetterReward",
    "SoftLengthPenalty",
    "StepSchedule",
    "ThinkingFormatReward",
    "TierLayout",
    "TieredBudget",
    "TokenCount",
    "TokenIdCount",
    "UncertaintyEstimator",
    "WeightedSum",
    "WhitespaceWords",
    "WithContext",
    "__version__",
    "build",
    "conventions",
    "count_words",
    "difficulty",
    "extract_reasoning",
    "functional",
    "load_config",
    "metrics",
    "pixelthink",
    "pixelthink_score",
    "presets",
    "reasoning_span",
    "registered_kinds",
    "seg_zero",
    "segmentation",
    "soft_length_penalty",
    "spans",
    "tiers",
    "uncertainty",
]
