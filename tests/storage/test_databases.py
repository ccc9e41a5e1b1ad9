"""STREAMING_DATABASE_URL picks the backend of the documents, the import queue and the
search index: SQLite in the data dir by default, PostgreSQL when set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import temp_settings
from backend.storage import databases
from backend.storage.postgres.documents import PostgresDocumentRepository
from backend.storage.postgres.import_queue import PostgresImportQueue
from backend.storage.postgres.text_index import PostgresTextIndex
from backend.storage.sqlite_docs import SqliteDocumentRepository
from backend.storage.sqlite_imports import SqliteImportQueue
from backend.storage.sqlite_index import SqliteTextIndex


def test_default_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = temp_settings(tmp_path)
    stores = [databases.open_documents(settings), databases.open_import_queue(settings),
              databases.open_text_index(settings)]
    try:
        assert [type(s) for s in stores] == [SqliteDocumentRepository, SqliteImportQueue, SqliteTextIndex]
        assert (settings.data_dir / "documents.sqlite3").exists() and (settings.data_dir / "index.sqlite3").exists()
    finally:
        for s in stores:
            s.close()


def test_a_postgresql_url_is_postgresql(tmp_path: Path, postgres_url: str) -> None:
    settings = temp_settings(tmp_path, database_url=postgres_url)
    stores = [databases.open_documents(settings), databases.open_import_queue(settings),
              databases.open_text_index(settings)]
    try:
        assert [type(s) for s in stores] == [PostgresDocumentRepository, PostgresImportQueue, PostgresTextIndex]
        assert not (settings.data_dir / "documents.sqlite3").exists()
        assert databases.describe(settings).startswith("PostgreSQL 127.0.0.1:")
    finally:
        for s in stores:
            s.close()


def test_another_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        temp_settings(tmp_path, database_url="mysql://localhost/db")
