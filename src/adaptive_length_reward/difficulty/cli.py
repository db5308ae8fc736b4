"""``alr-difficulty``: annotate a dataset with a ``difficulty`` column on PixelThink's 1..10 scale.

Subcommands::

    alr-difficulty judge     DATA -o OUT (--base-url URL --model NAME | --model-path DIR) [--cache FILE] ...
    alr-difficulty lookup    DATA -o OUT --table refcoco_train_labeled_merged.json [--missing easy] ...
    alr-difficulty heuristic DATA -o OUT [--area-column mask_area_ratio] [--expression-column problem] ...

``DATA`` is a JSONL file, a Parquet file, or a Hugging Face dataset directory written by ``save_to_disk``; the
output has the same format and may be the input (it is written to a temporary file and moved into place).

``judge`` asks a VLM (an OpenAI-compatible server such as vLLM or SGLang, or a local transformers checkpoint)
and keeps every verdict in an SQLite cache (default ``DATA.judge-cache.sqlite``): run the same command again
after an interruption and only the samples without a verdict are asked. Each run prints a summary: how many
samples were judged now or taken from the cache, how many failed and why, and the tier histogram.

Exit status: 0 when every row got a difficulty, 1 when some did not (failures, missing keys under
``--missing nan``), 2 when the run could not start or was aborted (bad arguments, unreadable input, a request
the server rejected), 130 when interrupted (Ctrl-C; the requests in flight are waited for and kept).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..batch import RewardBatch
from ..errors import ConfigError, MissingContextError, MissingExtraError
from .backends import JudgeBackend, JudgeRequestError, OpenAICompatibleBackend, TransformersBackend
from .dataset_files import DatasetError, DatasetFile, open_dataset
from .heuristic import HeuristicDifficulty
from .judge import ASPECTS, PROMPT_VERSION, PROMPTS, DifficultyJudge, JudgeInputError, JudgeSample, Judgment
from .precomputed import LookupDifficulty
from .scale import DEFAULT_THRESHOLDS, DEFAULT_TIER_NAMES, check_tiers, describe_histogram, tier_histogram

__all__ = ["main"]

PROG = "alr-difficulty"


class _Progress:
    """A tqdm bar when tqdm is installed, else a plain line every 5 % (and at least every 10 s) on stderr."""

    def __init__(self, total: int, *, enabled: bool, desc: str, stream: TextIO) -> None:
        self.total, self.enabled, self.desc, self.stream = total, enabled, desc, stream
        self.done, self._bar, self._last_line = 0, None, time.monotonic()
        if enabled and total:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is optional (extras judge/data): fall back to plain lines
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit="sample", file=stream, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if not self.enabled or not self.total:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            return
        step = max(1, self.total // 20)
        now = time.monotonic()
        if self.done % step == 0 or self.done == self.total or now - self._last_line > 10:
            self._last_line = now
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            print(f"{self.desc}: {self.done}/{self.total} "
                  f"({100 * self.done / self.total:.0f}%){extra}", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ------------------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------------------


def _weights(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in ASPECTS or not value:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT pairs with names among {list(ASPECTS)}, got "
                                             f"{item!r}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number after {name}=, got {value!r}") from None
    return weights


def _missing(text: str) -> float | str:
    """A number (``3``, ``2.5``) or a word (``error``, ``nan``, a tier name); ``float()`` would read "nan"."""
    return float(text) if re.fullmatch(r"\d+(?:\.\d*)?", text.strip()) else text


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="input: .jsonl, .parquet, or a save_to_disk dataset directory")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output path (same format; may be the input)")
    parser.add_argument("--column", default="difficulty", help="name of the column to write (default: difficulty)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
                        help="tier boundaries for the summary (default: 3.5 5.0, PixelThink's)")
    parser.add_argument("--tier-names", nargs="+", default=list(DEFAULT_TIER_NAMES),
                        help="tier names (default: easy medium hard)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON to this file")


def build_parser() -> argparse.ArgumentParser:
    """The ``alr-difficulty`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Annotate a dataset with a difficulty column (1 = very easy .. 10 = very hard).",
        epilog="Exit status: 0 every row scored, 1 some rows without a score, 2 error.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{judge,lookup,heuristic}")

    judge = commands.add_parser("judge", help="ask a VLM judge (cached, resumable)",
                                description="Rate each sample with a VLM judge; verdicts are cached so reruns resume.")
    _common(judge)
    source = judge.add_argument_group("judge backend (one of)")
    source.add_argument("--base-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    source.add_argument("--model", help="served model name (with --base-url)")
    source.add_argument("--model-path", help="local AutoModelForImageTextToText checkpoint directory")
    source.add_argument("--model-id", help="name of the local model in the cache key (default: --model-path)")
    source.add_argument("--device", default="cpu", help="torch device for --model-path (default: cpu)")
    source.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    http = judge.add_argument_group("HTTP transport (with --base-url)")
    http.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default: 4)")
    http.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: 60)")
    http.add_argument("--max-retries", type=int, default=3, help="retries of a failed request (default: 3)")
    http.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubled each time")
    http.add_argument("--max-backoff", type=float, default=30.0, help="longest retry wait in seconds")
    http.add_argument("--api-key-env", help="environment variable holding a bearer token")
    http.add_argument("--json-mode", action="store_true", help="request response_format json_object")
    generation = judge.add_argument_group("generation and reading")
    generation.add_argument("--max-tokens", type=int, default=256, help="reply length limit (default: 256)")
    generation.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)")
    generation.add_argument("--seed", type=int, help="sampling seed")
    generation.add_argument("--prompt-version", default=PROMPT_VERSION, choices=sorted(PROMPTS))
    generation.add_argument("--parse-retries", type=int, default=2,
                            help="re-asks after an unreadable reply before recording it as failed (default: 2)")
    generation.add_argument("--aggregate", default="mean", choices=["mean", "median", "max", "min"],
                            help="how the three aspect scores combine (default: mean)")
    generation.add_argument("--weights", type=_weights, help="weighted mean instead, e.g. scene=1,seg=2,language=1")
    data = judge.add_argument_group("dataset columns")
    data.add_argument("--id-column", default="id", help="sample id column (default: id)")
    data.add_argument("--image-column", default="image", help="image column: paths, bytes or images (default: image)")
    data.add_argument("--expression-column", default="problem", help="referring expression column (default: problem)")
    data.add_argument("--mask-column", help="target mask column (gives area and position)")
    data.add_argument("--box-column", help="target box column: [x1,y1,x2,y2] pixels or '<box>(x1,y1),(x2,y2)</box>'")
    data.add_argument("--area-column", help="target mask area ratio column")
    run = judge.add_argument_group("run")
    run.add_argument("--cache", type=Path, help="SQLite verdict cache (default: DATA.judge-cache.sqlite)")
    run.add_argument("--retry-failed", action="store_true", help="re-ask samples cached as unparseable")
    run.add_argument("--details", action="store_true",
                     help="also write COLUMN_status and COLUMN_scene / _seg / _language columns")

    lookup = commands.add_parser("lookup", help="copy scores from a lookup table (official PixelThink JSON shape)")
    _common(lookup)
    lookup.add_argument("--table", type=Path, required=True,
                        help="JSON list of {image_id, difficulty_score_model} records, or a JSON object id -> score")
    lookup.add_argument("--id-column", default="id", help="dataset column matched against the table ids (default: id)")
    lookup.add_argument("--id-field", default="image_id", help="record field of the id (default: image_id)")
    lookup.add_argument("--score-field", default="difficulty_score_model", help="record field of the score")
    lookup.add_argument("--missing", type=_missing, default="error",
                        help="ids not in the table: error (default), nan, a tier name, or a value in [1, 10]")
    lookup.add_argument("--on-duplicate", default="error", choices=["error", "first", "last"])
    lookup.add_argument("--on-invalid", default="error", choices=["error", "missing"])

    heuristic = commands.add_parser("heuristic", help="baseline from mask area ratio and expression length")
    _common(heuristic)
    heuristic.add_argument("--area-column", default="mask_area_ratio", help="mask area ratio column (or 'none')")
    heuristic.add_argument("--mask-column", help="mask column, instead of --area-column")
    heuristic.add_argument("--expression-column", default="problem", help="expression column (or 'none')")
    heuristic.add_argument("--area-weight", type=float, default=0.6, help="weight of the area term (default: 0.6)")
    heuristic.add_argument("--missing", type=_missing, default="error",
                           help="rows without an area: error (default), nan, a tier name, or a value")
    return parser


# ------------------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------------------


def _backend(args: argparse.Namespace) -> JudgeBackend:
    if (args.base_url is None) == (args.model_path is None):
        raise ConfigError("judge: expected either --base-url (with --model) or --model-path, got "
                          + ("both" if args.base_url else "neither"))
    if args.base_url is not None:
        if not args.model:
            raise ConfigError("judge: --model: expected the served model name with --base-url, got nothing")
        return OpenAICompatibleBackend(
            base_url=args.base_url, model=args.model, timeout=args.timeout, max_retries=args.max_retries,
            backoff=args.backoff, max_backoff=args.max_backoff, concurrency=args.concurrency,
            max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, json_mode=args.json_mode,
            api_key_env=args.api_key_env,
        )
    return TransformersBackend(args.model_path, model_id=args.model_id, max_new_tokens=args.max_tokens,
                               temperature=args.temperature, seed=args.seed or 0, device=args.device, dtype=args.dtype)


def _judge(args: argparse.Namespace, dataset: DatasetFile, progress: Callable[..., _Progress]) -> dict[str, Any]:
    backend = _backend(args)
    cache = args.cache or Path(f"{args.data}.judge-cache.sqlite")
    judge = DifficultyJudge(backend, cache=cache, prompt=PROMPTS[args.prompt_version], parse_retries=args.parse_retries,
                            aggregate=args.aggregate, weights=args.weights)
    names = [args.id_column, args.image_column, args.expression_column]
    optional = {"mask": args.mask_column, "box": args.box_column, "area_ratio": args.area_column}
    names += [c for c in optional.values() if c]
    raw_ids = dataset.column(args.id_column)
    if any(v is None for v in raw_ids):
        row = next(i for i, v in enumerate(raw_ids) if v is None)
        raise DatasetError(f"dataset: column {args.id_column!r}: expected an id in every row, got null in row {row}")
    ids = [str(v) for v in raw_ids]

    def samples() -> Iterable[JudgeSample]:
        for row in dataset.rows(names):
            yield JudgeSample(sample_id=row[args.id_column], image=row[args.image_column],
                              expression=row[args.expression_column], base_dir=dataset.base_dir,
                              **{key: row[column] for key, column in optional.items() if column})

    verdicts: dict[str, Judgment] = {}
    bar = progress(len(set(ids)), desc="judging")
    try:
        for judgment in judge.judge_many(samples(), retry_failed=args.retry_failed):
            verdicts[judgment.sample_id] = judgment
            failed = sum(1 for j in verdicts.values() if not j.ok)
            bar.update(1, failed=failed)
    finally:
        bar.close()
    values = [judge.difficulty(verdicts[i]) for i in ids]
    columns: dict[str, list[Any]] = {args.column: values}
    if args.details:
        columns[f"{args.column}_status"] = [verdicts[i].status for i in ids]
        for aspect in ASPECTS:
            columns[f"{args.column}_{aspect}"] = [
                verdicts[i].aspects[aspect] if verdicts[i].aspects else None for i in ids  # type: ignore[index]
            ]
    statuses = Counter(j.status for j in verdicts.values())
    failures = [{"id": j.sample_id, "status": j.status, "error": j.error} for j in verdicts.values() if not j.ok]
    dataset.write(args.output, columns)
    return {
        "values": values,
        "judge": {"settings_hash": judge.settings_hash, "settings": judge.settings, "cache": str(cache),
                  "samples": len(verdicts), "from_cache": sum(1 for j in verdicts.values() if j.cached),
                  "judged_now": sum(1 for j in verdicts.values() if not j.cached),
                  "requests": backend.requests_made, "statuses": dict(statuses)},
        "failures": failures,
    }


def _scored_by(scorer: Any, dataset: DatasetFile, columns: Sequence[str]) -> list[float]:
    """Run a scorer over the whole dataset as one batch (completions are irrelevant to scorers)."""
    data = {name: tuple(dataset.column(name)) for name in columns}
    batch = RewardBatch(completions=("",) * len(dataset), extra=data)
    return [float(v) for v in scorer(batch)]


def _lookup(args: argparse.Namespace, dataset: DatasetFile, progress: Callable[..., _Progress]) -> dict[str, Any]:
    scorer = LookupDifficulty(args.table, key_column=args.id_column, id_field=args.id_field,
                              score_field=args.score_field, missing=args.missing, on_duplicate=args.on_duplicate,
                              on_invalid=args.on_invalid, thresholds=args.thresholds, tier_names=args.tier_names)
    values = _scored_by(scorer, dataset, [args.id_column])
    dataset.write(args.output, {args.column: values})
    return {"values": values, "lookup": {"table": str(args.table), "table_size": len(scorer), **scorer.stats}}


def _heuristic(args: argparse.Namespace, dataset: DatasetFile, progress: Callable[..., _Progress]) -> dict[str, Any]:
    area = None if args.mask_column or (args.area_column or "").lower() == "none" else args.area_column
    expression = None if (args.expression_column or "").lower() == "none" else args.expression_column
    scorer = HeuristicDifficulty(area_column=area, mask_column=args.mask_column, expression_column=expression,
                                 area_weight=args.area_weight, missing=args.missing, thresholds=args.thresholds,
                                 tier_names=args.tier_names)
    values = _scored_by(scorer, dataset, sorted(scorer.requires))
    dataset.write(args.output, {args.column: values})
    return {"values": values, "heuristic": {"config": scorer.to_config().model_dump(), **scorer.stats}}


COMMANDS = {"judge": _judge, "lookup": _lookup, "heuristic": _heuristic}


# ------------------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------------------


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"{PROG} {summary['command']}: {summary['rows']} rows -> {summary['output']} (column "
             f"{summary['column']!r})"]
    judge = summary.get("judge")
    if judge is not None:
        statuses = judge["statuses"]
        lines.append(f"  judge settings {judge['settings_hash'][:12]} ({judge['settings']['judge'].get('model')}, "
                     f"prompt {judge['settings']['prompt_version']}); cache {judge['cache']}")
        lines.append(f"  samples {judge['samples']}: judged now {judge['judged_now']}, from cache "
                     f"{judge['from_cache']}, "
                     f"requests {judge['requests']}; ok {statuses.get('ok', 0)}, unparseable "
                     f"{statuses.get('unparseable', 0)}, transport errors {statuses.get('transport_error', 0)}")
    for key in ("lookup", "heuristic"):
        if key in summary:
            info = summary[key]
            lines.append(f"  scored {info['scored']}, fell back to the missing policy {info['fell_back']}")
    lines.append(f"  tiers (thresholds {', '.join(f'{t:g}' for t in summary['thresholds'])}):")
    histogram = describe_histogram(summary["histogram"], summary["thresholds"], summary["tier_names"])
    lines += ["    " + line for line in histogram]
    failures = summary.get("failures") or []
    if failures:
        lines.append(f"  failures ({len(failures)}):")
        for item in failures[:10]:
            lines.append(f"    id {item['id']}: {item['status']}: {(item['error'] or '')[:160]}")
        if len(failures) > 10:
            lines.append(f"    ... and {len(failures) - 10} more (see --summary-json)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 all scored, 1 some rows without a score, 2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        check_tiers(args.thresholds, args.tier_names, owner="--thresholds/--tier-names")
        dataset = open_dataset(args.data)

        def progress(total: int, *, desc: str) -> _Progress:
            return _Progress(total, enabled=not args.no_progress, desc=desc, stream=err)

        result = COMMANDS[args.command](args, dataset, progress)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; verdicts received so far are in the cache, run the same "
              "command again to resume", file=err)
        return 130
    except (ConfigError, MissingContextError, MissingExtraError, JudgeRequestError, JudgeInputError, DatasetError,
            FileNotFoundError, ValueError) as error:  # bad input or configuration: say what, no traceback
        print(f"{PROG} {args.command}: error: {error}", file=err)
        return 2
    values = np.asarray(result.pop("values"), dtype=np.float64)
    summary: dict[str, Any] = {
        "command": args.command, "input": str(args.data), "output": str(args.output), "column": args.column,
        "rows": int(values.size), "scored_rows": int((~np.isnan(values)).sum()),
        "thresholds": list(args.thresholds), "tier_names": list(args.tier_names),
        "histogram": tier_histogram(values, args.thresholds, args.tier_names), **result,
    }
    print("\n".join(_summary_lines(summary)), file=out, flush=True)
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if summary["scored_rows"] == summary["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
