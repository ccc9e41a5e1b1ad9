"""A documents database from before ``original_filename`` opens, gains the column, and
keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository

OLD_SCHEMA = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, title TEXT NOT NULL, filename TEXT NOT NULL,
    file_size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL, session_id TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'stored', page_count INTEGER, pdf_version TEXT,
    security TEXT NOT NULL DEFAULT '{}', index_status TEXT NOT NULL DEFAULT 'pending', index_error TEXT
);
INSERT INTO documents (owner, title, filename, file_size, sha256, created_at)
VALUES ('local', 'Old', 'old.pdf', 10, 'aa', '2026-01-01T00:00:00Z');
"""


def test_an_old_database_gains_original_filename(tmp_path: Path) -> None:
    path = tmp_path / "documents.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    repo = SqliteDocumentRepository(path)
    try:
        old = repo.get("local", 1)
        assert old is not None and old.filename == "old.pdf" and old.original_filename is None
        new = repo.insert(DocumentRecord(0, "local", "New", "x.pdf", 10, "bb", "2026-01-02T00:00:00Z",
                                         original_filename="../x.pdf"))
        assert repo.get("local", new.id).original_filename == "../x.pdf"  # type: ignore[union-attr]
    finally:
        repo.close()
    SqliteDocumentRepository(path).close()  # opening again: the column is there, nothing to add
