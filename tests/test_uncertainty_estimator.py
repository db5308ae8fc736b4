"""UncertaintyEstimator: fills the batch's uncertainty column for budgets; config, pickling, every source."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest

from adaptive_length_reward import (
    ColumnReward,
    ConfigError,
    MissingContextError,
    Product,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
    WithContext,
    build,
)
from adaptive_length_reward.uncertainty import UncertaintyEstimator, UncertaintyEstimatorConfig


@dataclasses.dataclass
class Logprob:
    """Same fields as ``vllm.logprobs.Logprob`` (vLLM cannot be installed here)."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


def vllm_tokens(pairs: list[tuple[float, float]]) -> list[dict[int, Logprob]]:
    """One dict per token with top-2 probabilities (p1, p2) and a third entry."""
    return [
        {7: Logprob(math.log(p1), 1), 3: Logprob(math.log(p2), 2), 9: Logprob(math.log(1e-4), 3)} for p1, p2 in pairs
    ]


COMPLETIONS = [
    "<think>" + "w " * 400 + "</think><answer>a</answer>",
    "<think>short</think><answer>b</answer>",
    "<think>" + "w " * 300 + "</think>",
    "",
]
LOGPROBS = [vllm_tokens([(0.9, 0.05), (0.5, 0.4)]), vllm_tokens([(0.6, 0.3)]), vllm_tokens([(0.99, 0.001)] * 3), []]
EXPECTED_U = [((1 - 0.85) + (1 - 0.1)) / 2, 1 - 0.3, 1 - 0.989, 0.0]  # official: mean of 1 - (p1 - p2); empty -> 0


def test_default_is_pixelthink_rollout_uncertainty() -> None:
    batch = RewardBatch.from_completions(COMPLETIONS, logprobs=LOGPROBS)
    np.testing.assert_allclose(UncertaintyEstimator()(batch), EXPECTED_U, rtol=0, atol=1e-12)


def test_budgets_use_the_column_without_knowing_where_it_came_from() -> None:
    penalty = SoftLengthPenalty(budget=TieredBudget())
    reward = WithContext(Product([ColumnReward("accuracy"), penalty]), [UncertaintyEstimator()])
    batch = RewardBatch.from_completions(
        COMPLETIONS, logprobs=LOGPROBS, accuracy=[5.0, 5.0, 5.0, 5.0], difficulty=[8.0, 8.0, 6.0, 9.0]
    )
    out = reward.evaluate(batch)
    np.testing.assert_allclose(out.columns["budget"], 256 + 25 * np.array(EXPECTED_U), rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.columns["uncertainty"], EXPECTED_U, atol=1e-12)
    # the same reward without the estimator cannot price the hard tier
    with pytest.raises(MissingContextError, match="uncertainty"):
        Product([ColumnReward("accuracy"), penalty])(batch)
    # a given uncertainty column is kept (fill_missing) ...
    given = batch.replace(uncertainty=[0.0, np.nan, 1.0, 0.5])
    budget = reward.evaluate(given).columns["budget"]
    np.testing.assert_allclose(budget, [256.0, 256 + 25 * EXPECTED_U[1], 281.0, 268.5], atol=1e-9)
    # ... unless the wrapper overwrites it
    overwrite = WithContext(Product([ColumnReward("accuracy"), penalty]), [UncertaintyEstimator()], mode="overwrite")
    np.testing.assert_allclose(overwrite.evaluate(given).columns["budget"], 256 + 25 * np.array(EXPECTED_U), atol=1e-9)


