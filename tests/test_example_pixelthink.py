"""The worked example (examples/pixelthink_grpo.py and examples/pixelthink/): data, loaders, models, rewards,
evaluation, and its main path end to end with the smallest settings (1 GRPO step, 2 evaluation samples).

Everything is real: tiny random-weight Qwen2.5-VL / SAM / SAM2 built from configs, TRL's GRPOTrainer, datasets
written to disk by the tests, and a judge served over HTTP on 127.0.0.1. One test double: :class:`BoxSegmenter`
(a segmenter that fills the prompt box), because a real SAM with known outputs cannot be trained here and the
IoU bookkeeping needs exact expected values.
"""

from __future__ import annotations

import doctest
import json
import math
import platform
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from example_fixtures import SMALLEST, BoxSegmenter  # noqa: E402
from pixelthink import prompts, scenes, sources  # noqa: E402
from pixelthink.rewards import LENGTH_REWARDS, RewardSettings, build_reward, reference_penalty  # noqa: E402
from pixelthink.scenes import SceneGenerator, SegSample  # noqa: E402

from adaptive_length_reward import RewardBatch  # noqa: E402
from adaptive_length_reward.presets import pixelthink  # noqa: E402
from adaptive_length_reward.segmentation import parse_ground_truth  # noqa: E402

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------------------
# The procedural dataset
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_samples() -> list[SegSample]:
    return SceneGenerator(seed=3, image_size=256).samples(40)


def test_generator_is_deterministic_and_seeded() -> None:
    a, b = SceneGenerator(seed=5, image_size=200).sample(7), SceneGenerator(seed=5, image_size=200).sample(7)
    assert a.query == b.query and a.bbox == b.bbox and a.points == b.points and a.difficulty == b.difficulty
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and np.array_equal(a.mask, b.mask)
    assert SceneGenerator(seed=5, image_size=200).samples(3, start=6)[1].query == a.query  # index, not order
    others = SceneGenerator(seed=6, image_size=200).samples(8)
    assert any(not np.array_equal(np.asarray(o.image), np.asarray(a.image)) for o in others)


def test_mask_box_and_points_are_consistent(scene_samples: list[SegSample]) -> None:
    for s in scene_samples:
        ys, xs = np.nonzero(s.mask)
        assert s.bbox == (xs.min(), ys.min(), xs.max(), ys.max())
        for x, y in s.points:
            assert s.mask[y, x], (s.id, s.points)
        assert s.points[0] != s.points[1]
        assert parse_ground_truth(s.solution) == parse_ground_truth(
            {"bbox": list(s.bbox), "points": [list(p) for p in s.points]}
        )
        # the target's pixels in the image have the target's colour
        colour = scenes.COLOURS[s.meta["objects"][s.meta["target"]]["colour"]]
        assert (np.asarray(s.image)[s.mask] == colour).all()


def _matching(objects: list[dict[str, Any]], expression: str) -> list[int]:
    """Indices of the objects an expression describes, read independently of the generator's own logic."""
    colours, sizes, kinds = "|".join(scenes.COLOURS), "|".join(scenes.SIZES), "|".join(scenes.SHAPES)
    noun = rf"the (?:(?P<{{p}}size>{sizes}) )?(?:(?P<{{p}}colour>{colours}) )?(?P<{{p}}kind>{kinds}|shape)"

    def select(match: re.Match[str], p: str) -> list[int]:
        keep = []
        for i, o in enumerate(objects):
            if all(
                match.group(p + a) in (None, "shape") or o[a] == match.group(p + a) for a in ("size", "colour")
            ) and match.group(p + "kind") in ("shape", o["kind"]):
                keep.append(i)
        return keep

    def extent(o: dict[str, Any]) -> tuple[float, float, float, float]:
        return (o["cx"] - o["r"], o["cy"] - o["r"], o["cx"] + o["r"], o["cy"] + o["r"])

    superlative = re.fullmatch(rf"the (leftmost|rightmost|topmost|bottommost) ({colours}) ({kinds})", expression)
    if superlative:
        word, colour, kind = superlative.groups()
        group = [i for i, o in enumerate(objects) if o["colour"] == colour and o["kind"] == kind]
        key = {
            "leftmost": lambda i: objects[i]["cx"],
            "rightmost": lambda i: -objects[i]["cx"],
            "topmost": lambda i: objects[i]["cy"],
            "bottommost": lambda i: -objects[i]["cy"],
        }[word]
        best = min(key(i) for i in group)
        return [i for i in group if key(i) == best]
    relation = re.fullmatch(
        noun.format(p="t") + r" (?P<relation>to the left of|to the right of|above|below) " + noun.format(p="a"),
        expression,
    )
    if relation:
        anchors = select(relation, "a")
        assert len(anchors) == 1, expression  # the anchor is named uniquely
        a = extent(objects[anchors[0]])
        test = {
            "to the left of": lambda e: e[2] < a[0],
            "to the right of": lambda e: e[0] > a[2],
            "above": lambda e: e[3] < a[1],
            "below": lambda e: e[1] > a[3],
        }[relation.group("relation")]
        return [i for i in select(relation, "t") if test(extent(objects[i]))]
    plain = re.fullmatch(noun.format(p="t"), expression)
    assert plain, expression
    return select(plain, "t")


