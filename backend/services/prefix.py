"""Keeps each session's prefix consumers up to date with the bytes on disk.

- ``catch_up``: after a chunk is recorded, feed every recorded chunk that now extends the
  contiguous prefix (chunks that arrived ahead of a gap) from the store, once each.
- ``rebuild``: the bytes decide. Re-read every recorded chunk, drop those whose bytes no
  longer hash to what the state says, and rebuild the whole-file hash and the scan over
  the verified prefix in the same single pass. Runs after a restart and on ``/resume``.

Both hold the session's ``prefix_lock`` and do their reading and hashing in a worker
thread. Findings go to ``on_findings``, which may fail the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from backend.errors import SecurityRejected
from backend.services.live import LiveSession
from backend.services.models import UPLOADING
from backend.services.prefix_state import PrefixState, ScannerFactory
from backend.storage.base import ChunkStore

log = logging.getLogger(__name__)

READ_BLOCK = 1 << 20

FindingsHandler = Callable[[LiveSession, list[Any]], Awaitable[None]]


class PrefixService:
    def __init__(
        self, chunks: ChunkStore, pool: Executor, scanner_factory: ScannerFactory, on_findings: FindingsHandler
    ) -> None:
        self.chunks = chunks
        self.pool = pool
        self.scanner_factory = scanner_factory
        self.on_findings = on_findings

    def new_state(self) -> PrefixState:
        return PrefixState(self.scanner_factory())

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # -- catch-up -------------------------------------------------------------------

    def schedule_catch_up(self, live: LiveSession) -> None:
        """Start a catch-up unless one is running; it loops until the prefix stops growing."""
        prefix = live.prefix
        if prefix is None or prefix.offset >= live.session.file_size:
            return
        if prefix.offset // live.session.chunk_size not in live.session.chunks:
            return
        if live.catchup_task is None or live.catchup_task.done():
            live.catchup_task = asyncio.create_task(self._catch_up(live), name=f"catch-up {live.id}")

    async def _catch_up(self, live: LiveSession) -> None:
        s = live.session
        while s.status == UPLOADING:
            async with live.prefix_lock:
                prefix = live.prefix
                if prefix is None or prefix.offset >= s.file_size:
                    return
                chunk_id = prefix.offset // s.chunk_size
                expected = s.chunks.get(chunk_id)
                if expected is None:
                    return
                ok, findings = await self._run(self._feed_chunk, live.id, prefix, s.chunk_size * chunk_id,
                                               s.chunk_length(chunk_id), expected)
                if not ok:
                    # The store no longer holds what was recorded: forget the chunk so
                    # the client sends it again; rebuild the prefix from scratch later.
                    log.warning("session %s: chunk %d failed its check on read-back", live.id, chunk_id,
                                extra={"session_id": live.id})
                    s.chunks.pop(chunk_id, None)
                    live.prefix = None
                    live.touch()
                    return
            if findings and not await self._judge(live, findings):
                return

    async def _judge(self, live: LiveSession, findings: list[Any]) -> bool:
        """Hand findings to the policy; False when they failed the session."""
        try:
            await self.on_findings(live, findings)
        except SecurityRejected:
            return False
        return True

    def _feed_chunk(self, upload_id: str, prefix: PrefixState, offset: int, length: int,
                    expected: str) -> tuple[bool, list[Any]]:
        """Feed one recorded chunk into a fork of ``prefix``; commit only if it hashes right."""
        fork = prefix.copy()
        digest = hashlib.sha256()
        findings: list[Any] = []
        got = 0
        for block in self.chunks.read(upload_id, offset, length, READ_BLOCK):
            digest.update(block)
            findings += fork.feed(block)
            got += len(block)
        if got != length or digest.hexdigest() != expected:
            return False, []
        prefix.adopt(fork)
        return True, findings

    async def wait_caught_up(self, live: LiveSession) -> None:
        """Return once no catch-up is running (the prefix is as long as it can get)."""
        while live.catchup_task is not None and not live.catchup_task.done():
            await asyncio.shield(live.catchup_task)
        self.schedule_catch_up(live)
        if live.catchup_task is not None and not live.catchup_task.done():
            await asyncio.shield(live.catchup_task)

    # -- rebuild ----------------------------------------------------------------------

    async def rebuild(self, live: LiveSession) -> list[int]:
        """Verify every recorded chunk against the store and rebuild the prefix.

        Returns the ids of chunks that were recorded but whose bytes did not check out
        (they are no longer recorded). Chunks recorded while this runs are trusted: they
        were hashed on their way in."""
        async with live.prefix_lock:
            recorded = dict(live.session.chunks)
            state = self.new_state()
            bad: list[int]
            bad, findings = await self._run(self._verify_all, live, recorded, state)
            for chunk_id in bad:
                if live.session.chunks.get(chunk_id) == recorded[chunk_id]:
                    del live.session.chunks[chunk_id]
            live.prefix = state
            if bad:
                live.touch()
        if findings:
            await self.on_findings(live, findings)  # a rejection propagates to the caller
        self.schedule_catch_up(live)
        return bad

    def _verify_all(self, live: LiveSession, recorded: dict[int, str],
                    state: PrefixState) -> tuple[list[int], list[Any]]:
        s = live.session
        bad: list[int] = []
        findings: list[Any] = []
        contiguous = True
        for chunk_id in range(s.total_chunks):
            expected = recorded.get(chunk_id)
            if expected is None:
                contiguous = False
                continue
            if contiguous:
                ok, found = self._feed_chunk(live.id, state, chunk_id * s.chunk_size, s.chunk_length(chunk_id),
                                             expected)
                findings += found
            else:
                ok = self._hash_range(live.id, chunk_id * s.chunk_size, s.chunk_length(chunk_id)) == expected
            if not ok:
                bad.append(chunk_id)
                contiguous = False
        return bad, findings

    def _hash_range(self, upload_id: str, offset: int, length: int) -> str | None:
        digest = hashlib.sha256()
        got = 0
        for block in self.chunks.read(upload_id, offset, length, READ_BLOCK):
            digest.update(block)
            got += len(block)
        return digest.hexdigest() if got == length else None
