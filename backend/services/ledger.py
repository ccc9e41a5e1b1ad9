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

Shared (``shared=True``: several replicas on one state store, Redis): ``live`` is a
cache. :meth:`SessionLedger.refresh` brings a session up to date from the store before a
request acts on it (any replica may have recorded chunks, moved the tail, completed or
cancelled it since), and loads a session this replica never held. A save then sends only
the fields that changed since this replica last saved or loaded them, so it never writes
back another replica's older view of a field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from backend.errors import StorageUnavailable, UploadError
from backend.services.live import LiveSession
from backend.services.models import _FIELDS, CANCELLED, FAILED, Session
from backend.services.progress import ProgressReporter
from backend.services.slots import AdmissionCounters
from backend.storage.base import ChunkStore, StateStore

log = logging.getLogger(__name__)


class SessionLedger:
    def __init__(self, states: StateStore, chunks: ChunkStore, reporter: ProgressReporter, pool: Executor,
                 clock: Callable[[], float] = time.time, shared: bool = False,
                 counters: AdmissionCounters | None = None) -> None:
        """``shared``: the store is shared with other replicas (see the module doc).
        ``counters``: the admission counters they share; a session that ends here (failed,
        discarded, removed) stops counting there at once."""
        self.shared = shared
        self.counters = counters
        self.states = states
        self.chunks = chunks
        self.reporter = reporter
        self.pool = pool
        self.clock = clock
        self.live: dict[str, LiveSession] = {}
        self._saved_chunks: dict[str, dict[int, str]] = {}  # what the store holds, per session
        self._saved_fields: dict[str, dict[str, Any]] = {}  # shared: the fields as last saved or loaded

    def track(self, live: LiveSession) -> None:
        """Hold a session loaded from the store (its saved chunks are the ones it has)."""
        self.live[live.id] = live
        self._saved_chunks[live.id] = dict(live.session.chunks)
        if self.shared:
            self._saved_fields[live.id] = _fields_of(live.session)

    async def refresh(self, session_id: str) -> LiveSession | None:
        """Shared: the session as the store holds it now (None once it is gone there),
        this replica's changes not yet saved written first. Not shared: the one held."""
        live = self.live.get(session_id)
        if not self.shared:
            return live
        for _ in range(3):
            if live is not None:
                await self.save(live)  # what this replica changed goes first (usually nothing)
            version = live.version if live is not None else None
            record = await self.states.load(session_id)
            live = self.live.get(session_id)
            if record is None:
                if live is not None and live.id in self._saved_chunks:  # saved once, gone: ended elsewhere
                    self.live.pop(session_id, None)
                    self._forget(session_id)
                    return None
                return live  # not saved yet (being created here), or never was
            try:
                session = Session.from_record(record)
            except (TypeError, ValueError):
                return live
            if live is None:
                live = LiveSession(session)
                self.track(live)
                return live
            if live.version != version:
                continue  # changed here while the store was read: save that first, read again
            for name in _FIELDS:
                setattr(live.session, name, getattr(session, name))
            self._saved_chunks[live.id] = dict(session.chunks)
            self._saved_fields[live.id] = _fields_of(session)
            return live
        return live

    def evict(self, live: LiveSession) -> bool:
        """Shared: stop holding a session idle here (the store has it all; its digest
        state is saved there too), so a replica's memory follows its recent requests,
        not every session it ever served. False if it has work or changes in hand."""
        busy = live.in_flight or (live.catchup_task is not None and not live.catchup_task.done())
        locked = live.save_lock.locked() or live.complete_lock.locked() or live.prefix_lock.locked()
        if not self.shared or busy or locked or live.saved_version < live.version:
            return False
        self.live.pop(live.id, None)
        self._forget(live.id)
        return True

    def _forget(self, session_id: str) -> None:
        self._saved_chunks.pop(session_id, None)
        self._saved_fields.pop(session_id, None)

    async def create(self, live: LiveSession) -> None:
        """The first save of a new session: the whole record."""
        chunks = dict(live.session.chunks)
        await self.states.save(live.id, live.session.to_record())
        self._saved_chunks[live.id] = chunks
        if self.shared:
            self._saved_fields[live.id] = _fields_of(live.session)
        live.saved_version = live.version

    async def save(self, live: LiveSession) -> None:
        """Persist the session's latest state; concurrent callers share one write."""
        target = live.version
        async with live.save_lock:
            if live.saved_version >= target or live.session.status == CANCELLED:
                return
            version = live.version
            live.session.updated_at = self.clock()
            if live.prefix is not None and (not self.shared or live.prefix.offset >= _scanned(live.session)):
                live.session.scan = live.prefix.scan_summary()  # shared: never an older replica's view
            record = live.session.to_record()
            chunks = dict(live.session.chunks)
            saved = self._saved_chunks.get(live.id)
            if saved is None:
                await self.states.save(live.id, record)
                del record["chunks"]
            else:
                del record["chunks"]
                changed: dict[int, str | None] = {i: d for i, d in chunks.items() if saved.get(i) != d}
                changed.update({i: None for i in saved if i not in chunks})
                fields = record
                if self.shared:
                    before = self._saved_fields.get(live.id, {})
                    fields = {k: v for k, v in record.items() if k not in before or before[k] != v}
                await self.states.update(live.id, fields, changed)
            self._saved_chunks[live.id] = chunks
            if self.shared:
                self._saved_fields[live.id] = record
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
        await self._uncount(live)
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
        self._forget(live.id)
        await self._uncount(live)

    async def _uncount(self, live: LiveSession) -> None:
        if self.counters is None:
            return
        try:
            await self.counters.forget(live.id, live.session.owner)
        except StorageUnavailable:  # the session did end; its place lapses when idle or expired
            log.warning("session %s: ended, but the admission counters could not be told", live.id,
                        extra={"session_id": live.id})


def _fields_of(session: Session) -> dict[str, Any]:
    record = session.to_record()
    del record["chunks"]
    return record


def _scanned(session: Session) -> int:
    try:
        return int((session.scan or {}).get("bytes_scanned") or 0)
    except (TypeError, ValueError):
        return 0