def test_every_expression_names_exactly_its_target() -> None:
    samples = SceneGenerator(seed=11, image_size=300).samples(60)
    levels = set()
    for s in samples:
        assert _matching(s.meta["objects"], s.query) == [s.meta["target"]], (s.query, s.meta["objects"])
        levels.add(s.meta["level"])
    assert {1, 2, 4, 5} <= levels  # attributes, superlatives and relations all occur


def test_difficulty_spans_the_three_pixelthink_tiers(scene_samples: list[SegSample]) -> None:
    d = np.array([s.difficulty for s in scene_samples])
    assert ((d >= 1) & (d <= 10)).all()
    assert (d < 3.5).any() and ((d >= 3.5) & (d < 5)).any() and (d >= 5).any()
    by_level = {s.meta["level"]: s.difficulty for s in scene_samples}
    assert by_level[5] >= 5.0 > by_level[1]
    assert scenes.scene_difficulty(5, 12, True) == 8.0 and scenes.scene_difficulty(1, 2, False) == 1.0


def _brute_distance(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    by, bx = np.nonzero(~padded)
    out = np.zeros(mask.shape)
    for y, x in zip(*np.nonzero(mask)):
        out[y, x] = np.sqrt(((by - (y + 1)) ** 2 + (bx - (x + 1)) ** 2).min())
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=9, max_size=9), min_size=7, max_size=7))
def test_distance_transform_is_exact(rows: list[list[bool]]) -> None:
    mask = np.array(rows, dtype=bool)
    np.testing.assert_allclose(scenes.distance_to_background(mask), _brute_distance(mask))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), st.integers(0, 20), st.integers(0, 20))
def test_inscribed_points_lie_inside_and_the_first_is_a_deepest_pixel(w: int, h: int, x0: int, y0: int) -> None:
    mask = np.zeros((64, 64), dtype=bool)
    mask[y0 : y0 + h, x0 : x0 + w] = True
    (x1, y1), (x2, y2) = scenes.inscribed_circle_points(mask)
    assert mask[y1, x1] and mask[y2, x2]
    d = scenes.distance_to_background(mask)
    assert d[y1, x1] == d.max()
    if w >= 4 * h or h >= 4 * w:  # elongated: two disjoint circles of the same size fit
        assert math.hypot(x2 - x1, y2 - y1) >= d[y1, x1] + d[y2, x2]


def test_inscribed_points_of_a_disc_are_the_centre_and_half_way_to_the_rim() -> None:
    image = Image.new("1", (101, 101), 0)
    ImageDraw.Draw(image).ellipse([10, 10, 90, 90], fill=1)
    (x1, y1), (x2, y2) = scenes.inscribed_circle_points(np.asarray(image))
    assert abs(x1 - 50) <= 1 and abs(y1 - 50) <= 1
    assert 17 <= math.hypot(x2 - x1, y2 - y1) <= 23  # radius 40: R/2 = 20


def test_generator_and_geometry_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed: expected a non-negative int"):
        SceneGenerator(seed=-1)
    with pytest.raises(ValueError, match="expression_mix"):
        SceneGenerator(expression_mix=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="non-empty 2-D mask"):
        scenes.mask_box(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="non-empty 2-D mask"):
        scenes.inscribed_circle_points(np.zeros((4, 4), bool))


