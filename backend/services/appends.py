"""AppendService: bytes appended at an upload's offset, as tus and the IETF draft send them.

An append is a byte range that starts exactly where the upload's contiguous bytes end
(:attr:`Session.offset`) and runs for as long as the body does. Underneath it is the same
session as the chunk API's: the file is cut into chunks of ``chunk_size`` bytes, and an
append records each chunk it completes, with its SHA-256, exactly as a chunk request
would. The bytes of the first chunk it does not complete are the session's ``tail``
(their length and SHA-256), which the next append continues; the tail is verified from
the bytes like any chunk after a restart (:meth:`PrefixService.rebuild`).

Contract:
- Offset first: an append that does not start at the offset is refused
  (``OffsetMismatch``, with the offset) before a byte is read.
- One append at a time per upload, on any replica: an upload lock
  (:class:`~backend.storage.locks.UploadLocker`: a token, an expiry, a release request;
  in this process or in Redis). A new append asks the one in progress to stop where it
  is (a client that reconnects must not wait for its own dead request to time out:
  tusd's ``requestUnlock``), takes the lock once it is released, or once it expired
  (its holder died with its replica), reads the session as the store holds it now, and
  then checks its offset against what the old one kept.
- A body cut off (the client went away, or stopped sending) keeps what arrived: it is
  recorded, and the error is raised after. With a checksum, the body counts only whole:
  a mismatch or a cut-off body records nothing (``ChecksumMismatch``).
- The checks of the chunk API apply: the PDF header in the first 1024 bytes
  (``NotAPdf``, the session fails; not for a partial upload, a piece of another), the streaming scan (``SecurityRejected`` on the
  append that reveals it), the memory budget (``ServerBusy``), the active-uploads cap.
- The append that brings the offset to the end waits for the prefix to catch up, so its
  answer includes what the end of the file reveals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator

from backend.errors import (
    ChecksumMismatch, FileTooLarge, NotAPdf, OffsetMismatch, RequestTimeout, ServerBusy, SessionNotActive,
    StorageUnavailable,
)
from backend.services.assembly import BLOCK, HEADER_BYTES, RESERVATION, SLOTS, AssemblyService, head_of
from backend.services.block_sink import BlockSink
from backend.services.cells import Cells, Checksum
from backend.services.live import LiveSession
from backend.services.tasks import outlive
from backend.storage.base import ChunkWriter
from backend.storage.locks import LocalLocker, UploadLocker, held

log = logging.getLogger(__name__)

TAKEOVER_WAIT = 10.0
#: How long an append's lock lasts without renewal (renewed every 0.2 s while it runs): a
#: replica that died holding it delays the next append by at most this.
LEASE_TTL = 5.0


class Stopped(Exception):
    """A newer append asked this one to stop."""


class BodyCut(Exception):
    """The body ended before it was whole: the client went away. Routers raise it from
    the body iterator they hand in (the web framework's own error stays in ``api``)."""


class AppendService:
    def __init__(self, assembly: AssemblyService, locks: UploadLocker | None = None) -> None:
        """``locks``: the upload locks (shared by the replicas; this process's by default)."""
        self.assembly = assembly
        self.sessions = assembly.sessions
        self.prefix = assembly.prefix
        self.chunks = assembly.chunks
        self.validation = assembly.validation
        self.locks: UploadLocker = locks if locks is not None else LocalLocker()

    async def settle(self, live: LiveSession) -> LiveSession:
        """Stop an append still in flight (on any replica) and wait until it has recorded
        what it got, so that an offset read now is one the next append is accepted at (a
        client that reconnects asks where to resume while its dead request may still be
        running). Returns the session as it stands then. Raises ServerBusy when the append
        does not stop within ``TAKEOVER_WAIT``."""
        lease = await self.locks.acquire(live.id, ttl=LEASE_TTL, wait=TAKEOVER_WAIT)
        if lease is None:
            raise ServerBusy("another request is still writing to this upload; retry", retry_after=1)
        try:
            return await self._current(live)
        finally:
            await self.locks.release(lease)

    async def _current(self, live: LiveSession) -> LiveSession:
        """The session as the store holds it (another replica may have appended)."""
        if not self.sessions.ledger.shared:
            return live
        current = await self.sessions.ledger.refresh(live.id)
        if current is None:
            raise SessionNotActive(f"session {live.id} was ended")
        return current

    async def append(self, live: LiveSession, offset: int, data: AsyncIterator[bytes | memoryview],
                     checksum: Checksum | None = None) -> int:
        """Write the body at ``offset``; the upload's new offset (see the module doc)."""
        self.assembly.ensure_open(live)
        lease = await self.locks.acquire(live.id, ttl=LEASE_TTL, wait=TAKEOVER_WAIT)
        if lease is None:
            raise SessionNotActive("another request is still writing to this upload; retry")
        async with held(self.locks, lease) as stop:
            live = await self._current(live)
            s = live.session
            self.assembly.ensure_open(live)
            if offset != s.offset:
                raise OffsetMismatch(f"the upload's bytes end at {s.offset}, not {offset}", offset=s.offset)
            await self.sessions.admission.admit(live)
            live.in_flight += 1
            ended = asyncio.Event()
            reporting = self._reporting(live, ended) if self.sessions.admission.counters is not None else None
            try:
                async with self.assembly.budget.reserve(RESERVATION):
                    return await self._append(live, offset, data, checksum, stop)
            finally:
                live.in_flight -= 1
                live.last_activity = time.monotonic()
                if reporting is not None:
                    ended.set()
                    await reporting

    def _reporting(self, live: LiveSession, ended: asyncio.Event) -> asyncio.Task[None]:
        """Shared admission counters: a long append tells them it is active every half
        idle period, so its slot does not lapse while its body streams in. Told to end,
        never cancelled (a cancellation inside a redis-py command can be swallowed)."""
        every = self.sessions.settings.active_idle_seconds / 2

        async def report() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), every)
                    return
                with contextlib.suppress(StorageUnavailable):
                    await self.sessions.admission.report(live)

        return asyncio.create_task(report(), name=f"admission report {live.id}")

    async def _append(self, live: LiveSession, offset: int, data: AsyncIterator[bytes | memoryview],
                      checksum: Checksum | None, stop: asyncio.Event) -> int:
        s = live.session
        remaining = s.file_size - offset
        cells = await self._cells(live, checksum)
        writer: ChunkWriter = await self.chunks.open(live.id, offset, remaining)
        fork = await self.prefix.fork(live, offset)
        written = offset

        def write(pieces: list[memoryview]) -> None:
            nonlocal written
            for piece in pieces:
                cells.add(piece)
            writer.write_pieces(pieces)
            size = sum(len(p) for p in pieces)
            if fork is not None:
                self.prefix.feed_fork(fork, live.id, written, pieces)
            written += size

        sink: BlockSink[list[memoryview]] = BlockSink(self.assembly.stream_pool, write, SLOTS)
        cut: BaseException | None = None
        first = offset == 0 and s.concat != "partial"  # the loop's own flag: ``written`` is the thread's
        try:
            try:
                async for pieces in self._blocks(data, remaining, stop):
                    if first and sum(len(p) for p in pieces) >= min(HEADER_BYTES, s.file_size):
                        self.validation.check_header(head_of(pieces, HEADER_BYTES), s.file_size)
                    first = False
                    await sink.put(pieces)
            except (Stopped, BodyCut, RequestTimeout) as exc:
                cut = exc  # what arrived is kept (below), then the error goes on
            await sink.close()
        except BaseException:
            await sink.abort()
            if fork is not None:
                self.prefix.discard(fork)
            raise
        finally:
            await self.assembly.run(writer.close)
        received = written - offset
        if checksum is not None and (cut is not None or cells.body_digest() != checksum.digest):
            if fork is not None:
                self.prefix.discard(fork)
            if cut is not None:
                raise cut
            raise ChecksumMismatch(f"the body's {checksum.algorithm} differs from the checksum sent; "
                                   f"its {received} bytes were discarded")
        await self._record(live, cells, fork, offset, received)
        if offset < min(HEADER_BYTES, s.file_size) <= s.offset and s.concat != "partial":
            await self._check_header(live)
        if cut is not None:
            raise cut
        return s.offset

    async def _cells(self, live: LiveSession, checksum: Checksum | None) -> Cells:
        """Where the append starts among the chunks; the tail's bytes already hashed."""
        s = live.session
        index = s.recorded_prefix // s.chunk_size
        hasher = hashlib.sha256()
        filled = 0
        if s.tail is not None:
            filled = int(s.tail["length"])
            buf = bytearray(filled)
            got = await self.chunks.read_into(live.id, index * s.chunk_size, buf)
            hasher.update(memoryview(buf)[:got])
            if got != filled or hasher.hexdigest() != s.tail["sha256"]:
                s.tail = None  # the bytes decide: the tail is gone; this append is refused
                live.touch()
                await self.sessions.save(live)
                raise OffsetMismatch(f"the upload's bytes end at {s.offset}", offset=s.offset)
        return Cells.starting(s.chunk_size, s.file_size, index, filled, hasher, checksum)

    async def _record(self, live: LiveSession, cells: Cells, fork: int | None, start: int,
                      received: int) -> None:
        s = live.session
        async with live.prefix_lock:
            s.chunks.update(cells.done)
            s.tail = {"length": cells.filled, "sha256": cells.hasher.hexdigest()} if cells.filled else None
            live.touch()
            saving = asyncio.ensure_future(self.sessions.save(live))
            try:
                findings = await self.prefix.commit(live, fork, start) if fork is not None else []
            except BaseException:
                await outlive(saving)
                raise
        live.meter.add(received)
        self.assembly.bytes_received += received
        self.assembly.chunks_accepted += len(cells.done)
        try:
            if findings:
                await self.validation.on_findings(live, findings)
        except BaseException:
            await outlive(saving)
            raise
        await saving
        self.prefix.schedule_catch_up(live)
        if s.offset == s.file_size:
            await self.prefix.wait_caught_up(live)
            self.assembly.ensure_not_refused(live)
        await self.sessions.save(live)
        if received:
            self.assembly.reporter.chunk_recorded(live, max(cells.done, default=cells.index))

    async def _check_header(self, live: LiveSession) -> None:
        s = live.session
        buf = bytearray(min(HEADER_BYTES, s.file_size))
        await self.chunks.read_into(live.id, 0, buf)
        try:
            self.validation.check_header(buf, s.file_size)
        except NotAPdf as exc:
            await self.sessions.fail(live, exc)
            raise

    @staticmethod
    async def _blocks(data: AsyncIterator[bytes | memoryview], limit: int,
                      stop: asyncio.Event) -> AsyncIterator[list[memoryview]]:
        """The body's pieces grouped into blocks of about ``BLOCK`` bytes, without copies;
        ``FileTooLarge`` past ``limit`` bytes; ``Stopped`` once a newer append asks, at
        once even while waiting on a client that sends nothing (its read is interrupted:
        a stalled request must not hold the upload for the next one)."""
        pieces: list[memoryview] = []
        size = received = 0
        task = asyncio.current_task()
        reading = interrupted = False

        async def watch() -> None:
            nonlocal interrupted
            await stop.wait()
            if reading and task is not None:  # else the loop sees ``stop`` before its next read
                interrupted = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        it = data.__aiter__()
        try:
            while True:
                if stop.is_set():
                    raise Stopped()
                reading = True
                try:
                    piece = await it.__anext__()
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    if interrupted and task is not None and task.uncancel() == 0:
                        raise Stopped() from None
                    raise
                finally:
                    reading = False
                received += len(piece)
                if received > limit:
                    raise FileTooLarge(f"the body goes {received - limit} bytes past the upload's length")
                pieces.append(memoryview(piece))
                size += len(piece)
                if size >= BLOCK:
                    yield pieces
                    pieces, size = [], 0
        except (Stopped, BodyCut, RequestTimeout):
            if pieces:  # what arrived before the cut is kept, the last partial block too
                yield pieces
            raise
        finally:
            watcher.cancel()
        if pieces:
            yield pieces
