"""The storage seams. Services depend on these protocols only.

Who does what:
- The *services* validate ids, offsets and lengths, hash and scan the bytes, and
  serialize access to one chunk (at most one writer per chunk at a time).
- A :class:`ChunkStore` only puts bytes where it is told and reads back ranges of
  chunks that were written. It raises :class:`~backend.errors.InsufficientStorage` when
  the medium is full, nothing else from ``backend.errors``.
- A :class:`StateStore` persists one small record per session, atomically: a reader
  sees the old record or the new one, never a torn one. A full medium is
  :class:`~backend.errors.InsufficientStorage`, and the old record stays.
- A :class:`BlobStore` keeps finished files content-addressed by SHA-256.

Writers and readers returned by the stores are *synchronous*: services call them from
a worker thread, never on the event loop. The local-disk store writes each chunk in
place in one partial file; an object store would keep one object (or multipart part)
per chunk and implement the same calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


class ChunkWriter(Protocol):
    """Writes one chunk's bytes in order. Called from a worker thread."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the chunk. Raises ``InsufficientStorage`` on a full disk."""

    def write_pieces(self, pieces: Sequence[memoryview]) -> None:
        """Append consecutive pieces (one vectored write where the medium allows)."""

    def close(self) -> None:
        """Release resources. Whether the chunk counts is the service's decision."""


class ChunkStore(Protocol):
    def create(self, upload_id: str, size: int) -> None:
        """Make room for a new upload of ``size`` bytes (idempotent)."""

    def exists(self, upload_id: str) -> bool: ...

    def open_chunk(self, upload_id: str, offset: int, length: int) -> ChunkWriter:
        """A writer for the byte range ``[offset, offset + length)`` of the upload."""

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        """Fill ``buf`` from ``offset`` (no allocation per read); the bytes read, fewer
        at the end of what the medium holds, 0 when the upload is gone."""

    def resize(self, upload_id: str, size: int) -> None:
        """The upload's length became known: make it ``size`` bytes (bytes below stay)."""

    def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        """Copy the first ``length`` bytes of upload ``source_id`` to ``offset`` of this
        one, inside the store (concatenation: nothing passes through the server)."""

    def delete(self, upload_id: str) -> None:
        """Remove the upload's bytes; no error when there are none."""

    def list_uploads(self) -> list[str]:
        """Ids of every upload with bytes in the store (for the orphan sweep)."""

    def local_path(self, upload_id: str) -> Path:
        """The assembled file on local disk (for the blob store to adopt)."""

    def stats(self) -> tuple[int, int]:
        """(number of partial uploads, bytes they use)."""


class StateStore(Protocol):
    def save(self, session_id: str, record: dict[str, Any]) -> None:
        """Persist ``record`` atomically, replacing any earlier one."""

    def load(self, session_id: str) -> dict[str, Any] | None: ...

    def load_all(self) -> list[dict[str, Any]]:
        """Every readable record. Unreadable ones are set aside, not returned."""

    def delete(self, session_id: str) -> None: ...


class BlobStore(Protocol):
    def adopt(self, source: Path, sha256: str) -> bool:
        """Take ``source`` as the content ``sha256`` (moved, not copied, when possible).

        Returns False when that content was already stored; ``source`` is then removed."""

    def has(self, sha256: str) -> bool: ...

    def path(self, sha256: str) -> Path: ...

    def delete(self, sha256: str) -> None: ...
