"""Which database holds the documents, the import queue and the search index:
SQLite files in ``data_dir`` (the default: nothing to install), or the PostgreSQL of
``settings.database_url`` (every replica and importer then shares one of each).

The one place that maps the setting to a backend, for the server's composition root and
the importer process alike. A PostgreSQL that cannot be reached at start raises
:class:`~backend.errors.StorageUnavailable`, as it does later on any call.
"""

from __future__ import annotations

from backend.settings import Settings
from backend.storage.document_repo import DocumentRepository
from backend.storage.import_queue import ImportQueue
from backend.storage.text_index import TextIndexStore

DOCUMENTS_FILE = "documents.sqlite3"  # the documents and the import queue, in data_dir
INDEX_FILE = "index.sqlite3"


def _postgres(settings: Settings) -> str | None:
    """The PostgreSQL URL, or None for SQLite (the setting's pattern admits nothing else)."""
    return settings.database_url or None


def describe(settings: Settings) -> str:
    """For the log: which database, without credentials."""
    url = _postgres(settings)
    if url is None:
        return f"SQLite in {settings.data_dir}"
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    return f"PostgreSQL {info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def open_documents(settings: Settings) -> DocumentRepository:
    url = _postgres(settings)
    if url is not None:
        from backend.storage.postgres.documents import PostgresDocumentRepository

        return PostgresDocumentRepository(url, timeout=settings.database_timeout_seconds)
    from backend.storage.sqlite_docs import SqliteDocumentRepository

    return SqliteDocumentRepository(settings.data_dir / DOCUMENTS_FILE)


def open_import_queue(settings: Settings) -> ImportQueue:
    url = _postgres(settings)
    if url is not None:
        from backend.storage.postgres.import_queue import PostgresImportQueue

        return PostgresImportQueue(url, timeout=settings.database_timeout_seconds)
    from backend.storage.sqlite_imports import SqliteImportQueue

    return SqliteImportQueue(settings.data_dir / DOCUMENTS_FILE)


def open_text_index(settings: Settings) -> TextIndexStore:
    url = _postgres(settings)
    if url is not None:
        from backend.storage.postgres.text_index import PostgresTextIndex

        return PostgresTextIndex(url, timeout=settings.database_timeout_seconds)
    from backend.storage.sqlite_index import SqliteTextIndex

    return SqliteTextIndex(settings.data_dir / INDEX_FILE)
