"""``alr-difficulty``: annotate a dataset with a ``difficulty`` column on PixelThink's 1..10 scale.

Subcommands ``judge`` (a VLM judge, cached in SQLite so a rerun resumes), ``lookup`` (a table in the official
PixelThink shape) and ``heuristic``, over JSONL, Parquet or a ``save_to_disk`` dataset (:mod:`.dataset_files`).
Every option is a declared parameter of the component it configures (:func:`add_options`). Exit status: 0 every
row scored, 1 some rows without a score, 2 error, 130 interrupted. See docs/difficulty.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._cli import Parser, add_version, flag_names, parameter_error
from ..batch import RewardBatch
from ..config import Component
from ..errors import ConfigError, MissingContextError, MissingExtraError
from ..tiers import TierLayout
from .dataset_files import DatasetError, DatasetFile, open_dataset
from .heuristic import HeuristicDifficulty
from .judge import (
    ASPECTS,
    JudgeBackend,
    JudgedDifficulty,
    JudgeRequestError,
    JudgeSample,
    Judgment,
    OpenAICompatibleBackend,
    TransformersBackend,
)
from .precomputed import LookupDifficulty
from .scorer import TieredScorer

__all__ = ["main"]

PROG = "alr-difficulty"


class _Progress:
    """A tqdm bar when tqdm is installed, else a plain line every 5 % (and at least every 10 s) on stderr."""

    def __init__(self, total: int, *, enabled: bool, desc: str) -> None:
        self.total, self.enabled, self.desc = total, enabled and total > 0, desc
        self.done, self._bar, self._last_line = 0, None, time.monotonic()
        if self.enabled:
            with contextlib.suppress(ImportError):  # tqdm is optional (extras judge/data): else plain lines
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, dynamic_ncols=True)

    def update(self, **postfix: Any) -> None:
        """One more sample done; ``postfix`` items (e.g. ``failed=2``) are shown after the count."""
        self.done += 1
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(postfix, refresh=False)
        elif self.enabled and (
            self.done % max(1, self.total // 20) == 0 or self.done == self.total or now - self._last_line > 10
        ):
            self._last_line = now
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            print(
                f"{self.desc}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%){extra}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``command``."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return typing.cast(argparse.ArgumentParser, commands.choices[command])


def user_facing(error: BaseException, flags: Mapping[str, str], owners: Mapping[str, str] | None = None) -> str:
    """One line in the command line's words: a library message about a parameter that is a flag here names the
    flag (``LookupDifficulty: missing: expected ...`` -> ``--missing: expected ...``), advice to "set missing="
    names ``--missing``, and a leading component name in ``owners`` is replaced by what the user gave."""
    text = f"{error.strerror}: {error.filename!r}" if isinstance(error, OSError) and error.strerror else str(error)
    message = " ".join(text.split())
    parameter = parameter_error(message)
    if parameter is not None and parameter[0] in flags:
        message = f"{flags[parameter[0]]}: {parameter[1]}"
    for owner, shown in (owners or {}).items():
        if message.startswith(f"{owner}: "):
            message = f"{shown}: {message[len(owner) + 2 :]}"
    return re.sub(r"\bset (\w+)=? to\b", lambda m: f"pass {flags.get(m.group(1), m.group(1))} with", message)


def check_output(dataset: DatasetFile, output: Path) -> None:
    """Refuse an output whose suffix names another format than the input's before any work (the same rule as
    :meth:`DatasetFile.write`, which would only say so after the run)."""
    formats = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
    fmt = formats.get(output.suffix.lower())
    if dataset.format != "hf" and fmt is not None and fmt != dataset.format:
        raise DatasetError(f"--output: expected a {dataset.format} path like the input, got {str(output)!r}")
    if dataset.format != "hf" and output.is_dir():
        raise DatasetError(
            f"--output: expected a {dataset.format} file path like the input, got the directory {str(output)!r}"
        )
    check_writable(output, "--output")


def check_writable(path: Path, flag: str) -> None:
    """``path`` can be created: its nearest existing ancestor is a directory this process may write in (missing
    directories are created when writing)."""
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise DatasetError(
            f"{flag}: expected a path in a directory this user may write, got {str(path)!r} "
            f"({str(ancestor)!r} is not writable)"
        )


def _weights(text: str) -> dict[str, str]:
    """``scene=1,seg=2,language=1`` as a mapping; the declaration checks the names and reads the numbers."""
    return {name.strip(): value.strip() for name, _, value in (item.partition("=") for item in text.split(","))}


def _missing(text: str) -> float | str:
    """A number (``3``, ``2.5``) or a word (``error``, ``nan``, a tier name); ``float()`` would read "nan"."""
    return float(text) if re.fullmatch(r"\d+(?:\.\d*)?", text.strip()) else text


def _text_or_none(text: str) -> str | None:
    """An optional name: ``none`` on the command line means None (e.g. no such column)."""
    return None if text.lower() == "none" else text


#: Parameters whose command-line text needs more than their type to read.
_PARSERS: dict[str, Callable[[str], Any]] = {"missing": _missing, "weights": _weights}

#: The parameters each command exposes, by component; a flag is ``--name-with-dashes`` unless renamed.
HTTP = (
    "base_url",
    "model",
    "timeout",
    "max_response_bytes",
    "max_retries",
    "backoff",
    "max_backoff",
    "concurrency",
    "api_key_env",
    "json_mode",
    "max_tokens",
    "temperature",
    "seed",
)
LOCAL = ("model_path", "model_id", "device", "dtype")
READING = ("prompt_version", "parse_retries", "aggregate", "weights")
COLUMNS = ("id_column", "image_column", "expression_column", "mask_column", "box_column", "area_column")
LOOKUP = ("table", "key_column", "id_field", "score_field", "missing", "on_duplicate", "on_invalid")
HEURISTIC = ("area_column", "mask_column", "expression_column", "area_weight", "missing")


def add_options(
    group: Any,
    cls: type[Component],
    names: Sequence[str],
    *,
    flags: Mapping[str, str] | None = None,
    required: bool = True,
    helps: Mapping[str, str] | None = None,
) -> None:
    """One option per declared parameter of ``cls`` in ``names``: the declared type (choices for a ``Literal``,
    a switch for a bool that defaults to False, several values for a tuple), the declared default, and the
    declared doc as help (:class:`HelpFormatter` adds the default); ``none`` is None for an optional name.
    ``required=False`` makes required parameters optional (one of several backends); ``flags`` renames options
    and ``helps`` replaces a doc written for the library (not the command line)."""
    fields = {f.key: f for f in cls.fields()}
    for name in names:
        f = fields[name]
        hint = f.hint
        optional = type(None) in typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = options[0] if len(options) == 1 else str
        kwargs: dict[str, Any] = {"dest": name, "help": (helps or {}).get(name, f.spec.doc).replace("%", "%%")}
        if f.required:
            kwargs["required"] = required
        else:
            default = f.default()
            kwargs["default"] = list(default) if isinstance(default, tuple) else default  # shown by HelpFormatter
        if hint is bool:
            kwargs["action"] = "store_true"
        elif name in _PARSERS:
            kwargs["type"] = _PARSERS[name]
        elif typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif typing.get_origin(hint) is tuple:
            kwargs.update(nargs="+", type=typing.get_args(hint)[0])
        else:
            kwargs["type"] = hint if hint in (int, float) else _text_or_none if optional else str
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        if "action" not in kwargs and "choices" not in kwargs:
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()  # a renamed option's own name
        group.add_argument(flag, **kwargs)


def _values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names}


def add_backend_options(judge: argparse.ArgumentParser) -> None:
    """The judge backends' options (the HTTP server's, the local checkpoint's), shared by every judge command."""
    add_options(
        judge.add_argument_group("HTTP judge (OpenAI-compatible server)"), OpenAICompatibleBackend, HTTP, required=False
    )
    add_options(
        judge.add_argument_group("local judge (--max-tokens, --temperature, --seed apply too)"),
        TransformersBackend,
        LOCAL,
        required=False,
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="input: .jsonl, .parquet, or a save_to_disk dataset directory")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output path (same format; may be the input)")
    parser.add_argument("--column", default="difficulty", help="name of the column to write")
    add_options(parser, TieredScorer, ("thresholds", "tier_names"))
    add_run_options(parser, "judge retries; info adds cache hits, unreadable replies and fallbacks")


