"""SqliteImportQueue: the import queue (:mod:`backend.storage.import_queue`) in SQLite.

It lives in the documents' SQLite file (its own connection, WAL), so a pending import
survives a restart and ``backfill`` can find documents recorded by a completion that
crashed before it queued them. Any number of processes may open it: each change of
state is one ``BEGIN IMMEDIATE`` transaction, and SQLite lets one writer in at a time,
so two importers never claim one job and event ids are commit order. Leases compare in
``clock()`` (the machine's time: every process of one data dir runs on one machine).

A queue written by the version before leases (no ``worker``/``lease_until`` columns)
gets them on open; its ``running`` rows have no lease, so the first importer takes
them up again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backend.storage.import_queue import (
    EVENT_RETENTION_SECONDS, FAILED, IMPORTING, QUEUED, RUNNING, ImportEvent, ImportJob,
)
from backend.storage.sqlite_base import SqliteStore

__all__ = ["FAILED", "QUEUED", "RUNNING", "ImportJob", "SqliteImportQueue"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    document_id  INTEGER PRIMARY KEY,
    owner        TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    session_id   TEXT,
    embed        INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL DEFAULT 'queued',
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    enqueued_at  TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS import_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    session_id   TEXT,
    status       TEXT NOT NULL,
    detail       TEXT,
    seconds      REAL,
    at           TEXT NOT NULL,
    at_epoch     REAL NOT NULL
);
"""
_LEASE_COLUMNS = (("worker", "TEXT"), ("lease_until", "REAL"), ("queued_epoch", "REAL"))
_JOB_FIELDS = ("document_id", "owner", "sha256", "session_id", "embed", "state", "attempts", "error",
               "enqueued_at", "updated_at", "worker")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SqliteImportQueue(SqliteStore):
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(path, _SCHEMA)
        self.clock = clock
        with self._lock:
            have = {r[1] for r in self._db.execute("PRAGMA table_info(imports)")}
            for name, kind in _LEASE_COLUMNS:
                if name not in have:
                    try:
                        self._db.execute(f"ALTER TABLE imports ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as exc:  # another process added it first
                        if "duplicate column" not in str(exc):
                            raise
            self._db.execute("DROP INDEX IF EXISTS imports_state")  # the order is queued_epoch's now
            self._db.execute("CREATE INDEX IF NOT EXISTS imports_order ON imports (state, queued_epoch)")

    @staticmethod
    def _job(row: sqlite3.Row) -> ImportJob:
        values = {k: row[k] for k in _JOB_FIELDS}
        values["embed"] = bool(values["embed"])
        return ImportJob(**values)

    def _write(self, sql: str, *args: Any) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _event(self, job: sqlite3.Row, status: str, detail: str | None, seconds: float | None, now: float) -> None:
        """Append an event (inside the caller's transaction, under the lock)."""
        self._db.execute(
            "INSERT INTO import_events (document_id, owner, session_id, status, detail, seconds, at, at_epoch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job["document_id"], job["owner"], job["session_id"], status, detail, seconds, _iso(now), now))

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    # -- the queue ------------------------------------------------------------------------

    def enqueue(self, document_id: int, owner: str, sha256: str, session_id: str | None, embed: bool) -> None:
        now = self.clock()
        self._write(
            "INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at, updated_at,"
            " queued_epoch) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT(document_id) DO UPDATE SET"
            " state = 'queued', embed = MAX(embed, excluded.embed), error = NULL, worker = NULL,"
            " lease_until = NULL, updated_at = excluded.updated_at, queued_epoch = excluded.queued_epoch"
            " WHERE NOT (imports.state = 'running' AND COALESCE(imports.lease_until, 0) >= ?)",
            document_id, owner, sha256, session_id, int(embed), _iso(now), _iso(now), now, now)

    def claim(self, worker: str, lease_seconds: float) -> ImportJob | None:
        now = self.clock()
        with self._lock, self._transaction():
            row = self._db.execute(
                "UPDATE imports SET state = 'running', attempts = attempts + 1, worker = ?, lease_until = ?,"
                " updated_at = ? WHERE document_id = (SELECT document_id FROM imports WHERE state = 'queued'"
                " OR (state = 'running' AND COALESCE(lease_until, 0) < ?)"
                " ORDER BY state = 'running' DESC, COALESCE(queued_epoch, 0), document_id LIMIT 1) RETURNING *",
                (worker, now + lease_seconds, _iso(now), now),
            ).fetchone()
            if row is None:
                return None
            self._event(row, IMPORTING, None, None, now)
        return self._job(row)

    def extend(self, document_id: int, worker: str, lease_seconds: float) -> bool:
        now = self.clock()
        cur = self._write("UPDATE imports SET lease_until = ? WHERE document_id = ? AND state = 'running'"
                          " AND worker = ?", now + lease_seconds, document_id, worker)
        return cur.rowcount > 0

    def _end(self, document_id: int, worker: str, sql: str, args: tuple[Any, ...], status: str,
             detail: str | None, seconds: float) -> bool:
        now = self.clock()
        with self._lock, self._transaction():
            row = self._db.execute("SELECT * FROM imports WHERE document_id = ? AND state = 'running'"
                                   " AND worker = ?", (document_id, worker)).fetchone()
            if row is None:
                return False
            self._db.execute(sql, (*args, document_id))
            self._event(row, status, detail, seconds, now)
        return True

    def done(self, document_id: int, worker: str, status: str, detail: str | None, seconds: float) -> bool:
        return self._end(document_id, worker, "DELETE FROM imports WHERE document_id = ?", (), status, detail,
                         seconds)

    def fail(self, document_id: int, worker: str, error: str, seconds: float) -> bool:
        sql = ("UPDATE imports SET state = 'failed', error = ?, worker = NULL, lease_until = NULL, updated_at = ?"
               " WHERE document_id = ?")
        return self._end(document_id, worker, sql, (error, _iso(self.clock())), FAILED, error, seconds)

    def release(self, document_id: int, worker: str) -> bool:
        cur = self._write("UPDATE imports SET state = 'queued', worker = NULL, lease_until = NULL"
                          " WHERE document_id = ? AND state = 'running' AND worker = ?", document_id, worker)
        return cur.rowcount > 0

    def remove(self, document_id: int) -> None:
        self._write("DELETE FROM imports WHERE document_id = ?", document_id)

    def retry(self, owner: str, document_id: int) -> bool:
        now = self.clock()
        cur = self._write(
            "UPDATE imports SET state = 'queued', error = NULL, enqueued_at = ?, updated_at = ?, queued_epoch = ?"
            " WHERE document_id = ? AND owner = ? AND state != 'running'", _iso(now), _iso(now), now, document_id,
            owner)
        return cur.rowcount > 0

    def get(self, document_id: int) -> ImportJob | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM imports WHERE document_id = ?", (document_id,)).fetchone()
        return self._job(row) if row is not None else None

    def failures(self, owner: str) -> list[ImportJob]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM imports WHERE owner = ? AND state = 'failed' ORDER BY updated_at DESC, document_id"
                " DESC", (owner,)).fetchall()
        return [self._job(r) for r in rows]

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM imports WHERE state != 'failed'").fetchone()[0])

    def backfill(self, embed: bool) -> int:
        epoch = self.clock()
        now = _iso(epoch)
        with self._lock, self._transaction():
            has_docs = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents'").fetchone()
            if has_docs is not None:
                self._db.execute(
                    "INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at,"
                    " updated_at, queued_epoch) SELECT id, owner, sha256, session_id, ?, 'queued', ?, ?, ?"
                    " FROM documents WHERE index_status IN ('pending', 'importing')"
                    " AND id NOT IN (SELECT document_id FROM imports)", (int(embed), now, now, epoch))
            return int(self._db.execute("SELECT COUNT(*) FROM imports WHERE state = 'queued'").fetchone()[0])

    # -- events ---------------------------------------------------------------------------

    def events(self, after: int, limit: int = 100) -> list[ImportEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, document_id, owner, session_id, status, detail, seconds, at FROM import_events"
                " WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
        return [ImportEvent(**dict(r)) for r in rows]

    def last_event(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM import_events").fetchone()[0])

    def prune_events(self, older_than_seconds: float = EVENT_RETENTION_SECONDS) -> int:
        cur = self._write("DELETE FROM import_events WHERE at_epoch < ?", self.clock() - older_than_seconds)
        return cur.rowcount


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception), on a connection
    in autocommit mode: the write lock is taken before the first read, so a claim's
    choice of job and its update are one step for every process."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._db.execute("COMMIT" if exc is None else "ROLLBACK")
