"""Moved to [`backends`][adaptive_length_reward.difficulty.judge.backends]; its names stay importable from here."""

from .judge.backends import *  # noqa: F403
from .judge.backends import __all__ as __all__