def add_run_options(parser: argparse.ArgumentParser, logged: str) -> None:
    """``--no-progress``, ``--summary-json`` and ``--log-level`` (``logged``: what the default level shows, and
    what ``info`` adds)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help=f"the library's log records shown on stderr (warning: {logged})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``alr-difficulty`` argument parser."""
    parser = Parser(
        prog=PROG,
        description="Annotate a dataset with a difficulty column (1 = very easy .. 10 = very hard).",
        epilog="Exit status: 0 every row scored, 1 some rows without a score, 2 error, 130 interrupted.",
    )
    add_version(parser)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{judge,lookup,heuristic}", parser_class=Parser
    )

    judge = commands.add_parser(
        "judge",
        help="ask a VLM judge (cached, resumable)",
        description="Rate each sample with a VLM judge; verdicts are cached so reruns resume.",
    )
    _common(judge)
    add_backend_options(judge)
    add_options(judge.add_argument_group("reading replies"), JudgedDifficulty, READING)
    add_options(judge.add_argument_group("dataset columns"), JudgedDifficulty, COLUMNS)
    run = judge.add_argument_group("run")
    run.add_argument("--cache", type=Path, help="SQLite verdict cache (default: DATA.judge-cache.sqlite)")
    add_options(run, JudgedDifficulty, ("retry_failed",))
    run.add_argument(
        "--details", action="store_true", help="also write COLUMN_status and COLUMN_scene / _seg / _language columns"
    )

    lookup = commands.add_parser("lookup", help="copy scores from a lookup table (official PixelThink JSON shape)")
    _common(lookup)
    add_options(
        lookup,
        LookupDifficulty,
        LOOKUP,
        flags={"key_column": "--id-column"},
        helps={
            "table": "a .json/.jsonl table: the official list of records (--id-field, --score-field) or "
            "a plain {id: score}"
        },
    )

    heuristic = commands.add_parser("heuristic", help="baseline from mask area ratio and expression length")
    _common(heuristic)
    add_options(heuristic, HeuristicDifficulty, HEURISTIC)
    return parser


