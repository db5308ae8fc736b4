"""TRL adapter: the reward-function wrapper against TRL's calling convention, and the uncertainty-aware
GRPOTrainer run for real (2 steps on CPU) with a tiny random Qwen2.5-VL and with a text-only policy."""

from __future__ import annotations

import asyncio
import math
import pickle
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

trl = pytest.importorskip("trl", reason="the TRL adapter needs the trl extra: pip install adaptive-length-reward[trl]")
torch = pytest.importorskip("torch", reason="the TRL adapter needs torch")

from adapter_fixtures import (  # noqa: E402
    GROUND_TRUTH,
    PERFECT_ANSWER,
    build_processor,
    build_text_lm,
    build_tokenizer,
    build_vlm,
    cpu_grpo_config,
    square_image,
)
from strategies import completions as completions_st  # noqa: E402
from strategies import difficulty_st, uncertainty_st  # noqa: E402

from adaptive_length_reward import (  # noqa: E402
    ConfigError,
    FixedBudget,
    KimiLengthReward,
    LinearSchedule,
    MissingContextError,
    Reward,
    RewardBatch,
    SoftLengthPenalty,
    TieredBudget,
    WeightedSum,
    WhitespaceWords,
    extract_reasoning,
)
from adaptive_length_reward.adapters.token_spans import reasoning_token_mask, token_pieces  # noqa: E402
from adaptive_length_reward.adapters.trl import (  # noqa: E402
    AsyncTRLReward,
    TRLReward,
    UncertaintyGRPOTrainer,
    check_trl_version,
)
from adaptive_length_reward.presets import pixelthink  # noqa: E402

torch.set_num_threads(1)


def _answer(words: int) -> str:
    """A PixelThink completion that earns all five accuracy terms, with ``words`` (>= 11) whitespace words."""
    text = "<think>" + " ".join(["w"] * (words - 10)) + "</think>" + PERFECT_ANSWER
    assert len(text.split()) == words
    return text


class NanForEmpty(Reward):
    """Test reward documented to return NaN for an empty completion (and 1.0 otherwise)."""

    may_return_nan = True

    @property
    def bounds(self) -> tuple[float, float]:
        return (1.0, 1.0)

    def _evaluate(self, batch: RewardBatch) -> np.ndarray:
        return np.array([np.nan if not text else 1.0 for text in batch.completions])