@pytest.mark.parametrize("module", [scenes, prompts, sources], ids=lambda m: m.__name__)
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_prompt_is_seg_zeros() -> None:
    text = prompts.question_text("The Blue Circle.")
    assert text.startswith("Please find 'the blue circle' with bbox and points.")
    assert text.endswith("<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>")
    message = prompts.conversation("x")[0]
    assert message["role"] == "user" and message["content"][0] == {"type": "image"}


# ------------------------------------------------------------------------------------------------------------
# Loaders (tiny files written here)
# ------------------------------------------------------------------------------------------------------------


def _rgb(size: tuple[int, int], colour: tuple[int, int, int] = (200, 200, 200)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_refcocog_saved_dataset_with_the_official_difficulty_table(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "id": ["a", "b"],
        "problem": ["the man on the left.", "a red cup"],
        "solution": [
            "<box>(10,20),(300,400)</box><points>(100,200),(150,250)</points>",
            "<box>(0,0),(9,9)</box><points>(1,1),(5,5)</points>",
        ],
        "image": [_rgb((840, 840)), _rgb((840, 840))],
        "img_height": [840, 840],
        "img_width": [840, 840],
    }
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "refcocog"))
    table = tmp_path / "refcoco_train_labeled_merged.json"
    table.write_text(json.dumps([{"image_id": "a", "difficulty_score_model": 6.5}]))
    samples = sources.load_saved_dataset(tmp_path / "refcocog", difficulty_table=table)
    assert [s.id for s in samples] == ["a", "b"]
    assert samples[0].bbox == (10, 20, 300, 400) and samples[0].points == ((100, 200), (150, 250))
    assert samples[0].difficulty == 6.5 and math.isnan(samples[1].difficulty)  # not in the table: the flag decides
    assert samples[0].mask is None and samples[0].solution == rows["solution"][0]
    assert len(sources.load_saved_dataset(tmp_path / "refcocog", limit=1)) == 1
    with pytest.raises(sources.DatasetFormatError, match="split: expected one of"):
        sources.load_saved_dataset(tmp_path / "refcocog", split="validation")


def test_reasonseg_saved_dataset_gets_its_target_from_the_mask(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:30, 20:60] = True
    rows = {
        "image": [_rgb((80, 60))],
        "text": ["the thing"],
        "mask": [mask.tolist()],
        "image_id": ["img1"],
        "ann_id": ["7"],
        "img_height": [60],
        "img_width": [80],
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "reasonseg"))
    (sample,) = sources.load_saved_dataset(tmp_path / "reasonseg", frame=840)
    assert sample.id == "img1-7" and np.array_equal(sample.mask, mask)
    x1, y1, x2, y2 = sample.bbox  # the mask's extent in the 840 x 840 frame
    assert (x1, y1, x2, y2) == (210, 140, 629, 419)
    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(sources.DatasetFormatError, match="expected RefCOCOg-9k columns"):
        sources.load_saved_dataset(tmp_path / "other")


def _lisa_pair(folder: Path, name: str, shapes: list[dict[str, Any]], text: Any, **extra: Any) -> None:
    _rgb((50, 40)).save(folder / f"{name}.jpg")
    (folder / f"{name}.json").write_text(json.dumps({"text": text, "is_sentence": True, "shapes": shapes, **extra}))


def test_lisa_reasonseg_folder(tmp_path: Path) -> None:
    target = {"label": "target", "points": [[5, 5], [30, 5], [30, 20], [5, 20]], "shape_type": "polygon"}
    ignore = {"label": "ignore", "points": [[10, 10], [15, 10], [15, 15], [10, 15]]}
    flag = {"label": "flag", "points": [[0, 0], [49, 0], [49, 39]]}
    _lisa_pair(tmp_path, "b", [target, ignore, flag], ["what holds the water?", "the cup"], difficulty=4.0)
    _lisa_pair(tmp_path, "a", [target], "the box")
    samples = sources.load_reasonseg(tmp_path)
    assert [s.id for s in samples] == ["a", "b"] and samples[1].query == "what holds the water?"
    b = samples[1]
    assert b.difficulty == 4.0 and math.isnan(samples[0].difficulty)
    assert b.mask[5, 5] and b.mask[20, 30] and not b.mask[4, 5]
    assert b.ignore is not None and b.ignore[12, 12] and not b.mask[12, 12]  # smaller shape painted last wins
    assert int(b.mask.sum() + b.ignore.sum()) == 26 * 16
    assert len(sources.load_reasonseg(tmp_path, all_queries=True)) == 3
    (tmp_path / "c.json").write_text(json.dumps({"text": "x"}))
    with pytest.raises(sources.DatasetFormatError, match="c.json: expected an object with 'text' and 'shapes'"):
        sources.load_reasonseg(tmp_path)