def _backend(args: argparse.Namespace) -> JudgeBackend:
    if (args.base_url is None) == (args.model_path is None):
        raise ConfigError(
            "expected either --base-url (with --model) or --model-path, got " + ("both" if args.base_url else "neither")
        )
    if args.base_url is not None:
        if not args.model:
            raise ConfigError("--model: expected the served model name with --base-url, got nothing")
        if args.api_key_env is not None and not os.environ.get(args.api_key_env):
            raise ConfigError(
                f"--api-key-env: expected the environment variable {args.api_key_env!r} to hold an API key, got nothing"
            )
        return OpenAICompatibleBackend(**_values(args, HTTP))
    return TransformersBackend(
        **_values(args, LOCAL), max_new_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed or 0
    )


def _judge(args: argparse.Namespace, dataset: DatasetFile) -> dict[str, Any]:
    backend = _backend(args)
    cache = args.cache or Path(f"{args.data}.judge-cache.sqlite")
    scorer = JudgedDifficulty(backend, cache=cache, **_values(args, (*READING, *COLUMNS, "retry_failed")))
    samples = _judge_samples(scorer, dataset)  # every row checked before the bar is drawn or a request sent
    ids = [sample.key for sample in samples]
    judge = scorer.judge
    verdicts = judge_all(
        judge, samples, retry_failed=scorer.retry_failed, progress=not args.no_progress, desc="judging"
    )
    values = [judge.difficulty(verdicts[i]) for i in ids]
    columns: dict[str, list[Any]] = {args.column: values}
    if args.details:
        columns[f"{args.column}_status"] = [verdicts[i].status for i in ids]
        for aspect in ASPECTS:
            columns[f"{args.column}_{aspect}"] = [(verdicts[i].aspects or {}).get(aspect) for i in ids]
    dataset.write(args.output, columns)
    return {"values": values, **judge_report(judge, backend, cache, verdicts)}


def judge_all(
    judge: Any, samples: Sequence[Any], *, retry_failed: bool, progress: bool, desc: str
) -> dict[str, Judgment]:
    """Every sample's verdict by sample id, with the progress bar (``judge``: a judge runner of this package or of
    :mod:`adaptive_length_reward.rscore`). Failures are counted as verdicts arrive: a rerun over a fully cached
    dataset stays linear in its size."""
    verdicts: dict[str, Judgment] = {}
    failed = 0
    bar = _Progress(len({sample.key for sample in samples}), enabled=progress, desc=desc)
    try:
        for judgment in judge.judge_many(samples, retry_failed=retry_failed):
            verdicts[judgment.sample_id] = judgment
            failed += not judgment.ok
            bar.update(failed=failed)
    finally:
        bar.close()
    return verdicts


