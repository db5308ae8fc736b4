"""TRL's own loop end to end: ``trl.GRPOTrainer.train`` and ``UncertaintyGRPOTrainer.train`` with the PixelThink
reward on a tiny random Qwen2 (CPU). The columns ``uncertainty``, ``budget``, ``tier`` and ``length`` reach TRL's
logs, and nothing NaN or infinite reaches TRL's metric aggregation (the medium tier has no budget; one sample has
no uncertainty and falls back by the budget's documented rule)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

trl = pytest.importorskip("trl", reason="needs the trl extra")
torch = pytest.importorskip("torch", reason="needs torch")

from adapter_fixtures import GROUND_TRUTH, build_text_lm, build_tokenizer, cpu_grpo_config  # noqa: E402

from adaptive_length_reward.adapters.trl import TRLReward, UncertaintyGRPOTrainer  # noqa: E402
from adaptive_length_reward.presets import pixelthink  # noqa: E402

torch.set_num_threads(1)
COLUMNS = ("uncertainty", "budget", "tier", "length")


def _rows(with_uncertainty: bool) -> list[dict[str, Any]]:
    rows = []
    for i, difficulty in enumerate([2.0, 4.0, 8.0, 9.0]):  # easy, medium (no budget), hard, hard
        row: dict[str, Any] = {
            "prompt": f"Question {i}: where is the red square?",
            "ground_truth": GROUND_TRUTH,
            "difficulty": difficulty,
        }
        if with_uncertainty:
            row["uncertainty"] = [0.2, 0.4, float("nan"), 0.8][i]  # NaN: no uncertainty for this sample
        rows.append(row)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("trainer_class", ["GRPOTrainer", "UncertaintyGRPOTrainer"])
def test_train_logs_every_column_and_only_finite_metrics(tmp_path: Any, trainer_class: str) -> None:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    plain = trainer_class == "GRPOTrainer"
    cls = trl.GRPOTrainer if plain else UncertaintyGRPOTrainer
    args = cpu_grpo_config(
        tmp_path,
        per_device_train_batch_size=8,
        num_generations=2,
        max_completion_length=16,
        max_steps=2,
        learning_rate=1e-4,
        logging_steps=1,
        seed=0,
    )
    trainer = cls(
        model=build_text_lm(tokenizer, logit_scale=20.0),
        args=args,
        processing_class=tokenizer,
        reward_funcs=TRLReward(pixelthink(missing_uncertainty=0.5)),
        train_dataset=Dataset.from_list(_rows(with_uncertainty=plain)),
    )
    trainer.train()

    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == 2
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    for entry in steps:
        for column in COLUMNS:
            assert f"pixelthink/{column}" in entry, column
        assert "rewards/pixelthink/mean" in entry
        assert ("uncertainty/mean" in entry) is not plain  # what the uncertainty trainer measured
    extra = trainer._logs["extra"]  # TRL's completions table: one value per completion, None where missing
    for column in COLUMNS:
        values = list(extra[f"pixelthink/{column}"])
        assert len(values) == 8 and all(v is None or math.isfinite(v) for v in values), (column, values)
    tiers = np.asarray(list(extra["pixelthink/tier"]), dtype=float)
    budgets = list(extra["pixelthink/budget"])
    assert {int(t) for t in tiers} == {0, 1, 2}
    assert all((b is None) == (t == 1) for b, t in zip(budgets, tiers))  # the medium tier has no budget
    if plain:  # the dataset's NaN uncertainty took the budget's missing_uncertainty (0.5): 256 + 25 * 0.5
        hard = [b for b, t in zip(budgets, tiers) if t == 2]
        assert sorted(set(hard)) == pytest.approx([256 + 25 * 0.5, 256 + 25 * 0.8])
