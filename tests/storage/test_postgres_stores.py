"""What only the PostgreSQL stores do, on a real server: backfill from the documents
table of the same database, events that never appear below an id already read while
several importers append at once, and 503 storage_unavailable when the server is gone."""

from __future__ import annotations

import threading

import pytest

from backend.errors import StorageUnavailable
from backend.storage.document_repo import DocumentRecord
from backend.storage.import_queue import INDEXED
from backend.storage.postgres.documents import PostgresDocumentRepository
from backend.storage.postgres.import_queue import PostgresImportQueue
from backend.storage.postgres.text_index import PostgresTextIndex
from tests.realservers.postgres import PostgresServer, pg_bin, start_postgres


def test_backfill_queues_documents_recorded_but_never_queued(postgres_url: str) -> None:
    repo, q = PostgresDocumentRepository(postgres_url), PostgresImportQueue(postgres_url)
    try:
        doc = repo.insert(DocumentRecord(id=0, owner="alice", title="t", filename="f.pdf", file_size=1,
                                         sha256="e" * 64, created_at="2026-01-01T00:00:00Z", session_id="s"))
        done = repo.insert(DocumentRecord(id=0, owner="alice", title="t", filename="g.pdf", file_size=1,
                                          sha256="f" * 64, created_at="2026-01-01T00:00:00Z", session_id="t"))
        repo.set_index_status(done.id, "indexed")
        assert q.backfill(False) == 1 and q.backfill(False) == 1
        job = q.claim("w", 30)
        assert job is not None and (job.document_id, job.owner, job.session_id) == (doc.id, "alice", "s")
    finally:
        q.close()
        repo.close()


def test_backfill_without_a_documents_table(postgres_url: str) -> None:
    q = PostgresImportQueue(postgres_url)
    try:
        assert q.backfill(True) == 0
    finally:
        q.close()


def test_events_read_while_importers_append_never_go_back(postgres_url: str) -> None:
    queues = [PostgresImportQueue(postgres_url) for _ in range(4)]
    reader = PostgresImportQueue(postgres_url)
    for n in range(1, 201):
        queues[0].enqueue(n, "alice", f"{n:064x}", None, False)
    stop = threading.Event()
    seen: list[int] = []

    def importer(i: int) -> None:
        while (job := queues[i].claim(f"w{i}", 30)) is not None:
            queues[i].done(job.document_id, f"w{i}", INDEXED, None, 0.0)

    def read() -> None:
        last = 0
        while not stop.is_set() or reader.events(last):
            for event in reader.events(last, limit=50):
                seen.append(event.id)
                last = event.id

    threads = [threading.Thread(target=importer, args=(i,)) for i in range(4)]
    tail = threading.Thread(target=read)
    tail.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    tail.join()
    try:
        everything = [e.id for e in reader.events(0, limit=1000)]
        assert len(everything) == 400 and seen == everything  # nothing skipped: read in commit order
    finally:
        for q in [*queues, reader]:
            q.close()


@pytest.fixture
def doomed_server() -> PostgresServer:
    """A server of its own, for a test that stops it."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed: run `make postgres`")
    return start_postgres(bindir)


def test_an_unreachable_server_is_storage_unavailable(doomed_server: PostgresServer) -> None:
    import shutil

    url = doomed_server.url()
    stores = [PostgresDocumentRepository(url, timeout=1), PostgresImportQueue(url, timeout=1),
              PostgresTextIndex(url, timeout=1)]
    repo, queue, index = stores
    try:
        assert repo.count("alice") == 0
        doomed_server.stop()
        for call in (lambda: repo.count("alice"), lambda: queue.claim("w", 30), lambda: index.has("a" * 64)):
            with pytest.raises(StorageUnavailable) as caught:
                call()
            assert caught.value.code == "storage_unavailable" and caught.value.retry_after
        late = PostgresDocumentRepository(url, timeout=1)  # it opens (a server starts without its database)
        stores.append(late)
        with pytest.raises(StorageUnavailable):  # and its first statement is refused, not hung
            late.count("alice")
    finally:
        for store in stores:
            store.close()
        shutil.rmtree(doomed_server.root, ignore_errors=True)
