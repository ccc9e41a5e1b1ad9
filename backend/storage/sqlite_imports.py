"""The durable import queue: one row per document waiting for, under, or failed at import.

It lives in the documents' SQLite file (its own connection, WAL), so a pending import
survives a restart and ``backfill`` can find documents recorded by a completion that
crashed before it queued them. Synchronous: called from a worker thread.

Row states: ``queued`` (waiting) -> ``running`` (claimed by a worker) -> deleted when
done, or ``failed`` (kept with its error until ``retry``). After a restart, ``recover``
turns ``running`` rows back into ``queued``: an import is idempotent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from backend.storage.sqlite_base import SqliteStore

QUEUED, RUNNING, FAILED = "queued", "running", "failed"

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
CREATE INDEX IF NOT EXISTS imports_state ON imports (state, enqueued_at);
"""


@dataclass
class ImportJob:
    document_id: int
    owner: str
    sha256: str
    session_id: str | None
    embed: bool
    state: str
    attempts: int
    error: str | None
    enqueued_at: str
    updated_at: str


class SqliteImportQueue(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    @staticmethod
    def _job(row: sqlite3.Row) -> ImportJob:
        values = dict(row)
        values["embed"] = bool(values["embed"])
        return ImportJob(**values)

    def enqueue(self, document_id: int, owner: str, sha256: str, session_id: str | None,
                embed: bool, now: str) -> None:
        """Queue a document (again): an existing row of it goes back to ``queued``."""
        with self._lock:
            self._db.execute(
                "INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT(document_id) DO UPDATE SET"
                " state = 'queued', embed = MAX(embed, excluded.embed), updated_at = excluded.updated_at",
                (document_id, owner, sha256, session_id, int(embed), now, now),
            )

    def claim(self, now: str) -> ImportJob | None:
        """The oldest queued job, now ``running`` (its ``attempts`` counted); None when idle."""
        with self._lock:
            row = self._db.execute(
                "UPDATE imports SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE document_id ="
                " (SELECT document_id FROM imports WHERE state = 'queued' ORDER BY enqueued_at, document_id LIMIT 1)"
                " RETURNING *", (now,),
            ).fetchone()
        return self._job(row) if row is not None else None

    def done(self, document_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM imports WHERE document_id = ?", (document_id,))

    remove = done

    def fail(self, document_id: int, error: str, now: str) -> None:
        with self._lock:
            self._db.execute("UPDATE imports SET state = 'failed', error = ?, updated_at = ? WHERE document_id = ?",
                             (error, now, document_id))

    def retry(self, owner: str, document_id: int, now: str) -> bool:
        """A failed (or still queued) job of ``owner`` back in the queue; False if there is none."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE imports SET state = 'queued', error = NULL, enqueued_at = ?, updated_at = ?"
                " WHERE document_id = ? AND owner = ? AND state != 'running'", (now, now, document_id, owner))
            return cur.rowcount > 0

    def get(self, document_id: int) -> ImportJob | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM imports WHERE document_id = ?", (document_id,)).fetchone()
        return self._job(row) if row is not None else None

    def failures(self, owner: str) -> list[ImportJob]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM imports WHERE owner = ? AND state = 'failed' ORDER BY updated_at DESC", (owner,)
            ).fetchall()
        return [self._job(r) for r in rows]

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM imports WHERE state != 'failed'").fetchone()[0])

    def recover(self, embed: bool, now: str) -> int:
        """After a restart: interrupted jobs queued again, and documents still ``pending``
        or ``importing`` with no row (a crash between record and enqueue) queued too.
        Returns how many jobs are queued."""
        with self._lock:
            self._db.execute("UPDATE imports SET state = 'queued' WHERE state = 'running'")
            has_docs = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents'").fetchone()
            if has_docs is not None:
                self._db.execute(
                    "INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at, updated_at)"
                    " SELECT id, owner, sha256, session_id, ?, 'queued', ?, ? FROM documents"
                    " WHERE index_status IN ('pending', 'importing')"
                    " AND id NOT IN (SELECT document_id FROM imports)", (int(embed), now, now))
            return int(self._db.execute("SELECT COUNT(*) FROM imports WHERE state = 'queued'").fetchone()[0])
