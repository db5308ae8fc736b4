"""Uncertainty estimators: how unsure the policy was while writing a completion, as one number in [0, 1].

PixelThink (arXiv 2505.23727) scales the hard-tier length budget by the policy's uncertainty, measured as the
mean over generated tokens of ``1 - (p1 - p2)`` from vLLM's top-5 log-probs. This subpackage computes that and
entropy-based alternatives from full logits ([`logits`][]; torch, imported lazily: importing this subpackage
does not import torch), from top-k log-probs of a rollout engine ([`topk`][]) or from sampled-token log-probs
([`logprob_uncertainty`][]); [`reduction`][] turns per-token values into one number per completion, and
[`UncertaintyEstimator`][] does all of it as a context provider that fills the batch's ``uncertainty`` column.
"""

# Each module's ``__all__`` is the one list of its public names; this package re-exports them all.
from . import estimator, logits, reduction, sampling, topk
from .estimator import *  # noqa: F403
from .logits import *  # noqa: F403
from .reduction import *  # noqa: F403
from .sampling import *  # noqa: F403
from .topk import *  # noqa: F403

__all__ = sorted(estimator.__all__ + logits.__all__ + reduction.__all__ + sampling.__all__ + topk.__all__)
