"""``alr-rscore``: add an ``rscore`` column (0..10) to a dataset of reasoning chains and reference chains.

Subcommands ``judge`` (an LLM judge, :class:`~.judge.RScoreJudge`, cached in SQLite so a rerun resumes) and
``overlap`` (the opt-in stand-in :class:`~.overlap.ReferenceOverlapRScore`, **not an LLM judge**), over JSONL,
Parquet or a ``save_to_disk`` dataset with the columns ``reasoning``, ``reference_short``, ``reference_long`` and an
id (names configurable). The backend options are the difficulty judge's (``alr-difficulty judge``). Exit status:
0 every row scored, 1 some rows without a score, 2 error, 130 interrupted. See docs/rscore.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._cli import Parser, add_version, flag_names
from ..difficulty.cli import (
    _backend,
    _text_or_none,
    add_backend_options,
    add_options,
    add_run_options,
    check_output,
    check_writable,
    command_parser,
    failure_lines,
    finish,
    judge_all,
    judge_lines,
    judge_report,
    run_command,
)
from ..difficulty.dataset_files import DatasetError, DatasetFile, open_dataset
from .efficiency import rscore_summary
from .judge import RScoreJudge, RScoreSample
from .overlap import ReferenceOverlapRScore
from .prompt import RSCORE_PROMPT_VERSION, RSCORE_PROMPTS

__all__ = ["build_parser", "main"]

PROG = "alr-rscore"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="input: .jsonl, .parquet, or a save_to_disk dataset directory")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output path (same format; may be the input)")
    parser.add_argument("--column", default="rscore", help="name of the column to write")
    columns = parser.add_argument_group("dataset columns")
    columns.add_argument("--id-column", default="id", help="sample id column")
    columns.add_argument("--reasoning-column", default="reasoning", help="the model's reasoning (the <think> content)")
    columns.add_argument("--reference-short-column", default="reference_short", help="the short reference reasoning")
    columns.add_argument("--reference-long-column", default="reference_long", help="the long reference reasoning")
    columns.add_argument(
        "--question-column",
        type=_text_or_none,
        default=None,
        help="the referring question, shown to the judge (default: none, no question)",
    )
    add_run_options(parser, "judge retries, the stand-in's notice; info adds cache hits and unreadable replies")


def build_parser() -> argparse.ArgumentParser:
    """The ``alr-rscore`` argument parser."""
    parser = Parser(
        prog=PROG,
        description="Score reasoning chains 0..10 against short and long reference chains (RScore).",
        epilog="Exit status: 0 every row scored, 1 some rows without a score, 2 error, 130 interrupted.",
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{judge,overlap}", parser_class=Parser)
    judge = commands.add_parser(
        "judge",
        help="ask an LLM judge (cached, resumable)",
        description="Score each reasoning chain with an LLM judge; verdicts are cached so reruns resume.",
    )
    _common(judge)
    add_backend_options(judge)
    reading = judge.add_argument_group("reading replies")
    reading.add_argument(
        "--prompt-version", default=RSCORE_PROMPT_VERSION, choices=sorted(RSCORE_PROMPTS), help="the judge prompt"
    )
    reading.add_argument(
        "--parse-retries",
        type=_non_negative,
        default=2,
        help="re-asks after an unreadable reply before it counts as failed",
    )
    run = judge.add_argument_group("run")
    run.add_argument("--cache", type=Path, help="SQLite verdict cache (default: DATA.rscore-cache.sqlite)")
    run.add_argument("--retry-failed", action="store_true", help="re-ask samples cached as unparseable")
    run.add_argument("--details", action="store_true", help="also write a COLUMN_status column")
    overlap = commands.add_parser(
        "overlap",
        help="NOT an LLM judge: 10 x token-F1 overlap with the best reference (offline stand-in)",
        description="Opt-in stand-in for offline CPU runs: 10 x the best token F1 of the reasoning against the "
        "short and long references. It measures wording overlap, not reasoning quality; its values are not "
        "comparable with the paper's RScore.",
    )
    _common(overlap)
    add_options(overlap, ReferenceOverlapRScore, ("lowercase",))
    return parser


def _non_negative(text: str) -> int:
    """An int >= 0 (argparse reports anything else as a usage error naming the flag)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_non_negative.__name__ = "int >= 0"  # argparse's message: "invalid int >= 0 value: '-1'"


