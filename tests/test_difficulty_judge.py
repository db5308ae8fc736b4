"""Judge prompt, reply parsing, target geometry, aspect combination, and the SQLite verdict cache."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from difficulty_fixtures import png_bytes, square_image
from hypothesis import given
from hypothesis import strategies as st

from adaptive_length_reward.difficulty import (
    ASPECTS,
    PIXELTHINK_V1,
    PROMPT_VERSION,
    JudgePrompt,
    JudgeReplyError,
    Judgment,
    JudgmentCache,
    TargetGeometry,
    combine_aspects,
    mask_area_ratio,
    parse_judge_reply,
)
from adaptive_length_reward.difficulty.judge import JudgeSample, load_image, parse_box
from adaptive_length_reward.geometry import mask_geometry

# ------------------------------------------------------------------------------------------------------------
# Reply parsing (scripted replies)
# ------------------------------------------------------------------------------------------------------------

GOOD = {"scene": 7.0, "seg": 4.0, "language": 2.0}


@pytest.mark.parametrize(
    "reply",
    [
        '{"scene": 7, "seg": 4, "language": 2}',
        'Sure!\n```json\n{"scene": 7, "seg": 4, "language": 2}\n```\nHope this helps.',
        '<think>the example was {"scene": 1, "seg": 1, "language": 1}</think>{"scene": 7, "seg": 4, "language": 2}',
        'reasoning without an opening tag</think>\n{"scene": 7, "seg": 4, "language": 2}',
        "{'scene': 7, 'seg': 4, 'language': 2}",
        '{"Scene Complexity": "7/10", "Segmentation Challenge": "4", "Linguistic Ambiguity": 2.0}',
        '{"scene": {"score": 7, "reason": "busy"}, "seg": {"rating": 4}, "language": {"value": 2}}',
        '{"difficulty": {"scene": 7, "seg": 4, "language": 2}, "comment": "ok"}',
        'First guess {"scene": 3, "seg": 3, "language": 3}, corrected: {"scene": 7, "seg": 4, "language": 2}',
        "scene: 7\nsegmentation: 4/10\nlanguage = 2",
        '{"scene": 7, "seg": 4, "language": 2',  # cut off after the last score: every score is there
    ],
)
def test_parser_reads_what_judges_write(reply: str) -> None:
    assert parse_judge_reply(reply) == GOOD


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("   <think>only thoughts</think>  ", "empty reply"),
        ("This one is hard.", "no JSON object"),
        ('{"scene": 7, "seg": 4}', r"missing aspect\(s\) \['language'\]"),
        ('{"scene": 11, "seg": 4, "language": 2}', "score from 1 to 10, got 11"),
        ('{"scene": 0, "seg": 4, "language": 2}', "score from 1 to 10, got 0"),
        ('{"scene": "high", "seg": 4, "language": 2}', "number from 1 to 10, got 'high'"),
        ('{"scene": true, "seg": 4, "language": 2}', "number from 1 to 10, got True"),
        ('{"scene": NaN, "seg": 4, "language": 2}', "score from 1 to 10"),
        ('{"scene": 7, "scene_complexity": 6, "seg": 4, "language": 2}', "given twice"),
        ("scene: 7, scene: 8, seg: 4, language: 2", "no JSON object"),
        ('{"scene": 7, "seg": 4, "langu', "no JSON object"),  # cut off by max_tokens before the last score
    ],
)
def test_parser_refuses_unreadable_replies_with_a_reason(reply: str, reason: str) -> None:
    with pytest.raises(JudgeReplyError, match=reason):
        parse_judge_reply(reply)


def test_parser_rejects_non_strings_as_programming_errors() -> None:
    with pytest.raises(TypeError, match="expected str"):
        parse_judge_reply(None)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_parser_either_reads_scores_in_range_or_says_why(reply: str) -> None:
    try:
        aspects = parse_judge_reply(reply)
    except JudgeReplyError:
        return
    assert set(aspects) == set(ASPECTS) and all(1.0 <= v <= 10.0 for v in aspects.values())


@given(st.fixed_dictionaries({a: st.integers(1, 10) for a in ASPECTS}), st.text(max_size=40), st.text(max_size=40))
def test_parser_finds_a_valid_object_inside_any_prose(scores: dict[str, int], before: str, after: str) -> None:
    # Prose without think tags: text before a "</think>" is the judge's reasoning, which the parser skips by design
    # (hypothesis draws the tags from the parser's own string constants).
    before, after = (text.replace("{", "(").replace("think>", "think)") for text in (before, after))
    reply = f"{before}\n{json.dumps(scores)}\n{after}"
    assert parse_judge_reply(reply) == {k: float(v) for k, v in scores.items()}


# ------------------------------------------------------------------------------------------------------------
# Combination, prompt, geometry
# ------------------------------------------------------------------------------------------------------------


def test_combine_aspects() -> None:
    scores = {"scene": 9.0, "seg": 3.0, "language": 1.0}
    assert combine_aspects(scores) == pytest.approx(13 / 3)
    assert combine_aspects(scores, aggregate="median") == 3.0
    assert combine_aspects(scores, aggregate="max") == 9.0 and combine_aspects(scores, aggregate="min") == 1.0
    assert combine_aspects(scores, weights={"scene": 1, "seg": 3}) == pytest.approx((9 + 9) / 4)


def test_prompt_is_versioned_and_carries_expression_and_geometry() -> None:
    assert PIXELTHINK_V1.version == PROMPT_VERSION == "pixelthink-v1"
    text = PIXELTHINK_V1.render(" the man in a $5 hat ", TargetGeometry(area_ratio=0.032, box=(0.12, 0.3, 0.4, 0.75)))
    assert '"the man in a $5 hat"' in text
    assert "covers 3.2% of the image" in text and "12%-40% of the width" in text and "(the middle left)" in text
    for aspect in ASPECTS:
        assert f'"{aspect}"' in text
    messages = PIXELTHINK_V1.messages("x", None)
    assert messages[0]["role"] == "system" and messages[1]["content"][0] == {"type": "image"}
    assert "mask was not given" in messages[1]["content"][1]["text"]
    v1 = PIXELTHINK_V1
    edited = JudgePrompt(PROMPT_VERSION, v1.system, v1.template + " Be strict.", v1.repair)
    assert edited.fingerprint != PIXELTHINK_V1.fingerprint  # an edit without a version bump still changes the key
    with pytest.raises(ValueError, match=r"placeholders \$expression and \$target"):
        JudgePrompt("v", "s", "rate $expression", "r")


def test_geometry_from_mask_box_and_area() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:30, 150:190] = True
    geometry = TargetGeometry.from_mask(mask)
    assert geometry.area_ratio == pytest.approx(800 / 20000)
    assert geometry.box == pytest.approx((0.75, 0.1, 0.95, 0.3))
    assert "(the top right)" in geometry.describe()
    from_box = TargetGeometry.from_box("<box>(50,20),(150,80)</box><points>(1,2),(3,4)</points>", 200, 100)
    assert from_box.area_from_box and from_box.area_ratio == pytest.approx(0.3)
    assert "bounding box covers about 30% of the image" in from_box.describe()
    with_area = TargetGeometry.from_box([0, 0, 10, 10], 100, 100, area_ratio=0.004)
    assert with_area.describe().startswith("it covers 0.4% of")
    assert TargetGeometry(area_ratio=0.5).describe() == "it covers 50% of the image; its position was not given."
    assert TargetGeometry.from_mask(np.zeros((4, 4))).area_ratio == 0.0


def test_one_mask_geometry_for_the_heuristic_and_the_judge() -> None:
    mask = np.zeros((10, 20, 3), dtype=np.uint8)
    mask[2:6, 5:15, 1] = 255  # an image-like mask: any channel set marks the target
    area, box = mask_geometry(mask)
    assert area == 0.2 and box == (0.25, 0.2, 0.75, 0.6)
    geometry = TargetGeometry.from_mask(mask)
    assert (geometry.area_ratio, geometry.box) == (area, box) and mask_area_ratio(mask) == area
    with pytest.raises(ValueError, match="mask: expected a non-empty 2-D array"):
        mask_area_ratio(np.zeros((2, 2, 2, 2)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("<box>(1,2),(3)</box>", "4 finite numbers"),
        ([5, 5, 1, 1], "x1 <= x2"),
        (object(), "expected 4 numbers"),
    ],
)
def test_parse_box_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_box(value)


def test_geometry_validation() -> None:
    with pytest.raises(ValueError, match="area_ratio: expected a number in"):
        TargetGeometry(area_ratio=1.5)
    with pytest.raises(ValueError, match="box: expected"):
        TargetGeometry(box=(0.5, 0.0, 0.2, 1.0))


def test_load_image_accepts_the_forms_datasets_use(tmp_path) -> None:
    image = square_image(2)
    image.save(tmp_path / "a.png")
    data = png_bytes(image)
    for value, base in [
        (image, None),
        ("a.png", tmp_path),
        (tmp_path / "a.png", None),
        (data, None),
        ({"bytes": data, "path": None}, None),
        ({"bytes": None, "path": "a.png"}, tmp_path),
        (np.asarray(image), None),
    ]:
        loaded = load_image(value, base_dir=base)
        assert loaded.mode == "RGB" and np.array_equal(np.asarray(loaded), np.asarray(image))
    with pytest.raises(TypeError, match="expected a PIL image"):
        load_image(3.5)
    with pytest.raises(FileNotFoundError):
        load_image("missing.png", base_dir=tmp_path)


def test_judge_sample_validation() -> None:
    with pytest.raises(ValueError, match="expression: expected a non-empty string"):
        JudgeSample(sample_id=1, image=None, expression="  ")
    with pytest.raises(ValueError, match="sample_id"):
        JudgeSample(sample_id=None, image=None, expression="x")


# ------------------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------------------


def test_cache_put_get_replace_and_no_duplicates(tmp_path) -> None:
    cache = JudgmentCache(tmp_path / "sub" / "c.sqlite")
    cache.register_settings("h1", {"judge": {"model": "m"}})
    cache.put("h1", Judgment("a", "unparseable", reply="??", error="no JSON object", attempts=3))
    cache.put("h1", Judgment("a", "ok", aspects=GOOD, reply="{...}", attempts=1))
    cache.put("h1", Judgment(7, "ok", aspects=GOOD))  # ids are stored by their string form
    cache.put("h2", Judgment("a", "ok", aspects={"scene": 1.0, "seg": 1.0, "language": 1.0}))
    assert cache.count() == 3 and cache.count("h1") == 2 and cache.count("h1", status="unparseable") == 0
    row = cache.get("h1", "a")
    assert row.status == "ok" and row.aspects == GOOD and row.attempts == 1 and row.cached  # the record type it stores
    assert row == Judgment("a", "ok", aspects=GOOD, reply="{...}", attempts=1)
    assert cache.get("h1", "7") == cache.get("h1", 7) and cache.get("h1", "zzz") is None
    assert [r.sample_id for r in cache.iter("h1")] == ["7", "a"]
    assert cache.settings() == {"h1": {"judge": {"model": "m"}}}
    assert cache.integrity_check() == "ok"
    with pytest.raises(ValueError, match="status: expected one of"):
        cache.put("h1", Judgment("b", "transport_error"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aspects"):
        cache.put("h1", Judgment("b", "ok"))
    with sqlite3.connect(tmp_path / "sub" / "c.sqlite") as raw:
        assert raw.execute("SELECT COUNT(*) FROM judgments WHERE sample_id = 'a'").fetchone()[0] == 2


def test_cache_is_picklable_and_readonly_mode_reads_only(tmp_path) -> None:
    cache = JudgmentCache(tmp_path / "c.sqlite")
    cache.put("h", Judgment("x", "ok", aspects=GOOD))
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.get("h", "x").aspects == GOOD
    reader = JudgmentCache(tmp_path / "c.sqlite", readonly=True)
    assert reader.count("h") == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.put("h", Judgment("y", "ok", aspects=GOOD))
    with pytest.raises(FileNotFoundError, match="existing cache file"):
        JudgmentCache(tmp_path / "none.sqlite", readonly=True)
    with pytest.raises(TypeError, match="in-memory cache cannot be pickled"):
        pickle.dumps(JudgmentCache(":memory:"))


def _write_rows(path: str, start: int, count: int) -> None:
    cache = JudgmentCache(path)
    for i in range(start, start + count):
        cache.put("h", Judgment(f"id{i % 30}", "ok", aspects={"scene": 1.0 + i % 9, "seg": 2.0, "language": 3.0}))


@pytest.mark.slow
def test_cache_survives_concurrent_writers_from_processes(tmp_path) -> None:
    path = str(tmp_path / "c.sqlite")
    JudgmentCache(path).close()
    context = multiprocessing.get_context("spawn")  # fresh interpreters: two real writer processes
    workers = [context.Process(target=_write_rows, args=(path, 25 * k, 25)) for k in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    cache = JudgmentCache(path)
    assert cache.count("h") == 30 and cache.integrity_check() == "ok"
    assert all(1.0 <= row.aspects["scene"] <= 9.0 and not math.isnan(row.aspects["seg"]) for row in cache.iter("h"))


def test_a_cache_opened_while_another_process_holds_the_lock_waits_for_it(tmp_path: Path) -> None:
    """Two annotators starting together: switching to WAL gets SQLITE_BUSY at once (no busy handler), so the cache
    retries until the other connection lets go instead of failing with "database is locked"."""
    import threading

    from adaptive_length_reward.difficulty.judge.cache import _enable_wal

    path = tmp_path / "cache.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # what the cache used to do
        other.execute("PRAGMA journal_mode = WAL")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    _enable_wal(other)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder.close()
    other.close()
