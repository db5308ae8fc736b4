"""The RScore stand-in (reference overlap, not an LLM judge) on constructed strings, and SAT / RST / URSS per
variant from the fitted forms of :mod:`adaptive_length_reward.metrics`."""

from __future__ import annotations

import logging
import math

import pytest

from adaptive_length_reward import build
from adaptive_length_reward.metrics import rst, sat, urss
from adaptive_length_reward.rscore import (
    ReferenceOverlapRScore,
    RScoreSample,
    efficiency_by_variant,
    efficiency_scores,
    rscore_summary,
    token_f1,
)


def test_token_f1_on_constructed_strings() -> None:
    assert token_f1("a b c", "c b a") == 1.0  # a bag of words: order does not count
    assert token_f1("a b c", "d e f") == 0.0
    # 4 predicted words, 3 reference words, 2 shared: P = 1/2, R = 2/3, F1 = 2PR/(P+R) = 4/7
    assert token_f1("a b c d", "a b e") == pytest.approx(4 / 7)
    # multiplicity: "x x y" vs "x y y": 2 shared (one x, one y): P = R = 2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("The Cup, left!", "the cup left") == 1.0  # punctuation and case ignored
    assert token_f1("The Cup", "the cup", lowercase=False) == 0.0
    assert token_f1("", "a") == 0.0 and token_f1(None, "a") == 0.0 and token_f1("a", "") == 0.0


def test_the_stand_in_takes_the_best_reference_times_ten() -> None:
    scorer = ReferenceOverlapRScore()
    short, long = "red cup left", "the red cup on the left table next to a bottle"
    assert scorer.score("red cup left", short, long) == 10.0
    assert scorer.score(long, short, long) == 10.0
    # "red cup" vs short: P = 1, R = 2/3 -> 0.8; vs long (11 words): P = 1, R = 2/11 -> 4/13; best 0.8
    assert scorer.score("red cup", short, long) == pytest.approx(8.0)
    assert scorer.score("a blue car", short, None) == 0.0
    assert scorer.score("", short, long) == 0.0 and scorer.score(None, short, long) == 0.0
    samples = [RScoreSample("a", "red cup", short, long), ("red cup left", short, long)]
    assert scorer.score_many(samples) == pytest.approx([8.0, 10.0])
    with pytest.raises(ValueError, match="at least one non-empty reference"):
        scorer.score("red cup", "  ", None)


def test_the_stand_in_is_labelled_and_logs_its_use(caplog) -> None:
    scorer = ReferenceOverlapRScore()
    assert "not an LLM judge" in scorer.method and "not an LLM judge" in (ReferenceOverlapRScore.__doc__ or "")
    with caplog.at_level(logging.INFO, logger="adaptive_length_reward.rscore.overlap"):
        scorer.score("a", "a", None)
        scorer.score("b", "a", None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not an LLM judge" in warnings[0].getMessage()
    assert sum("scoring 1 reasoning chains" in r.getMessage() for r in caplog.records) == 2


def test_the_stand_in_is_a_declared_component() -> None:
    scorer = ReferenceOverlapRScore(lowercase=False)
    rebuilt = build(scorer.to_config().model_dump())
    assert isinstance(rebuilt, ReferenceOverlapRScore) and rebuilt.lowercase is False


def test_efficiency_scores_are_the_fitted_forms_per_variant() -> None:
    variants = {
        "seg_zero": {"rscore": 6.5, "giou": 0.6163, "mean_reasoning_tokens": 90.79},
        "pixelthink": {"rscore": 7.0, "giou": 0.6381, "mean_reasoning_tokens": 46.98, "ciou": 0.63},
    }
    out = efficiency_by_variant(variants)
    for name, v in variants.items():
        t = v["mean_reasoning_tokens"]
        assert out[name]["sat"] == pytest.approx(v["giou"] * math.sqrt(200 / t))
        assert out[name]["rst"] == pytest.approx(v["rscore"] / 10 * math.sqrt(200 / t))
        assert out[name]["urss"] == pytest.approx(0.7 * out[name]["sat"] + 0.3 * out[name]["rst"])
        assert out[name] == {
            "sat": sat(v["giou"], t),
            "rst": rst(v["rscore"], t),
            "urss": urss(v["giou"], v["rscore"], t),
        }
    assert out["pixelthink"]["urss"] > out["seg_zero"]["urss"]  # fewer tokens at similar quality
    assert efficiency_scores(rscore=7.0, giou=0.6381, mean_tokens=46.98) == out["pixelthink"]


def test_efficiency_refuses_missing_keys_and_percent_giou() -> None:
    with pytest.raises(ValueError, match=r"variants\['x'\]: expected the keys rscore, giou"):
        efficiency_by_variant({"x": {"giou": 0.5, "mean_reasoning_tokens": 50}})
    with pytest.raises(ValueError, match=r"variants\['x'\]: giou"):
        efficiency_by_variant({"x": {"rscore": 5, "giou": 63.8, "mean_reasoning_tokens": 50}})
    with pytest.raises(ValueError, match="rscore"):
        efficiency_scores(rscore=math.nan, giou=0.5, mean_tokens=50)


def test_rscore_summary_skips_unscored_rows() -> None:
    assert rscore_summary([8.0, math.nan, 6.0]) == {"mean": 7.0, "scored": 2, "rows": 3}
    empty = rscore_summary([math.nan])
    assert math.isnan(empty["mean"]) and empty["scored"] == 0
