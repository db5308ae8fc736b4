"""The judge's verdict on one sample, and a persistent, resumable store of verdicts (SQLite, standard library).

One row per ``(settings hash, sample id)``, the hash covering everything that can change a reply
(``settings``). Each verdict is committed in its own
transaction, the primary key forbids duplicates, and WAL mode lets readers read while a run writes. Only
verdicts are stored (``CACHED_STATUSES``): a transport failure says nothing about the sample, and a stored
``"ok"`` verdict is never replaced by a failed one. Several annotators can share one file: each *claims* a sample
(a row in ``claims`` with a lease) before asking about it, so a sample is asked once; a claim of a process that
died on this machine, or whose lease ran out, is taken over. See docs/difficulty.md.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .reply import Aggregate, combine_aspects

__all__ = ["CACHED_STATUSES", "Judgment", "JudgmentCache", "claim_owner", "owner_alive"]

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
CREATE TABLE IF NOT EXISTS claims (
    settings TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (settings, sample_id)
);
"""
_COLUMNS = "sample_id, status, aspects, reply, error, attempts, created_at"


def claim_owner() -> str:
    """A new claim owner name: ``host:pid:random`` (unique per judge object)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_alive(owner: str) -> bool:
    """Whether a claim's owner may still be working: ``False`` only for a process of this machine that no
    longer runs (owners elsewhere are trusted until their lease ends)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


@dataclass(frozen=True)
class Judgment:
    """The judge's verdict on one sample, as the judge returns it and as the cache stores it.

    Attributes:
        sample_id: the sample id's string form.
        status: ``"ok"``; ``"unparseable"`` (replies unreadable after every retry; cached, so a rerun does not
            pay for it again unless asked); ``"transport_error"`` (no reply at all; not cached, asked again).
        aspects: ``{"scene", "seg", "language"}`` scores when ``"ok"``.
        reply: the last raw reply.
        error: what went wrong, when not ``"ok"``.
        attempts: replies received (1 + the parse retries used).
        cached: whether the verdict came from the cache instead of the judge.
        created_at: UNIX time the cache stored it (0 for a verdict not read from a cache).
    """

    sample_id: str
    status: Literal["ok", "unparseable", "transport_error"]
    aspects: Mapping[str, float] | None = None
    reply: str | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = field(default=False, compare=False)
    created_at: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def difficulty(self, *, aggregate: Aggregate = "mean", weights: Mapping[str, float] | None = None) -> float:
        """The combined score (see [`combine_aspects`][]); NaN unless ``"ok"``."""
        if self.aspects is None:
            return math.nan
        return combine_aspects(self.aspects, aggregate=aggregate, weights=weights)


def _enable_wal(connection: sqlite3.Connection, *, deadline_s: float = 30.0) -> None:
    """Switch the database to write-ahead logging, retrying while another process holds the lock.

    SQLite answers ``SQLITE_BUSY`` to a journal-mode change at once, without calling the busy handler, when another
    connection is opening the same file (two annotators started together); a database already in WAL mode is
    left alone.
    """
    stop = time.monotonic() + deadline_s
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > stop:
                raise
            time.sleep(0.05)