def test_config_round_trip_pickle_and_repr() -> None:
    estimator = UncertaintyEstimator(
        column="top",
        source="sglang",
        measure="entropy_upper",
        vocab_size=151936,
        reduction="quantile",
        quantile=0.75,
        span="reasoning",
        open_ids=[1, 2],
        close_ids=[3],
        empty_value=float("nan"),
    )
    config = estimator.to_config()
    assert isinstance(config, UncertaintyEstimatorConfig) and config.kind == "uncertainty_estimator"
    rebuilt = build(json.loads(config.model_dump_json()))
    assert isinstance(rebuilt, UncertaintyEstimator)
    assert rebuilt.to_config().model_dump_json() == config.model_dump_json()
    clone = pickle.loads(pickle.dumps(estimator))
    assert clone.to_config().model_dump_json() == config.model_dump_json()
    assert "UncertaintyEstimator(column='top'" in repr(estimator)
    nested = build(
        {
            "kind": "with_context",
            "reward": {"kind": "soft_length_penalty"},
            "providers": [{"kind": "uncertainty_estimator", "column": "lp"}],
        }
    )
    assert nested.providers[0].to_config().column == "lp"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measure": "nll"}, r"source: expected one of \['sampled_logprobs'\] for measure='nll', got 'vllm'"),
        (
            {"source": "token_values"},
            r"source: expected one of \['vllm', 'sglang', 'topk_array'\] for measure='margin'",
        ),
        ({"span": "reasoning"}, "open_ids and close_ids: expected the tags' token ids"),
        ({"measure": "entropy_lower"}, "vocab_size: expected the vocabulary size"),
        (
            {"measure": "entropy_upper", "entropy_cap": 2.0},
            "vocab_size: expected the vocabulary size for measure='entropy_upper'",
        ),
        ({"measure": "deepconf"}, "k: expected the engine's top-k"),
        ({"quantile": 1.5}, r"UncertaintyEstimator: quantile: expected <= 1"),
        ({"reduction": "median"}, "UncertaintyEstimator: reduction: expected"),
        ({"empty_value": float("inf")}, "empty_value: expected a finite number or nan"),
        ({"vocab_size": 1}, "UncertaintyEstimator: vocab_size: expected >= 2, got 1"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UncertaintyEstimator(**kwargs)


def test_missing_column_is_named() -> None:
    reward = WithContext(SoftLengthPenalty(), [UncertaintyEstimator(column="rollout_logprobs")])
    assert "rollout_logprobs" in reward.requires
    with pytest.raises(MissingContextError, match="'rollout_logprobs'"):
        reward(completions=["x"], difficulty=[8.0])
    with pytest.raises(MissingContextError, match="'token_ids'"):
        UncertaintyEstimator(span="reasoning", open_ids=[1], close_ids=[2])(
            RewardBatch.from_completions(["x"], logprobs=[[]])
        )


def test_reasoning_span_only() -> None:
    # token ids: <think>=1, </think>=2; per-token uncertainties 0.1 .. 0.6 aligned with the ids
    ids = [[1, 5, 5, 2, 8, 9], [5, 5, 5], [1, 4, 4]]
    values = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.7, 0.7, 0.7], [0.9, 0.2, 0.4]]
    batch = RewardBatch.from_completions(["a", "b", "c"], token_ids=ids, u=values)
    estimator = UncertaintyEstimator(
        column="u", source="token_values", measure="value", span="reasoning", open_ids=[1], close_ids=[2]
    )
    np.testing.assert_allclose(estimator(batch), [0.25, 0.0, 0.3])
    whole = UncertaintyEstimator(column="u", source="token_values", measure="value", reduction="max")
    np.testing.assert_allclose(whole(batch), [0.6, 0.7, 0.9])
    misaligned = batch.replace(token_ids=[[1, 5], [5, 5, 5], [1, 4, 4]])
    with pytest.raises(ValueError, match=r"token_ids\[0\] has 2 ids but column 'u'\[0\] has 6 tokens"):
        estimator(misaligned)