class RecordingTRLReward(TRLReward):
    """Keeps every batch TRL made it score (to assert on what the reward received)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[RewardBatch] = []

    def build_batch(self, *args: Any, **kwargs: Any) -> RewardBatch:
        batch = super().build_batch(*args, **kwargs)
        self.batches.append(batch)
        return batch


# ------------------------------------------------------------------------------------------------------------
# The reward function wrapper
# ------------------------------------------------------------------------------------------------------------


def test_standard_completions_with_difficulty_ground_truth_and_uncertainty_columns() -> None:
    reward = TRLReward(pixelthink())
    completions = [_answer(90), _answer(200), _answer(200), _answer(400)]
    difficulty = [2.0, 2.0, 4.0, 8.0]
    uncertainty = [0.0, 0.0, 0.0, 0.4]
    out = reward(
        prompts=["p"] * 4,
        completions=completions,
        completion_ids=[[1]] * 4,
        ground_truth=[GROUND_TRUTH] * 4,
        difficulty=difficulty,
        uncertainty=uncertainty,
    )
    lengths = [len(c.split()) for c in completions]
    budgets = [96.0, 96.0, math.inf, 256 + 25 * 0.4]  # easy, easy, medium (no penalty), hard (PixelThink tiers)
    expected = [5 * min(1.0, max(0.0, 1 - max(0.0, L - B) / 500)) for L, B in zip(lengths, budgets)]
    assert isinstance(out, list) and all(isinstance(v, float) for v in out)
    assert out == pytest.approx(expected, abs=1e-12)


def test_conversational_completions_read_reasoning_content_and_thinking() -> None:
    reward = TRLReward(
        SoftLengthPenalty(budget=FixedBudget(2), length=WhitespaceWords(span="reasoning")), group_by=None
    )
    completions = [
        [{"role": "assistant", "content": "<answer>x</answer>", "reasoning_content": "a b c d"}],
        [{"role": "assistant", "content": "<answer>x</answer>", "thinking": "a b"}],
        [{"role": "assistant", "content": "<think>a b c</think><answer>x</answer>"}],
    ]
    out = reward(prompts=[[{"role": "user", "content": "q"}]] * 3, completions=completions)
    assert out == pytest.approx([1 - 2 / 500, 1.0, 1 - 1 / 500])


def test_configurable_dataset_columns() -> None:
    reward = TRLReward(pixelthink(), difficulty_column="level", ground_truth_column="solution")
    completions = [_answer(200)]
    out = reward(prompts=["p"], completions=completions, solution=[GROUND_TRUTH], level=[2.0])
    assert out == pytest.approx([5 * (1 - (len(completions[0].split()) - 96) / 500)])
    with pytest.raises(MissingContextError, match="difficulty"):  # the default column is not read any more
        reward(prompts=["p"], completions=completions, solution=[GROUND_TRUTH], difficulty=[2.0])


def test_nan_reward_becomes_none_and_unknown_kwargs_are_ignored() -> None:
    reward = TRLReward(NanForEmpty())
    out = reward(
        prompts=["p", "p"],
        completions=["", "x"],
        environments=object(),
        wrong_length=[1, 2, 3],
        trainer_state=SimpleNamespace(global_step=3),
    )
    assert out == [None, 1.0]


def test_logs_components_and_per_sample_columns() -> None:
    extra: dict[str, list[Any]] = {}
    metrics: dict[str, float] = {}
    reward = TRLReward(pixelthink())
    completions = [_answer(90), _answer(300)]
    reward(
        prompts=["p", "p"],
        completions=completions,
        ground_truth=[GROUND_TRUTH] * 2,
        difficulty=[2.0, 4.0],
        log_extra=lambda c, v: extra.__setitem__(c, v),
        log_metric=lambda n, v: metrics.__setitem__(n, v),
    )
    lengths = [float(len(c.split())) for c in completions]
    assert extra["pixelthink/length"] == lengths
    assert extra["pixelthink/budget"] == [96.0, None]  # medium tier: no budget
    assert extra["pixelthink/difficulty"] == [2.0, 4.0]
    assert metrics["pixelthink/segmentation_accuracy"] == 5.0
    assert metrics["pixelthink/soft_length_penalty"] == pytest.approx(1.0)
    assert metrics["pixelthink/segmentation_accuracy/box_iou"] == 1.0
    assert metrics["pixelthink/length"] == pytest.approx(np.mean(lengths))
    assert metrics["pixelthink/budget"] == 96.0  # the mean over finite budgets
    assert extra["pixelthink/tier"] == [0.0, 1.0] and extra["pixelthink/uncertainty"] == [None, None]
    assert extra["pixelthink/segmentation_accuracy"] == [5.0, 5.0]
    quiet = TRLReward(pixelthink(), log_components=False, log_columns=False)
    calls: list[str] = []
    quiet(
        prompts=["p"],
        completions=completions[:1],
        ground_truth=[GROUND_TRUTH],
        difficulty=[2.0],
        log_extra=lambda c, v: calls.append(c),
        log_metric=lambda n, v: calls.append(n),
    )
    assert calls == []


def test_pixelthink_logs_uncertainty_budget_tier_and_length() -> None:
    extra: dict[str, list[Any]] = {}
    metrics: dict[str, float] = {}
    completions = [_answer(90), _answer(300), _answer(300)]
    TRLReward(pixelthink())(
        prompts=["p"] * 3,
        completions=completions,
        ground_truth=[GROUND_TRUTH] * 3,
        difficulty=[2.0, 4.0, 8.0],
        uncertainty=[0.2, 0.0, 0.4],
        log_extra=extra.__setitem__,
        log_metric=metrics.__setitem__,
    )
    assert extra["pixelthink/uncertainty"] == [0.2, 0.0, 0.4] and extra["pixelthink/tier"] == [0.0, 1.0, 2.0]
    assert extra["pixelthink/budget"] == [96.0, None, pytest.approx(266.0)]
    assert extra["pixelthink/length"] == [90.0, 300.0, 300.0]
    assert extra["pixelthink/over_budget"] == [0.0, 0.0, pytest.approx(300 - 266)]
    assert metrics["pixelthink/uncertainty"] == pytest.approx(0.2) and metrics["pixelthink/tier"] == 1.0
    assert metrics["pixelthink/budget"] == pytest.approx((96 + 266) / 2) and metrics["pixelthink/length"] == 230.0


def test_reward_wrapper_needs_neither_trl_nor_torch(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "sys.modules['trl'] = None\n"
        "sys.modules['torch'] = None\n"
        "from adaptive_length_reward.adapters import TRLReward\n"
        "from adaptive_length_reward import FixedBudget, SoftLengthPenalty\n"
        "reward = TRLReward(SoftLengthPenalty(budget=FixedBudget(2)))\n"
        "print(reward(prompts=['p', 'p'], completions=['a b', 'a b c'], completion_ids=[[1, 2], [1, 2, 3]]))\n"
        "try:\n"
        "    from adaptive_length_reward.adapters.trl import UncertaintyGRPOTrainer\n"
        "except ImportError as error:\n"
        "    print('trainer:', type(error).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.splitlines() == ["[1.0, 0.998]", "trainer: MissingExtraError"]


def test_group_ids_follow_consecutive_prompts() -> None:
    kimi = KimiLengthReward()
    reward = TRLReward(kimi)
    prompts = ["a", "a", "b", "b", "b"]
    completions = ["x " * n for n in (3, 9, 1, 4, 8)]
    correct = [1, 1, 1, 0, 1]
    out = reward(prompts=prompts, completions=completions, correct=correct)
    direct = kimi(completions=completions, correct=correct, group_ids=[0, 0, 1, 1, 1])
    assert out == pytest.approx(direct.tolist())
    by_column = TRLReward(kimi, group_by="prompt_id")(
        prompts=prompts, completions=completions, correct=correct, prompt_id=["a", "a", "b", "b", "b"]
    )
    assert by_column == pytest.approx(direct.tolist())
    with pytest.raises(MissingContextError, match="group_ids"):
        TRLReward(kimi, group_by=None)(prompts=prompts, completions=completions, correct=correct)


def test_prompt_groups_split_where_the_image_changes() -> None:
    # A VLM dataset often asks the same question about many images; TRL reloads the row per generation, so
    # equal images arrive as distinct objects. Groups must follow (prompt, image pixels), not the text alone.
    from PIL import Image

    def image(value: int) -> Image.Image:
        return Image.new("RGB", (8, 8), (value, 0, 0))

    kimi = KimiLengthReward()
    prompts = ["segment the red square"] * 6
    images = [image(10), image(10), image(10), image(200), image(200), image(200)]
    completions = ["x " * n for n in (3, 9, 5, 1, 4, 8)]
    correct = [1, 1, 1, 1, 0, 1]
    out = TRLReward(kimi)(prompts=prompts, completions=completions, correct=correct, image=images)
    assert out == pytest.approx(kimi(completions=completions, correct=correct, group_ids=[0, 0, 0, 1, 1, 1]).tolist())
    text_only = TRLReward(kimi)(prompts=prompts, completions=completions, correct=correct)
    assert text_only != pytest.approx(out)  # without the image column all six are one group
    as_lists = TRLReward(kimi)(
        prompts=prompts, completions=completions, correct=correct, images=[[np.asarray(i)] for i in images]
    )
    assert as_lists == pytest.approx(out)


def test_step_comes_from_trainer_state() -> None:
    schedule = LinearSchedule(start=0.0, end=1.0, end_step=10)
    reward = TRLReward(WeightedSum([SoftLengthPenalty(budget=FixedBudget(0))], [schedule]), group_by=None)
    out = [
        reward(prompts=["p"], completions=["a b c"], trainer_state=SimpleNamespace(global_step=s))[0]
        for s in (0, 5, 10)
    ]
    assert out == pytest.approx([0.0, 0.5 * (1 - 3 / 500), 1 - 3 / 500])


def test_pickle_round_trip_keeps_name_and_results() -> None:
    reward = TRLReward(pixelthink(), name="pixelthink_trl")
    clone = pickle.loads(pickle.dumps(reward))
    kwargs = dict(prompts=["p"], completions=[_answer(150)], ground_truth=[GROUND_TRUTH], difficulty=[2.0])
    assert clone.__name__ == reward.__name__ == "pixelthink_trl"
    assert clone(**kwargs) == reward(**kwargs)
    from trl.trainer.utils import get_callable_name, is_async_callable

    assert get_callable_name(reward) == "pixelthink_trl"
    assert get_callable_name(TRLReward(pixelthink())) == "pixelthink"
    assert not is_async_callable(reward)


def test_async_variant_matches_sync_and_is_seen_as_async_by_trl() -> None:
    from trl.trainer.utils import is_async_callable

    sync, async_ = TRLReward(pixelthink()), AsyncTRLReward(pixelthink())
    kwargs = dict(
        prompts=["p", "p"],
        completions=[_answer(150), _answer(11)],
        ground_truth=[GROUND_TRUTH] * 2,
        difficulty=[2.0, 9.0],
        uncertainty=[0.0, 0.5],
    )
    assert is_async_callable(async_)
    assert asyncio.run(async_(**kwargs)) == sync(**kwargs)
    assert pickle.loads(pickle.dumps(async_)).__name__ == "pixelthink"


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="reward: expected a Reward, got str"):
        TRLReward("pixelthink")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="TRLReward: name"):
        TRLReward(pixelthink(), name="a/b")
    with pytest.raises(ConfigError, match="TRLReward: difficulty_column"):
        TRLReward(pixelthink(), difficulty_column="")
    with pytest.raises(TypeError, match="completions: expected"):
        TRLReward(pixelthink())(prompts=["p"])


@given(st.lists(st.tuples(st.integers(0, 400), difficulty_st, uncertainty_st), min_size=1, max_size=8))
def test_wrapper_equals_the_reward_on_the_same_batch(rows: list[tuple[int, float, float]]) -> None:
    reward = pixelthink()
    completions = [_answer(n + 11) for n, _, _ in rows]
    difficulty = [d for _, d, _ in rows]
    uncertainty = [u for _, _, u in rows]
    out = TRLReward(reward)(
        prompts=["p"] * len(rows),
        completions=completions,
        ground_truth=[GROUND_TRUTH] * len(rows),
        difficulty=difficulty,
        uncertainty=uncertainty,
    )
    direct = reward(
        completions=completions, ground_truth=[GROUND_TRUTH] * len(rows), difficulty=difficulty, uncertainty=uncertainty
    )
    assert out == direct.tolist()


def test_version_guard_refuses_untested_versions() -> None:
    assert check_trl_version() == trl.__version__
    for version in ("2.0.0", "0.19.1", "1.15.0"):
        escaped = version.replace(".", r"\.")
        with pytest.raises(RuntimeError, match=r"tested with trl >=1.16,<2 .* found trl " + escaped):
            check_trl_version(version)
    check_trl_version("1.17.0.dev0")


# ------------------------------------------------------------------------------------------------------------
# The uncertainty-aware GRPOTrainer
# ------------------------------------------------------------------------------------------------------------


def _grpo_args(tmp_path: Any, **overrides: Any) -> Any:
    values: dict[str, Any] = dict(
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=24,
        max_steps=2,
        learning_rate=1e-4,
        logging_steps=1,
        seed=0,
    )
    values.update(overrides)
    return cpu_grpo_config(tmp_path, **values)


def _vlm_rows() -> list[dict[str, Any]]:
    rows = []
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        rows.append(
            {
                "image": square_image(colour, i),
                "prompt": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": f"Find the {colour} square."}],
                    }
                ],
                "ground_truth": GROUND_TRUTH,
                "difficulty": 8.0,  # hard tier: the budget is 256 + 25 U, so it shows the uncertainty arrived
            }
        )
    return rows


@pytest.mark.slow
def test_grpo_vlm_pixelthink_two_steps_hands_uncertainty_to_the_reward(tmp_path: Any) -> None:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    processor, model = build_processor(tokenizer), build_vlm(tokenizer, logit_scale=20.0)
    reward = RecordingTRLReward(pixelthink())
    trainer = UncertaintyGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=_grpo_args(tmp_path),
        train_dataset=Dataset.from_list(_vlm_rows()),
        processing_class=processor,
        uncertainty_batch_size=3,
    )
    trainer.train()

    assert len(reward.batches) == 2  # one generation batch per step
    for batch in reward.batches:
        u = np.asarray(batch.uncertainty)
        assert u.shape == (4,) and ((u >= 0) & (u <= 1)).all()
        assert np.unique(np.round(u, 6)).size == 4, f"uncertainties do not differ across samples: {u}"
        assert batch.token_ids is not None and batch.ground_truth == (GROUND_TRUTH,) * 4
    logged = trainer.state.log_history
    step_logs = [entry for entry in logged if "pixelthink/soft_length_penalty" in entry]
    assert len(step_logs) == 2
    for entry in step_logs:
        for key in (
            "pixelthink/segmentation_accuracy",
            "pixelthink/segmentation_accuracy/thinking_format",
            "pixelthink/uncertainty",
            "pixelthink/length",
            "pixelthink/budget",
            "pixelthink/tier",
            "uncertainty/mean",
            "rewards/pixelthink/mean",
        ):
            assert key in entry, key
    last = reward.batches[-1]
    extra = trainer._logs["extra"]
    assert list(extra["pixelthink/uncertainty"]) == pytest.approx(np.asarray(last.uncertainty).tolist())
    assert list(extra["pixelthink/budget"]) == pytest.approx((256 + 25 * np.asarray(last.uncertainty)).tolist())
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "pixelthink" and len(clone.batches) == 2


def _reference_uncertainty(model: Any, input_ids: Any, prompt_length: int, measure: str, **vision: Any) -> float:
    """Per-sample, unpadded: softmax over the completion positions, then PixelThink's mean (naive maths)."""
    with torch.no_grad():
        logits = model(input_ids=input_ids[None], attention_mask=torch.ones_like(input_ids)[None], **vision).logits[0]
    predicting = logits[prompt_length - 1 : -1].double()
    p = torch.softmax(predicting, dim=-1)
    if measure == "margin":
        top = p.topk(2, dim=-1).values
        per_token = 1 - (top[:, 0] - top[:, 1])
    elif measure == "entropy":
        per_token = -(p * p.log()).sum(-1) / math.log(p.shape[-1])
    else:
        per_token = 1 - p.gather(1, input_ids[prompt_length:, None]).squeeze(1)
    return float(per_token.mean())


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["margin", "entropy", "nll"])
def test_forward_pass_matches_a_per_sample_reference_with_images(tmp_path: Any, measure: str) -> None:
    from datasets import Dataset
    from trl.data_utils import prepare_multimodal_messages

    tokenizer = build_tokenizer()
    processor, model = build_processor(tokenizer), build_vlm(tokenizer, logit_scale=20.0)
    trainer = UncertaintyGRPOTrainer(
        model=model,
        reward_funcs=TRLReward(pixelthink()),
        args=_grpo_args(tmp_path),
        train_dataset=Dataset.from_list(_vlm_rows()),
        processing_class=processor,
        uncertainty_batch_size=2,
        uncertainty_measure=measure,
        uncertainty_temperature=1.0,
    )
    texts = ["Find it.", "Find the red square and output its bounding box.", "What colour is the square?"]
    images = [[square_image("red")], [square_image("blue", 5)], [square_image("green", 9)]]
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}] for t in texts]
    prompts = [prepare_multimodal_messages(m, images=im) for m, im in zip(messages, images)]
    prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
    completions = [
        tokenizer.encode(t, add_special_tokens=False) for t in ("<think> left </think>", PERFECT_ANSWER, "box")
    ]
    ours = trainer._uncertainty_from_forward(prompt_ids, completions, None, images)

    for i, image in enumerate(images):
        chat = processor.apply_chat_template(messages[i], add_generation_prompt=True, tokenize=False)
        single = processor(text=[chat], images=image, return_tensors="pt")
        assert single["input_ids"][0].tolist() == list(prompt_ids[i])
        ids = torch.cat([single["input_ids"][0], torch.tensor(completions[i])])
        # Qwen2.5-VL places image tokens in its 3-D rope by mm_token_type_ids: 1 on image tokens, 0 elsewhere.
        types = torch.cat([single["mm_token_type_ids"][0], torch.zeros(len(completions[i]), dtype=torch.long)])
        expected = _reference_uncertainty(
            model,
            ids,
            len(prompt_ids[i]),
            measure,
            pixel_values=single["pixel_values"],
            image_grid_thw=single["image_grid_thw"],
            mm_token_type_ids=types[None],
        )
        assert ours[i] == pytest.approx(expected, abs=2e-5), (i, ours, expected)
    assert len(set(np.round(ours, 6))) == 3


