"""Local resume state: one small JSON file per unfinished upload.

Where: ``--state-dir``, else ``$PDF_UPLOAD_STATE_DIR``, else
``$XDG_STATE_HOME/pdf-upload`` (``~/.local/state/pdf-upload``).

Key and fingerprint. A state file is named after (server URL, absolute path), so that
``pdf-upload FILE`` finds the state of the same file on the same server before reading
it. Whether the file is still *the same* is decided by its fingerprint: size and
``mtime_ns`` (a cheap first check) and the SHA-256 of the whole content. The full hash is
computed anyway for every upload (it is the ``expected_hash`` the server verifies at
``/complete`` and the key of duplicate detection), so checking it on resume costs one
streaming read of the file and catches in-place edits that keep size and mtime. A
partial hash (first and last MiB) would miss edits in the middle, which then would only
be caught by ``/complete`` after the upload.

Writes are atomic (temporary file in the same directory, then ``os.replace``), so a
client killed at any moment leaves either the old or the new state, never a torn one.
The local state is a hint: which chunks the server holds is asked of ``/resume``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

READ_BLOCK = 1 << 20
STATE_VERSION = 1


def default_state_dir() -> Path:
    env = os.environ.get("PDF_UPLOAD_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pdf-upload"


def sha256_file(path: Path, on_progress: Callable[[int], None] | None = None) -> str:
    """SHA-256 of a file read in 1 MiB blocks (never whole); ``on_progress(bytes)`` per block."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            digest.update(block)
            if on_progress is not None:
                on_progress(len(block))
    return digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a file's content at a path: size, mtime_ns and SHA-256."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    @staticmethod
    def quick(path: Path) -> tuple[str, int, int]:
        """(absolute path, size, mtime_ns) from one ``stat``."""
        st = path.stat()
        return str(path.resolve()), st.st_size, st.st_mtime_ns

    @classmethod
    def of(cls, path: Path, on_progress: Callable[[int], None] | None = None) -> Fingerprint:
        abspath, size, mtime_ns = cls.quick(path)
        return cls(abspath, size, mtime_ns, sha256_file(path, on_progress))


@dataclass
class UploadState:
    """One unfinished upload: where it goes, what it is, what was acknowledged."""

    server: str
    session_id: str
    client_id: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    chunk_size: int
    total_chunks: int
    title: str | None = None
    acked: list[int] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    version: int = STATE_VERSION

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.path, self.size, self.mtime_ns, self.sha256)

    def chunk_len(self, chunk_id: int) -> int:
        return min(self.chunk_size, self.size - chunk_id * self.chunk_size)

    def acked_bytes(self) -> int:
        return sum(self.chunk_len(i) for i in self.acked)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadState:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def state_key(server: str, abspath: str) -> str:
    return hashlib.sha256(f"{server.rstrip('/')}\0{abspath}".encode()).hexdigest()[:32]


class StateStore:
    """The state directory. Not shared between processes uploading the same file at once."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = (directory or default_state_dir()).expanduser()

    def path_for(self, server: str, abspath: str) -> Path:
        return self.dir / f"{state_key(server, abspath)}.json"

    def load(self, server: str, abspath: str) -> UploadState | None:
        return self._read(self.path_for(server, abspath))

    def _read(self, path: Path) -> UploadState | None:
        try:
            data = json.loads(path.read_text())
            return UploadState.from_json(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None  # missing or unreadable: as if there were none

    def save(self, state: UploadState, *, durable: bool = False) -> None:
        """Atomically replace the state file; ``durable`` also fsyncs it (first save)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.path_for(state.server, state.path)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(state), f, separators=(",", ":"))
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, state: UploadState) -> None:
        self.path_for(state.server, state.path).unlink(missing_ok=True)

    def all(self) -> list[UploadState]:
        """Every readable state, oldest first."""
        if not self.dir.is_dir():
            return []
        states = [s for p in self.dir.glob("*.json") if (s := self._read(p)) is not None]
        return sorted(states, key=lambda s: s.created_at)

    def find_session(self, session_id: str) -> UploadState | None:
        return next((s for s in self.all() if s.session_id == session_id), None)