def test_sampled_logprobs_give_the_nll_measure() -> None:
    logprobs = [[math.log(0.5), math.log(0.25)], [], [0.0]]
    batch = RewardBatch.from_completions(["a", "b", "c"], lp=logprobs)
    estimator = UncertaintyEstimator(column="lp", source="sampled_logprobs", measure="nll")
    np.testing.assert_allclose(estimator(batch), [(0.5 + 0.75) / 2, 0.0, 0.0], atol=1e-12)
    capped = UncertaintyEstimator(column="lp", source="sampled_logprobs", measure="nll", nll_cap=2 * math.log(4))
    np.testing.assert_allclose(capped(batch), [(math.log(2) + math.log(4)) / 2 / (2 * math.log(4)), 0.0, 0.0])
    with pytest.raises(ValueError, match=r"column 'lp'\[0\]: expected log-probabilities <= 0, got 0.5"):
        estimator(batch.replace(lp=[[0.5], [], []]))


def test_every_measure_is_in_the_unit_interval_and_the_engines_agree() -> None:
    rng = np.random.default_rng(0)
    dense, vllm, sglang = [], [], []
    for length in (0, 1, 7, 30):
        logits = rng.normal(size=(length, 50)) * rng.uniform(0.3, 5, size=(length, 1))
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        top = -np.sort(-logp, axis=1)[:, :5]
        dense.append(top)
        vllm.append([{j: Logprob(float(v), j + 1) for j, v in enumerate(row)} for row in top])
        sglang.append([[(float(v), j, None) for j, v in enumerate(row)] for row in top])
    batch = RewardBatch.from_completions(["a"] * 4, dense=dense, vllm=vllm, sglang=sglang)
    for measure, extra in (
        ("margin", {}),
        ("entropy_lower", {"vocab_size": 50}),
        ("entropy_upper", {"vocab_size": 50}),
        ("entropy_lower", {"entropy_cap": 1.0}),
        ("deepconf", {"k": 5}),
    ):
        results = [
            UncertaintyEstimator(column=name, source=source, measure=measure, **extra)(batch)  # type: ignore[arg-type]
            for name, source in (("dense", "topk_array"), ("vllm", "vllm"), ("sglang", "sglang"))
        ]
        for r in results:
            assert ((r >= 0) & (r <= 1)).all(), (measure, r)
            np.testing.assert_array_equal(r, results[0])
        assert results[0][0] == 0.0  # empty completion -> empty_value
    lower = UncertaintyEstimator(column="dense", source="topk_array", measure="entropy_lower", vocab_size=50)(batch)
    upper = UncertaintyEstimator(column="dense", source="topk_array", measure="entropy_upper", vocab_size=50)(batch)
    assert (lower <= upper + 1e-12).all()


def test_token_values_with_a_cap_and_bad_values() -> None:
    batch = RewardBatch.from_completions(["a", "b"], h=[np.array([0.5, 3.0]), None])
    estimator = UncertaintyEstimator(
        column="h", source="token_values", measure="value", value_cap=2.0, empty_value=float("nan")
    )
    got = estimator(batch)
    assert got[0] == pytest.approx((0.25 + 1.0) / 2) and math.isnan(got[1])
    with pytest.raises(ValueError, match="expected finite numbers"):
        estimator(batch.replace(h=[[np.inf], []]))
    with pytest.raises(TypeError, match=r"column 'h'\[1\]: expected a sequence of numbers"):
        estimator(batch.replace(h=[[0.1], ["x"]]))
    with pytest.raises(ValueError, match="expected one number per token"):
        estimator(batch.replace(h=[[[0.1, 0.2]], []]))


def test_torch_per_token_values_from_a_forward_pass() -> None:
    torch = pytest.importorskip("torch")
    from adaptive_length_reward.uncertainty import token_statistics

    logits = torch.randn(2, 4, 30, generator=torch.Generator().manual_seed(0)) * 3
    lengths = [4, 2]
    margin = token_statistics(logits, stats=("margin",))["margin"]
    per_completion = [1 - margin[i, :n] for i, n in enumerate(lengths)]  # tensors in the column
    batch = RewardBatch.from_completions(["a", "b"], u=per_completion)
    got = UncertaintyEstimator(column="u", source="token_values", measure="value")(batch)
    np.testing.assert_allclose(got, [float((1 - margin[0]).mean()), float((1 - margin[1, :2]).mean())], atol=1e-6)
