"""SessionLedger: the sessions the server holds, and how their state is kept.

One registry (``live``: session id -> :class:`LiveSession`) shared by the services that
look sessions up, and the operations that persist a session or end it for good. It
depends on storage and the progress reporter only, so that every service that must fail
a session (the scan's judgment, the completion) can be given it at construction.

- ``create``: the first save of a new session (the whole record).
- ``save``: persist the session's latest state through the :class:`StateStore`;
  concurrent callers share one write (the state is versioned by ``LiveSession.touch``).
  After the first, a save is one :meth:`StateStore.update`: the session's fields, and
  only the chunks recorded (or forgotten) since the last save, so a store shared by
  several servers (Redis) records each chunk atomically and loses none.
- ``fail``: the file can never pass: its bytes go, its state stays (later requests hear
  why until it expires), its listeners are told.
- ``discard``: the session ends (cancelled, concatenated): bytes and state go.
- ``remove``: bytes and state go, never under a save in progress; stop tracking it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from backend.errors import UploadError
from backend.services.live import LiveSession
from backend.services.models import CANCELLED, FAILED
from backend.services.progress import ProgressReporter
from backend.storage.base import ChunkStore, StateStore

log = logging.getLogger(__name__)


class SessionLedger:
    def __init__(self, states: StateStore, chunks: ChunkStore, reporter: ProgressReporter, pool: Executor,
                 clock: Callable[[], float] = time.time) -> None:
        self.states = states
        self.chunks = chunks
        self.reporter = reporter
        self.pool = pool
        self.clock = clock
        self.live: dict[str, LiveSession] = {}
        self._saved_chunks: dict[str, dict[int, str]] = {}  # what the store holds, per session

    def track(self, live: LiveSession) -> None:
        """Hold a session loaded from the store (its saved chunks are the ones it has)."""
        self.live[live.id] = live
        self._saved_chunks[live.id] = dict(live.session.chunks)

    async def create(self, live: LiveSession) -> None:
        """The first save of a new session: the whole record."""
        chunks = dict(live.session.chunks)
        await self.states.save(live.id, live.session.to_record())
        self._saved_chunks[live.id] = chunks
        live.saved_version = live.version

    async def save(self, live: LiveSession) -> None:
        """Persist the session's latest state; concurrent callers share one write."""
        target = live.version
        async with live.save_lock:
            if live.saved_version >= target or live.session.status == CANCELLED:
                return
            version = live.version
            live.session.updated_at = self.clock()
            if live.prefix is not None:
                live.session.scan = live.prefix.scan_summary()
            record = live.session.to_record()
            chunks = dict(live.session.chunks)
            saved = self._saved_chunks.get(live.id)
            if saved is None:
                await self.states.save(live.id, record)
            else:
                del record["chunks"]
                changed: dict[int, str | None] = {i: d for i, d in chunks.items() if saved.get(i) != d}
                changed.update({i: None for i in saved if i not in chunks})
                await self.states.update(live.id, record, changed)
            self._saved_chunks[live.id] = chunks
            live.saved_version = version

    async def fail(self, live: LiveSession, exc: UploadError) -> None:
        """Fail the session for good (see the module doc)."""
        if live.session.status == FAILED:
            return
        live.session.status = FAILED
        live.session.error = {"error": exc.code, "message": exc.message, **exc.extra}
        live.touch()
        await self.chunks.delete(live.id)
        await self.save(live)
        self.reporter.status(live, FAILED, exc.message, error=exc.code, **exc.extra)
        log.warning("session %s: failed (%s: %s)", live.id, exc.code, exc.message, extra={"session_id": live.id})

    async def discard(self, live: LiveSession, status: str, message: str) -> None:
        """End a session for good: bytes and state gone, listeners told."""
        live.session.status = status
        await self.remove(live)
        self.reporter.status(live, status, message)
        self.reporter.forget(live.id)
        log.info("session %s: %s (%s)", live.id, status, message, extra={"session_id": live.id})

    async def remove(self, live: LiveSession) -> None:
        """Delete the session's bytes and saved state (never under a save in progress)
        and stop tracking it."""
        async with live.save_lock:
            await self.chunks.delete(live.id)
            await self.states.delete(live.id)
        self.live.pop(live.id, None)
        self._saved_chunks.pop(live.id, None)
