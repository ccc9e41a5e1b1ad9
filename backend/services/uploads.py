"""UploadService: the one upload core that every protocol's router calls.

An upload is a session (:mod:`backend.services.sessions`): its bytes, state, checks,
progress room and completion are the same whichever dialect opened it. The core offers:

- ``create``: open an upload of a known length, with the client's metadata;
- ``info``: its offset (the contiguous bytes from the start), length and expiry;
- ``write_chunk``: a range of known length at ``chunk_id x chunk_size`` (the chunk API
  of ``API.md``; any order, in parallel; :class:`AssemblyService`);
- ``append``: bytes at the offset, for as long as the body runs; a cut-off body keeps
  what arrived (tus, the IETF draft; :class:`AppendService`);
- ``declare_length``: the length of an upload created without one;
- ``concatenate``: a new upload made of finished partial uploads, in order (the store
  copies the bytes; the new upload is hashed and scanned like any, then finished);
- ``finish``: verify, inspect, store and record the file (:class:`CompletionService`);
- ``terminate``: drop the upload, bytes and state.

Every refusal is an :class:`~backend.errors.UploadError` with a code; each router maps
codes to its protocol's answers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Container
from dataclasses import dataclass

from backend.errors import FileTooLarge, InsufficientStorage, InvalidRequest, StorageUnavailable
from backend.services.appends import AppendService
from backend.services.assembly import AssemblyService, ChunkResult
from backend.services.cells import Checksum
from backend.services.completion import Completed, CompletionService
from backend.services.live import LiveSession
from backend.services.models import CANCELLED, COMPLETED, UPLOADING, Session
from backend.services.sessions import InitiateRequest, SessionService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    offset: int
    length: int | None  # None: not declared yet
    expires_at: float
    status: str
    metadata: dict[str, str]
    document_id: int | None
    concat: str | None = None
    parts: tuple[str, ...] = ()


class UploadService:
    def __init__(self, sessions: SessionService, assembly: AssemblyService, appends: AppendService,
                 completion: CompletionService) -> None:
        self.sessions = sessions
        self.assembly = assembly
        self.appends = appends
        self.completion = completion

    async def create(self, owner: str, request: InitiateRequest) -> LiveSession:
        return await self.sessions.initiate(owner, request)

    async def info(self, owner: str, upload_id: str, *, settle: bool = False) -> UploadInfo:
        """Raises NotFound (also for a terminated upload) or SessionExpired. After a
        restart the bytes decide: the recorded chunks and tail are verified first. With
        ``settle``, an append still in flight is stopped and recorded first (ServerBusy if
        it does not stop): the offset is then one the next append is accepted at."""
        live = await self.sessions.fetch(owner, upload_id)
        if settle:
            live = await self.appends.settle(live)
        s = live.session
        if live.prefix is None and s.status == UPLOADING:
            await self.sessions.prefix.adopt(live)  # several replicas: the saved state, if any
        if live.prefix is None and s.status == UPLOADING:
            await self.sessions.prefix.rebuild(live)
            await self.sessions.save(live)
        offset = s.file_size if s.status == COMPLETED else s.offset
        return UploadInfo(s.session_id, offset, None if s.length_deferred else s.file_size, s.expires_at,
                          s.status, dict(s.metadata), s.document_id, s.concat, tuple(s.parts))

    async def declare_length(self, owner: str, upload_id: str, length: int) -> None:
        """Fix the length of an upload created without one (a no-op if it is already that
        length). Raises InvalidRequest (shorter than what was sent, or changed) or
        FileTooLarge."""
        live = await self.sessions.fetch(owner, upload_id)
        s = live.session
        self.assembly.ensure_open(live)
        if not s.length_deferred:
            if length != s.file_size:
                raise InvalidRequest(f"the upload's length is {s.file_size}; it cannot change to {length}")
            return
        if length <= 0:
            raise InvalidRequest("the file is empty: there is nothing to upload")
        if length > self.sessions.settings.max_file_size:
            raise FileTooLarge(f"file is {length} bytes; the limit is {self.sessions.settings.max_file_size} bytes",
                               max_file_size=self.sessions.settings.max_file_size)
        if length < s.offset or any(i * s.chunk_size >= length for i in s.chunks):
            raise InvalidRequest(f"{s.offset} bytes were already sent: the length cannot be {length}")
        async with live.prefix_lock:
            await self.assembly.chunks.resize(live.id, length)
            s.file_size, s.length_deferred = length, False
            tail_at = s.tail_offset
            if s.tail is not None and tail_at is not None and int(s.tail["length"]) == s.chunk_length(
                    tail_at // s.chunk_size):
                s.chunks[tail_at // s.chunk_size] = str(s.tail["sha256"])  # the tail is the last chunk
                s.tail = None
            live.touch()
        await self.sessions.save(live)
        self.sessions.prefix.schedule_catch_up(live)

    async def concatenate(self, owner: str, request: InitiateRequest, parts: list[str]) -> LiveSession:
        """A new upload made of the finished partial uploads ``parts``, in order; they are
        removed once copied. Its bytes are then verified like any upload's (hashed and
        scanned from the bytes), ready for :meth:`finish`."""
        lives = [await self.sessions.fetch(owner, part) for part in parts]
        if not lives:
            raise InvalidRequest("a final upload needs at least one partial upload")
        for live in lives:
            s = live.session
            if s.concat != "partial":
                raise InvalidRequest(f"upload {s.session_id} is not a partial upload")
            if s.length_deferred or s.offset != s.file_size:
                raise InvalidRequest(f"partial upload {s.session_id} is not finished ({s.offset} bytes)")
        request.file_size = sum(lv.session.file_size for lv in lives)
        request.concat, request.length_deferred = "final", False
        final = await self.sessions.initiate(owner, request)
        final.session.parts = list(parts)
        offset = 0
        for live in lives:
            await self.assembly.chunks.copy_from(final.id, offset, live.id, live.session.file_size)
            offset += live.session.file_size
        copied_wrong = False
        try:
            known = _parts_digests(final.session, [lv.session for lv in lives])
            final.session.chunks.update(known)
            final.session.chunks.update(await self._chunk_digests(final, skip=known))
            final.touch()
            final.prefix = None  # the bytes decide: the rebuild hashes and scans them
            if await self.sessions.prefix.rebuild(final):  # a part's digest the copy does not match
                copied_wrong = True
                await self.sessions.discard(final, CANCELLED, "its bytes differ from its parts' (a storage fault)")
                raise StorageUnavailable("the concatenated upload's bytes differ from its parts'; its parts are "
                                          "kept, send the final creation again")
            await self.sessions.save(final)
        finally:
            if not copied_wrong:
                for live in lives:
                    await self.sessions.discard(live, CANCELLED, f"concatenated into upload {final.id}")
        return final

    async def _chunk_digests(self, live: LiveSession, skip: Container[int] = ()) -> dict[int, str]:
        """The SHA-256 of every chunk not in ``skip``, read back from the store (hashed in
        a worker thread)."""
        s = live.session
        digests: dict[int, str] = {}
        for i in range(s.total_chunks):
            if i in skip:
                continue
            buf = bytearray(s.chunk_length(i))
            if await self.assembly.chunks.read_into(live.id, i * s.chunk_size, buf) != len(buf):
                raise InsufficientStorage(f"the concatenated upload could not be read back at chunk {i}")
            digests[i] = await self.assembly.run(_sha256_hex, buf)
        return digests

    async def write_chunk(self, owner: str, upload_id: str, chunk_id: int, offset: int | None,
                          checksum: Callable[[], str | None],
                          data: AsyncIterator[bytes | memoryview]) -> ChunkResult:
        return await self.assembly.write_chunk(owner, upload_id, chunk_id, offset, checksum, data)

    async def append(self, owner: str, upload_id: str, offset: int, data: AsyncIterator[bytes | memoryview],
                     checksum: Checksum | None = None) -> int:
        """The new offset. At the end of the file, call :meth:`finish` next."""
        live = await self.sessions.fetch(owner, upload_id)
        return await self.appends.append(live, offset, data, checksum)

    async def finish(self, owner: str, upload_id: str) -> Completed:
        return await self.completion.complete(owner, upload_id)

    async def terminate(self, owner: str, upload_id: str, reason: str | None = None) -> None:
        """An append in flight is told to stop; bytes and state are removed."""
        await self.sessions.fetch(owner, upload_id, allow_expired=True)
        await self.appends.locks.request_release(upload_id)
        await self.sessions.cancel(owner, upload_id, reason)


def _parts_digests(final: Session, parts: list[Session]) -> dict[int, str]:
    """The final upload's chunks that are a part's chunk byte for byte (the part starts
    at a chunk boundary, with the same chunk size, and the chunk is whole in the final),
    with the digest the part recorded when its bytes came in. The rebuild checks them
    against the copied bytes like any recorded chunk."""
    size, known, offset = final.chunk_size, {}, 0
    for part in parts:
        if offset % size == 0 and part.chunk_size == size:
            last_part = offset + part.file_size == final.file_size
            for j, digest in part.chunks.items():
                if part.chunk_length(j) == size or last_part:
                    known[offset // size + j] = digest
        offset += part.file_size
    return known


def _sha256_hex(data: bytearray) -> str:
    return hashlib.sha256(data).hexdigest()
