""""The medium is full", the same way for every store: InsufficientStorage (507).

A full disk (ENOSPC), a quota (EDQUOT), a file-size limit (EFBIG) and SQLite's
SQLITE_FULL are all the same thing to a client: retry once space returns.
"""

from __future__ import annotations

import errno
import sqlite3

from backend.errors import InsufficientStorage

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
SQLITE_FULL = 13


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def raise_if_full(exc: BaseException, what: str) -> None:
    """Raise InsufficientStorage (from ``exc``) when ``exc`` means the medium is full."""
    if is_full(exc):
        raise InsufficientStorage(f"no space left for {what}; retry later") from exc