def judge_report(judge: Any, backend: JudgeBackend, cache: Path, verdicts: Mapping[str, Judgment]) -> dict[str, Any]:
    """The summary's ``judge`` (settings, cache, counts, statuses) and ``failures`` entries of a judge run."""
    return {
        "judge": {
            "settings_hash": judge.settings_hash,
            "settings": judge.settings,
            "cache": str(cache),
            "samples": len(verdicts),
            "from_cache": sum(1 for j in verdicts.values() if j.cached),
            "judged_now": sum(1 for j in verdicts.values() if not j.cached),
            "requests": backend.requests_made,
            "statuses": dict(Counter(j.status for j in verdicts.values())),
        },
        "failures": [{"id": j.sample_id, "status": j.status, "error": j.error} for j in verdicts.values() if not j.ok],
    }


def judge_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary's judge lines (settings, cache, counts; none without a judge run)."""
    judge = summary.get("judge")
    if judge is None:
        return []
    statuses = judge["statuses"]
    return [
        f"  judge settings {judge['settings_hash'][:12]} ({judge['settings']['judge'].get('model')}, "
        f"prompt {judge['settings']['prompt_version']}); cache {judge['cache']}",
        f"  samples {judge['samples']}: judged now {judge['judged_now']}, from cache "
        f"{judge['from_cache']}, requests {judge['requests']}; ok {statuses.get('ok', 0)}, unparseable "
        f"{statuses.get('unparseable', 0)}, transport errors {statuses.get('transport_error', 0)}",
    ]


def failure_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary's failures, the first ten."""
    failures = summary.get("failures") or []
    if not failures:
        return []
    lines = [f"  failures ({len(failures)}):"]
    lines += [f"    id {item['id']}: {item['status']}: {(item['error'] or '')[:160]}" for item in failures[:10]]
    if len(failures) > 10:
        lines.append(f"    ... and {len(failures) - 10} more (see --summary-json)")
    return lines


def finish(prog: str, args: argparse.Namespace, summary: dict[str, Any], lines: Sequence[str]) -> int:
    """Print the summary lines, write ``--summary-json`` if asked; the exit status: 0 every row scored, 1 some
    rows without a score, 2 the summary file could not be written."""
    print("\n".join(lines), flush=True)
    if args.summary_json is not None:
        try:
            args.summary_json.parent.mkdir(parents=True, exist_ok=True)
            args.summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"{prog} {args.command}: error: --summary-json: {user_facing(error, {})}", file=sys.stderr)
            return 2
    return 0 if summary["scored_rows"] == summary["rows"] else 1


def _judge_samples(scorer: JudgedDifficulty, dataset: DatasetFile) -> list[JudgeSample]:
    """One sample per row, every row checked: the columns exist, each row has an id and an expression, and an
    image given as a path names an existing file (else :class:`DatasetError` naming the row)."""
    dataset.require(scorer.columns)
    samples = []
    base = Path(dataset.base_dir) if dataset.base_dir is not None else None
    for i, row in enumerate(dataset.rows(scorer.columns)):
        if row[scorer.id_column] is None:
            raise DatasetError(
                f"dataset: column {scorer.id_column!r}: expected an id in every row, got null in row {i}"
            )
        try:
            sample = scorer.sample(row, base_dir=dataset.base_dir)
        except ValueError as error:
            raise DatasetError(f"dataset: row {i}: {error}") from None
        image = sample.image
        if isinstance(image, str):
            path = Path(image) if base is None or Path(image).is_absolute() else base / image
            if not path.is_file():
                raise DatasetError(
                    f"dataset: row {i}: column {scorer.image_column!r}: expected an existing image "
                    f"file, got {image!r} ({str(path)!r} does not exist)"
                )
        samples.append(sample)
    return samples


def _scored(scorer: TieredScorer, args: argparse.Namespace, dataset: DatasetFile, **info: Any) -> dict[str, Any]:
    """Run a scorer over the whole dataset as one batch (completions are irrelevant to scorers); write it."""
    data = {name: tuple(dataset.column(name)) for name in sorted(scorer.requires)}
    values = [float(v) for v in scorer(RewardBatch(completions=("",) * len(dataset), extra=data))]
    dataset.write(args.output, {args.column: values})
    return {"values": values, args.command: {**info, **scorer.stats}}


