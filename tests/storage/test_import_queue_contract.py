"""The import queue's contract (:mod:`backend.storage.import_queue`), run against every
implementation: ``queues`` opens two handles on one queue, as two importer processes
would have: SQLite, and PostgreSQL (a real server from tests/realservers, a fresh
database per test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.storage.import_queue import FAILED, IMPORTING, INDEXED, NO_TEXT, QUEUED, RUNNING, ImportQueue
from backend.storage.postgres.import_queue import PostgresImportQueue
from backend.storage.sqlite_imports import SqliteImportQueue

Opener = Callable[[], ImportQueue]


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    return lambda: SqliteImportQueue(tmp_path / "documents.sqlite3")


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresImportQueue(url)


QUEUES: dict[str, Callable[[Path, pytest.FixtureRequest], Opener]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(QUEUES))
def queues(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ImportQueue, ImportQueue]]:
    opener = QUEUES[request.param](tmp_path, request)
    a, b = opener(), opener()
    yield a, b
    a.close()
    b.close()


def test_claim_fail_retry_done_and_events(queues: tuple[ImportQueue, ImportQueue]) -> None:
    q, _ = queues
    start = q.last_event()
    q.enqueue(1, "alice", "a" * 64, "s1", False)
    q.enqueue(2, "alice", "b" * 64, None, True)
    assert q.pending() == 2
    job = q.claim("w1", 30)
    assert job is not None and (job.document_id, job.state, job.attempts, job.worker) == (1, RUNNING, 1, "w1")
    assert q.fail(1, "w1", "boom", 0.5)
    assert not q.done(1, "w1", INDEXED, None, 0.1)  # failed: no longer w1's
    assert [j.error for j in q.failures("alice")] == ["boom"] and q.failures("bob") == []
    assert q.pending() == 1
    assert not q.retry("bob", 1) and q.retry("alice", 1)
    got = q.get(1)
    assert got is not None and got.state == QUEUED and got.error is None
    second = q.claim("w1", 30)
    assert second is not None and second.document_id == 2 and second.embed and second.session_id is None
    third = q.claim("w1", 30)
    assert third is not None and third.document_id == 1 and third.attempts == 2
    assert q.claim("w1", 30) is None
    assert q.done(2, "w1", NO_TEXT, "needs a password", 0.2) and q.done(1, "w1", INDEXED, None, 0.3)
    assert q.pending() == 0 and q.get(1) is None
    events = q.events(start)
    assert [(e.document_id, e.status) for e in events] == [
        (1, IMPORTING), (1, FAILED), (2, IMPORTING), (1, IMPORTING), (2, NO_TEXT), (1, INDEXED)]
    assert events[1].detail == "boom" and events[1].seconds == 0.5 and events[0].session_id == "s1"
    assert events[4].detail == "needs a password" and events[4].owner == "alice"
    assert [e.id for e in events] == sorted(e.id for e in events) and q.last_event() == events[-1].id
    assert q.events(events[2].id, limit=2) == events[3:5]


def test_two_importers_never_take_one_job(queues: tuple[ImportQueue, ImportQueue]) -> None:
    a, b = queues
    for n in range(1, 41):
        a.enqueue(n, "alice", f"{n:064x}", None, False)
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def drain(name: str, q: ImportQueue) -> None:
        while (job := q.claim(name, 30)) is not None:
            taken[name].append(job.document_id)
            assert q.done(job.document_id, name, INDEXED, None, 0.0)

    threads = [threading.Thread(target=drain, args=("a", a)), threading.Thread(target=drain, args=("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken["a"] + taken["b"]) == list(range(1, 41))
    assert a.pending() == 0


def test_a_lapsed_lease_is_taken_up_and_the_late_holder_changes_nothing(
        queues: tuple[ImportQueue, ImportQueue]) -> None:
    a, b = queues
    a.enqueue(7, "alice", "c" * 64, "s7", False)
    assert a.claim("dead", 0.3) is not None
    assert b.claim("live", 30) is None  # the lease runs
    assert a.extend(7, "dead", 0.3) and not a.extend(7, "live", 30)
    time.sleep(0.45)
    job = b.claim("live", 30)
    assert job is not None and job.document_id == 7 and job.worker == "live" and job.attempts == 2
    assert not a.extend(7, "dead", 30) and not a.done(7, "dead", INDEXED, None, 1.0)
    assert not a.fail(7, "dead", "late", 1.0) and not a.release(7, "dead")
    assert b.done(7, "live", INDEXED, None, 1.0)


def test_release_requeues_at_once_and_enqueue_leaves_a_live_job_alone(
        queues: tuple[ImportQueue, ImportQueue]) -> None:
    a, b = queues
    a.enqueue(3, "alice", "d" * 64, None, False)
    assert a.claim("w1", 30) is not None
    a.enqueue(3, "alice", "d" * 64, None, True)  # running under a live lease: its holder's
    got = a.get(3)
    assert got is not None and got.state == RUNNING and got.worker == "w1"
    assert a.release(3, "w1")
    job = b.claim("w2", 30)
    assert job is not None and job.document_id == 3
    a.remove(3)
    assert a.get(3) is None and not b.done(3, "w2", INDEXED, None, 0.0)


def test_prune_events(queues: tuple[ImportQueue, ImportQueue]) -> None:
    q, _ = queues
    q.enqueue(1, "alice", "a" * 64, None, False)
    assert q.claim("w", 30) is not None
    assert q.prune_events(3600) == 0 and q.events(0)
    time.sleep(0.05)
    assert q.prune_events(0.01) >= 1 and q.events(0) == []
    assert q.last_event() == 0 or q.last_event() > 0  # ids are not reused, whatever the maximum reads


def test_sqlite_backfill_queues_documents_recorded_but_never_queued(tmp_path: Path) -> None:
    from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository

    repo = SqliteDocumentRepository(tmp_path / "documents.sqlite3")
    q = SqliteImportQueue(tmp_path / "documents.sqlite3")
    doc = repo.insert(DocumentRecord(id=0, owner="alice", title="t", filename="f.pdf", file_size=1,
                                     sha256="e" * 64, created_at="2026-01-01T00:00:00Z", session_id="s"))
    repo.set_index_status(doc.id, "pending")
    assert q.backfill(False) == 1 and q.backfill(False) == 1
    job = q.claim("w", 30)
    assert job is not None and job.document_id == doc.id and job.owner == "alice"
    q.close()
    repo.close()
