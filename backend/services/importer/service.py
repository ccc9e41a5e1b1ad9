"""ImportService: stored documents into the document index, in the background.

Contract:
- ``submit`` (called by the completion, on the event loop) marks the document
  ``pending`` and queues it durably (SQLite); it returns at once.
- ``import_workers`` coroutines claim jobs and run each import on a pool of as many
  threads (never on the event loop): extract the pages' text and split it into nodes
  in a child process (:class:`ChildReader`: the file's CPU work never holds the
  server's GIL; a time and a memory limit per call), add the nodes to the index.
  Content already indexed (same SHA-256) is not extracted again.
- ``document.index_status``: ``pending`` -> ``importing`` -> ``indexed``, ``no_text``
  (no page has text, or the file needs a password to read: then ``index_error`` says
  so) or ``failed`` (with ``index_error``; the job is kept for ``reimport``). The
  session's room hears ``upload_status`` ``importing`` then ``completed`` or ``failed``.
- After a restart, interrupted and never-queued imports run again (``recover``).
- ``search`` is owner-scoped: only contents of the owner's indexed documents rank.
- ``forget`` (a document deleted) drops its job, and the content's nodes once no
  document holds that content any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import NotFound, ServerBusy
from backend.services.importer.extract import PasswordRequired
from backend.services.importer.reader import ChildReader
from backend.services.live import LiveSession
from backend.services.models import iso
from backend.services.progress import ProgressReporter
from backend.services.tasks import cancel_and_wait
from backend.settings import Settings
from backend.storage.base import BlobStore
from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository
from backend.storage.sqlite_imports import FAILED, ImportJob, SqliteImportQueue

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode

    from backend.services.importer.index import DocumentIndex

log = logging.getLogger(__name__)

PENDING, IMPORTING, INDEXED, NO_TEXT = "pending", "importing", "indexed", "no_text"


@dataclass(frozen=True)
class SearchHit:
    document_id: int
    title: str
    filename: str
    page: int
    score: float
    text: str


class ImportService:
    def __init__(self, settings: Settings, repo: SqliteDocumentRepository, queue: SqliteImportQueue,
                 blobs: BlobStore, reporter: ProgressReporter, io_pool: Executor,
                 live_lookup: Callable[[str], LiveSession | None],
                 on_finished: Callable[[str, float], None] | None = None) -> None:
        """``live_lookup``: the live session of an id (its room hears the import);
        ``on_finished(outcome, seconds)``: told after every import (the metrics)."""
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.blobs = blobs
        self.reporter = reporter
        self.io_pool = io_pool
        self.live_lookup = live_lookup
        self.workers = settings.import_workers
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="import")
        self.reader = ChildReader(workers=self.workers, timeout=settings.import_timeout_seconds,
                                  memory_mb=settings.import_memory_mb)
        self.index: DocumentIndex | None = None
        self.imported = 0
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._busy = 0
        self._broken: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.on_finished = on_finished

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    async def _work(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    @staticmethod
    def _now() -> str:
        return iso(time.time())

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load the index and start the workers, in the background: the server serves
        meanwhile (a search waits for the index)."""
        self._tasks.append(asyncio.create_task(self._main(), name="import main"))

    async def _main(self) -> None:
        try:
            self.index = await self._work(self._load_index)
        except Exception as exc:  # a broken index must not take the uploads down with it
            log.exception("the document index could not be loaded; search and import are off")
            self._broken = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self._ready.set()
        queued = await self._io(self.queue.recover, self.settings.embed_all, self._now())
        if queued:
            log.info("import queue: %d documents to import", queued)
        for n in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"import worker {n}"))

    def _load_index(self) -> DocumentIndex:
        from backend.services.importer.embeddings import load_embed_model
        from backend.services.importer.index import DocumentIndex

        model = load_embed_model() if self.settings.embeddings else None
        return DocumentIndex.open(self.settings.data_dir, chunk_tokens=self.settings.index_chunk_tokens,
                                  embed_model=model)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        # the reader first: an import thread waiting on its child ends at once (the job
        # stays queued as running, and runs again at the next start)
        await asyncio.get_running_loop().run_in_executor(None, self.reader.close)
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown, True)
        if self.index is not None:
            self.index.close()
        self.queue.close()

    @property
    def index_state(self) -> str:
        """``loading``, ``loaded`` or ``broken: <why>`` (for ``/ready``)."""
        if self.index is not None:
            return "loaded"
        return f"broken: {self._broken}" if self._broken is not None else "loading"

    async def ready(self) -> DocumentIndex:
        """The loaded index (waits while it loads). Raises ServerBusy if it could not load."""
        await self._ready.wait()
        if self.index is None:
            raise ServerBusy(f"the document index is unavailable ({self._broken})", retry_after=60)
        return self.index

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no import is queued or running (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        await self.ready()
        while self._busy or await self._io(self.queue.pending):
            if time.monotonic() > deadline:
                raise TimeoutError("imports still pending")
            await asyncio.sleep(0.02)

    # -- queue ----------------------------------------------------------------------------

    async def submit(self, doc: DocumentRecord, *, embed: bool = False) -> None:
        """Queue ``doc`` for import (durably); the workers pick it up."""
        await self._io(self.repo.set_index_status, doc.id, PENDING, None)
        doc.index_status = PENDING
        await self._io(self.queue.enqueue, doc.id, doc.owner, doc.sha256, doc.session_id,
                       embed or self.settings.embed_all, self._now())
        self._wake.set()

    async def reimport(self, owner: str, doc_id: int) -> DocumentRecord:
        """Queue a document's import again (a failed one, or any: content already indexed
        finishes at once). Raises NotFound."""
        doc = await self._io(self.repo.get, owner, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id}")
        job = await self._io(self.queue.get, doc_id)
        if job is not None and job.state == FAILED and await self._io(self.queue.retry, owner, doc_id, self._now()):
            await self._io(self.repo.set_index_status, doc_id, PENDING, None)
            doc.index_status, doc.index_error = PENDING, None
            self._wake.set()
        elif job is None:
            await self.submit(doc, embed=False)
        assert isinstance(doc, DocumentRecord)
        return doc

    async def failures(self, owner: str) -> list[dict[str, Any]]:
        jobs: list[ImportJob] = await self._io(self.queue.failures, owner)
        out: list[dict[str, Any]] = []
        for job in jobs:
            doc = await self._io(self.repo.get, owner, job.document_id)
            if doc is not None:
                out.append({"document_id": job.document_id, "title": doc.title, "filename": doc.filename,
                            "error": job.error, "attempts": job.attempts, "failed_at": job.updated_at})
        return out

    async def forget(self, doc: DocumentRecord) -> None:
        """A deleted document: its job goes; the content's nodes go with its last holder."""
        await self._io(self.queue.remove, doc.id)
        await self._ready.wait()
        if self.index is not None and not await self._io(self.repo.sha_in_use, doc.sha256):
            await self._work(self.index.remove, doc.sha256)

    # -- workers --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            self._wake.clear()
            job: ImportJob | None = await self._io(self.queue.claim, self._now())
            if job is None:
                await self._wake.wait()
                continue
            self._busy += 1
            try:
                await self._run(job)
            except Exception:  # a bug, not a bad file: keep the worker alive
                log.exception("import of document %d crashed", job.document_id)
            finally:
                self._busy -= 1

    async def _run(self, job: ImportJob) -> None:
        doc: DocumentRecord | None = await self._io(self.repo.get, job.owner, job.document_id)
        if doc is None:  # deleted while queued
            await self._io(self.queue.done, job.document_id)
            return
        await self._io(self.repo.set_index_status, doc.id, IMPORTING, None)
        self._status(doc, "importing", "Importing into the document index...")
        started = time.perf_counter()
        try:
            outcome, pages, why = await self._work(self._import, job, doc)
        except Exception as exc:
            reason = _reason(exc)
            self._finished(FAILED, started)
            log.warning("import of document %d failed: %s", doc.id, reason)
            await self._io(self.queue.fail, doc.id, reason, self._now())
            await self._io(self.repo.set_index_status, doc.id, FAILED, reason)
            self._status(doc, "failed", f"Import failed: {reason}", document_id=doc.id, index_status=FAILED)
            return
        await self._io(self.repo.set_index_status, doc.id, outcome, why)
        await self._io(self.queue.done, doc.id)
        if await self._io(self.repo.get, job.owner, job.document_id) is None:
            await self.forget(doc)  # deleted while importing: no orphan nodes
            return
        self.imported += 1
        took = self._finished(outcome, started)
        log.info("document %d: %s (%d pages, %.2f s)%s", doc.id, outcome, pages, took, f": {why}" if why else "")
        message = ("Imported and searchable" if outcome == INDEXED
                   else f"Imported: {why}" if why else "Imported: the PDF has no extractable text")
        self._status(doc, "completed", message, document_id=doc.id, index_status=outcome)

    def _finished(self, outcome: str, started: float) -> float:
        took = time.perf_counter() - started
        if self.on_finished is not None:
            self.on_finished(outcome, took)
        return took

    def _import(self, job: ImportJob, doc: DocumentRecord) -> tuple[str, int, str | None]:
        """In an import thread: (``indexed`` | ``no_text``, pages read, why no text if
        not for want of text on the pages)."""
        index = self.index
        assert index is not None
        if index.has(doc.sha256):
            if job.embed:
                index.add_vectors(doc.sha256)
            return INDEXED, 0, None
        try:
            pages = self._extract(self.blobs.path(doc.sha256))
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

    def _status(self, doc: DocumentRecord, status: str, message: str, **extra: Any) -> None:
        if doc.session_id is None:
            return
        live = self.live_lookup(doc.session_id)
        if live is not None:
            self.reporter.status(live, status, message, **extra)
        else:
            self.reporter.status_for(doc.session_id, doc.owner, (), status, message, **extra)

    # -- search ---------------------------------------------------------------------------

    async def search(self, owner: str, query: str, top_k: int) -> list[SearchHit]:
        """The owner's best ``top_k`` passages for ``query``."""
        index = await self.ready()
        hits: list[SearchHit] = await self._io(self._search, index, owner, query, top_k)
        return hits

    def _search(self, index: DocumentIndex, owner: str, query: str, top_k: int) -> list[SearchHit]:
        shas = self.repo.indexed_shas(owner)
        hits = index.search(query, shas, top_k)
        docs = self.repo.indexed_by_sha(owner, sorted({h.sha256 for h in hits}))
        out = [SearchHit(d.id, d.title, d.filename, h.page, h.score, h.text)
               for h in hits for d in docs.get(h.sha256, [])]
        return out[:top_k]


def _reason(exc: Exception) -> str:
    from backend.services.importer.extract import ExtractionError

    if isinstance(exc, (ExtractionError, OSError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