def _lookup(args: argparse.Namespace, dataset: DatasetFile) -> dict[str, Any]:
    scorer = LookupDifficulty(**_values(args, (*LOOKUP, "thresholds", "tier_names")))
    return _scored(scorer, args, dataset, table=str(args.table), table_size=len(scorer))


def _heuristic(args: argparse.Namespace, dataset: DatasetFile) -> dict[str, Any]:
    scorer = HeuristicDifficulty(**_values(args, (*HEURISTIC, "thresholds", "tier_names")))
    return _scored(scorer, args, dataset, config=scorer.to_config().model_dump())


COMMANDS = {"judge": _judge, "lookup": _lookup, "heuristic": _heuristic}


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"{PROG} {summary['command']}: {summary['rows']} rows -> {summary['output']} (column {summary['column']!r})",
        *judge_lines(summary),
    ]
    for key in ("lookup", "heuristic"):
        if key in summary:
            info = summary[key]
            lines.append(f"  scored {info['scored']}, fell back to the missing policy {info['fell_back']}")
    lines.append(f"  tiers (thresholds {', '.join(f'{t:g}' for t in summary['thresholds'])}):")
    layout = TierLayout(summary["thresholds"], summary["tier_names"])
    lines += ["    " + line for line in layout.describe(summary["histogram"])]
    return lines + failure_lines(summary)


def run_command(
    prog: str,
    args: argparse.Namespace,
    flags: Mapping[str, str],
    work: Callable[[], dict[str, Any]],
    owners: Mapping[str, str] | None = None,
) -> dict[str, Any] | int:
    """``work()``'s result, or the exit status when it was interrupted (130, with how to resume a ``judge`` run)
    or failed on bad input or configuration (2, one ``PROG COMMAND: error: ...`` line in the command line's words,
    :func:`user_facing`, no traceback). Both CLIs (``alr-difficulty``, ``alr-rscore``) run their command
    through it."""
    try:
        return work()
    except KeyboardInterrupt:
        resume = "; verdicts received so far are in the cache, run the same command again to resume"
        print(f"{prog} {args.command}: interrupted{resume if args.command == 'judge' else ''}", file=sys.stderr)
        return 130
    except (ValueError, MissingContextError, MissingExtraError, JudgeRequestError, OSError) as error:
        # bad input or configuration (ConfigError, DatasetError, JudgeInputError...): say what, no traceback
        print(f"{prog} {args.command}: error: {user_facing(error, flags, owners)}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 all scored, 1 some rows without a score, 2 error, 130 interrupted).

    A usage error (argparse's) exits 2 with the usage and one ``alr-difficulty COMMAND: error: ...`` line; an
    error found later (input, configuration, the judge server) is that one line alone, in the command line's
    words (:func:`user_facing`), without a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # an application entry point: show the library's log records (the library itself configures no handler)
    logging.basicConfig(level=args.log_level.upper(), format=f"{PROG}: %(levelname)s %(name)s: %(message)s")
    layout = TierLayout(args.thresholds, args.tier_names)
    flags = flag_names(command_parser(parser, args.command))
    owners = {
        "LookupDifficulty": f"--table {args.table}" if args.command == "lookup" else "lookup",
        "HeuristicDifficulty": "heuristic",
    }

    def work() -> dict[str, Any]:
        layout.check(owner="--thresholds/--tier-names")
        dataset = open_dataset(args.data)
        check_output(dataset, args.output)
        if args.summary_json is not None:
            check_writable(args.summary_json, "--summary-json")
        return COMMANDS[args.command](args, dataset)

    result = run_command(PROG, args, flags, work, owners)
    if isinstance(result, int):
        return result
    values = np.asarray(result.pop("values"), dtype=np.float64)
    summary: dict[str, Any] = {
        "command": args.command,
        "input": str(args.data),
        "output": str(args.output),
        "column": args.column,
        "rows": int(values.size),
        "scored_rows": int((~np.isnan(values)).sum()),
        "thresholds": list(args.thresholds),
        "tier_names": list(args.tier_names),
        "histogram": layout.histogram(values),
        **result,
    }
    return finish(PROG, args, summary, _summary_lines(summary))


if __name__ == "__main__":
    sys.exit(main())