def _samples(args: argparse.Namespace, dataset: DatasetFile) -> list[RScoreSample]:
    """Every row as a sample, checked before anything is asked (a bad row is an error naming it)."""
    names = [args.id_column, args.reasoning_column, args.reference_short_column, args.reference_long_column]
    columns = [*names, *([args.question_column] if args.question_column else [])]
    dataset.require(columns)
    samples = []
    for i, row in enumerate(dataset.rows(columns)):
        if row[args.id_column] is None:
            raise DatasetError(f"dataset: column {args.id_column!r}: expected an id in every row, got null in row {i}")
        try:
            sample_id, reasoning, short, long = (row[name] for name in names)
            question = row[args.question_column] if args.question_column else None
            samples.append(RScoreSample(sample_id, reasoning, short, long, question=question))
        except ValueError as error:
            raise DatasetError(f"dataset: row {i}: {error}") from None
    return samples


def _judge(args: argparse.Namespace, dataset: DatasetFile, samples: list[RScoreSample]) -> dict[str, Any]:
    backend = _backend(args)
    cache = args.cache or Path(f"{args.data}.rscore-cache.sqlite")
    judge = RScoreJudge(
        backend, cache=cache, prompt=RSCORE_PROMPTS[args.prompt_version], parse_retries=args.parse_retries
    )
    verdicts = judge_all(judge, samples, retry_failed=args.retry_failed, progress=not args.no_progress, desc="scoring")
    values = [judge.rscore(verdicts[s.key]) for s in samples]
    columns: dict[str, list[Any]] = {args.column: values}
    if args.details:
        columns[f"{args.column}_status"] = [verdicts[s.key].status for s in samples]
    dataset.write(args.output, columns)
    return {"values": values, "method": judge.method, **judge_report(judge, backend, cache, verdicts)}


def _overlap(args: argparse.Namespace, dataset: DatasetFile, samples: list[RScoreSample]) -> dict[str, Any]:
    scorer = ReferenceOverlapRScore(lowercase=args.lowercase)
    values = scorer.score_many(samples)
    dataset.write(args.output, {args.column: values})
    return {"values": values, "method": scorer.method, "config": scorer.to_config().model_dump()}


COMMANDS = {"judge": _judge, "overlap": _overlap}


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"{PROG} {summary['command']}: {summary['rows']} rows -> {summary['output']} (column {summary['column']!r})",
        f"  method: {summary['method']}",
    ]
    lines += judge_lines(summary)
    mean = summary["mean_rscore"]
    lines.append(
        f"  mean rscore {'n/a' if mean is None else f'{mean:.3f}'} over {summary['scored_rows']} scored "
        f"of {summary['rows']} rows"
    )
    return lines + failure_lines(summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 all scored, 1 some rows without a score, 2 error, 130
    interrupted). A usage error (argparse's) exits 2 with the usage and one ``alr-rscore COMMAND: error: ...``
    line; an error found later is that one line alone, without a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # an application entry point: show the library's log records (the library itself configures no handler)
    logging.basicConfig(level=args.log_level.upper(), format=f"{PROG}: %(levelname)s %(name)s: %(message)s")
    flags = flag_names(command_parser(parser, args.command))

    def work() -> dict[str, Any]:
        dataset = open_dataset(args.data)
        check_output(dataset, args.output)
        if args.summary_json is not None:
            check_writable(args.summary_json, "--summary-json")
        samples = _samples(args, dataset)  # every row checked before the bar is drawn or a request sent
        return COMMANDS[args.command](args, dataset, samples)

    result = run_command(PROG, args, flags, work)
    if isinstance(result, int):
        return result
    values = result.pop("values")
    stats = rscore_summary(values)
    summary: dict[str, Any] = {
        "command": args.command,
        "input": str(args.data),
        "output": str(args.output),
        "column": args.column,
        "rows": stats["rows"],
        "scored_rows": stats["scored"],
        "mean_rscore": None if stats["scored"] == 0 else stats["mean"],
        **result,
    }
    return finish(PROG, args, summary, _summary_lines(summary))


if __name__ == "__main__":
    sys.exit(main())
