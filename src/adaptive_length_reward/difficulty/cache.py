"""A persistent, resumable store of judge verdicts: SQLite from the standard library.

One row per ``(settings, sample_id)`` where ``settings`` is a hash of everything that can change the judge's
reply: the judge model, the prompt version and text, and the backend's generation settings (see
:meth:`~adaptive_length_reward.difficulty.judge.DifficultyJudge.settings`). Change any of them and the judge
asks again; keep them and an interrupted annotation run resumes where it stopped.

Writes are atomic: every verdict is committed in its own transaction (SQLite's journal guarantees a killed
process leaves either the whole row or none), and the primary key makes a second write of the same sample
replace the first, so a record is never duplicated. The database runs in WAL mode so readers (a progress
monitor, a training job) can read while an annotation run writes.

Only verdicts are stored: ``"ok"`` (the three aspect scores) and ``"unparseable"`` (the judge answered, but not
in a readable form, after every retry; kept so a rerun does not pay for it again unless asked). Transport
failures (timeouts, server errors) say nothing about the sample and are never stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["CACHED_STATUSES", "CachedJudgment", "JudgmentCache"]

#: Statuses a cache row can have.
CACHED_STATUSES = ("ok", "unparseable")

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (hash TEXT PRIMARY KEY, description TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS judgments (
    settings TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'unparseable')),
    aspects TEXT,
    reply TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (settings, sample_id)
);
"""


@dataclass(frozen=True)
class CachedJudgment:
    """One stored verdict.

    Attributes:
        sample_id: the sample's id (its string form).
        status: ``"ok"`` or ``"unparseable"``.
        aspects: the aspect scores (``{"scene": 7.0, "seg": 4.0, "language": 2.0}``) when ``"ok"``.
        reply: the judge's last raw reply.
        error: why the reply could not be read, when ``"unparseable"``.
        attempts: how many replies the judge gave for it.
        created_at: UNIX time of the write.
    """

    sample_id: str
    status: Literal["ok", "unparseable"]
    aspects: Mapping[str, float] | None = None
    reply: str | None = None
    error: str | None = None
    attempts: int = 1
    created_at: float = field(default=0.0, compare=False)


