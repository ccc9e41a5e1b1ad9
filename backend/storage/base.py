"""The storage seams. Services depend on these protocols only; none of them names a local path.

Who does what:
- The *services* validate ids, offsets and lengths, hash and scan the bytes, and
  serialize access to one chunk (at most one writer per chunk at a time) and to one
  session's saves.
- A :class:`ChunkStore` holds the bytes of unfinished uploads: it puts bytes where it is
  told and reads back ranges that were written. It raises
  :class:`~backend.errors.InsufficientStorage` when the medium is full, nothing else from
  ``backend.errors``.
- A :class:`StateStore` persists one small record per session, atomically: a reader sees
  the old record or the new one, never a torn one. Recording a chunk is one atomic
  update of that chunk's entry (:meth:`StateStore.update`): two writers recording
  different chunks of one session lose neither. A full medium is ``InsufficientStorage``,
  and the old record stays.
- A :class:`BlobStore` keeps finished files content-addressed by SHA-256. It takes an
  upload from the chunk store that holds it (:meth:`BlobStore.adopt`): a local pair
  renames the file, an object store completes the multipart upload and copies it to its
  content-addressed key. Downloads stream (:meth:`BlobStore.read`), any byte range.

Every contract method is a coroutine and never blocks the event loop. Two things are
synchronous on purpose, for speed, and say where they may be called:

- :class:`ChunkWriter`, returned by :meth:`ChunkStore.open`: the hot path hashes and
  writes each block of a chunk in a worker thread (zero-copy ``pwritev`` on local disk;
  an object store would buffer or stream a part from that thread). Call it from a worker
  thread only, one thread per writer.
- :class:`RangeReader`, from :meth:`ChunkStore.blocking_reader`: blocking reads of written
  ranges for a worker thread or another process (the child process that hashes the
  prefix). A store whose bytes cannot be read before the upload is finished (S3: parts
  are not readable before ``CompleteMultipartUpload``) has none.

pikepdf needs a local file: :meth:`ChunkStore.materialize` and :meth:`BlobStore.materialize`
yield one for as long as the context lasts (local disk: the file itself; an object store
downloads to a temporary file and removes it afterwards). Callers only read it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol


class ChunkWriter(Protocol):
    """Writes one byte range's bytes in order. Called from a worker thread only."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the range. Raises ``InsufficientStorage`` on a full medium
        and ``ValueError`` past the range's end."""

    def write_pieces(self, pieces: Sequence[memoryview]) -> None:
        """Append consecutive pieces (one vectored write where the medium allows)."""

    def close(self) -> None:
        """Release resources. Whether the range counts is the service's decision: a
        store keeps what was written even if the service then forgets it."""


class RangeReader(Protocol):
    """Blocking reads of written bytes; picklable, for a worker thread or a child process."""

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        """Fill ``buf`` from ``offset`` (no allocation per read); the bytes read, fewer
        at the end of what the medium holds, 0 when the upload is gone."""


class ChunkStore(Protocol):
    async def create(self, upload_id: str, size: int) -> None:
        """Make room for a new upload of ``size`` bytes (idempotent)."""

    async def exists(self, upload_id: str) -> bool:
        """Whether the store still holds the upload (false once adopted or deleted)."""

    async def open(self, upload_id: str, offset: int, length: int, *, read_back: bool = True) -> ChunkWriter:
        """A writer for the byte range ``[offset, offset + length)`` of the upload (see
        :class:`ChunkWriter`: a worker thread's). ``FileNotFoundError`` if the upload is gone.
        ``read_back=False``: the caller writes a whole chunk of the chunk grid and hashes its
        bytes in hand, so it will not read them back before the upload is finished (an
        object store may then send them straight into a part that cannot be read yet)."""

    async def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        """As :meth:`RangeReader.read_into`. A store that cannot read parts before the
        upload is finished reads what it staged, and makes bytes in parts readable first
        (S3: completes the multipart upload so far and goes on with a new one: work inside
        the store, for the rare read-back of a rebuild)."""

    def blocking_reader(self) -> RangeReader | None:
        """A reader for threads and child processes, or None when the medium cannot be
        read that way before the upload is finished."""

    async def resize(self, upload_id: str, size: int) -> None:
        """The upload's length became known: make it ``size`` bytes (bytes below stay)."""

    async def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        """Copy the first ``length`` bytes of upload ``source_id`` to ``offset`` of this
        one, inside the store (concatenation: nothing passes through the server)."""

    def materialize(self, upload_id: str) -> AbstractAsyncContextManager[Path]:
        """The whole upload as a local file to read, for as long as the context lasts.
        Called once every byte is written, before the upload is adopted."""

    async def delete(self, upload_id: str) -> None:
        """Remove the upload's bytes; no error when there are none."""

    async def list_uploads(self) -> list[str]:
        """Ids of every upload with bytes in the store (for the orphan sweep)."""

    async def stats(self) -> tuple[int, int]:
        """(number of unfinished uploads, bytes they use)."""


class StateStore(Protocol):
    async def save(self, session_id: str, record: dict[str, Any]) -> None:
        """Persist ``record`` atomically, replacing any earlier one (its ``chunks``
        entry too: a map of chunk id, as a string, to the chunk's SHA-256)."""

    async def update(self, session_id: str, fields: dict[str, Any], chunks: Mapping[int, str | None]) -> None:
        """One atomic change of the saved record: set ``fields`` (top-level entries other
        than ``chunks``) and, for each chunk in ``chunks``, set its digest (or remove it:
        None); other fields and chunks stay as saved. Creates the record if there is none.
        Two callers updating different chunks at once lose neither."""

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """The record, or None (also for an id that is not a session id)."""

    async def load_all(self) -> list[dict[str, Any]]:
        """Every readable record. Unreadable ones are set aside, not returned."""

    async def delete(self, session_id: str) -> None:
        """Remove the record; no error when there is none."""


class BlobStore(Protocol):
    async def adopt(self, chunks: ChunkStore, upload_id: str, sha256: str) -> bool:
        """Take the finished upload ``upload_id`` of ``chunks`` as the content ``sha256``
        (moved, not copied, where the two stores allow). The upload is gone from
        ``chunks`` afterwards. Returns False when that content was already stored."""

    async def has(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int | None:
        """The content's length in bytes, or None if it is not stored."""

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of the content (to its end when ``end`` is None), in
        pieces of at most a few hundred KiB. ``FileNotFoundError`` (at the first piece)
        if it is not stored."""

    def materialize(self, sha256: str) -> AbstractAsyncContextManager[Path]:
        """The content as a local file to read (pikepdf, text extraction), for as long
        as the context lasts. ``FileNotFoundError`` if it is not stored."""

    async def delete(self, sha256: str) -> None:
        """Remove the content; no error when there is none."""

