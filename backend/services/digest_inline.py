"""The ``inline`` digest (:class:`~backend.services.digest.Digests`): the prefix states live
in the server, and the bytes in hand feed them.

``feed`` runs in the writer thread that has just stored the block: it hashes and scans the
block there, so an in-order upload is never read back from the store. Everything else
(forks, commits, catch-ups, rebuilds, finishes) runs in one thread of its own, in order,
on a :class:`~backend.services.prefix_worker.PrefixWorker`; catch-ups and rebuilds read
the bytes back through the :class:`~backend.storage.base.RangeReader` given (a local
store's own, or a bridge to an async store's ``read_into``). What that needs from a store
is in :mod:`backend.services.digest`.

The cost is the GIL: the whole-file hash and the scan run in the server process, next to
the event loop (the ``child`` digest runs them in a process of its own).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from backend.services.digest import DigestLost, PrefixHandle, Progress, Range
from backend.services.prefix_state import PrefixState, ResumableSha256, ScannerFactory
from backend.services.prefix_worker import PrefixWorker
from backend.storage.base import ChunkStore, RangeReader

T = TypeVar("T")
log = logging.getLogger(__name__)


class StoreReader:
    """A :class:`RangeReader` over a store that has no blocking reader: each read is the
    store's ``read_into``, run on the event loop, waited for by the digest thread."""

    def __init__(self, chunks: ChunkStore) -> None:
        self.chunks = chunks
        self.loop: asyncio.AbstractEventLoop | None = None  # set at the first operation

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        if self.loop is None:
            raise RuntimeError("StoreReader used before the event loop was known")
        return asyncio.run_coroutine_threadsafe(self.chunks.read_into(upload_id, offset, buf), self.loop).result()


class InlineDigests:
    def __init__(self, chunks: ChunkStore, scanner_factory: ScannerFactory, *, portable: bool = False) -> None:
        """Reads back through ``chunks.blocking_reader()``, or its ``read_into`` on the loop.
        ``portable``: states hash with a serializable SHA-256, so that :meth:`snapshot`
        and :meth:`restore` can move them between replicas (issue 15)."""
        reader: RangeReader | None = chunks.blocking_reader()
        self._bridge: StoreReader | None = None
        if reader is None:
            reader = self._bridge = StoreReader(chunks)
        self.portable = portable
        self.book = PrefixWorker(reader, scanner_factory, ResumableSha256 if portable else None)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        self._ids = itertools.count(1)
        self._forgotten: collections.deque[int] = collections.deque()  # appended by finalizers

    def start(self) -> None:
        pass  # nothing to start: the thread comes with the first job

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    def new_id(self) -> int:
        return next(self._ids)

    def forget(self, state_id: int) -> None:
        self._forgotten.append(state_id)  # dropped by the digest thread, before its next job

    def _do(self, fn: Callable[..., T], *args: Any) -> T:
        """In the digest thread: drop forgotten states, then run ``fn``."""
        while self._forgotten:
            self.book.drop(self._forgotten.popleft())
        return fn(*args)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._thread.submit(self._do, fn, *args)

    async def _ask(self, fn: Callable[..., T], *args: Any) -> T:
        if self._bridge is not None and self._bridge.loop is None:
            self._bridge.loop = asyncio.get_running_loop()
        try:
            return await asyncio.wrap_future(self._thread.submit(self._do, fn, *args))
        except Exception as exc:  # an unknown state, a shut-down thread: as a child that died
            raise DigestLost(f"{type(exc).__name__}: {exc}") from exc

    def new_state(self) -> PrefixHandle:
        prefix = PrefixHandle(self)
        self._post(self.book.open, prefix.id)
        return prefix

    async def fork(self, prefix: PrefixHandle) -> int | None:
        fork_id = self.new_id()
        try:
            await self._ask(self.book.fork, fork_id, prefix.id)
        except DigestLost:
            return None
        return fork_id

    def feed(self, fork_id: int, upload_id: str, offset: int, pieces: Sequence[memoryview]) -> None:
        try:
            self.book.feed_bytes(fork_id, offset, pieces)
        except Exception:  # the chunk is stored: it must not fail for this; the fork is spoilt
            log.exception("the inline digest could not feed fork %d; it will be read back", fork_id)
            self.book.spoil(fork_id)

    def discard(self, fork_id: int) -> None:
        self._post(self.book.discard, fork_id)

    async def commit(self, prefix: PrefixHandle, fork_id: int, end: int) -> tuple[bool, list[Any], Progress | None]:
        return await self._ask(self.book.commit, prefix.id, fork_id, end)

    async def catch_up(self, prefix: PrefixHandle, upload_id: str, offset: int, length: int, expected: str,
                       end: int) -> tuple[bool, list[Any], Progress | None]:
        return await self._ask(self.book.catch_up, prefix.id, upload_id, offset, length, expected, end)

    async def rebuild(self, upload_id: str, ranges: Sequence[Range], file_size: int
                      ) -> tuple[PrefixHandle, list[int], list[Any]]:
        prefix = PrefixHandle(self)
        bad, findings, progress = await self._ask(self.book.rebuild, prefix.id, upload_id, list(ranges), file_size)
        prefix.update(progress)
        return prefix, bad, findings

    async def finish(self, prefix: PrefixHandle) -> tuple[str, list[Any], dict[str, Any], int]:
        return await self._ask(self.book.finish, prefix.id)

    # -- states that travel (several replicas) ------------------------------------------

    async def snapshot(self, prefix: PrefixHandle) -> tuple[int, bytes] | None:
        """(offset, the state as bytes) for :meth:`restore` on another replica; None when
        the state cannot travel now (see :meth:`PrefixState.dumps`)."""
        return await self._ask(self._export, prefix.id)

    def _export(self, state_id: int) -> tuple[int, bytes] | None:
        state = self.book.states.get(state_id)
        blob = state.dumps() if state is not None else None
        return (state.offset, blob) if state is not None and blob is not None else None

    async def restore(self, blob: bytes) -> PrefixHandle | None:
        """A state made from a :meth:`snapshot` (None if it does not load)."""
        prefix = PrefixHandle(self)
        progress = await self._ask(self._import, prefix.id, blob)
        if progress is None:
            return None
        prefix.update(progress)
        return prefix

    def _import(self, state_id: int, blob: bytes) -> Progress | None:
        state = PrefixState.loads(blob)
        if state is None:
            return None
        self.book.states[state_id] = state
        return state.offset, state.scan_summary()
