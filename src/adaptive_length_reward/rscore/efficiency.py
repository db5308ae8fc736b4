"""PixelThink's efficiency scores per variant: SAT, RST and URSS from mean RScore, gIoU and mean reasoning tokens.

PixelThink (arXiv 2505.23727, Table 1) reports SAT, RST and URSS without formulas. The forms here are *fitted* to
all 15 rows of its tables ([`sat`][], [`rst`][],
[`urss`][]; docs/metrics.md), with ``T`` the mean reasoning tokens::

    SAT  = gIoU * sqrt(200 / T)              (gIoU as a fraction)
    RST  = (RScore / 10) * sqrt(200 / T)
    URSS = 0.7 * SAT + 0.3 * RST
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..metrics import rst, sat, urss

__all__ = ["efficiency_by_variant", "efficiency_scores", "rscore_summary"]


def efficiency_scores(*, rscore: float, giou: float, mean_tokens: float) -> dict[str, float]:
    """``{"sat", "rst", "urss"}`` for one variant (*fitted* forms, see the module docstring).

    Args:
        rscore: the variant's mean RScore on 0..10 (judge or stand-in; say which in the report).
        giou: its gIoU as a fraction in ``[0, 1]``.
        mean_tokens: its mean reasoning tokens (``T``, > 0).

    >>> {k: round(v, 4) for k, v in efficiency_scores(rscore=7.0, giou=0.6381, mean_tokens=46.98).items()}
    {'sat': 1.3166, 'rst': 1.4443, 'urss': 1.3549}

    Raises:
        ValueError: a value outside its range (from [`metrics`][]).
    """
    return {"sat": sat(giou, mean_tokens), "rst": rst(rscore, mean_tokens), "urss": urss(giou, rscore, mean_tokens)}


def efficiency_by_variant(variants: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """[`efficiency_scores`][] per variant, from ``{variant: {"rscore", "giou", "mean_reasoning_tokens"}}``.

    Raises:
        ValueError: a variant lacking one of the three keys (named), or a value out of range.
    """
    out: dict[str, dict[str, float]] = {}
    for name, values in variants.items():
        missing = [k for k in ("rscore", "giou", "mean_reasoning_tokens") if k not in values]
        if missing:
            raise ValueError(
                f"efficiency_by_variant: variants[{name!r}]: expected the keys rscore, giou and "
                f"mean_reasoning_tokens, got {sorted(values)}"
            )
        try:
            out[name] = efficiency_scores(
                rscore=values["rscore"], giou=values["giou"], mean_tokens=values["mean_reasoning_tokens"]
            )
        except ValueError as error:
            raise ValueError(f"efficiency_by_variant: variants[{name!r}]: {error}") from None
    return out


def rscore_summary(scores: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "scored", "rows"}`` of per-sample RScores: the mean over the scored ones (NaN marks a sample the
    judge gave no score; the mean is NaN when none was scored) and how many were scored.

    >>> rscore_summary([8.0, float("nan"), 6.0])
    {'mean': 7.0, 'scored': 2, 'rows': 3}
    """
    scored = [float(s) for s in scores if not math.isnan(float(s))]
    return {"mean": sum(scored) / len(scored) if scored else math.nan, "scored": len(scored), "rows": len(scores)}