def test_reasonseg_diff_manifest(tmp_path: Path) -> None:
    _rgb((40, 30)).save(tmp_path / "img.png")
    mask = Image.new("L", (40, 30), 0)
    ImageDraw.Draw(mask).rectangle([4, 6, 20, 16], fill=255)
    mask.save(tmp_path / "img_mask.png")
    records = [
        {
            "id": "s1",
            "image": "img.png",
            "query": "the left part",
            "mask": "img_mask.png",
            "difficulty": 7.0,
            "reasoning_short": "short",
            "reasoning_long": "a long chain",
        },
        {"image": "img.png", "text": "the top", "polygon": [[0, 0], [10, 0], [10, 5], [0, 5]]},
    ]
    (tmp_path / "val.json").write_text(json.dumps({"samples": records}))
    first, second = sources.load_reasonseg(tmp_path / "val.json", frame=40)
    assert first.id == "s1" and first.difficulty == 7.0 and first.reasoning == "short"
    assert first.reasoning_long == "a long chain" and first.bbox[:2] == (4, 8)  # y scaled by 40 / 30
    assert second.id == "img" and second.mask[0, 0] and second.query == "the top"
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "img.png", "query": "q"}]))
    with pytest.raises(sources.DatasetFormatError, match=r"bad.json\[0\]: expected the target as"):
        sources.load_reasonseg(tmp_path / "bad.json")
    (tmp_path / "gone.json").write_text(json.dumps([{"image": "missing.png", "query": "q"}]))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        sources.load_reasonseg(tmp_path / "gone.json")
    (tmp_path / "score.json").write_text(json.dumps([{**records[1], "difficulty": 12}]))
    with pytest.raises(sources.DatasetFormatError, match=r"difficulty in \[1, 10\], got 12.0"):
        sources.load_reasonseg(tmp_path / "score.json")


# ------------------------------------------------------------------------------------------------------------
# Rewards for every ablation
# ------------------------------------------------------------------------------------------------------------


