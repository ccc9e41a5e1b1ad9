"""ImportWorker: takes jobs off the import queue and imports each into the document index.

Contract:
- ``start`` opens the index (moving a previous version's in first), queues documents
  left ``pending`` with no job (``backfill``), and starts ``workers`` loops. Each loop
  ``claim``s a job under a lease of ``import_lease_seconds`` (renewed every third of
  it while the import runs), so any number of importers, in this process or others,
  share one queue; a job whose importer died is taken up when its lease runs out.
  Idle loops look at the queue every ``import_poll_seconds``.
- An import: the document's ``index_status`` becomes ``importing``; its pages' text is
  read and split into nodes in a sandboxed child (:class:`~backend.importer.reader.ChildReader`:
  time and memory limits per call), off the event loop; the nodes go into the index.
  Content already indexed (same SHA-256) is not read again. Then ``index_status`` is
  ``indexed`` or ``no_text`` (no page has text, or the file needs a password: then
  ``index_error`` says so), and the job is ``done``; an error makes it ``failed`` (with
  ``index_error``; the job is kept for a retry). The status is written before the
  queue's event, so whoever hears the event reads the new status.
- A lease lost midway (this importer stalled past it and another took the job) makes
  this one's result a no-op: the queue refuses its ``done``/``fail``.
- A document deleted while it was imported: its nodes go again, unless another document
  holds the content.
- ``stop`` gives running jobs back (``release``: queued at once for the next importer)
  and closes the reader and the index. A SIGKILL leaves them to their leases.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.importer.extract import PasswordRequired
from backend.importer.reader import ChildReader
from backend.services.tasks import cancel_and_wait
from backend.settings import Settings
from backend.storage.base import BlobStore
from backend.storage.databases import open_text_index
from backend.storage.import_queue import EVENT_RETENTION_SECONDS, FAILED, IMPORTING, INDEXED, NO_TEXT, ImportJob, \
    ImportQueue
from backend.storage.document_repo import DocumentRecord, DocumentRepository

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode

    from backend.importer.index import DocumentIndex

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 300.0


def worker_name() -> str:
    """This importer's name in the queue: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ImportWorker:
    def __init__(self, settings: Settings, repo: DocumentRepository, queue: ImportQueue,
                 blobs: BlobStore, *, workers: int | None = None) -> None:
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.blobs = blobs
        self.workers = workers or settings.import_workers
        self.name = worker_name()
        self.lease = settings.import_lease_seconds
        self.pool = ThreadPoolExecutor(max_workers=self.workers + 2, thread_name_prefix="import")
        self.reader = ChildReader(workers=self.workers, timeout=settings.import_timeout_seconds,
                                  memory_mb=settings.import_memory_mb)
        self.index: DocumentIndex | None = None
        self.imported = 0
        self._held: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def _work(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the index (a migration may take a while) and start the loops."""
        self.index = await self._work(self._load_index)
        queued = await self._work(self.queue.backfill, self.settings.embed_all)
        log.info("importer %s: %d workers, %d documents queued", self.name, self.workers, queued)
        for n in range(self.workers):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"import worker {n}"))
        self._tasks.append(asyncio.create_task(self._prune(), name="import events pruning"))

    def _load_index(self) -> DocumentIndex:
        from backend.importer.embeddings import load_embed_model
        from backend.importer.index import DocumentIndex

        model = load_embed_model() if self.settings.embeddings else None
        return DocumentIndex.open(self.settings.data_dir, open_text_index(self.settings),
                                  chunk_tokens=self.settings.index_chunk_tokens, embed_model=model)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        # the reader first: an import thread waiting on its child ends at once
        await asyncio.get_running_loop().run_in_executor(None, self.reader.close)
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown, True)
        for document_id in sorted(self._held):
            self.queue.release(document_id, self.name)
        self._held.clear()
        if self.index is not None:
            self.index.close()

    # -- the loops ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                job: ImportJob | None = await self._work(self.queue.claim, self.name, self.lease)
            except Exception:  # the database busy past its timeout, full...: try again
                log.exception("claiming an import failed; will try again")
                job = None
            if job is None:
                await asyncio.sleep(self.settings.import_poll_seconds)
                continue
            self._held.add(job.document_id)
            try:
                await self._run(job)
            except Exception:  # a bug, not a bad file: keep the loop alive (the lease frees the job)
                log.exception("import of document %d crashed", job.document_id)
            finally:
                self._held.discard(job.document_id)

    async def _prune(self) -> None:
        while True:
            try:
                await self._work(self.queue.prune_events, EVENT_RETENTION_SECONDS)
            except Exception:
                log.exception("pruning old import events failed")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def _renew(self, job: ImportJob) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if not await self._work(self.queue.extend, job.document_id, self.name, self.lease):
                log.warning("import of document %d: the lease was lost to another importer", job.document_id)
                return

    async def _run(self, job: ImportJob) -> None:
        doc: DocumentRecord | None = await self._work(self.repo.get, job.owner, job.document_id)
        if doc is None:  # deleted while queued
            await self._work(self.queue.remove, job.document_id)
            return
        await self._work(self.repo.set_index_status, doc.id, IMPORTING, None)
        renew = asyncio.create_task(self._renew(job), name=f"lease of document {doc.id}")
        started = time.perf_counter()
        try:
            outcome, pages, why = await self._import(job, doc)
        except Exception as exc:
            reason = _reason(exc)
            log.warning("import of document %d failed: %s", doc.id, reason)
            await self._work(self.repo.set_index_status, doc.id, FAILED, reason)
            await self._work(self.queue.fail, doc.id, self.name, reason, time.perf_counter() - started)
            return
        finally:
            await cancel_and_wait([renew])
        took = time.perf_counter() - started
        await self._work(self.repo.set_index_status, doc.id, outcome, why)
        if not await self._work(self.queue.done, doc.id, self.name, outcome, why, took):
            log.info("document %d: imported, but its job is no longer ours (deleted, or taken up)", doc.id)
        if await self._work(self.repo.get, job.owner, job.document_id) is None:
            await self._forget(doc)  # deleted while importing: no orphan nodes
            return
        self.imported += 1
        log.info("document %d: %s (%d pages, %.2f s)%s", doc.id, outcome, pages, took, f": {why}" if why else "")

    async def _forget(self, doc: DocumentRecord) -> None:
        if self.index is not None and not await self._work(self.repo.sha_in_use, doc.sha256):
            await self._work(self.index.remove, doc.sha256)

    # -- one import: the index in a thread, the file through the blob store --------------

    async def _import(self, job: ImportJob, doc: DocumentRecord) -> tuple[str, int, str | None]:
        """(``indexed`` | ``no_text``, pages read, why no text if not for want of text on
        the pages). Content already indexed is not fetched from the blob store again."""
        index = self.index
        assert index is not None
        if await self._work(index.has, doc.sha256):
            if job.embed:
                await self._work(index.add_vectors, doc.sha256)
            return INDEXED, 0, None
        async with self.blobs.materialize(doc.sha256) as path:
            result: tuple[str, int, str | None] = await self._work(self._read_and_index, index, job, doc, path)
        return result

    def _read_and_index(self, index: DocumentIndex, job: ImportJob, doc: DocumentRecord,
                        path: Path) -> tuple[str, int, str | None]:
        try:
            pages = self._extract(path)
        except PasswordRequired as exc:
            return NO_TEXT, 0, str(exc)
        meta = {"document_id": doc.id, "title": doc.title, "filename": doc.filename}
        nodes = self._split(index, doc.sha256, pages, meta)
        if not nodes:
            return NO_TEXT, len(pages), None
        index.add(doc.sha256, nodes, embed=job.embed)
        return INDEXED, len(pages), None

    def _extract(self, path: Path) -> list[str]:
        return self.reader.extract(path, self.settings.max_pages)

    def _split(self, index: DocumentIndex, sha256: str, pages: list[str], meta: dict[str, Any]) -> list[BaseNode]:
        if not any(text.strip() for text in pages):
            return []  # nothing to split: no trip to the child
        return self.reader.split(sha256, pages, meta, index.chunk_tokens, index.chunk_overlap)


def _reason(exc: Exception) -> str:
    from backend.importer.extract import ExtractionError

    if isinstance(exc, (ExtractionError, OSError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