@pytest.mark.slow
def test_grpo_text_policy_two_steps_with_entropy(tmp_path: Any) -> None:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    rows = [
        {"prompt": f"Question {i}: what colour is the square?", "difficulty": d}
        for i, d in enumerate([2.0, 4.0, 6.0, 9.0])
    ]
    reward = RecordingTRLReward(SoftLengthPenalty(budget=TieredBudget()))
    trainer = UncertaintyGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=_grpo_args(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        uncertainty_measure="entropy",
    )
    trainer.train()
    assert len(reward.batches) == 2
    for batch in reward.batches:
        assert isinstance(batch.completions[0], str) and batch.reasoning is None
        u = np.asarray(batch.uncertainty)
        assert ((u >= 0) & (u <= 1)).all() and np.unique(np.round(u, 6)).size == 4
    assert any("soft_length_penalty/uncertainty" in entry for entry in trainer.state.log_history)
    budgets = list(trainer._logs["extra"]["soft_length_penalty/budget"])
    last = reward.batches[-1]
    for budget, d, u in zip(budgets, last.difficulty, last.uncertainty):
        expected = 96.0 if d < 3.5 else (None if d < 5.0 else 256 + 25 * u)
        assert budget == (pytest.approx(expected) if expected is not None else None)


def _rollout_func(tokenizer: Any, produced: list[list[float]]) -> Any:
    """A ``rollout_func`` sampling with ``generate`` and returning the sampled tokens' log-probs."""

    def rollout(prompts: list[str], trainer: Any) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for prompt in prompts:
            ids = tokenizer(prompt)["input_ids"]
            with torch.no_grad():
                gen = trainer.model.generate(
                    torch.tensor([ids]),
                    max_new_tokens=8,
                    do_sample=True,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            new = gen.sequences[0, len(ids) :].tolist()
            logps = [float(torch.log_softmax(score[0].double(), -1)[t]) for score, t in zip(gen.scores, new)]
            out["prompt_ids"].append(ids)
            out["completion_ids"].append(new)
            out["logprobs"].append(logps)
            produced.append(logps)
        return out

    return rollout


@pytest.mark.slow
def test_rollout_logprobs_give_the_nll_measure_and_never_silently_the_margin(tmp_path: Any) -> None:
    """A ``rollout_func`` returning only sampled-token log-probs: ``measure="nll"`` reads them (U = mean(1 - p_y), no
    forward pass); the default ``measure="margin"`` raises naming the fixes instead of switching measure."""
    from datasets import Dataset

    tokenizer = build_tokenizer()
    produced: list[list[float]] = []
    rows = [{"prompt": f"Question {i}?", "difficulty": 8.0} for i in range(4)]
    reward = RecordingTRLReward(SoftLengthPenalty(budget=TieredBudget()))
    trainer = UncertaintyGRPOTrainer(
        model=build_text_lm(tokenizer, logit_scale=20.0),
        reward_funcs=reward,
        args=_grpo_args(tmp_path, max_steps=1),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=_rollout_func(tokenizer, produced),
        uncertainty_measure="nll",
    )
    trainer.train()
    expected = [float(np.mean(1 - np.exp(lp))) for lp in produced]
    assert np.asarray(reward.batches[0].uncertainty) == pytest.approx(expected, abs=1e-9)
    margin = UncertaintyGRPOTrainer(
        model=build_text_lm(tokenizer),
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=_grpo_args(tmp_path, max_steps=1),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=_rollout_func(tokenizer, []),
    )
    with pytest.raises(
        ValueError,
        match=r"with a rollout_func, expected it to return the 'uncertainty' field .*"
        r"uncertainty_source='forward', or uncertainty_measure='nll'",
    ):
        margin.train()


def test_logprobs_source_without_logprobs_is_a_clear_error(tmp_path: Any) -> None:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    trainer = UncertaintyGRPOTrainer(
        model=build_text_lm(tokenizer),
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=_grpo_args(tmp_path, max_steps=1),
        train_dataset=Dataset.from_list([{"prompt": "q", "difficulty": 2.0}] * 4),
        processing_class=tokenizer,
        uncertainty_source="logprobs",
        uncertainty_measure="nll",
    )
    with pytest.raises(ValueError, match="uncertainty_source: expected 'forward' or 'sampling'"):
        trainer.train()
    with pytest.raises(ConfigError, match="UncertaintyTrainerConfig: uncertainty_measure: expected 'margin'"):
        UncertaintyGRPOTrainer(
            model=build_text_lm(tokenizer),
            reward_funcs=TRLReward(SoftLengthPenalty()),
            args=_grpo_args(tmp_path),
            processing_class=tokenizer,
            train_dataset=Dataset.from_list([{"prompt": "q"}] * 4),
            uncertainty_measure="gap",
        )


@pytest.mark.slow
@pytest.mark.parametrize("source", ["sampling", "forward"])
def test_empty_reasoning_span_gives_nan_for_the_budget_rule_or_an_error(tmp_path: Any, source: str) -> None:
    """Completions without reasoning tags under ``uncertainty_span="reasoning"``: NaN (never a silent 0), which the
    budget's ``missing_uncertainty`` rule then handles; or an error with ``uncertainty_empty_span="error"``."""
    from datasets import Dataset

    tokenizer = build_tokenizer()
    rows = [{"prompt": f"Question {i}?", "difficulty": 8.0} for i in range(4)]

    def trainer(budget: TieredBudget, **kwargs: Any) -> Any:
        reward = RecordingTRLReward(SoftLengthPenalty(budget=budget))
        return reward, UncertaintyGRPOTrainer(
            model=build_text_lm(tokenizer, logit_scale=20.0),
            reward_funcs=reward,
            args=_grpo_args(tmp_path, max_steps=1),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            uncertainty_span="reasoning",
            uncertainty_source=source,
            **kwargs,
        )

    reward, fallback = trainer(TieredBudget(missing_uncertainty=0.5))
    fallback.train()  # the random policy writes no <think> tags
    assert np.isnan(np.asarray(reward.batches[0].uncertainty)).all()
    assert list(fallback._logs["extra"]["soft_length_penalty/budget"]) == pytest.approx([256 + 25 * 0.5] * 4)
    assert not any("uncertainty/mean" in entry for entry in fallback.state.log_history)  # nothing finite to log
    with pytest.raises(MissingContextError, match="uncertainty.*missing_uncertainty"):
        trainer(TieredBudget())[1].train()  # the budget's default rule: an error naming the fix
    with pytest.raises(ValueError, match=r"completions \[0, 1, 2, 3\] have no token to measure"):
        trainer(TieredBudget(missing_uncertainty=0.5), uncertainty_empty_span="error")[1].train()


# ------------------------------------------------------------------------------------------------------------
# Reasoning spans on decoded tokens
# ------------------------------------------------------------------------------------------------------------


def test_reasoning_mask_finds_tags_that_bpe_merges_with_their_neighbours() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.encode("<think> a b </think><answer>x</answer>", add_special_tokens=False)
    pieces = token_pieces(ids, tokenizer)
    standalone = tokenizer.encode("</think>", add_special_tokens=False)
    assert not any(ids[i : i + len(standalone)] == standalone for i in range(len(ids)))  # id matching would miss it
    mask = reasoning_token_mask(ids, tokenizer)
    covered = "".join(p for p, m in zip(pieces, mask) if m)
    # the span " a b " plus the "</" that BPE fused with its last space: a token counts when it overlaps the span
    assert covered.startswith(" a b ") and "think" not in covered and "answer" not in covered
    assert reasoning_token_mask([], tokenizer).shape == (0,)


@given(completions_st())
def test_reasoning_mask_covers_the_reasoning_and_at_most_its_edge_tokens_more(text: str) -> None:
    assume(not any(0xD800 <= ord(c) <= 0xDFFF for c in text))  # lone surrogates are not decodable model output
    tokenizer = build_tokenizer()
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = token_pieces(ids, tokenizer)
    joined = "".join(pieces)
    mask = reasoning_token_mask(ids, tokenizer)
    covered = "".join(p for p, m in zip(pieces, mask) if m)
    reasoning = extract_reasoning(joined)
    assert reasoning in covered  # every character of the span is in a kept token ...
    if mask.any():  # ... and kept tokens are contiguous and reach into the span from both ends
        kept = np.flatnonzero(mask)
        assert (np.diff(kept) == 1).all()
        assert len(covered) - len(reasoning) <= len(pieces[kept[0]]) + len(pieces[kept[-1]])


@pytest.mark.slow
def test_reasoning_span_uncertainty_uses_only_the_reasoning_tokens(tmp_path: Any) -> None:
    from datasets import Dataset

    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, logit_scale=20.0)
    trainer = UncertaintyGRPOTrainer(
        model=model,
        reward_funcs=TRLReward(SoftLengthPenalty()),
        args=_grpo_args(tmp_path),
        processing_class=tokenizer,
        train_dataset=Dataset.from_list([{"prompt": "q"}] * 4),
        uncertainty_span="reasoning",
        uncertainty_temperature=1.0,
    )
    prompt = tokenizer("Find the red square.")["input_ids"]
    texts = ["<think> the red square is left </think>" + PERFECT_ANSWER, "no tags here"]
    completions = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    ours = trainer._uncertainty_from_forward([prompt, prompt], completions, None, None)
    ids = torch.tensor(prompt + completions[0])
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0, len(prompt) - 1 : -1].double()
    p = torch.softmax(logits, -1).topk(2, -1).values
    per_token = (1 - (p[:, 0] - p[:, 1])).numpy()
    span = reasoning_token_mask(completions[0], tokenizer)
    assert 0 < span.sum() < len(span)
    assert ours[0] == pytest.approx(per_token[span].mean(), abs=2e-5)
    assert np.isnan(ours[1])  # no reasoning span: NaN, for the budget's missing_uncertainty rule


def test_docs_snippet_runs() -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "trl.md").read_text()
    block = re.search(r"## Snippet\n\nHow TRL calls the reward \(runs as is\):\n\n```python\n(.*?)```", page, re.S)
    printed: list[tuple[Any, ...]] = []
    exec(compile(block.group(1), "docs/trl.md", "exec"), {"print": lambda *a: printed.append(a)})  # type: ignore[union-attr]
    assert printed[-1] == ([5.0, 2.5],)
    assert ("pixelthink/soft_length_penalty", 0.75) in printed
