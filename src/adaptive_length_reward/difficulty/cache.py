"""Moved to [`cache`][adaptive_length_reward.difficulty.judge.cache]; its names stay importable from here."""

from . import __getattr__ as __getattr__  # the deprecated CachedJudgment
from .judge.cache import *  # noqa: F403
from .judge.cache import __all__ as __all__
