"""ImportService: the upload server's side of imports (the importer is its own process).

Contract:
- ``submit`` (called by the completion, on the event loop) marks the document
  ``pending`` and queues it durably (:class:`~backend.storage.import_queue.ImportQueue`);
  it returns at once. An importer process (``python -m backend.importer``, one or many)
  takes it from there: ``document.index_status`` goes ``pending`` -> ``importing`` ->
  ``indexed``, ``no_text`` or ``failed`` (with ``index_error``; the job is kept for
  ``reimport``).
- The importer appends an event to the queue at each step; a watch task reads them
  (every ``import_watch_seconds``, one indexed query) and tells the session's room
  ``upload_status`` ``importing``, then ``completed`` or ``failed``, through the progress
  reporter; each finished import is told to ``on_finished`` (the metrics). A server
  reads the events from its start on: every server tells its own WebSocket clients.
  With a shared progress bus (Redis) every replica publishes each event, so a client
  hears a status once per replica (the same status again; one relay per event is
  still to do).
- ``search`` is owner-scoped and runs here, on the text index store directly (FTS5, no
  LlamaIndex): only contents of the owner's indexed documents rank. Vector similarity
  is fused in only when ``query_embeddings`` is on (the model is loaded into the server
  at the first search then); the vectors themselves are the importer's work.
- ``forget`` (a document deleted) drops its job, and the content's nodes once no
  document holds that content any more.
- While the importer moves a previous version's index into the store (``legacy``),
  ``index_state`` is ``migrating`` (``/ready`` says not ready) and searches wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from backend.errors import NotFound, ServerBusy
from backend.services.importer.search import QueryEmbedder, search
from backend.services.live import LiveSession
from backend.services.progress import ProgressReporter
from backend.services.tasks import cancel_and_wait
from backend.settings import Settings
from backend.storage.import_queue import FAILED, IMPORTING, INDEXED, ImportEvent, ImportJob, ImportQueue
from backend.storage.document_repo import DocumentRecord, DocumentRepository
from backend.storage.sqlite_index import LEGACY_DIR
from backend.storage.text_index import TextIndexStore

log = logging.getLogger(__name__)

PENDING = "pending"
MIGRATION_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class SearchHit:
    document_id: int
    title: str
    filename: str
    page: int
    score: float
    text: str


class ImportService:
    def __init__(self, settings: Settings, repo: DocumentRepository, queue: ImportQueue,
                 index: TextIndexStore, reporter: ProgressReporter, io_pool: Executor,
                 live_lookup: Callable[[str], LiveSession | None],
                 on_finished: Callable[[str, float], None] | None = None) -> None:
        """``live_lookup``: the live session of an id (its room hears the import);
        ``on_finished(outcome, seconds)``: told after every import (the metrics)."""
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.index = index
        self.reporter = reporter
        self.io_pool = io_pool
        self.live_lookup = live_lookup
        self.on_finished = on_finished
        self.cursor = 0  # the last event told
        self._tasks: list[asyncio.Task[None]] = []
        self._embedder: QueryEmbedder | None = None
        self._no_model = False  # query_embeddings on, but the extra is missing
        self._embedder_lock = threading.Lock()

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.cursor = await self._io(self.queue.last_event)
        self._tasks.append(asyncio.create_task(self._watch(), name="import events"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._io(self.index.close)
        await self._io(self.queue.close)

    @property
    def index_state(self) -> str:
        """``loaded``, or ``migrating`` while a previous version's index waits for the
        importer to move it (for ``/ready``)."""
        data = self.settings.data_dir
        legacy = (data / LEGACY_DIR).is_dir() or (data / f"{LEGACY_DIR}.old").is_dir()
        return "migrating" if legacy else "loaded"

    async def ready(self, timeout: float = MIGRATION_WAIT_SECONDS) -> None:
        """Return once the index is whole (no migration pending). Raises ServerBusy after
        ``timeout`` seconds of migration (the importer may not be running)."""
        deadline = time.monotonic() + timeout
        while self.index_state != "loaded":
            if time.monotonic() > deadline:
                raise ServerBusy("the document index is being migrated from the previous version; "
                                 "the importer (python -m backend.importer) does it", retry_after=10)
            await asyncio.sleep(0.1)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no import is queued or running and every event is told (tests and
        benchmarks; an importer must be running)."""
        deadline = time.monotonic() + timeout
        await self.ready(timeout)
        while await self._io(self.queue.pending) or self.cursor < await self._io(self.queue.last_event):
            if time.monotonic() > deadline:
                raise TimeoutError("imports still pending (is an importer running?)")
            await asyncio.sleep(0.02)

    # -- queue ----------------------------------------------------------------------------

    async def submit(self, doc: DocumentRecord, *, embed: bool = False) -> None:
        """Queue ``doc`` for import (durably); an importer picks it up."""
        await self._io(self.repo.set_index_status, doc.id, PENDING, None)
        doc.index_status = PENDING
        await self._io(self.queue.enqueue, doc.id, doc.owner, doc.sha256, doc.session_id,
                       embed or self.settings.embed_all)

    async def reimport(self, owner: str, doc_id: int) -> DocumentRecord:
        """Queue a document's import again (a failed one, or any: content already indexed
        finishes at once). Raises NotFound."""
        doc = await self._io(self.repo.get, owner, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id}")
        job = await self._io(self.queue.get, doc_id)
        if job is not None and job.state == FAILED and await self._io(self.queue.retry, owner, doc_id):
            await self._io(self.repo.set_index_status, doc_id, PENDING, None)
            doc.index_status, doc.index_error = PENDING, None
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
        """A deleted document: its job goes; the content's nodes go with its last holder
        (an importer that was importing it checks again when it ends)."""
        await self._io(self.queue.remove, doc.id)
        if not await self._io(self.repo.sha_in_use, doc.sha256):
            await self._io(self.index.delete, doc.sha256)

    # -- events -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            try:
                await self.tell_new_events()
            except Exception:  # a locked or full database now and then: try again
                log.exception("reading the import events failed; will try again")
            await asyncio.sleep(self.settings.import_watch_seconds)

    async def tell_new_events(self) -> int:
        """Tell the rooms every event since the last one told; how many."""
        told = 0
        while True:
            events: list[ImportEvent] = await self._io(self.queue.events, self.cursor, 100)
            for event in events:
                self._tell(event)
                self.cursor = event.id
            told += len(events)
            if len(events) < 100:
                return told

    def _tell(self, event: ImportEvent) -> None:
        if event.status == IMPORTING:
            self._status(event, "importing", "Importing into the document index...")
            return
        if self.on_finished is not None:
            self.on_finished(event.status, event.seconds or 0.0)
        if event.status == FAILED:
            self._status(event, "failed", f"Import failed: {event.detail}", document_id=event.document_id,
                         index_status=FAILED)
            return
        why = event.detail
        message = ("Imported and searchable" if event.status == INDEXED
                   else f"Imported: {why}" if why else "Imported: the PDF has no extractable text")
        self._status(event, "completed", message, document_id=event.document_id, index_status=event.status)

    def _status(self, event: ImportEvent, status: str, message: str, **extra: Any) -> None:
        if event.session_id is None:
            return
        live = self.live_lookup(event.session_id)
        if live is not None:
            self.reporter.status(live, status, message, **extra)
        else:
            self.reporter.status_for(event.session_id, event.owner, (), status, message, **extra)

    # -- search ---------------------------------------------------------------------------

    async def search(self, owner: str, query: str, top_k: int) -> list[SearchHit]:
        """The owner's best ``top_k`` passages for ``query``."""
        await self.ready()
        hits: list[SearchHit] = await self._io(self._search, owner, query, top_k)
        return hits

    def _search(self, owner: str, query: str, top_k: int) -> list[SearchHit]:
        shas = self.repo.indexed_shas(owner)
        matches = search(self.index, query, shas, top_k, self._query_embedder())
        docs = self.repo.indexed_by_sha(owner, sorted({m.node.sha256 for m in matches}))
        out = [SearchHit(d.id, d.title, d.filename, m.node.page, m.score, m.node.text)
               for m in matches for d in docs.get(m.node.sha256, [])]
        return out[:top_k]

    def _query_embedder(self) -> QueryEmbedder | None:
        """With ``query_embeddings`` on: the embedding model, loaded at the first search
        (LlamaIndex and torch come into the server then); None otherwise or without the
        extra."""
        if not self.settings.query_embeddings or self._no_model:
            return None
        with self._embedder_lock:
            if self._embedder is None:
                from backend.importer.embeddings import load_embed_model

                model = load_embed_model()
                if model is None:
                    log.warning("query_embeddings is on but the [embeddings] extra is not installed: "
                                "search ranks by keyword only")
                    self._no_model = True
                    return None
                self._embedder = model.get_query_embedding
            return self._embedder
