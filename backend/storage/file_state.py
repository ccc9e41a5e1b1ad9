"""Session state as one small JSON file per session, written atomically.

Write a temporary file in the same directory, fdatasync it, rename it over the old
one: a crash (or a power cut) leaves either the old record or the new one, and so does
a full disk (InsufficientStorage; the temporary file is removed). A file that
does not parse (a disk error, a hand edit) is moved aside to ``*.corrupt`` and never
loaded.

The contract is :class:`~backend.storage.base.StateStore`'s. ``update`` (a chunk's digest
recorded, a few fields changed) is a read-modify-write of the one file under the
session's lock, which every write of that session holds: one process owns the files
(a store shared by several processes is Redis's job).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

from backend.storage.full import raise_if_full

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
T = TypeVar("T")


class FileStateStore:
    def __init__(self, root: Path, pool: Executor | None = None) -> None:
        self.root = root
        self.pool = pool
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _lock(self, session_id: str) -> threading.Lock:
        with self._locks_lock:
            lock = self._locks.get(session_id)
            if lock is None:
                lock = self._locks[session_id] = threading.Lock()
            return lock

    async def save(self, session_id: str, record: dict[str, Any]) -> None:
        await self._run(self.save_now, session_id, record)

    async def update(self, session_id: str, fields: dict[str, Any], chunks: Mapping[int, str | None]) -> None:
        await self._run(self._update, session_id, fields, dict(chunks))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return await self._run(self._load, session_id)

    async def load_all(self) -> list[dict[str, Any]]:
        return await self._run(self._load_all)

    async def delete(self, session_id: str) -> None:
        await self._run(self._delete, session_id)

    def save_now(self, session_id: str, record: dict[str, Any]) -> None:
        """Blocking ``save`` (a worker thread's)."""
        path = self._path(session_id)
        with self._lock(session_id):
            self._write(session_id, path, record)

    def _update(self, session_id: str, fields: dict[str, Any], chunks: dict[int, str | None]) -> None:
        path = self._path(session_id)
        with self._lock(session_id):
            record = self._read(path) or {}
            record.update(fields)
            recorded = dict(record.get("chunks") or {})
            for chunk_id, digest in chunks.items():
                if digest is None:
                    recorded.pop(str(chunk_id), None)
                else:
                    recorded[str(chunk_id)] = digest
            record["chunks"] = recorded
            self._write(session_id, path, record)

    def _path(self, session_id: str) -> Path:
        if not _ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return self.root / f"{session_id}.json"

    def _write(self, session_id: str, path: Path, record: dict[str, Any]) -> None:
        tmp = self.root / f".{session_id}.{os.getpid()}.tmp"
        data = json.dumps(record, separators=(",", ":")).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:  # a nearly full disk takes part of a write without an error
                    view = view[os.write(fd, view):]
                os.fdatasync(fd)  # the new record is on disk before its name is
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # the previous record stays, whole
            raise_if_full(exc, "session state")
            raise
        # No directory fsync per save: if a power cut forgets the rename, the previous
        # record is loaded, and resume re-checks the bytes anyway. Atomicity holds.

    def _load(self, session_id: str) -> dict[str, Any] | None:
        try:
            path = self._path(session_id)
        except ValueError:
            return None
        return self._read(path)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            log.error("state file %s is unreadable (%s); moved aside", path.name, exc)
            path.replace(path.with_suffix(".corrupt"))
            return None
        if not isinstance(record, dict) or record.get("session_id") != path.stem:
            log.error("state file %s does not hold its session; moved aside", path.name)
            path.replace(path.with_suffix(".corrupt"))
            return None
        return record

    def _load_all(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            if _ID.match(path.stem) and (record := self._read(path)) is not None:
                records.append(record)
        return records

    def _delete(self, session_id: str) -> None:
        try:
            path = self._path(session_id)
        except ValueError:
            return
        with self._lock(session_id):
            path.unlink(missing_ok=True)
        with self._locks_lock:
            self._locks.pop(session_id, None)
