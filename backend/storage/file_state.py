"""Session state as one small JSON file per session, written atomically.

Write a temporary file in the same directory, fdatasync it, rename it over the old
one: a crash (or a power cut) leaves either the old record or the new one, and so does
a full disk (InsufficientStorage; the temporary file is removed). A file that
does not parse (a disk error, a hand edit) is moved aside to ``*.corrupt`` and never
loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from backend.storage.full import raise_if_full

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FileStateStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    def _path(self, session_id: str) -> Path:
        if not _ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return self.root / f"{session_id}.json"

    def save(self, session_id: str, record: dict[str, Any]) -> None:
        path = self._path(session_id)
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

    def load(self, session_id: str) -> dict[str, Any] | None:
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

    def load_all(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            if _ID.match(path.stem) and (record := self._read(path)) is not None:
                records.append(record)
        return records

    def delete(self, session_id: str) -> None:
        try:
            self._path(session_id).unlink(missing_ok=True)
        except ValueError:
            pass
