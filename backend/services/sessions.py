"""SessionService: initiate, look up, resume, cancel, list, expire, and persist sessions.

Owns the chunk-size rule and the size limit; the cap on active uploads and each owner's
caps are :class:`~backend.services.admission.Admission`'s. Every session belongs to an owner;
another owner's session is simply not found. The client's file name is sanitized here
(:mod:`backend.services.filenames`) before anything stores it. State is persisted
through a :class:`~backend.storage.base.StateStore` after every change that matters,
coalesced so that parallel chunks share one write, by the
:class:`~backend.services.ledger.SessionLedger`, which also holds the registry of live
sessions and ends them for good.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from backend.errors import (
    DuplicateDocument, FileTooLarge, InvalidRequest, NotFound, SessionExpired, UploadError,
)
from backend.services.admission import Admission
from backend.services.filenames import sanitize_filename
from backend.services.ledger import SessionLedger
from backend.services.live import LiveSession
from backend.services.models import CANCELLED, COMPLETED, UPLOADING, Session, choose_chunk_size
from backend.services.prefix import PrefixService
from backend.services.slots import AdmissionCounters
from backend.settings import Settings

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class InitiateRequest:
    filename: str
    file_size: int
    chunk_size: int | None = None
    client_id: str | None = None
    title: str | None = None
    check_duplicates: bool = True
    auto_build_index: bool = False
    expected_hash: str | None = None
    protocol: str = "chunks"
    metadata: dict[str, str] | None = None
    length_deferred: bool = False  # file_size is then ignored: the length comes later
    concat: str | None = None  # "partial" or "final" (tus concatenation)


DuplicateFinder = Callable[[str, str], Awaitable[dict[str, Any] | None]]


class SessionService:
    def __init__(
        self,
        settings: Settings,
        ledger: SessionLedger,
        prefix: PrefixService,
        find_duplicate: DuplicateFinder | None = None,
        counters: AdmissionCounters | None = None,
    ) -> None:
        """``find_duplicate(owner, sha256)``: the stored document's view, or None.
        ``counters``: admission counters shared by several replicas (None: this process's
        live sessions decide)."""
        self.settings = settings
        self.ledger = ledger
        self.states = ledger.states
        self.chunks = ledger.chunks
        self.prefix = prefix
        self.reporter = ledger.reporter
        self.pool = ledger.pool
        self.clock = ledger.clock
        self.live = ledger.live
        self.admission = Admission(settings, self.live, self.clock, counters)
        self.find_duplicate = find_duplicate

    # -- start-up -----------------------------------------------------------------------

    async def load(self) -> int:
        """Bring back every saved session (after a restart or a crash)."""
        records = await self.states.load_all()
        for record in records:
            try:
                session = Session.from_record(record)
            except (TypeError, ValueError) as exc:
                log.error("session state %s is not a session (%s); ignored", record.get("session_id"), exc,
                          extra={"session_id": record.get("session_id")})
                continue
            # A session left in PROCESSING was interrupted inside /complete; the completion
            # service finishes or reopens it at start-up (see CompletionService.recover).
            self.ledger.track(LiveSession(session))
        log.info("loaded %d saved sessions", len(self.live))
        return len(self.live)

    # -- initiate -------------------------------------------------------------------------

    async def initiate(self, owner: str, req: InitiateRequest) -> LiveSession:
        filename = sanitize_filename(req.filename, fallback="")
        if not filename:
            raise InvalidRequest("filename has nothing left once paths and control characters are removed")
        if req.length_deferred:
            req.file_size = self.settings.max_file_size  # what it may reach, until it is declared
        if req.file_size <= 0:
            raise InvalidRequest("the file is empty: there is nothing to upload")
        if req.file_size > self.settings.max_file_size:
            raise FileTooLarge(
                f"file is {req.file_size} bytes; the limit is {self.settings.max_file_size} bytes",
                max_file_size=self.settings.max_file_size,
            )
        if req.client_id is not None and not CLIENT_ID.match(req.client_id):
            raise InvalidRequest("client_id must be 1-128 characters of A-Z a-z 0-9 _ . : -")
        expected = req.expected_hash.lower() if req.expected_hash else None
        if expected is not None and not _SHA.match(expected):
            raise InvalidRequest("expected_hash must be a hex SHA-256")
        if expected is not None and req.check_duplicates and self.find_duplicate is not None:
            document = await self.find_duplicate(owner, expected)
            if document is not None:
                raise DuplicateDocument("this file is already stored", document=document)
        if self.admission.counters is None:
            self.admission.ensure_slot(None)
            self.admission.ensure_owner_quota(owner, req.file_size)  # no await from here to self.live[...]: no race
        now = self.clock()
        chunk_size = choose_chunk_size(req.file_size, req.chunk_size or self.settings.default_chunk_size,
                                       self.settings.min_chunk_size)
        session = Session(
            session_id=str(uuid.uuid4()),
            owner=owner,
            filename=filename,
            title=(req.title or "").strip() or PurePath(filename).stem or filename,
            file_size=req.file_size,
            chunk_size=chunk_size,
            created_at=now,
            expires_at=now + self.settings.session_timeout_seconds,
            client_ids=[req.client_id or f"client_{uuid.uuid4().hex[:12]}"],
            check_duplicates=req.check_duplicates,
            auto_build_index=req.auto_build_index,
            expected_hash=expected,
            updated_at=now,
            original_filename=req.filename if req.filename != filename else None,
            protocol=req.protocol,
            metadata=dict(req.metadata or {}),
            length_deferred=req.length_deferred,
            concat=req.concat,
        )
        live = LiveSession(session, prefix=self.prefix.new_state())
        if self.admission.counters is not None:
            await self.admission.admit_new(live)  # several replicas: the shared counters decide
        self.live[session.session_id] = live  # before any file exists: the orphan sweep skips it
        try:
            await self.ledger.create(live)
            await self.chunks.create(session.session_id, session.file_size)
        except BaseException:
            self.live.pop(session.session_id, None)
            await self.states.delete(session.session_id)
            await self.chunks.delete(session.session_id)
            if self.admission.counters is not None:
                await self.admission.counters.forget(session.session_id, owner)
            raise
        log.info("session %s: initiated %r, %d bytes in %d chunks", session.session_id, filename,
                 session.file_size, session.total_chunks, extra={"session_id": session.session_id})
        return live

    # -- lookup ---------------------------------------------------------------------------

    def get(self, owner: str, session_id: str, *, allow_expired: bool = False) -> LiveSession:
        """The owner's session. NotFound for a bad id, a stranger's or a cancelled one."""
        live = self.live.get(session_id) if _UUID.match(session_id) else None
        if live is None or live.session.owner != owner or live.session.status == CANCELLED:
            raise NotFound(f"no upload session {session_id}")
        if not allow_expired and live.session.expired(self.clock()) and live.session.status != COMPLETED:
            raise SessionExpired(f"upload session {session_id} expired")
        return live

    async def fetch(self, owner: str, session_id: str, *, allow_expired: bool = False) -> LiveSession:
        """:meth:`get`, after bringing the session up to date from a state store shared
        with other replicas (any of them may have changed it, or be the only one that
        held it). Without one, exactly :meth:`get`."""
        if self.ledger.shared and _UUID.match(session_id):
            await self.ledger.refresh(session_id)
        return self.get(owner, session_id, allow_expired=allow_expired)

    # -- persistence (the ledger's) --------------------------------------------------

    async def save(self, live: LiveSession) -> None:
        await self.ledger.save(live)
        await self.admission.report(live)  # shared counters only

    async def fail(self, live: LiveSession, exc: UploadError) -> None:
        await self.ledger.fail(live, exc)  # the ledger stops counting it (shared counters)

    async def discard(self, live: LiveSession, status: str, message: str) -> None:
        await self.ledger.discard(live, status, message)

    # -- resume, cancel, list --------------------------------------------------------------

    async def resume(self, owner: str, session_id: str, client_id: str | None) -> LiveSession:
        """Verify the partial file against the state (the bytes decide) and reattach."""
        live = await self.fetch(owner, session_id)
        if client_id is not None:
            if not CLIENT_ID.match(client_id):
                raise InvalidRequest("client_id must be 1-128 characters of A-Z a-z 0-9 _ . : -")
            if client_id not in live.session.client_ids:
                live.session.client_ids.append(client_id)
                live.touch()
        if live.session.status == UPLOADING:
            await self.admission.admit(live)
            if not await self.chunks.exists(live.id):
                await self.chunks.create(live.id, live.session.file_size)
            bad = await self.prefix.rebuild(live)
            if bad:
                log.warning("session %s: chunks %s failed verification and are missing again", live.id, bad,
                            extra={"session_id": live.id})
        live.touch()
        await self.save(live)
        return live

    async def cancel(self, owner: str, session_id: str, reason: str | None) -> None:
        live = self.get(owner, session_id, allow_expired=True)
        await self.discard(live, CANCELLED, reason or "cancelled by the client")

    def resumable(self, owner: str) -> list[LiveSession]:
        now = self.clock()
        return sorted(
            (lv for lv in self.live.values()
             if lv.session.owner == owner and lv.session.status == UPLOADING and not lv.session.expired(now)),
            key=lambda lv: lv.session.created_at,
        )

    # -- expiry ---------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Remove expired sessions (partial file and state) and orphaned partial files."""
        now = self.clock()
        expired = [lv for lv in list(self.live.values()) if lv.session.expired(now) and lv.in_flight == 0]
        for live in expired:
            await self.ledger.remove(live)
            self.reporter.forget(live.id)
            log.info("session %s: expired and swept", live.id, extra={"session_id": live.id})
        if self.ledger.shared:
            return len(expired) + await self._sweep_shared(now)
        orphans = [u for u in await self.chunks.list_uploads() if u not in self.live]
        for upload_id in orphans:
            await self.chunks.delete(upload_id)
            log.info("partial file %s had no session; removed", upload_id, extra={"session_id": upload_id})
        return len(expired) + len(orphans)

    async def _sweep_shared(self, now: float) -> int:
        """With other replicas on the store: expired sessions no replica holds, and bytes
        whose session the store does not know (checked one by one just before removal: a
        session is saved before its bytes exist, so a new one is never taken for an orphan)."""
        swept = 0
        idle = self.settings.active_idle_seconds
        for live in [lv for lv in list(self.live.values()) if time.monotonic() - lv.last_activity > idle]:
            self.ledger.evict(live)  # held again from the store by its next request here
        for record in await self.states.load_all():
            session_id = str(record.get("session_id"))
            expires = record.get("expires_at")
            if session_id in self.live or not isinstance(expires, (int, float)) or expires > now:
                continue
            await self.chunks.delete(session_id)
            await self.states.delete(session_id)
            log.info("session %s: expired and swept", session_id, extra={"session_id": session_id})
            swept += 1
        for upload_id in await self.chunks.list_uploads():
            if upload_id in self.live or await self.states.load(upload_id) is not None:
                continue
            await self.chunks.delete(upload_id)
            log.info("partial file %s had no session; removed", upload_id, extra={"session_id": upload_id})
            swept += 1
        return swept
