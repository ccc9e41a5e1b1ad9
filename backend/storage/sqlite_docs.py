"""Document metadata in SQLite (stdlib ``sqlite3``, WAL): the embedded
:class:`~backend.storage.document_repo.DocumentRepository`.

Synchronous by design: the service calls it from a worker thread. One connection,
guarded by a lock, is plenty for an embedded metadata store; writes are tiny.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.storage.document_repo import COLUMNS, BySha, DocumentRecord
from backend.storage.sqlite_base import SqliteStore

__all__ = ["DocumentRecord", "SqliteDocumentRepository"]  # DocumentRecord: imported from here before

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    owner             TEXT NOT NULL,
    title             TEXT NOT NULL,
    filename          TEXT NOT NULL,
    file_size         INTEGER NOT NULL,
    sha256            TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    session_id        TEXT UNIQUE,
    status            TEXT NOT NULL DEFAULT 'stored',
    page_count        INTEGER,
    pdf_version       TEXT,
    security          TEXT NOT NULL DEFAULT '{}',
    index_status      TEXT NOT NULL DEFAULT 'pending',
    index_error       TEXT,
    original_filename TEXT
);
CREATE INDEX IF NOT EXISTS documents_owner_sha ON documents (owner, sha256);
CREATE INDEX IF NOT EXISTS documents_sha ON documents (sha256);
"""


_COLUMNS = COLUMNS
# Columns added after the first release: (name, SQL type), added to older databases on open.
_ADDED = [("original_filename", "TEXT")]
_BySha = BySha  # (``list`` is a method name in the class below)


class SqliteDocumentRepository(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        with self._lock:
            have = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
            for name, sql_type in _ADDED:
                if name not in have:
                    self._db.execute(f"ALTER TABLE documents ADD COLUMN {name} {sql_type}")

    @staticmethod
    def _record(row: sqlite3.Row | None) -> DocumentRecord | None:
        if row is None:
            return None
        values = dict(row)
        values["security"] = json.loads(values["security"] or "{}")
        return DocumentRecord(**values)

    def _one(self, sql: str, *args: Any) -> DocumentRecord | None:
        with self._lock:
            return self._record(self._db.execute(sql, args).fetchone())

    def insert(self, doc: DocumentRecord) -> DocumentRecord:
        """Insert ``doc`` (its ``id`` is ignored); a second insert for the same session
        returns the first record, so a retried completion never makes two documents."""
        values = {k: getattr(doc, k) for k in _COLUMNS if k != "id"}
        values["security"] = json.dumps(doc.security)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO documents ({cols}) VALUES ({marks}) ON CONFLICT(session_id) DO NOTHING",
                tuple(values.values()),
            )
            if cur.rowcount == 0 and doc.session_id is not None:
                row = self._db.execute("SELECT * FROM documents WHERE session_id = ?", (doc.session_id,))
                existing = self._record(row.fetchone())
                assert existing is not None
                return existing
            doc.id = int(cur.lastrowid or 0)
        return doc

    def get(self, owner: str, doc_id: int) -> DocumentRecord | None:
        return self._one("SELECT * FROM documents WHERE id = ? AND owner = ?", doc_id, owner)

    def by_session(self, session_id: str) -> DocumentRecord | None:
        return self._one("SELECT * FROM documents WHERE session_id = ?", session_id)

    def find_by_sha(self, owner: str, sha256: str) -> DocumentRecord | None:
        return self._one(
            "SELECT * FROM documents WHERE owner = ? AND sha256 = ? ORDER BY id LIMIT 1", owner, sha256
        )

    def list(self, owner: str, limit: int = 100, offset: int = 0) -> list[DocumentRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE owner = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (owner, limit, offset),
            ).fetchall()
        return [r for r in map(self._record, rows) if r is not None]

    def count(self, owner: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM documents WHERE owner = ?", (owner,)).fetchone()[0])

    def delete(self, owner: str, doc_id: int) -> DocumentRecord | None:
        """Delete and return the record; None when the owner has no such document."""
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE id = ? AND owner = ?", (doc_id, owner)).fetchone()
            if row is None:
                return None
            self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return self._record(row)

    def sha_in_use(self, sha256: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM documents WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

    # -- import status (the ImportService's view of a document) ----------------------------

    def set_index_status(self, doc_id: int, status: str, error: str | None = None) -> None:
        """``pending`` / ``importing`` / ``indexed`` / ``no_text`` / ``failed`` (with ``error``)."""
        with self._lock:
            self._db.execute("UPDATE documents SET index_status = ?, index_error = ? WHERE id = ?",
                             (status, error, doc_id))

    def indexed_shas(self, owner: str) -> set[str]:
        """The contents whose text is searchable for ``owner``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT sha256 FROM documents WHERE owner = ? AND index_status = 'indexed'", (owner,)
            ).fetchall()
        return {r[0] for r in rows}

    def indexed_by_sha(self, owner: str, shas: Sequence[str]) -> _BySha:
        """``owner``'s indexed documents holding each of ``shas``, oldest first."""
        if not shas:
            return {}
        marks = ", ".join("?" for _ in shas)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM documents WHERE owner = ? AND index_status = 'indexed' AND sha256 IN ({marks})"
                " ORDER BY id", (owner, *shas)).fetchall()
        out: _BySha = {}
        for rec in map(self._record, rows):
            if rec is not None:
                out.setdefault(rec.sha256, []).append(rec)
        return out

    def sha_indexed(self, sha256: str) -> bool:
        """Whether any document (any owner) holding this content is indexed."""
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM documents WHERE sha256 = ? AND index_status = 'indexed' LIMIT 1", (sha256,)
            ).fetchone() is not None
