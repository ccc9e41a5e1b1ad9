"""A PostgreSQL store's connection pool, schema set-up and error mapping.

Synchronous (psycopg 3 with psycopg-pool), like the SQLite stores: services call the
stores from worker threads; the pool is thread-safe and bounded. Every statement runs in
a transaction from :meth:`PostgresStore.tx`, which turns "the database cannot be
reached" (refused, reset, a pool that found no live connection in ``timeout``) into
:class:`~backend.errors.StorageUnavailable` (503, Retry-After) and a full disk into
:class:`~backend.errors.InsufficientStorage`, so no driver error escapes the storage
layer. A connection is checked when taken from the pool, so a restarted server costs
one refusal at most, not one per pooled connection.

Schema set-up is idempotent and serialized by an advisory lock: replicas starting at
once do not race each other's ``CREATE ... IF NOT EXISTS``. A database out of reach when
the store is built does not stop the server: the pool keeps connecting in the
background, requests are answered 503 meanwhile, and the first statement that reaches
the database sets the schema up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.errors import InsufficientStorage, StorageUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds a client is told to wait when the database is out of reach
_SCHEMA_LOCK = 0x70646675  # pg_advisory_xact_lock key for schema set-up ("pdfu")

Connection = psycopg.Connection[DictRow]


class PostgresStore:
    """One pool per store (like one SQLite connection per store): ``max_size``
    connections at most, a statement waits ``timeout`` seconds for one."""

    def __init__(self, url: str, schema: str, *, max_size: int = 4, timeout: float = 5.0,
                 what: str = "the database") -> None:
        self._what = what
        self._schema: str | None = schema  # None once set up
        self._schema_lock = threading.Lock()
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url, min_size=1, max_size=max_size, timeout=timeout, open=False, name=what,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(timeout))},
            check=ConnectionPool.check_connection,
        )
        self._pool.open(wait=False)  # connects in the background, and again after a failure
        try:
            self._set_up()
        except StorageUnavailable:
            pass  # out of reach now: the first statement that reaches the database sets it up
        except BaseException:
            self._pool.close()
            raise

    def _set_up(self) -> None:
        with self._schema_lock:
            if self._schema is None:
                return
            with self._errors(), self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(self._schema)
            self._schema = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.DiskFull as exc:
            raise InsufficientStorage(f"no space left in {self._what}; retry later") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            log.warning("%s is unavailable: %s", self._what, exc)
            raise StorageUnavailable(f"{self._what} cannot be reached; retry later",
                                     retry_after=RETRY_AFTER) from exc

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back
        if it raises. Driver errors of reach become domain errors (see the module doc)."""
        if self._schema is not None:
            self._set_up()
        with self._errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    def fetchall(self, sql: Any, *args: Any) -> list[DictRow]:
        with self.tx() as db:
            return db.execute(sql, args).fetchall()

    def fetchone(self, sql: Any, *args: Any) -> DictRow | None:
        with self.tx() as db:
            return db.execute(sql, args).fetchone()

    def close(self) -> None:
        self._pool.close()
