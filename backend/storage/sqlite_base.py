"""One SQLite connection per store, shared by its worker threads behind a lock (WAL).

Several stores may use the same database file (documents and the import queue do):
each has its own connection, and ``timeout`` lets one wait for the other's write lock
instead of failing with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SqliteStore:
    def __init__(self, path: Path, schema: str, timeout: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()
