"""An opt-in stand-in for the RScore judge on offline CPU runs: word overlap with the reference reasoning.

Not an LLM judge. ``10 * max(F1(reasoning, reference_short), F1(reasoning, reference_long))`` with F1 the
bag-of-words token F1 of SQuAD (Rajpurkar et al., arXiv 1606.05250, the official evaluation script's
``f1_score``): ``P = common / |reasoning|``, ``R = common / |reference|``, ``F1 = 2PR / (P + R)``, where
``common`` counts the words the two share (with multiplicity). It rewards wording close to a reference, not
correct reasoning: a paraphrase scores low and a fluent wrong chain that reuses the reference's words scores high.
Its numbers are not comparable with the paper's RScore; every use is logged.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable

from ..config import Component, param
from .judge import RScoreItem, as_samples

__all__ = ["ReferenceOverlapRScore", "token_f1"]

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")


def _words(text: str | None, lowercase: bool) -> list[str]:
    if not text:
        return []
    return _WORD.findall(text.lower() if lowercase else text)


def token_f1(prediction: str | None, reference: str | None, *, lowercase: bool = True) -> float:
    """SQuAD's bag-of-words token F1 of ``prediction`` against ``reference`` (words are ``\\w+`` runs), in
    ``[0, 1]``; 0 when either has no words.

    >>> token_f1("the red cup on the left", "the cup on the left table")
    0.8333333333333334
    """
    pred, ref = _words(prediction, lowercase), _words(reference, lowercase)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class ReferenceOverlapRScore(Component, kind="reference_overlap_rscore"):
    """RScore stand-in, **not an LLM judge**: ``10 x`` the best token F1 ([`token_f1`][]) of the reasoning
    against the short and the long reference chain.

    Opt-in only (nothing falls back to it): for offline CPU runs where no judge model is available. It measures
    wording overlap, not reasoning quality, so its values are not comparable with the paper's RScore; reports
    carry ``method`` next to the numbers, and the first use of each object logs a warning. An empty reasoning
    scores 0; a sample needs at least one non-empty reference ([`RScoreSample`][]).
    """

    lowercase: bool = param(default=True, doc="compare words lower-cased")

    #: What produced the scores (reports carry it next to the numbers).
    method = "reference_overlap (not an LLM judge)"

    def score(self, reasoning: str | None, reference_short: str | None, reference_long: str | None) -> float:
        """One chain's stand-in RScore in ``[0, 10]``."""
        return self.score_many([(reasoning, reference_short, reference_long)])[0]

    def score_many(self, items: Iterable[RScoreItem]) -> list[float]:
        """Stand-in RScore per item (an [`RScoreSample`][] or ``(reasoning, reference_short,
        reference_long)``), in order; never NaN.

        Raises:
            ValueError: an item without any non-empty reference, or not a sample or a 3-tuple.
        """
        samples = as_samples(items)
        if not self.__dict__.get("_announced"):
            logger.warning(
                "ReferenceOverlapRScore: RScore computed as 10 x token-F1 overlap with the best reference "
                "reasoning; this is not an LLM judge and its values are not comparable with the paper's "
                "RScore"
            )
            self.__dict__["_announced"] = True
        logger.info("ReferenceOverlapRScore: scoring %d reasoning chains by reference overlap", len(samples))
        return [
            10.0
            * max(token_f1(s.reasoning, ref, lowercase=self.lowercase) for ref in (s.reference_short, s.reference_long))
            for s in samples
        ]
