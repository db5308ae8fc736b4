"""Write ``tests/data/golden_rewards.npz``: today's outputs of every case in ``tests/golden/cases.py``.

The file freezes the behaviour of the pre-redesign code so ``tests/test_golden.py`` can prove the core redesign
(issue 11) leaves every reward, component and diagnostic column unchanged. It holds the inputs too (the
conformance batch and 10,000 generated completions with their context, as JSON), so the test needs nothing
from this script.

Run it ONLY on the pre-redesign code, never on the code under test (that would make the test compare the new
code with itself). From the repository root, with the original code checked out at ``/work/golden-base``::

    PYTHONPATH=/work/golden-base/src OMP_NUM_THREADS=1 .venv/bin/python tests/golden/make_golden.py

(check first that ``PYTHONPATH=/work/golden-base/src .venv/bin/python -c 'import adaptive_length_reward as a;
print(a.__file__)'`` prints a path under ``/work/golden-base``; the script prints it too). Any other checkout
of the pre-redesign commit works the same way (``git worktree add <dir> <commit>``); the script refuses to run
on this checkout's own ``src/``. The output is deterministic: running it twice on the same code writes the same
file, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so `golden` imports as in the test

import adaptive_length_reward as alr
from golden import cases as G

N_GENERATED = 10_000
GROUP_SIZE = 8

# ------------------------------------------------------------------------------------------------------------
# Generated completions
# ------------------------------------------------------------------------------------------------------------

WORDS = [*G.VOCAB_WORDS, "hmm", "ok", "look", "at", "which", "shape", "stands", "out", "most", "clearly", "here"]
UNICODE_WORDS = [
    *("café", "naïve", "größe", "东西", "左边的猫", "🙂"),
    *("🐕‍🦺", "Ωmega", "e\u0301", "עברית", "٣٤", "ｆｕｌｌ"),
]
ODD_SPACES = ["\u00a0", "\u2003", "\u3000", "\u2028", "\x1c", "\x0b", "\x0c"]


class Gen:
    def __init__(self, seed: int = 0) -> None:
        self.r = random.Random(seed)

    # -- pieces ---------------------------------------------------------------------------------------------
    def words(self, n: int, *, unicode: float = 0.0) -> str:
        r = self.r
        out = []
        for _ in range(n):
            out.append(r.choice(UNICODE_WORDS) if r.random() < unicode else r.choice(WORDS))
            if r.random() < 0.08:
                out[-1] += r.choice([",", ".", "?", ":", ";"])
        seps = [" "] * len(out)
        for i in range(len(seps)):
            x = r.random()
            if x < 0.03:
                seps[i] = "\n"
            elif x < 0.04:
                seps[i] = "  "
            elif x < 0.045:
                seps[i] = "\t"
            elif unicode and x < 0.06:
                seps[i] = r.choice(ODD_SPACES)
        return "".join(w + s for w, s in zip(out, seps)).rstrip(" ")

    def truth(self) -> tuple[tuple[int, int, int, int], tuple[tuple[int, int], tuple[int, int]]]:
        r = self.r
        x1, y1 = r.randint(0, 800), r.randint(0, 800)
        x2, y2 = x1 + r.randint(1, 400), y1 + r.randint(1, 400)
        p1 = (r.randint(x1, x2), r.randint(y1, y2))
        p2 = (r.randint(x1, x2), r.randint(y1, y2))
        return (x1, y1, x2, y2), (p1, p2)

    def truth_value(self, box: Any, points: Any) -> Any:
        r = self.r
        (a, b), (c, d) = points
        x = r.random()
        if x < 0.70:
            return f"<box>({box[0]},{box[1]}),({box[2]},{box[3]})</box><points>({a},{b}),({c},{d})</points>"
        if x < 0.74:  # the official regex searches: surrounding text is allowed
            return (
                f"Target: <box>({box[0]},{box[1]}),({box[2]},{box[3]})</box> and <points>({a},{b}),({c},{d})</points>."
            )
        if x < 0.88:
            return {"bbox": list(box), "points_1": [a, b], "points_2": [c, d]}
        if x < 0.95:
            return {"bbox": list(box), "points": [[a, b], [c, d]], "label": "thing"}
        return [list(box), [[a, b], [c, d]]]

    def near(self, v: int, spread: int) -> int:
        return v + self.r.randint(-spread, spread)

    def answer_json(self, box: Any, points: Any, mode: str) -> str:
        r = self.r
        if mode == "near":
            s = r.choice([0, 1, 3, 8, 15, 30])
            b = [self.near(v, s) for v in box]
            p = [[self.near(v, s) for v in pt] for pt in points]
            if r.random() < 0.2:
                p = p[::-1]
        elif mode == "far":
            b = [r.randint(-50, 1300) for _ in range(4)]
            if r.random() < 0.7:
                b = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
            p = [[r.randint(-50, 1300), r.randint(-50, 1300)] for _ in range(2)]
        else:  # variants
            b = [self.near(v, 5) for v in box]
            p = [[self.near(v, 5) for v in pt] for pt in points]
            k = r.randrange(10)
            if k == 0:
                b = [v + r.choice([0.25, 0.5, 0.999, -0.4]) for v in b]
                p = [[v + 0.7 for v in pt] for pt in p]
            elif k == 1:
                b = [b[2], b[3], b[0], b[1]]  # inverted
            elif k == 2:
                b = [b[0], b[1], b[0], b[1]]  # a single pixel
            elif k == 3:
                b = [-v for v in b]
            elif k == 4:
                p = [[-5, -5], [99999, 3]]  # outside the box
            elif k == 5:
                b = [float(v) for v in b]
            elif k == 6:
                inside = [[b[0], b[1]], [b[2], b[3]]]  # on the box's corners
                p = inside
            elif k == 7:
                b = [b[0], b[1], b[0] + 1, b[1] + 1]
            elif k == 8:
                b = [0, 0, 0, 0]
            # k == 9: the plain near answer
        body = {"bbox": b, "points_1": p[0], "points_2": p[1]}
        keys = list(body)
        if r.random() < 0.15:
            r.shuffle(keys)
        items = [(k, body[k]) for k in keys]
        if r.random() < 0.05:
            items.append(("label", "the object"))
        text = "{" + ", ".join(f'"{k}": {json.dumps(v)}' for k, v in items) + "}"
        if r.random() < 0.1:
            text = text.replace(", ", ",\n  ").replace("{", "{\n  ", 1)
        return text

    def between(self) -> str:
        r = self.r
        return r.choice(["", "", "", " ", "\n", "\n\n", " \n ", "\t", "\u2003", "\u3000", "\u00a0"])

    def completion(self, think: str, answer: str) -> str:
        return f"<think>{think}</think>{self.between()}<answer>{answer}</answer>"

    def malformed(self, box: Any, points: Any) -> str:
        r = self.r
        good = self.answer_json(box, points, "near")
        think = self.words(r.randint(3, 30))
        b = list(box)
        (a, c), (d, e) = points
        options = [
            lambda: "",
            lambda: r.choice([" ", "\n", "\n\n", "\t \r\n", "\u00a0\u2003", "   "]),
            lambda: self.words(r.randint(1, 60)),
            lambda: f"<think>{think}<answer>{good}</answer>",  # no </think>
            lambda: f"<think>{think}</think>{good}",  # no <answer>
            lambda: f"<answer>{good}</answer><think>{think}</think>",
            lambda: f" {self.completion(think, good)}",  # leading space
            lambda: f"{self.completion(think, good)}\n",  # trailing newline
            lambda: f"Sure! {self.completion(think, good)}",
            lambda: f"<think>{think}</think><answer>{good[:-1]}</answer>",  # no closing brace
            lambda: f"<think>{think}</think><answer>{good[:-1]},}}</answer>",  # trailing comma
            lambda: f"<think>{think}</think><answer>{good.replace(chr(34), chr(39))}</answer>",  # single quotes
            lambda: f"<think>{think}</think><answer>{{bbox: {b}, points_1: [{a}, {c}], points_2: [{d}, {e}]}}</answer>",
            lambda: f'<think>{think}</think><answer>{{"answer": {good}}}</answer>',  # nested
            lambda: f"<think>{think}</think><answer>{{}} {good}</answer>",
            lambda: f"<think>{think}</think><answer>{{ }} {good}</answer>",
            lambda: f"<think>{think} {{curly}} </think><answer>{good}</answer>",
            lambda: f"<think>{think}</think><answer>{{}}{{}}</answer>",
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [NaN, {b[1]}, {b[2]}, {b[3]}], '
                f'"points_1": [{a}, {c}], "points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [-Infinity, 0, Infinity, {b[3]}], '
                f'"points_1": [{a}, {c}], "points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": [NaN, {c}], '
                f'"points_2": [Infinity, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [{b[0]}, {b[1]}, 1e309, {b[3]}], '
                f'"points_1": [{a}, {c}], "points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [{b[0]}, {b[1]}, {r.choice(HUGE)}, {b[3]}], '
                f'"points_1": [{a}, {c}], "points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [{r.choice(HUGE)}, {r.choice(HUGE)}, '
                f'{r.choice(HUGE)}, {r.choice(HUGE)}], "points_1": [{r.choice(HUGE)}, 1], '
                f'"points_2": [{r.choice(HUGE)}, 2]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": [{"9" * 5000}, 1], '
                f'"points_2": [{d}, {e}]}}</answer>'
            ),  # more digits than int() takes
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {json.dumps([str(v) for v in b])}, '
                f'"points_1": ["{a}", "{c}"], "points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": "{a % 10}{c % 10}", '
                f'"points_2": "{d % 10}{e % 10}"}}</answer>'
            ),  # strings are indexed
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": ["12", "x"], '
                f'"points_2": [[1], [2]]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b[:3]}, "points_1": [{a}, {c}], '
                f'"points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {[*b, 7]}, "points_1": [{a}, {c}, 1], '
                f'"points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [true, false, {b[2]}, {b[3]}], '
                f'"points_1": [true, {c}], "points_2": [{d}, false]}}</answer>'
            ),
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [0, 0, 1, 1], "bbox": {b}, '
                f'"points_1": [{a}, {c}], "points_2": [{d}, {e}]}}</answer>'
            ),  # duplicate key
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": {"[" * 3000}1{"]" * 3000}, '
                f'"points_2": [{d}, {e}]}}</answer>'
            ),  # nested too deep
            lambda: f"<think>{think}</think><answer>{b}</answer>",  # a list, no object
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": [-0, 0.0, 1e-320, {b[3]}], '
                f'"points_1": [0, 0], "points_2": [0, 0]}}</answer>'
            ),
            lambda: f'<think>{think}</think><answer>{{"bbox": {b}, "points_1": null, "points_2": [{d}, {e}]}}</answer>',
            lambda: (
                f'<think>{think}</think><answer>{{"bbox": {{"x1": {b[0]}}}, "points_1": [{a}, {c}], '
                f'"points_2": [{d}, {e}]}}</answer>'
            ),
            lambda: f"<think>{'x' * r.randint(500, 3000)}</think><answer>{good}</answer>",  # one long word
            lambda: f"<think>{think}\x00\x07\x1b[0m</think><answer>{good}</answer>",
            lambda: f"<think></think><answer>{good}</answer>",
            lambda: f"<think>{think}</think><answer></answer>",
            lambda: f"<think>{think}</think>\n<answer>{good}</answer><answer>{good}</answer>",
            lambda: f"<think><think>{think}</think></think><answer>{good}</answer>",
            lambda: f"<THINK>{think}</THINK><ANSWER>{good}</ANSWER>",
            lambda: "</think>" + self.words(r.randint(2, 20)) + f"<answer>{good}</answer>",
            lambda: f"<think>{think}</think><answer>{good}</answer>" * 2,
        ]
        return r.choice(options)()

    # -- one sample -----------------------------------------------------------------------------------------
    def sample(self, box: Any, points: Any) -> tuple[Any, str]:
        """(completion, kind)."""
        r = self.r
        x = r.random()
        if x < 0.22:
            return self.completion(self.words(r.randint(1, 80)), self.answer_json(box, points, "near")), "near"
        if x < 0.30:
            return self.completion(self.words(r.randint(1, 80)), self.answer_json(box, points, "far")), "far"
        if x < 0.40:
            return self.completion(self.words(r.randint(0, 60)), self.answer_json(box, points, "variant")), "variant"
        if x < 0.52:
            think = self.words(r.randint(120, 600), unicode=0.02 if r.random() < 0.3 else 0.0)
            if r.random() < 0.15:
                return f"<think>{think}</think>", "long"
            return self.completion(think, self.answer_json(box, points, r.choice(["near", "near", "far"]))), "long"
        if x < 0.62:
            think = self.words(r.randint(0, 200))
            full = self.completion(think, self.answer_json(box, points, "near"))
            return full[: r.randint(0, len(full))], "truncated"
        if x < 0.90:
            return self.malformed(box, points), "malformed"
        if x < 0.98:
            think = self.words(r.randint(1, 120), unicode=0.3)
            return self.completion(think, self.answer_json(box, points, r.choice(["near", "variant"]))), "unicode"
        # chat messages (TRL's conversational format), some with the reasoning in a separate field
        think = self.words(r.randint(1, 100))
        answer = f"<answer>{self.answer_json(box, points, 'near')}</answer>"
        y = r.random()
        if y < 0.4:
            return [{"role": "assistant", "content": f"<think>{think}</think>{answer}"}], "chat"
        if y < 0.8:
            return [{"role": "assistant", "content": answer, "reasoning_content": think}], "chat"
        return {"role": "assistant", "content": answer, "thinking": think}, "chat"


HUGE = [2**24, 2**24 + 1, -(2**24) - 3, 2**53 + 1, 10**20, -(10**30), 10**400, 123456789012345678901234567890]


def token_ids(text: str, r: random.Random) -> list[int]:
    """Ids per whitespace word of the completion's text, with the tags' ids of ``cases.TAG_IDS``; some rows
    are right-padded with ``cases.PAD_ID``."""
    ids: list[int] = []
    tags = list(G.TAG_IDS)
    for word in text.split():
        rest = word
        while rest:
            hits = [(rest.find(t), t) for t in tags if rest.find(t) >= 0]
            if not hits:
                ids.append(10 + zlib.crc32(rest.encode("utf-8")) % 50)
                break
            at, tag = min(hits)
            if at > 0:
                ids.append(10 + zlib.crc32(rest[:at].encode("utf-8")) % 50)
            ids.extend(G.TAG_IDS[tag])
            rest = rest[at + len(tag) :]
    if r.random() < 0.2:
        ids.extend([G.PAD_ID] * r.randint(1, 6))
    return ids


def text_of(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    message = completion[-1] if isinstance(completion, list) else completion
    return str(message.get("content") or "")


def generated_dataset(n: int = N_GENERATED) -> tuple[G.Dataset, dict[str, int]]:
    gen = Gen(0)
    r = gen.r
    completions: list[Any] = []
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "difficulty",
            "uncertainty",
            "group_ids",
            "correct",
            "accuracy",
            "target_length",
            "lengths",
            "ground_truth",
            "token_ids",
            "id",
            "mask_area_ratio",
            "problem",
        )
    }
    kinds: dict[str, int] = {}
    for g in range(n // GROUP_SIZE):
        box, points = gen.truth()
        if r.random() < 0.005:  # a ground truth beyond 2**24 (the exact-integer path)
            box = (box[0], box[1], box[2] + 2**25, box[3] + 10**20)
        truth = gen.truth_value(box, points)
        x = r.random()
        if x < 0.05:
            difficulty: Any = float("nan")
        elif x < 0.06:
            difficulty = None
        elif x < 0.16:
            difficulty = r.choice([1.0, 3.5, 5.0, 10.0, 3.4999999999999996, 4.999999999999999])
        else:
            difficulty = round(r.uniform(1.0, 10.0), r.choice([0, 1, 2]))
        target = None if r.random() < 0.1 else r.choice([r.randint(0, 600), round(r.uniform(0, 300), 1)])
        area = None if r.random() < 0.05 else r.choice([0.0, 1.0, round(r.uniform(0.0005, 0.6), 4)])
        problem = gen.words(r.randint(1, 30))
        for _ in range(GROUP_SIZE):
            completion, kind = gen.sample(box, points)
            kinds[kind] = kinds.get(kind, 0) + 1
            completions.append(completion)
            d = difficulty
            if d is not None and r.random() < 0.01:
                d = float("nan")  # a single sample without a score
            y = r.random()
            uncertainty: Any = (
                float("nan") if y < 0.03 else None if y < 0.04 else r.choice([0.0, 1.0, round(r.random(), 2)])
            )
            text = text_of(completion)
            words = len(text.split())
            cols["difficulty"].append(d)
            cols["uncertainty"].append(uncertainty)
            cols["group_ids"].append(g)
            cols["correct"].append(r.randint(0, 1))
            cols["accuracy"].append(r.choice([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, round(r.uniform(0, 5), 3)]))
            cols["target_length"].append(target)
            cols["lengths"].append(
                r.choice([words, words, max(0, words + r.randint(-20, 20)), 0, words + 0.5, r.randint(0, 3000)])
            )
            cols["ground_truth"].append(truth)
            cols["token_ids"].append(token_ids(text, r))
            cols["id"].append(f"p{g}")
            cols["mask_area_ratio"].append(area)
            cols["problem"].append(problem)
    return G.Dataset("generated", completions, cols), kinds


def conformance_dataset() -> G.Dataset:
    r = random.Random(1)
    columns = {k: list(v) for k, v in G.CONFORMANCE_CONTEXT.items()}
    columns["token_ids"] = [token_ids(t, r) for t in G.CONFORMANCE_RESPONSES]
    return G.Dataset("conformance", list(G.CONFORMANCE_RESPONSES), columns)


# ------------------------------------------------------------------------------------------------------------


def check_coverage() -> set[str]:
    """Every registered kind but :data:`cases.NOT_COVERED_KINDS` must appear in some case's config tree."""
    covered: set[str] = set()
    for case in G.CASES.values():
        covered |= G.config_kinds(json.loads(case.factory().to_config().model_dump_json()))
    # A ConstantSchedule weight dumps as its number, so its kind never shows in a config (weighted_sum_schedules
    # uses one).
    covered.add("constant_schedule")
    missing = set(alr.registered_kinds()) - covered - G.NOT_COVERED_KINDS
    assert not missing, f"no golden case covers these kinds: {sorted(missing)}"
    return covered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=G.DATA_FILE)
    parser.add_argument("--n", type=int, default=N_GENERATED, help="generated completions (keep the default)")
    parser.add_argument(
        "--allow-this-checkout",
        action="store_true",
        help="run even though adaptive_length_reward is imported from this checkout's src/ (the code under test)",
    )
    args = parser.parse_args()
    print(f"adaptive_length_reward from {alr.__file__}")
    this_src = Path(__file__).resolve().parents[2] / "src"
    if Path(alr.__file__).resolve().is_relative_to(this_src) and not args.allow_this_checkout:
        sys.exit(
            f"refusing: adaptive_length_reward is imported from {this_src}, the code under test; point PYTHONPATH at "
            "a checkout of the pre-redesign code (or pass --allow-this-checkout if this checkout IS that code)"
        )
    started = time.perf_counter()
    covered = check_coverage()

    generated, kinds = generated_dataset(args.n)
    files: dict[str, np.ndarray] = {}
    for dataset in (conformance_dataset(), generated):
        files.update(G.encode_dataset(dataset))
    # Evaluate exactly what the test will read back.
    datasets = {name: G.decode_dataset(name, files) for name in ("conformance", "generated")}

    records: dict[str, Any] = {}

    def store(array: np.ndarray) -> str:
        key = G.array_key(array)
        files.setdefault(key, array)
        return key

    for case in G.CASES.values():
        for name, dataset in datasets.items():
            if G.case_columns(case, dataset) is None:
                continue
            modes = ("whole", "chunked") if name == "generated" and case.chunked else ("whole",)
            for mode in modes:
                t0 = time.perf_counter()
                results = G.run_case(case, dataset, chunked=mode == "chunked")
                steps = []
                for res in results:
                    assert res.rewards.dtype == np.float64, (case.name, res.rewards.dtype)
                    steps.append(
                        {
                            "step": res.step,
                            "rewards": store(res.rewards),
                            "components": {k: store(v) for k, v in res.components.items()},
                            "columns": {k: store(v) for k, v in res.columns.items()},
                            "skipped_columns": res.skipped_columns,
                        }
                    )
                records[G.record_id(case.name, name, mode)] = {
                    "case": case.name,
                    "dataset": name,
                    "mode": mode,
                    "rows": len(G.selected_rows(case, dataset)),
                    "steps": steps,
                }
                print(f"  {G.record_id(case.name, name, mode):70s} {time.perf_counter() - t0:6.2f} s")
    scores = G.run_pixelthink_score(datasets["generated"])
    records["pixelthink_score[generated,per_sample]"] = {
        "case": "pixelthink_score",
        "dataset": "generated",
        "mode": "per_sample",
        "rows": len(scores),
        "steps": [{"step": 0, "rewards": store(scores), "components": {}, "columns": {}, "skipped_columns": []}],
    }
    meta = {
        "format": G.FORMAT,
        "case_names": list(G.CASES),
        "records": records,
        "covered_kinds": sorted(covered),
        "not_covered_kinds": sorted(G.NOT_COVERED_KINDS),
        "generated_kinds": kinds,
        "library_version": alr.__version__,
        "numpy_version": np.__version__,
    }
    files["meta"] = G._json_bytes(meta)
    files["case_names"] = np.array(list(G.CASES))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **files)
    size = args.out.stat().st_size
    print(
        f"wrote {args.out}: {len(G.CASES)} cases, {len(records)} records, {len(generated)} generated completions "
        f"({kinds}), {sum(k.startswith('arrays/') for k in files)} distinct arrays, {size / 1e6:.2f} MB, "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