class JudgmentCache:
    """SQLite store of verdicts keyed by ``(settings hash, sample id)``.

    Args:
        path: the database file (created with its parent directory when missing). ``":memory:"`` for a
            throw-away cache.
        readonly: open without creating or writing (for monitors and training-time lookups).

    The object is safe to share between threads (one connection behind a lock) and picklable (the connection
    is reopened after unpickling).
    """

    path: str
    readonly: bool
    _connection: sqlite3.Connection | None

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise TypeError(f"JudgmentCache: path: expected a file path, got {path!r}")
        self.__setstate__({"path": str(path), "readonly": bool(readonly)})  # the fields an unpickled cache has
        self._connect()

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
                _enable_wal(connection)
            connection.execute("PRAGMA synchronous = FULL")
            with connection:
                connection.executescript(_SCHEMA)
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                (version,) = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if version != SCHEMA_VERSION:
                    raise ValueError(
                        f"JudgmentCache: {self.path}: expected schema version {SCHEMA_VERSION}, got {version}"
                    )
        self._connection = connection
        return connection

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """All rows of one read, under the lock."""
        with self._lock:
            return self._connect().execute(sql, tuple(args)).fetchall()

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

    def _write(self, sql: str, row: tuple[Any, ...]) -> None:
        """One statement in its own transaction: committed whole or not at all."""
        with self._lock:
            connection = self._connect()
            with connection:
                connection.execute(sql, row)

    def register_settings(self, settings_hash: str, description: Mapping[str, Any]) -> None:
        """Record what a settings hash stands for (idempotent)."""
        text = json.dumps(description, sort_keys=True)
        self._write("INSERT OR IGNORE INTO settings VALUES (?, ?, ?)", (settings_hash, text, time.time()))

    def put(self, settings_hash: str, judgment: Judgment) -> None:
        """Store one verdict atomically, replacing an earlier failed one for the same sample (a stored ``"ok"``
        verdict is kept: a later failure, e.g. from another annotator, never overwrites it), and drop the
        sample's claim."""
        if judgment.status not in CACHED_STATUSES:
            raise ValueError(f"JudgmentCache.put: status: expected one of {CACHED_STATUSES}, got {judgment.status!r}")
        if judgment.status == "ok" and not judgment.aspects:
            raise ValueError("JudgmentCache.put: aspects: expected the aspect scores of an 'ok' verdict, got none")
        aspects = None if judgment.aspects is None else json.dumps(dict(judgment.aspects), sort_keys=True)
        row = (
            settings_hash,
            str(judgment.sample_id),
            judgment.status,
            aspects,
            judgment.reply,
            judgment.error,
            int(judgment.attempts),
            time.time(),
        )
        with self._lock:
            connection = self._connect()
            with connection:
                connection.execute(
                    "INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (settings, sample_id) DO UPDATE "
                    "SET status = excluded.status, aspects = excluded.aspects, reply = excluded.reply, error = "
                    "excluded.error, attempts = excluded.attempts, created_at = excluded.created_at "
                    "WHERE judgments.status != 'ok'",
                    row,
                )
                connection.execute("DELETE FROM claims WHERE settings = ? AND sample_id = ?", row[:2])

    def claim(
        self, settings_hash: str, sample_id: Any, owner: str, *, lease: float, done_after: float | None = None
    ) -> Judgment | bool:
        """Claim a sample before asking the judge about it, in one write transaction.

        Returns the stored verdict when there is one (an ``"ok"`` one, or a failed one stored after
        ``done_after``; ``done_after=None``: any failed one counts), ``False`` when another live owner holds an
        unexpired claim, else ``True``: the claim is ``owner``'s for ``lease`` seconds. A claim whose owner was a
        process of this machine that no longer runs is taken over at once (a killed run is resumed without
        waiting for its leases).
        """
        key = str(sample_id)
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")  # other annotators wait (busy_timeout) until this one decides
            try:
                result = self._claim(connection, settings_hash, key, owner, lease, done_after)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
            return result

    def _claim(
        self,
        connection: sqlite3.Connection,
        settings_hash: str,
        key: str,
        owner: str,
        lease: float,
        done_after: float | None,
    ) -> Judgment | bool:
        row = connection.execute(
            f"SELECT {_COLUMNS} FROM judgments WHERE settings = ? AND sample_id = ?", (settings_hash, key)
        ).fetchone()
        if row is not None and (row[1] == "ok" or done_after is None or row[6] >= done_after):
            return self._row(row)
        held = connection.execute(
            "SELECT owner, expires_at FROM claims WHERE settings = ? AND sample_id = ?", (settings_hash, key)
        ).fetchone()
        now = time.time()
        if held is not None and held[0] != owner and held[1] > now and owner_alive(held[0]):
            return False
        connection.execute(
            "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", (settings_hash, key, owner, now + lease)
        )
        return True

    def release(self, settings_hash: str, sample_id: Any, owner: str) -> None:
        """Drop ``owner``'s claim on a sample (after a failure that stores no verdict)."""
        self._write(
            "DELETE FROM claims WHERE settings = ? AND sample_id = ? AND owner = ?",
            (settings_hash, str(sample_id), owner),
        )

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Judgment:
        sample_id, status, aspects, reply, error, attempts, created_at = row
        return Judgment(
            sample_id=sample_id,
            status=status,
            aspects=None if aspects is None else json.loads(aspects),
            reply=reply,
            error=error,
            attempts=attempts,
            cached=True,
            created_at=created_at,
        )

    def get(self, settings_hash: str, sample_id: Any) -> Judgment | None:
        """The stored verdict for one sample, or ``None``."""
        return self.get_many(settings_hash, [sample_id]).get(str(sample_id))

    def get_many(self, settings_hash: str, sample_ids: Iterable[Any]) -> dict[str, Judgment]:
        """Stored verdicts for the given samples, keyed by the ids' string form (absent ones left out)."""
        ids = list(dict.fromkeys(str(s) for s in sample_ids))
        found: dict[str, Judgment] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = f"SELECT {_COLUMNS} FROM judgments WHERE settings = ? AND sample_id IN ({','.join('?' * len(chunk))})"
            found.update((row[0], self._row(row)) for row in self._query(sql, (settings_hash, *chunk)))
        return found

    def iter(self, settings_hash: str) -> Iterator[Judgment]:
        """Every stored verdict for a settings hash, in sample-id order."""
        rows = self._query(f"SELECT {_COLUMNS} FROM judgments WHERE settings = ? ORDER BY sample_id", (settings_hash,))
        return (self._row(r) for r in rows)

    def count(self, settings_hash: str | None = None, *, status: str | None = None) -> int:
        """Number of stored verdicts (for one settings hash and/or status, or all)."""
        given = {k: v for k, v in {"settings": settings_hash, "status": status}.items() if v is not None}
        query = "SELECT COUNT(*) FROM judgments WHERE 1 = 1" + "".join(f" AND {k} = ?" for k in given)
        return int(self._query(query, given.values())[0][0])

    def settings(self) -> dict[str, dict[str, Any]]:
        """Every settings hash in the file with the description it stands for."""
        return {h: json.loads(d) for h, d in self._query("SELECT hash, description FROM settings")}

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` for a sound file)."""
        return str(self._query("PRAGMA integrity_check")[0][0])
