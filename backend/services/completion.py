"""CompletionService: ``/complete``, from the last chunk to a stored document.

Steps, each safe to repeat after a crash: every chunk in (UploadIncomplete) -> the
prefix consumers caught up to the end of the file (rebuilt from the bytes if the server
restarted) -> whole-file hash against ``expected_hash`` (IntegrityFailed) -> the PDF
inspected (InvalidPdf / SecurityRejected) -> deduplicated or stored content-addressed ->
recorded in the repository (one document per session, whatever the retries) -> the
session marked completed. Calling it again returns the same document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from backend.errors import (
    IntegrityFailed, NotFound, SecurityRejected, SessionNotActive, UploadError, UploadIncomplete,
)
from backend.services.documents import DocumentService
from backend.services.importer.service import ImportService
from backend.services.live import LiveSession
from backend.services.models import COMPLETED, FAILED, PROCESSING, UPLOADING
from backend.services.prefix import PrefixService
from backend.services.progress import ProgressReporter
from backend.services.sessions import SessionService
from backend.services.validation import ValidationService
from backend.storage.base import BlobStore, ChunkStore
from backend.storage.locks import UploadLocker, holding
from backend.storage.sqlite_docs import DocumentRecord

log = logging.getLogger(__name__)

LEASE_TTL = 5.0  # renewed every 0.2 s while the completion runs
LOCK_WAIT = 10.0


@dataclass(frozen=True)
class Completed:
    document: DocumentRecord
    duplicate: bool


class CompletionService:
    def __init__(
        self, sessions: SessionService, prefix: PrefixService, validation: ValidationService,
        chunks: ChunkStore, blobs: BlobStore, documents: DocumentService, reporter: ProgressReporter,
        pool: Executor, importer: ImportService | None = None, locks: UploadLocker | None = None,
    ) -> None:
        """``locks``: with several replicas, the shared upload locks, so that one
        ``/complete`` at a time runs on any replica, and never beside an append."""
        self.locks = locks
        self.sessions = sessions
        self.prefix = prefix
        self.validation = validation
        self.chunks = chunks
        self.blobs = blobs
        self.documents = documents
        self.reporter = reporter
        self.pool = pool
        self.completed = 0
        self.importer = importer  # new documents are queued for import

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def complete(self, owner: str, session_id: str) -> Completed:
        live = await self.sessions.fetch(owner, session_id)
        async with live.complete_lock, holding(self.locks, live.id, ttl=LEASE_TTL, wait=LOCK_WAIT,
                                               busy="this upload is being completed or written to; retry"):
            if self.locks is not None and await self.sessions.ledger.refresh(live.id) is None:
                raise NotFound(f"no upload session {session_id}")  # ended on another replica meanwhile
            s = live.session
            if self.locks is not None and s.status == PROCESSING:
                # This replica holds the upload's lock, so no completion runs elsewhere: one
                # left ``processing`` was interrupted (its replica died). Redo it, as a
                # restart's recovery does (the bytes, or the stored document, decide).
                log.warning("session %s: its completion was interrupted on another replica; completing it here",
                            live.id, extra={"session_id": live.id})
                s.status = UPLOADING
            if s.status == COMPLETED and s.document_id is not None:
                return await self._existing(live)
            if s.status == FAILED:
                error = s.error or {}
                if error.get("error") == SecurityRejected.code:
                    raise SecurityRejected(error.get("message", "rejected"), findings=error.get("findings", []))
                raise SessionNotActive(f"session {session_id} failed: {error.get('message', '')}")
            if s.status != UPLOADING:
                raise SessionNotActive(f"session {session_id} is {s.status}")
            missing = s.missing_chunks()
            if missing:
                raise UploadIncomplete(f"{len(missing)} of {s.total_chunks} chunks are missing",
                                       missing_chunks=missing)
            if any(lock.locked() for lock in live.chunk_locks.values()):
                raise SessionNotActive("chunks of this session are still being written; retry when they finish")
            try:
                return await self._finish(live)
            except UploadError as exc:
                if not exc.transient and live.session.status == PROCESSING:
                    await self._fail(live, exc)
                raise
            finally:
                if live.session.status == PROCESSING:  # interrupted, not refused (a full disk):
                    live.session.status = UPLOADING  # /complete may be called again, as after a restart

    async def recover(self) -> int:
        """After a restart: finish completions a crash interrupted.

        A session saved as PROCESSING either still has its partial file (validation was
        under way: it goes back to UPLOADING and /complete redoes the work) or its file
        was already moved into the blob store (only the record is missing: write it now,
        so a client that resumes is not asked to send the whole file again)."""
        recovered = 0
        for live in [lv for lv in self.sessions.live.values() if lv.session.status == PROCESSING]:
            live.session.status = UPLOADING
            if await self.chunks.exists(live.id):
                continue
            try:
                await self.complete(live.session.owner, live.id)
                recovered += 1
            except UploadError as exc:
                log.warning("session %s: could not finish its interrupted completion (%s)", live.id, exc.message,
                            extra={"session_id": live.id})
        return recovered

    async def _existing(self, live: LiveSession) -> Completed:
        s = live.session
        assert s.document_id is not None
        doc = await self.documents.get(s.owner, s.document_id)
        return Completed(doc, s.duplicate)

    async def _finish(self, live: LiveSession) -> Completed:
        s = live.session
        moved = s.sha256 is not None and not await self.chunks.exists(live.id) and await self.blobs.has(s.sha256)
        if moved:  # a crash after the file was stored: only the record is left to write
            assert s.sha256 is not None
            sha256 = s.sha256
            findings, scan = await self._stream_scan(live)
        else:
            sha256, findings, scan = await self._final_prefix(live)
        s.status = PROCESSING
        s.sha256 = sha256
        live.touch()
        await self.sessions.save(live)
        self.reporter.status(live, "processing", "Validating uploaded file...")
        if s.expected_hash is not None and s.expected_hash != sha256:
            raise IntegrityFailed(f"the file's sha256 is {sha256}, not the expected {s.expected_hash}",
                                  sha256=sha256)
        existing = await self._run(self.documents.repo.find_by_sha, s.owner, sha256) if s.check_duplicates else None
        if existing is not None and existing.session_id != s.session_id:
            if not moved:
                await self.chunks.delete(live.id)
            return await self._done(live, existing, duplicate=True)
        # pikepdf reads a local file: the store provides one (an object store downloads it)
        file = self.blobs.materialize(sha256) if moved else self.chunks.materialize(live.id)
        async with file as path:
            info = await self.validation.inspect(path, findings, scan)
        if not moved:
            await self.blobs.adopt(self.chunks, live.id, sha256)
        doc = self.documents.new_record(
            owner=s.owner, title=s.title, filename=s.filename, file_size=s.file_size, sha256=sha256,
            now=self.sessions.clock(), session_id=s.session_id, page_count=info.get("page_count"),
            pdf_version=info.get("pdf_version"), security=info.get("security", {}),
            original_filename=s.original_filename,
        )
        doc = await self._run(self.documents.repo.insert, doc)
        return await self._done(live, doc, duplicate=False)

    async def _stream_scan(self, live: LiveSession) -> tuple[list[Any], dict[str, Any]]:
        """The streaming scan's findings (trailing data is judged now, at the end) and
        summary, for a file already stored: the saved summary if the prefix is gone."""
        final = await self.prefix.finish(live)
        if final is None:
            return [], live.session.scan
        _, findings, summary = final
        return findings, summary

    async def _final_prefix(self, live: LiveSession) -> tuple[str, list[Any], dict[str, Any]]:
        """The whole-file hash, the streaming findings and the scan's summary, once the
        prefix consumers have seen every byte."""
        s = live.session
        await self.prefix.adopt(live)  # several replicas: the furthest saved state
        for _ in range(2):  # a prefix lost with its worker is rebuilt once
            if live.prefix is None:
                bad = await self.prefix.rebuild(live)
                if bad:
                    await self.sessions.save(live)
                    raise UploadIncomplete(f"chunks {bad} no longer hold what was received; send them again",
                                           missing_chunks=s.missing_chunks())
            await self.prefix.wait_caught_up(live)
            prefix = live.prefix
            if prefix is not None and prefix.offset != s.file_size:
                break
            final = await self.prefix.finish(live)
            if final is not None:
                return final
        raise UploadIncomplete("the file is still being verified; retry", missing_chunks=s.missing_chunks())

    async def _done(self, live: LiveSession, doc: DocumentRecord, *, duplicate: bool) -> Completed:
        s = live.session
        s.status = COMPLETED
        s.document_id = doc.id
        s.duplicate = duplicate
        live.touch()
        await self.sessions.save(live)  # with the scan's summary, the last use of the prefix
        live.prefix = None  # the digest drops its state (a digest child holding none leaves when idle)
        self.completed += 1
        if not duplicate and self.importer is not None and doc.index_status != "indexed":
            # the import's worker reports "importing" then "completed" (or "failed")
            await self.importer.submit(doc, embed=s.auto_build_index)
        else:
            self.reporter.status(live, "completed", "Upload complete", document_id=doc.id, duplicate=duplicate)
        log.info("session %s: completed as document %d%s", live.id, doc.id, " (duplicate)" if duplicate else "",
                 extra={"session_id": live.id})
        return Completed(doc, duplicate)

    async def _fail(self, live: LiveSession, exc: UploadError) -> None:
        """A file that can never pass: fail the session and drop its bytes."""
        await self.sessions.fail(live, exc)
