"""Golden outputs: the core redesign (issue 11) must leave every reward's behaviour unchanged, bit for bit.

``tests/data/golden_rewards.npz`` was written by ``tests/golden/make_golden.py`` with the code as it was
BEFORE the redesign. It holds the inputs (the conformance batch and 10,000 generated completions: valid,
long, truncated and malformed PixelThink answers with their difficulty, uncertainty, groups, correctness,
accuracy, target lengths, precomputed lengths, ground truths and token ids) and, for every case of the table
in ``tests/golden/cases.py`` (every registered reward kind, both presets, every budget policy and length
counter, schedules at several steps, online and precomputed difficulty providers), the outputs of
``reward.evaluate``: the rewards, every component and every numeric, bool or string diagnostic column, on the
whole batch and, for the cases where it can matter, chunk by chunk.

Each case is rebuilt here with the same factory and evaluated again with the code under test:

* rewards and components must be identical (``np.array_equal(..., equal_nan=True)``) with the same dtype
  (float64);
* every stored column must still be reported with equal values (bool stays bool, string stays string,
  numbers stay numbers); new extra components and columns are allowed.

A failure names the case, the dataset, the mode (whole batch or chunked), the step and the first differing
samples with their completions. If a difference is intended, this test is not the place to paper over it:
the golden file can only be regenerated on the pre-redesign code (see ``make_golden.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from typing import Any

import numpy as np
import pytest
from golden import cases as G


@functools.cache
def _files() -> dict[str, np.ndarray]:
    with np.load(G.DATA_FILE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@functools.cache
def _meta() -> dict[str, Any] | None:
    if not G.DATA_FILE.exists():
        return None
    with np.load(G.DATA_FILE, allow_pickle=False) as data:
        meta: dict[str, Any] = json.loads(data["meta"].tobytes().decode("utf-8"))
    return meta


@functools.cache
def _dataset(name: str) -> G.Dataset:
    return G.decode_dataset(name, _files())


RECORDS = sorted(_meta()["records"]) if _meta() is not None else []


def test_golden_file_is_present_and_matches_the_case_table() -> None:
    meta = _meta()
    assert meta is not None, f"{G.DATA_FILE} is missing (write it with tests/golden/make_golden.py on the old code)"
    assert meta["format"] == G.FORMAT
    stored = list(_files()["case_names"])
    assert stored == meta["case_names"]
    assert set(stored) == set(G.CASES), (
        "the case table and the golden file disagree (cases removed: "
        f"{sorted(set(stored) - set(G.CASES))}, added: {sorted(set(G.CASES) - set(stored))}); the file can only "
        "be regenerated on the pre-redesign code"
    )
    evaluated = {record["case"] for record in meta["records"].values()}
    assert evaluated >= set(G.CASES), sorted(set(G.CASES) - evaluated)
    assert len(_dataset("generated")) == 10_000


def _rows(record: dict[str, Any]) -> list[int]:
    if record["case"] == "pixelthink_score":
        return []
    return G.selected_rows(G.CASES[record["case"]], _dataset(record["dataset"]))


def _describe(record: dict[str, Any], bad: np.ndarray, got: np.ndarray, want: np.ndarray) -> str:
    rows, dataset = _rows(record), _dataset(record["dataset"])
    lines = [f"{bad.size} of {want.size} samples differ; first ones:"]
    for i in bad[:3].tolist():
        row = rows[i] if i < len(rows) else None
        text = repr(dataset.completions[row])[:160] if row is not None else "?"
        lines.append(f"  sample {i} (dataset row {row}): stored {want[i]!r}, now {got[i]!r}; completion {text}")
    return "\n".join(lines)


def _assert_same_floats(where: str, record: dict[str, Any], got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, stored {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, stored {want.shape}"
    if not np.array_equal(got, want, equal_nan=True):
        bad = np.flatnonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))
        pytest.fail(f"{where}: {_describe(record, bad, got, want)}")


_FAMILY = {"b": "bool", "i": "number", "u": "number", "f": "number", "U": "string"}


def _assert_same_column(where: str, record: dict[str, Any], got: np.ndarray, want: np.ndarray) -> None:
    got_family, want_family = _FAMILY.get(got.dtype.kind), _FAMILY[want.dtype.kind]
    assert got_family == want_family, f"{where}: dtype {got.dtype}, stored {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, stored {want.shape}"
    if want_family == "string":
        same = np.array([a == b for a, b in zip(got.tolist(), want.tolist())], dtype=bool)
    elif want.dtype.kind == "f" or got.dtype.kind == "f":
        g, w = got.astype(np.float64), want.astype(np.float64)
        same = (g == w) | (np.isnan(g) & np.isnan(w))
    else:
        same = got == want
    if not same.all():
        pytest.fail(f"{where}: {_describe(record, np.flatnonzero(~same), got, want)}")


@pytest.mark.parametrize("record_id", RECORDS)
def test_outputs_are_unchanged(record_id: str) -> None:
    record = _meta()["records"][record_id]
    arrays = _files()
    dataset = _dataset(record["dataset"])
    if record["case"] == "pixelthink_score":
        want = arrays[record["steps"][0]["rewards"]]
        _assert_same_floats(f"{record_id} pixelthink_score", record, G.run_pixelthink_score(dataset), want)
        return
    case = G.CASES[record["case"]]
    for module in case.needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{case.name} needs {module}")
    assert len(G.selected_rows(case, dataset)) == record["rows"]
    results = G.run_case(case, dataset, chunked=record["mode"] == "chunked")
    assert [r.step for r in results] == [s["step"] for s in record["steps"]]
    for got, stored in zip(results, record["steps"]):
        where = f"{record_id} step {got.step}"
        _assert_same_floats(f"{where} rewards", record, got.rewards, arrays[stored["rewards"]])
        for name, key in stored["components"].items():
            assert name in got.components, f"{where}: component {name!r} is gone (now: {sorted(got.components)})"
            _assert_same_floats(f"{where} component {name!r}", record, got.components[name], arrays[key])
        for name, key in stored["columns"].items():
            assert name in got.columns, f"{where}: column {name!r} is gone (now: {sorted(got.columns)})"
            _assert_same_column(f"{where} column {name!r}", record, got.columns[name], arrays[key])
