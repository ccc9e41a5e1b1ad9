"""AssemblyService: one chunk from the socket to its place in the partial file.

The request stream's pieces are grouped (not copied) into blocks of about ``BLOCK``
bytes and handed to a worker thread that hashes them and writes them at their offset
with one ``pwritev``; meanwhile the event loop reads on (a bounded number of blocks per
chunk in memory). When the chunk starts exactly at the session's contiguous prefix, the
writer thread hands each block, once stored, to a fork of the prefix (whole-file SHA-256,
PDF scan: the digest seam, :mod:`backend.services.digest`): an in-order upload is
hashed and scanned while it streams in, and its chunk's answer says what the scan found.

Rules enforced here: offset and length (InvalidChunk), the PDF header on chunk 0
(NotAPdf), the chunk checksum (ChecksumMismatch: the chunk is not recorded), idempotent
retries (same bytes: success; other bytes: ChunkConflict; nothing is rewritten), one
writer per chunk at a time, and the memory budget (ServerBusy).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from backend.errors import (
    ChecksumMismatch, ChunkConflict, InvalidChunk, SecurityRejected, SessionNotActive,
)
from backend.services.backpressure import MemoryBudget
from backend.services.block_sink import BlockSink
from backend.services.live import LiveSession
from backend.services.models import FAILED, UPLOADING
from backend.services.prefix import PrefixService
from backend.services.progress import ProgressReporter
from backend.services.sessions import SessionService
from backend.services.tasks import outlive
from backend.services.validation import ValidationService
from backend.storage.base import ChunkStore, ChunkWriter
from backend.storage.locks import UploadLocker, holding

log = logging.getLogger(__name__)

BLOCK = 512 << 10
SLOTS = 2
MAX_PIECES = 256
HEADER_BYTES = 1024
# What one chunk request may hold: SLOTS blocks in the worker threads, one filling.
RESERVATION = (SLOTS + 1) * BLOCK + (256 << 10)
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")
#: Several replicas: one writer per chunk across them (a lock per chunk, renewed while the
#: chunk streams); a retry waits this long for another replica's try to end.
CHUNK_LEASE_TTL = 5.0
CHUNK_WAIT = 30.0


@dataclass(frozen=True)
class ChunkResult:
    chunk_id: int
    next_chunk_id: int | None
    upload_complete: bool
    duplicate: bool


class AssemblyService:
    def __init__(
        self,
        sessions: SessionService,
        prefix: PrefixService,
        chunks: ChunkStore,
        validation: ValidationService,
        budget: MemoryBudget,
        reporter: ProgressReporter,
        pool: Executor,
        stream_pool: Executor,
        locks: UploadLocker | None = None,
    ) -> None:
        """``pool`` runs short jobs; ``stream_pool`` gives each streaming chunk its writer
        thread (as many chunk requests as the memory budget admits). ``locks``: with
        several replicas, the shared locks that keep one writer per chunk across them
        (in one process, the session's own chunk locks do)."""
        self.sessions = sessions
        self.prefix = prefix
        self.chunks = chunks
        self.validation = validation
        self.budget = budget
        self.reporter = reporter
        self.pool = pool
        self.stream_pool = stream_pool
        self.locks = locks
        self.bytes_received = 0
        self.chunks_accepted = 0

    def run(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def write_chunk(
        self, owner: str, session_id: str, chunk_id: int, offset: int | None,
        checksum: Callable[[], str | None], data: AsyncIterator[bytes | memoryview],
    ) -> ChunkResult:
        """Accept one chunk. ``offset`` defaults to the chunk's place; ``checksum`` is
        asked for once ``data`` is consumed (a form may carry it after the file)."""
        live = await self.sessions.fetch(owner, session_id)
        s = live.session
        self.ensure_open(live)
        if not 0 <= chunk_id < s.total_chunks:
            raise InvalidChunk(f"chunk_id {chunk_id} is outside 0..{s.total_chunks - 1}")
        if offset is None:
            offset = chunk_id * s.chunk_size
        if offset != chunk_id * s.chunk_size:
            raise InvalidChunk(f"chunk {chunk_id} starts at offset {chunk_id * s.chunk_size}, not {offset}")
        await self.sessions.admission.admit(live)
        length = s.chunk_length(chunk_id)

        live.in_flight += 1
        try:
            async with self.budget.reserve(min(RESERVATION, length + BLOCK)):
                async with live.chunk_lock(chunk_id), holding(
                        self.locks, f"{live.id}:chunk:{chunk_id}", ttl=CHUNK_LEASE_TTL, wait=CHUNK_WAIT,
                        busy=f"chunk {chunk_id} is still being written by another request; retry"):
                    if self.locks is not None:  # what another replica's try recorded meanwhile
                        if await self.sessions.ledger.refresh(live.id) is None:
                            raise SessionNotActive(f"session {live.id} was ended")
                        self.ensure_open(live)
                    recorded = s.chunks.get(chunk_id)
                    if recorded is not None:
                        digest = await self._hash_only(data, length)
                        self._check(chunk_id, digest, checksum())
                        if digest != recorded:
                            raise ChunkConflict(f"chunk {chunk_id} was already received with other bytes")
                        await self.sessions.save(live)  # its first save may have failed (a full disk)
                        return self._result(live, chunk_id, duplicate=True)
                    digest, fork = await self._write_new(live, chunk_id, offset, length, data)
                    try:
                        self._check(chunk_id, digest, checksum())
                        self.ensure_open(live)  # another chunk's scan may have failed it meanwhile
                    except BaseException:
                        if fork is not None:
                            self.prefix.discard(fork)
                        raise
                    findings, saving = await self._record(live, chunk_id, digest, fork)
        finally:
            live.in_flight -= 1
            live.last_activity = time.monotonic()
        try:
            if findings:
                await self.validation.on_findings(live, findings)
        except BaseException:
            await outlive(saving)  # a refusal says more than a failed save
            raise
        await saving
        self.prefix.schedule_catch_up(live)
        if s.complete:
            # The last chunk recorded answers for the ones that came ahead of a gap: the
            # catch-up reads them to the end of the file, where the scan is finished, and
            # what it refuses is refused here (/complete would wait for it anyway).
            await self.prefix.wait_caught_up(live)
            self.ensure_not_refused(live)
        await self.sessions.save(live)  # nothing to write unless the findings changed it
        self.reporter.chunk_recorded(live, chunk_id)
        return self._result(live, chunk_id, duplicate=False)

    @staticmethod
    def ensure_not_refused(live: LiveSession) -> None:
        """A session the scan refused says why (``SecurityRejected``)."""
        s = live.session
        if s.status == FAILED and s.error and s.error.get("error") == SecurityRejected.code:
            raise SecurityRejected(s.error["message"], findings=s.error.get("findings", []))

    @classmethod
    def ensure_open(cls, live: LiveSession) -> None:
        """Chunks are taken only while uploading; a session the scan refused says why."""
        s = live.session
        cls.ensure_not_refused(live)
        if s.status != UPLOADING:
            raise SessionNotActive(f"session {s.session_id} is {s.status}")

    @staticmethod
    def _check(chunk_id: int, digest: str, checksum: str | None) -> None:
        if checksum is not None and not _SHA.match(checksum):
            raise InvalidChunk("checksum must be a hex SHA-256")
        if checksum is not None and digest != checksum.lower():
            raise ChecksumMismatch(f"chunk {chunk_id}: sha256 differs from the checksum sent")

    @staticmethod
    def _result(live: LiveSession, chunk_id: int, *, duplicate: bool) -> ChunkResult:
        s = live.session
        return ChunkResult(chunk_id, s.next_chunk_id(), s.complete, duplicate)

    async def _record(self, live: LiveSession, chunk_id: int, digest: str,
                      fork: int | None) -> tuple[list[Any], asyncio.Future[None]]:
        """Record the chunk and start saving the state; meanwhile the prefix worker
        finishes the chunk's last blocks and commits its fork. Returns the chunk's
        findings and the save (to await once they are judged)."""
        s = live.session
        async with live.prefix_lock:
            s.chunks[chunk_id] = digest
            live.touch()
            saving = asyncio.ensure_future(self.sessions.save(live))
            try:
                findings = await self.prefix.commit(live, fork, chunk_id * s.chunk_size) if fork is not None else []
            except BaseException:
                await outlive(saving)
                raise
        live.meter.add(s.chunk_length(chunk_id))
        self.chunks_accepted += 1
        self.bytes_received += s.chunk_length(chunk_id)
        return findings, saving

    async def _blocks(self, data: AsyncIterator[bytes | memoryview], length: int,
                      chunk_id: int) -> AsyncIterator[list[memoryview]]:
        """Group the request stream's pieces into blocks of about ``BLOCK`` bytes, without
        copying them; refuse more or fewer bytes than ``length``."""
        pieces: list[memoryview] = []
        size = received = 0
        async for piece in data:
            received += len(piece)
            if received > length:
                raise InvalidChunk(f"chunk {chunk_id} must be {length} bytes; more were sent")
            pieces.append(memoryview(piece))
            size += len(piece)
            if size >= BLOCK:
                yield pieces if len(pieces) <= MAX_PIECES else [memoryview(b"".join(pieces))]
                pieces, size = [], 0
        if received != length:
            raise InvalidChunk(f"chunk {chunk_id} must be {length} bytes; {received} were sent")
        if pieces:
            yield pieces if len(pieces) <= MAX_PIECES else [memoryview(b"".join(pieces))]

    async def _hash_only(self, data: AsyncIterator[bytes | memoryview], length: int) -> str:
        digest = hashlib.sha256()

        def update(pieces: list[memoryview]) -> None:
            for piece in pieces:
                digest.update(piece)

        sink: BlockSink[list[memoryview]] = BlockSink(self.stream_pool, update, SLOTS)
        try:
            async for pieces in self._blocks(data, length, -1):
                await sink.put(pieces)
        except BaseException:
            await sink.abort()
            raise
        await sink.close()
        return digest.hexdigest()

    async def _write_new(
        self, live: LiveSession, chunk_id: int, offset: int, length: int, data: AsyncIterator[bytes | memoryview],
    ) -> tuple[str, int | None]:
        """Stream the chunk to its place: a worker thread hashes and writes each block and,
        when the chunk starts at the prefix, hands it to the prefix's fork."""
        digest = hashlib.sha256()
        fork = await self.prefix.fork(live, offset)
        try:
            # A forked chunk is hashed in hand: the store need not keep it readable.
            writer: ChunkWriter = await self.chunks.open(live.id, offset, length, read_back=fork is None)
        except BaseException as exc:
            if fork is not None:
                self.prefix.discard(fork)
            if isinstance(exc, FileNotFoundError):
                # Cancelled or refused by another request since this one's checks, which
                # removed the partial file: say why rather than fail.
                self.ensure_open(live)
            raise
        written = offset

        def write(pieces: list[memoryview]) -> None:
            nonlocal written
            size = 0
            for piece in pieces:
                digest.update(piece)
                size += len(piece)
            writer.write_pieces(pieces)
            if fork is not None:
                self.prefix.feed_fork(fork, live.id, written, pieces)
            written += size

        sink: BlockSink[list[memoryview]] = BlockSink(self.stream_pool, write, SLOTS)
        try:
            first = chunk_id == 0
            async for pieces in self._blocks(data, length, chunk_id):
                if first:
                    self.validation.check_header(head_of(pieces, HEADER_BYTES), live.session.file_size)
                    first = False
                await sink.put(pieces)
            await sink.close()
        except BaseException:
            # Never close the file under a thread still writing to it.
            await sink.abort()
            if fork is not None:
                self.prefix.discard(fork)
            raise
        finally:
            await self.run(writer.close)
        return digest.hexdigest(), fork


def head_of(pieces: list[memoryview], n: int) -> bytes:
    """The first ``n`` bytes of a block (socket pieces can be shorter than that)."""
    out = bytearray()
    for piece in pieces:
        out += piece[: n - len(out)]
        if len(out) >= n:
            break
    return bytes(out)
