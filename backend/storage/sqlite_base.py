"""One SQLite connection per store, shared by its worker threads behind a lock (WAL).

Several stores may use the same database file (documents and the import queue do):
each has its own connection, and ``timeout`` lets one wait for the other's write lock
instead of failing with "database is locked". A full disk under any statement is
InsufficientStorage, as for every other store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from backend.storage.full import raise_if_full


class _Guard:
    """The connection's lock (``with self._lock:``); SQLITE_FULL inside it becomes
    InsufficientStorage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._lock.release()
        if exc is not None:
            raise_if_full(exc, "the document database")


class SqliteStore:
    def __init__(self, path: Path, schema: str, timeout: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _Guard()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()