class JudgmentCache:
    """SQLite store of verdicts keyed by ``(settings hash, sample id)``.

    Args:
        path: the database file (created with its parent directory when missing). ``":memory:"`` for a
            throw-away cache.
        readonly: open without creating or writing (for monitors and training-time lookups).

    The object is safe to share between threads (one connection behind a lock) and picklable (the connection
    is reopened after unpickling).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise TypeError(f"JudgmentCache: path: expected a file path, got {path!r}")
        self.path = str(path)
        self.readonly = bool(readonly)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._connect()

    # -- connection -----------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        if self.path == ":memory:":
            connection = sqlite3.connect(":memory:", check_same_thread=False)
        elif self.readonly:
            if not Path(self.path).is_file():
                raise FileNotFoundError(f"JudgmentCache: path: expected an existing cache file, got {self.path!r}")
            connection = sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro", uri=True, check_same_thread=False)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        connection.execute("PRAGMA busy_timeout = 30000")
        if not self.readonly:
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            with connection:
                connection.executescript(_SCHEMA)
                row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                elif row[0] != SCHEMA_VERSION:
                    raise ValueError(f"JudgmentCache: {self.path}: expected schema version {SCHEMA_VERSION}, "
                                     f"got {row[0]}")
        self._connection = connection
        return connection

    def close(self) -> None:
        """Close the connection (it reopens on the next use)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        if self.path == ":memory:":
            raise TypeError("JudgmentCache: an in-memory cache cannot be pickled; give it a file path")
        return {"path": self.path, "readonly": self.readonly}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.readonly = state["path"], state["readonly"]
        self._lock = threading.Lock()
        self._connection = None

    def __repr__(self) -> str:
        return f"JudgmentCache({self.path!r}{', readonly=True' if self.readonly else ''})"

    # -- writes ---------------------------------------------------------------------------------------------
    def register_settings(self, settings_hash: str, description: Mapping[str, Any]) -> None:
        """Record what a settings hash stands for (idempotent)."""
        text = json.dumps(description, sort_keys=True)
        with self._lock:
            connection = self._connect()
            with connection:
                connection.execute("INSERT OR IGNORE INTO settings VALUES (?, ?, "
                                   "?)", (settings_hash, text, time.time()))

    def put(self, settings_hash: str, judgment: CachedJudgment) -> None:
        """Store one verdict atomically (its own transaction), replacing an earlier one for the same sample."""
        if judgment.status not in CACHED_STATUSES:
            raise ValueError(f"JudgmentCache.put: status: expected one of {CACHED_STATUSES}, got {judgment.status!r}")
        if judgment.status == "ok" and not judgment.aspects:
            raise ValueError("JudgmentCache.put: aspects: expected the aspect scores of an 'ok' verdict, got none")
        aspects = None if judgment.aspects is None else json.dumps(dict(judgment.aspects), sort_keys=True)
        row = (settings_hash, str(judgment.sample_id), judgment.status, aspects, judgment.reply, judgment.error,
               int(judgment.attempts), time.time())
        with self._lock:
            connection = self._connect()
            with connection:  # one transaction: the row is committed whole or not at all
                connection.execute(
                    "INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (settings, sample_id) DO UPDATE SET status = excluded.status, "
                    "aspects = excluded.aspects, reply = excluded.reply, error = excluded.error, "
                    "attempts = excluded.attempts, created_at = excluded.created_at",
                    row,
                )

    # -- reads ----------------------------------------------------------------------------------------------
    @staticmethod
    def _row(row: tuple[Any, ...]) -> CachedJudgment:
        sample_id, status, aspects, reply, error, attempts, created_at = row
        return CachedJudgment(sample_id=sample_id, status=status,
                              aspects=None if aspects is None else json.loads(aspects), reply=reply, error=error,
                              attempts=attempts, created_at=created_at)

    def get(self, settings_hash: str, sample_id: Any) -> CachedJudgment | None:
        """The stored verdict for one sample, or ``None``."""
        found = self.get_many(settings_hash, [sample_id])
        return found.get(str(sample_id))

    def get_many(self, settings_hash: str, sample_ids: Iterable[Any]) -> dict[str, CachedJudgment]:
        """Stored verdicts for the given samples, keyed by the ids' string form (absent ones left out)."""
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        found: dict[str, CachedJudgment] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for row in connection.execute(
                    "SELECT sample_id, status, aspects, reply, error, attempts, created_at FROM judgments "
                    f"WHERE settings = ? AND sample_id IN ({marks})",
                    (settings_hash, *chunk),
                ):
                    found[row[0]] = self._row(row)
        return found

    def iter(self, settings_hash: str) -> Iterator[CachedJudgment]:
        """Every stored verdict for a settings hash, in sample-id order."""
        with self._lock:
            rows = self._connect().execute(
                "SELECT sample_id, status, aspects, reply, error, attempts, created_at FROM judgments "
                "WHERE settings = ? ORDER BY sample_id", (settings_hash,)
            ).fetchall()
        return (self._row(r) for r in rows)

    def count(self, settings_hash: str | None = None, *, status: str | None = None) -> int:
        """Number of stored verdicts (for one settings hash and/or status, or all)."""
        query, args = "SELECT COUNT(*) FROM judgments WHERE 1 = 1", []
        if settings_hash is not None:
            query, args = query + " AND settings = ?", [settings_hash]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with self._lock:
            return int(self._connect().execute(query, args).fetchone()[0])

    def settings(self) -> dict[str, dict[str, Any]]:
        """Every settings hash in the file with the description it stands for."""
        with self._lock:
            rows = self._connect().execute("SELECT hash, description FROM settings").fetchall()
        return {h: json.loads(d) for h, d in rows}

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` for a sound file)."""
        with self._lock:
            return str(self._connect().execute("PRAGMA integrity_check").fetchone()[0])
