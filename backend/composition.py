"""The composition root: builds every service over the storage that settings choose, and
runs their background work. The one place that knows how the parts fit: services take
what they need in their constructors, and nothing is wired in after construction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.errors import StorageUnavailable
from backend.services.appends import AppendService
from backend.services.assembly import RESERVATION, AssemblyService
from backend.services.backpressure import MemoryBudget
from backend.services import heap
from backend.services.completion import CompletionService
from backend.services.documents import DocumentService
from backend.services.importer.service import ImportService
from backend.services.metrics import Metrics, Sources
from backend.services.prefix import PrefixService
from backend.services.digest import Digests
from backend.services.digest_handover import Handover
from backend.services.digest_inline import InlineDigests
from backend.services.prefix_lane import PrefixLane
from backend.services.prefix_state import ScannerFactory
from backend.services.progress import ProgressReporter
from backend.services.ratelimit import Rule, SessionRateLimits
from backend.services.sessions import SessionService
from backend.services.ledger import SessionLedger
from backend.services.stats import MemoryWatch, StatsService
from backend.services.tasks import cancel_and_wait
from backend.services.uploads import UploadService
from backend.services.pdf.inspect import inspect_pdf
from backend.services.validation import Inspector, SandboxedInspector, ValidationService
from backend.services.ws_hub import WebSocketHub
from backend.coordination import Coordination, build_coordination
from backend.settings import Settings
from backend.storage.base import ChunkStore
from backend.storage.document_repo import DocumentRepository
from backend.storage.file_state import FileStateStore
from backend.storage.byte_stores import open_blob_store, open_chunk_store
from backend.storage.databases import open_documents, open_import_queue, open_text_index

if TYPE_CHECKING:
    from backend.importer.worker import ImportWorker

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: ThreadPoolExecutor
    sessions: SessionService
    assembly: AssemblyService
    completion: CompletionService
    documents: DocumentService
    validation: ValidationService
    stats: StatsService
    memory: MemoryWatch
    hub: WebSocketHub
    reporter: ProgressReporter
    repo: DocumentRepository
    importer: ImportService
    metrics: Metrics
    rate_limits: SessionRateLimits
    uploads: UploadService
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    import_worker: ImportWorker | None = None  # only with import_in_server (else its own process)
    coordination: Coordination | None = None  # the shared bus and limits (Redis or this process)
    _setup: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)  # start-up steps not done yet

    async def start(self) -> None:
        if self.coordination is not None:
            await self.coordination.start()
        self._setup = [self.sessions.load, self.importer.start]
        if self.import_worker is not None:
            self._setup.append(self.import_worker.start)
        if not self.sessions.ledger.shared:  # shared: another replica may be completing it now
            self._setup.append(self.completion.recover)
        self._setup.append(self.sessions.sweep)
        try:
            await self._set_up_storage()
        except StorageUnavailable as exc:
            # Start anyway: /health answers, /ready says why not, a request that needs the
            # store is 503 storage_unavailable with Retry-After; the set-up goes on when it is back.
            log.warning("storage unreachable at start (%s): serving, the set-up is retried", exc.message)
            self.tasks.append(asyncio.create_task(self._retry_set_up(), name="storage set-up"))
        self.tasks.append(asyncio.create_task(self._sweeper(), name="sweeper"))
        self.tasks.append(asyncio.create_task(self.memory.watch(), name="memory watch"))

    async def _set_up_storage(self) -> None:
        """The start-up steps that need the stores, each once, resumed where one failed."""
        while self._setup:
            await self._setup[0]()
            self._setup.pop(0)

    async def _retry_set_up(self) -> None:
        wait = 1.0
        while True:
            await asyncio.sleep(wait)
            try:
                await self._set_up_storage()
            except StorageUnavailable:
                wait = min(wait * 2, 30.0)
                continue
            log.info("storage reachable: start-up set-up done")
            return

    @property
    def storage_state(self) -> str:
        """``ready`` once the start-up steps that need the stores are done, else ``starting``."""
        return "starting" if self._setup else "ready"

    async def _sweeper(self) -> None:
        interval = self.settings.cleanup_interval_minutes * 60
        while True:
            await asyncio.sleep(interval)
            try:
                swept = await self.sessions.sweep()
                if swept:
                    log.info("sweep removed %d expired sessions and orphaned files", swept)
            except Exception:
                log.exception("sweep failed; will try again")

    async def stop(self) -> None:
        await cancel_and_wait(self.tasks)
        for live in list(self.sessions.live.values()):
            await cancel_and_wait([live.catchup_task], swallow_errors=True)
            await self.sessions.save(live)
        if self.import_worker is not None:
            await self.import_worker.stop()
        await self.importer.stop()
        self.pool.shutdown(wait=True)
        self.assembly.stream_pool.shutdown(wait=True)
        self.sessions.prefix.digests.close()
        await asyncio.get_running_loop().run_in_executor(None, self.validation.close)
        self.repo.close()
        if self.coordination is not None:
            await self.coordination.stop()


def build_digests(settings: Settings, chunks: ChunkStore, scanner_factory: ScannerFactory) -> Digests:
    """The digest seam's implementation that ``settings.digest`` names. The child reads the
    bytes back itself, so it needs a store with a blocking reader."""
    reader = chunks.blocking_reader()
    if settings.digest == "child" and reader is not None:
        return PrefixLane(reader, scanner_factory, settings.prefix_worker, settings.child_idle_seconds)
    return InlineDigests(chunks, scanner_factory)


def build_services(settings: Settings) -> Services:
    """Every service, each given what it needs at construction, chosen from ``settings``."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="io")
    chunks = open_chunk_store(settings, pool)
    blobs = open_blob_store(settings, pool, chunks)
    repo = open_documents(settings)
    queue = open_import_queue(settings)
    coordination = build_coordination(settings)
    states = coordination.states if coordination.states is not None else FileStateStore(settings.state_dir, pool)
    bus = coordination.bus
    hub = WebSocketHub()
    bus.subscribe(hub.deliver)
    reporter = ProgressReporter(bus, settings.progress_interval_seconds)
    metrics = Metrics()
    shared_counters = coordination.counters if coordination.redis is not None else None
    ledger = SessionLedger(states, chunks, reporter, pool, shared=coordination.states is not None,
                           counters=shared_counters)
    inspector: Inspector = SandboxedInspector(settings) if settings.inspect_isolation == "process" else inspect_pdf
    validation = ValidationService(settings, pool, reporter, inspector, on_reject=ledger.fail)
    if coordination.digests is not None:  # several replicas: the prefix continues where the bytes land
        inline = InlineDigests(chunks, validation.scanner_factory, portable=True)
        prefix = PrefixService(inline, validation.on_findings, Handover(inline, coordination.digests))
    else:
        prefix = PrefixService(build_digests(settings, chunks, validation.scanner_factory), validation.on_findings)
    importer = ImportService(settings, repo, queue, open_text_index(settings), reporter, pool, ledger.live.get,
                             on_finished=metrics.import_finished)
    documents = DocumentService(repo, blobs, pool, on_delete=importer.forget)
    sessions = SessionService(settings, ledger, prefix, find_duplicate=documents.find_duplicate,
                              counters=shared_counters)
    memory = MemoryWatch(settings, reporter)
    budget = MemoryBudget(settings.inflight_budget, settings.backpressure_wait_seconds, on_pressure=memory.pressure,
                          on_rest=heap.trim)
    stats = StatsService(settings, sessions, chunks, budget, memory)
    max_streams = budget.limit // RESERVATION + 1
    stream_pool = ThreadPoolExecutor(max_workers=max_streams, thread_name_prefix="chunk")
    shared_locks = coordination.locks if coordination.redis is not None else None  # one process: its own locks
    assembly = AssemblyService(sessions, prefix, chunks, validation, budget, reporter, pool, stream_pool,
                               locks=shared_locks)
    completion = CompletionService(sessions, prefix, validation, chunks, blobs, documents, reporter, pool,
                                   importer=importer, locks=shared_locks)
    rate_limits = SessionRateLimits(
        coordination.limiter,
        owner_rule=Rule(settings.rate_limit_per_minute, 60.0, settings.rate_limit_burst),
        ip_rule=Rule(settings.ip_rate_limit_per_minute, 60.0, settings.ip_rate_limit_burst),
    )
    metrics.watch(Sources(
        bytes_received=lambda: assembly.bytes_received, chunks_accepted=lambda: assembly.chunks_accepted,
        uploads_completed=lambda: completion.completed, active_sessions=sessions.admission.active_count,
        open_sessions=sessions.admission.open_count, inflight_bytes=lambda: budget.in_use,
        backpressure=lambda: {"wait": budget.waits, "refusal": budget.refusals},
        rate_limited=lambda: dict(rate_limits.refusals),
        object_store=_object_store_traffic(chunks),
    ))
    uploads = UploadService(sessions, assembly, AppendService(assembly, coordination.locks), completion)
    worker = None
    if settings.import_in_server:  # LlamaIndex and PDFium come into this process only here
        from backend.importer.worker import ImportWorker

        worker = ImportWorker(settings, repo, queue, blobs)
    return Services(settings, pool, sessions, assembly, completion, documents, validation, stats, memory, hub,
                    reporter, repo, importer, metrics, rate_limits, uploads, coordination=coordination,
                    import_worker=worker)


def _object_store_traffic(chunks: ChunkStore) -> Callable[[], dict[str, int]] | None:
    """What an object store (S3) sent and copied, for ``/metrics``; None for local disk."""
    from backend.storage.s3.chunks import S3ChunkStore  # boto3 is imported by the store, not here

    if not isinstance(chunks, S3ChunkStore):
        return None
    store = chunks
    return lambda: {"written": store.bytes_written, "copied": store.bytes_copied}