def _answer_batch(words: int, difficulty: list[float]) -> RewardBatch:
    answer = '<answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    text = "<think>" + "w " * words + "</think>" + answer
    gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    n = len(difficulty)
    return RewardBatch.from_completions(
        [text] * n,
        ground_truth=[gt] * n,
        difficulty=difficulty,
        uncertainty=[0.5] * n,
        group_ids=[i // 2 for i in range(n)],
        token_ids=[list(range(words + 12))] * n,
        mask_area_ratio=[0.1] * n,
        query=["the red cup"] * n,
        id=[str(i // 2) for i in range(n)],
    )


def test_official_settings_use_the_preset_itself() -> None:
    reward = build_reward(RewardSettings(), tokenizer=None)
    expected = pixelthink(missing_difficulty=3.0, missing_uncertainty="error")
    assert reward.to_config() == expected.to_config()
    batch = _answer_batch(335, [2.0, 4.0, 7.0])  # 346 words; U = 0.5, so the hard budget is 256 + 12.5
    np.testing.assert_allclose(reward(batch), [5 * (1 - 250 / 500), 5.0, 5 * (1 - (346 - 268.5) / 500)])


def test_demo_budgets_follow_the_flags() -> None:
    settings = RewardSettings(easy_budget=40, hard_budget=80, uncertainty_scale=10, beta=1 / 60)
    reward = build_reward(settings, tokenizer=None)
    batch = _answer_batch(59, [2.0, 4.0, 7.0])  # 70 words: 30 over the easy budget (score 0.5), no medium budget
    np.testing.assert_allclose(reward(batch), [2.5, 5.0, 5.0])
    penalty = reference_penalty(settings, tokenizer=None).evaluate(batch)
    np.testing.assert_allclose(penalty.columns["budget"], [40, math.inf, 85])


@pytest.mark.parametrize("length_reward", LENGTH_REWARDS)
@pytest.mark.parametrize("difficulty", ["dataset", "heuristic", "online"])
def test_every_ablation_builds_and_scores(length_reward: str, difficulty: str) -> None:
    settings = RewardSettings(
        length_reward=length_reward, difficulty=difficulty, uncertainty="none", max_completion_length=300
    )
    reward = build_reward(settings, tokenizer=None)
    out = reward.evaluate(_answer_batch(30, [2.0, 2.0, 7.0, 7.0]))
    assert out.rewards.shape == (4,) and np.isfinite(out.rewards).all()
    assert out.rewards.max() <= 5.0 + settings.length_weight
    if length_reward == "none":
        assert out.rewards.tolist() == [5.0] * 4


def test_reward_settings_reject_unknown_choices() -> None:
    with pytest.raises(ValueError, match="length_reward: expected one of"):
        RewardSettings(length_reward="l2")
    with pytest.raises(ValueError, match="beta: expected a number > 0"):
        RewardSettings(beta=0.0)


# ------------------------------------------------------------------------------------------------------------
# Models and evaluation
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sam", "sam2"])
def test_tiny_segmenters_return_a_mask_of_the_image(kind: str) -> None:
    from pixelthink.models import build_tiny_segmenter

    segmenter = build_tiny_segmenter(kind)
    mask = segmenter.predict(_rgb((90, 70)), (10, 10, 50, 40), ((20, 20), (30, 30)))
    assert mask.shape == (70, 90) and mask.dtype == np.bool_


@pytest.mark.slow
def test_local_checkpoints_load_and_run(tmp_path: Path) -> None:
    """The non-tiny path: a policy and segmenters saved to disk load from their directories and run."""
    from pixelthink.models import build_tiny_policy, build_tiny_segmenter, load_policy, load_segmenter

    tiny = build_tiny_policy(prompts.QUESTION_TEMPLATE)
    tiny.model.save_pretrained(tmp_path / "policy")
    tiny.processor.save_pretrained(tmp_path / "policy")
    policy = load_policy(tmp_path / "policy")
    assert policy.tokenizer.encode("</think>") == tiny.tokenizer.encode("</think>")
    text = policy.processor.apply_chat_template(
        prompts.conversation("the circle"), add_generation_prompt=True, tokenize=False
    )
    assert text == tiny.processor.apply_chat_template(
        prompts.conversation("the circle"), add_generation_prompt=True, tokenize=False
    )
    inputs = policy.processor(text=[text], images=[_rgb((84, 84))], return_tensors="pt")
    reference = tiny.processor(text=[text], images=[_rgb((84, 84))], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(policy.model(**inputs).logits, tiny.model(**reference).logits)
    for kind in ("sam", "sam2"):
        built = build_tiny_segmenter(kind)
        built.model.save_pretrained(tmp_path / kind)
        if built.processor is not None:
            built.processor.save_pretrained(tmp_path / kind)
        loaded = load_segmenter(tmp_path / kind)
        assert loaded.kind == kind
        image, box, points = _rgb((90, 70)), (10, 10, 50, 40), ((20, 20), (30, 30))
        assert np.array_equal(loaded.predict(image, box, points), built.predict(image, box, points))
    with pytest.raises(FileNotFoundError, match="expected a checkpoint directory with config.json"):
        load_policy(tmp_path / "nowhere")


def test_random_architecture_has_the_published_size() -> None:
    """``--policy random:qwen2.5-vl-3b`` builds the real architecture (counted on the meta device, no storage)."""
    from pixelthink.models import build_random_policy

    policy = build_random_policy(prompts.QUESTION_TEMPLATE, "qwen2.5-vl-3b", device="meta")
    params = sum(p.numel() for p in policy.model.parameters())
    assert abs(params - 3.754e9) / 3.754e9 < 0.005  # Qwen2.5-VL-3B-Instruct: 3.75 B parameters
    text = policy.model.config.text_config
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers) == (151936, 2048, 36)
    assert policy.model.lm_head.weight.shape == (151936, 2048)  # the logits keep their real width
    known = len(policy.tokenizer)
    assert policy.suppressed_ids == tuple(range(known, 151936))
    suppressed = policy.generation_kwargs()["suppress_tokens"]
    assert policy.model.config.image_token_id in suppressed and len(suppressed) == 151936 - known + 2
    seven = build_random_policy(prompts.QUESTION_TEMPLATE, "qwen2.5-vl-7b", layers=2, device="meta")
    assert seven.model.config.text_config.num_hidden_layers == 2 and seven.model.lm_head.weight.shape[0] == 152064
    with pytest.raises(ValueError, match="architecture: expected one of"):
        build_random_policy(prompts.QUESTION_TEMPLATE, "qwen2.5-vl-1b")


@pytest.fixture
def padded_architecture(monkeypatch: pytest.MonkeyPatch) -> str:
    """A small architecture whose vocabulary is larger than the tiny tokenizer's, as the real ones are."""
    from pixelthink import models

    monkeypatch.setitem(
        models.ARCHITECTURES,
        "test-padded",
        {
            "text": {
                "vocab_size": 4096,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-6,
                "mrope_section": [2, 3, 3],
            },
            "vision": {
                "depth": 1,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,
                "fullatt_block_indexes": [0],
            },
            "tie_word_embeddings": True,
        },
    )
    return "test-padded"


def test_random_policy_never_samples_ids_its_tokenizer_lacks(padded_architecture: str) -> None:
    from pixelthink.models import build_random_policy

    policy = build_random_policy(prompts.QUESTION_TEMPLATE, padded_architecture, seed=3)
    known = len(policy.tokenizer)
    assert known < 4096 and policy.model.get_output_embeddings().weight.shape[0] == 4096
    text = policy.processor.apply_chat_template(
        prompts.conversation("the circle"), add_generation_prompt=True, tokenize=False
    )
    inputs = policy.processor(text=[text, text], images=[_rgb((84, 84))] * 2, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.no_grad():
        free = policy.model.generate(**inputs, do_sample=True, max_new_tokens=48)
        out = policy.model.generate(
            **inputs, do_sample=True, max_new_tokens=48, min_new_tokens=48, **policy.generation_kwargs()
        )
    new = out[:, inputs["input_ids"].shape[1] :]
    assert new.shape[1] == 48 and int(new.max()) < known  # only ids the tokenizer can decode
    assert int(free[:, inputs["input_ids"].shape[1] :].max()) >= known  # without suppression it would sample them


@pytest.mark.slow
def test_main_path_with_a_size_true_random_policy(tmp_path: Path, padded_architecture: str) -> None:
    """``--policy random:ARCH --segmenter random:sam``: the full-size path (here a small padded architecture)."""
    import pixelthink_grpo

    smallest = [a for a in SMALLEST if a != "--tiny"]
    metrics = pixelthink_grpo.main(
        [
            *smallest,
            "--policy",
            f"random:{padded_architecture}",
            "--segmenter",
            "random:sam",
            "--min-completion-length",
            "24",
            "--lr",
            "1e-4",
            "--no-eval-before",
            "--output-dir",
            str(tmp_path / "run"),
        ]
    )
    assert metrics["train_steps"] == 1 and metrics["notes"][0].startswith("size-true timing run: test-padded")
    logged = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    lengths = [row["completions/mean_length"] for row in logged if "completions/mean_length" in row]
    assert lengths and all(length == 24 for length in lengths)  # min = max completion length: fixed-length rollouts
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["min_completion_length"] == 24 and config["train"]["kl"] > 0
    assert (tmp_path / "run" / "initial-policy" / "config.json").is_file()  # TRL's KL reference loads from here


@pytest.mark.slow
def test_scoring_rescales_answers_and_counts_failed_parses() -> None:
    from pixelthink.evaluation import score_completions
    from pixelthink.models import build_tiny_policy

    tokenizer = build_tiny_policy(prompts.QUESTION_TEMPLATE).tokenizer
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:30, 20:80] = True  # an image twice as wide as high; the policy answers in a 100 x 100 frame
    sample = SegSample(
        id="s",
        image=_rgb((200, 100)),
        query="the box",
        bbox=(10, 10, 39, 29),
        points=((20, 20), (30, 20)),
        frame=100,
        mask=mask,
        difficulty=2.0,
    )
    exact = (
        '<think>a b c</think><answer>{"bbox": [10, 10, 39, 29], "points_1": [20, 20], "points_2": [30, 20]}</answer>'
    )
    segmenter = BoxSegmenter()
    settings = RewardSettings(easy_budget=10, uncertainty="none")
    result = score_completions(
        [sample, sample],
        [exact, "<think>no answer"],
        [0.1, 0.2],
        segmenter,
        tokenizer=tokenizer,
        train_reward=build_reward(settings, None),
        reward_settings=settings,
    )
    assert segmenter.calls[0][1] == (20, 10, 78, 29)  # x scaled by 2, y by 1
    assert result.records[0]["parsed"] and not result.records[1]["parsed"]
    assert result.records[1]["intersection"] == 0 and result.records[1]["union"] == int(mask.sum())
    assert result.report.overall.giou == pytest.approx((59 * 20 / (60 * 20) + 0.0) / 2)
    assert result.records[0]["reasoning_tokens"] == len(tokenizer("a b c", add_special_tokens=False)["input_ids"])
    assert [r["length"] for r in result.records] == [13, 2]  # whitespace words of each response
    assert result.budget_adherence == 0.5  # 13 > 10 words, 2 <= 10
    assert result.sam_oracle_giou == pytest.approx(59 * 20 / (60 * 20))
    summary = result.summary()
    assert summary["failed_parses"] == 1 and summary["tier_counts"]["easy"] == 2


def test_scoring_refuses_box_only_samples() -> None:
    from pixelthink.evaluation import score_completions

    sample = SegSample(id="r", image=_rgb((10, 10)), query="q", bbox=(0, 0, 5, 5), points=((1, 1), (2, 2)), frame=10)
    with pytest.raises(ValueError, match="expected ground-truth masks, got none for \\['r'\\]"):
        score_completions(
            [sample],
            ["x"],
            [0.0],
            BoxSegmenter(),
            tokenizer=None,
            train_reward=build_reward(RewardSettings(), None),
            reward_settings=RewardSettings(),
        )


# ------------------------------------------------------------------------------------------------------------
# The difficulty judge over HTTP
# ------------------------------------------------------------------------------------------------------------


class _JudgeHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = json.dumps(body["messages"])
        score = 8 if "above" in text else 2  # relational expressions are judged hard
        reply = {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": json.dumps({"scene": score, "seg": score, "language": score}),
                    }
                }
            ]
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_judge_difficulty_scores_samples_through_an_openai_compatible_server(tmp_path: Path) -> None:
    import pixelthink_grpo

    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        samples = SceneGenerator(seed=1, image_size=128).samples(4)
        args = pixelthink_grpo.build_parser().parse_args(
            ["--tiny", "--judge-url", f"http://127.0.0.1:{server.server_port}/v1", "--judge-model", "judge"]
        )
        counts = pixelthink_grpo.judge_difficulty(samples, args, tmp_path)
    finally:
        server.shutdown()
    assert counts == {"ok": 4, "failed": 0}
    assert [s.difficulty for s in samples] == [8.0 if " above " in s.query else 2.0 for s in samples]


# ------------------------------------------------------------------------------------------------------------
# The main path, end to end
# ------------------------------------------------------------------------------------------------------------


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.slow
def test_main_path_trains_evaluates_reports_and_resumes(tmp_path: Path) -> None:
    import pixelthink_grpo

    run = tmp_path / "run"
    metrics = pixelthink_grpo.main([*SMALLEST, "--output-dir", str(run)])
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["train_steps"] == metrics["train_steps"] == 1
    for key in ("giou", "ciou", "budget_adherence"):
        assert 0.0 <= stored[key] <= 1.0
    assert set(stored["mean_reasoning_tokens"]) == {"all", "easy", "medium", "hard"}
    timings = stored["timings"]
    for key in (
        "eval_prefill_s",
        "eval_decode_s",
        "eval_sam_s",
        "eval_sam_ms_per_call",
        "train_s",
        "reward_s",
        "uncertainty_s",
        "warmup_s",
        "total_s",
    ):
        assert timings[key] is not None and timings[key] >= 0, key
    assert timings["eval_sam_ms_per_call"] > 0 and timings["uncertainty_s"] > 0
    assert stored["before"]["samples"] == stored["after"]["samples"] == 2
    assert all(_png(run / p) for p in stored["plots"]) and len(stored["plots"]) == 2
    report = (run / "report.md").read_text()
    assert "## Where the time went" in report
    import torch
    import transformers

    versions = stored["run"]["versions"]  # what the seeded numbers hold for
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["transformers"] == transformers.__version__ and versions["python"] == platform.python_version()
    assert f"transformers {transformers.__version__}" in report
    config = json.loads((run / "config.json").read_text())
    assert config["reward"]["length_reward"] == "pixelthink" and config["train"]["steps"] == 1
    assert (run / "checkpoints" / "checkpoint-1").is_dir()
    assert len((run / "eval_after.jsonl").read_text().splitlines()) == 2

    resumed = pixelthink_grpo.main(
        [*SMALLEST, "--steps", "2", "--output-dir", str(run), "--resume", "--no-eval-before"]
    )
    assert resumed["train_steps"] == 2 and resumed["resumed_from"].endswith("checkpoint-1")
    assert resumed["before"] == stored["before"]  # kept from the first run
    assert resumed["warmup"]["steps"] == 0
    assert len((run / "train_log.jsonl").read_text().splitlines()) >= 2


@pytest.mark.slow
def test_main_path_ablation_without_uncertainty(tmp_path: Path) -> None:
    """Kimi's group length reward, online (pass-rate) difficulty, TRL's own GRPOTrainer, a tiny SAM2."""
    import pixelthink_grpo

    run = tmp_path / "kimi"
    metrics = pixelthink_grpo.main(
        [
            *SMALLEST,
            "--output-dir",
            str(run),
            "--length-reward",
            "kimi",
            "--difficulty",
            "online",
            "--uncertainty",
            "none",
            "--segmenter-kind",
            "sam2",
            "--no-eval-before",
        ]
    )
    assert metrics["train_steps"] == 1 and metrics["before"] is None
    assert metrics["timings"]["uncertainty_s"] == 0.0 and metrics["run"]["segmenter"].startswith("tiny-sam2")
    logged = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("kimi/kimi_length_reward" in row for row in logged)
    assert json.loads((run / "config.json").read_text())["reward_component"]["kind"] == "weighted_sum"


@pytest.mark.slow
def test_cli_explains_bad_flag_combinations(tmp_path: Path) -> None:
    script = str(EXAMPLES / "pixelthink_grpo.py")
    result = subprocess.run(
        [sys.executable, script, "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "--policy: expected a local Qwen2.5-VL checkpoint directory" in result.stderr
    result = subprocess.run(
        [sys.executable, script, "--tiny", "--difficulty", "judge", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--difficulty judge: expected --judge-url" in result.stderr
    result = subprocess.run(
        [sys.executable, script, "--tiny", "--resume", "--output-dir", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--resume: expected a checkpoint-N folder" in result.stderr
    result = subprocess.run(
        [sys.executable, script, "--tiny", "--micro-batch-size", "3", "--output-dir", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "micro_batch_size: expected a divisor of" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            script,
            "--policy",
            "random:qwen9",
            "--segmenter",
            "random:sam",
            "--output-dir",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--policy: expected random:ARCH with ARCH one of qwen2.5-vl-3b" in result.stderr
    result = subprocess.run(
        [sys.executable, script, "--tiny", "--random-layers", "2", "--output-dir", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--random-layers: expected only with --policy random:ARCH" in result.stderr


def test_warm_start_keeps_a_uniform_number_of_checks_in_their_order() -> None:
    """``spread="uniform"``: every count of checks from 0 to all equally often, which ones at random, deterministic
    from the generator; ``"binomial"``: each check with ``keep_probability``; anything else names the argument."""
    from pixelthink.training import warmup_keeps

    checks = len(prompts.WARMUP_CHECKS)
    keeps = warmup_keeps(np.random.default_rng(0), 7000)
    assert keeps.shape == (7000, checks) and keeps.dtype == bool
    counts = np.bincount(keeps.sum(axis=1), minlength=checks + 1)
    assert counts.min() > 850 and counts.max() < 1150, counts  # 1,000 each expected
    assert np.allclose(keeps.mean(axis=0), 0.5, atol=0.03)  # no check favoured
    assert np.array_equal(keeps, warmup_keeps(np.random.default_rng(0), 7000))
    binomial = warmup_keeps(np.random.default_rng(0), 7000, spread="binomial", keep_probability=0.25)
    assert np.allclose(binomial.mean(axis=0), 0.25, atol=0.03)
    assert np.bincount(binomial.sum(axis=1), minlength=checks + 1)[checks] < 20  # all six kept: 0.25^6
    with pytest.raises(ValueError, match=r"spread: expected one of uniform, binomial, got 'wide'"):
        warmup_keeps(np.random.default_rng(0), 1, spread="wide")
    reasoning = prompts.warmup_reasoning("the red mug", keeps[0])
    kept = [c.format(q="the red mug") for c, k in zip(prompts.WARMUP_CHECKS, keeps[0]) if k]
    assert all(c in reasoning for c in kept)
    assert [reasoning.index(c) for c in kept] == sorted(reasoning.index(c) for c in kept)  # in their order
