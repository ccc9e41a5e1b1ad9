"""The import queue's contract: documents waiting for, under, or failed at import, and
the events an import sends back to the servers.

Who calls what: the upload server ``enqueue``s a document after ``/complete`` and reads
``events`` to tell the WebSocket; one or many importer processes (``python -m
backend.importer``) ``claim`` jobs, hold them with a lease, and end them with ``done`` or
``fail``. Nothing but this store is shared between them, so it decides every race.

Rows: ``queued`` -> ``running`` (claimed: a ``worker`` holds it until ``lease_until``)
-> deleted by ``done``, or ``failed`` (kept with its error until ``retry``). A running job
whose lease has passed is claimable again, as if queued: that is how the job of a killed
importer is taken up (an import is idempotent). A holder that keeps working calls
``extend`` before its lease ends; ``done``, ``fail``, ``extend`` and ``release`` do
nothing and return False once the job is no longer the caller's (its lease passed and
another worker claimed it, or it was removed), so a late finisher never undoes a newer
holder's work nor reports twice.

Events: ``claim``, ``done`` and ``fail`` each append one :class:`ImportEvent` in the same
transaction as their change of row (``importing``; ``indexed`` or ``no_text``;
``failed``). ``events(after)`` returns those with an ``id`` above ``after``, in ``id``
order, and an implementation must never make visible, later, an event with an ``id``
below one it has already returned (SQLite: one writer at a time, so ids are commit
order; PostgreSQL: serialize the inserts, e.g. a transaction-level advisory lock taken
before the insert, since sequence values are not commit order). Events are kept at least
``EVENT_RETENTION_SECONDS``; ``prune_events`` drops older ones.

Clock: the store's own (SQLite: the machine's; PostgreSQL: the database's ``now()``), so
leases of importers on different machines compare in one clock. Times in rows and events
are ISO-8601 UTC strings (``2026-12-04T21:00:00Z``) for display; leases are the store's.

Blocking: every method may be called from any thread (the store locks); call them from
a worker thread, not the event loop. Implementations:
:class:`backend.storage.sqlite_imports.SqliteImportQueue` (the embedded default). Each
runs ``tests/storage/test_import_queue_contract.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

QUEUED, RUNNING, FAILED = "queued", "running", "failed"
# what an event says of the document (its ``index_status`` from then on)
IMPORTING, INDEXED, NO_TEXT = "importing", "indexed", "no_text"
EVENT_RETENTION_SECONDS = 3600.0


@dataclass
class ImportJob:
    document_id: int
    owner: str
    sha256: str
    session_id: str | None
    embed: bool
    state: str  # QUEUED, RUNNING or FAILED
    attempts: int  # claims so far (a job taken up after a lease ran out counts again)
    error: str | None  # why it failed (FAILED only)
    enqueued_at: str
    updated_at: str
    worker: str | None = None  # who holds it (RUNNING only)


@dataclass(frozen=True)
class ImportEvent:
    id: int  # increasing in commit order (see the module doc)
    document_id: int
    owner: str
    session_id: str | None  # None: the document has no upload session (no room to tell)
    status: str  # IMPORTING, INDEXED, NO_TEXT or FAILED
    detail: str | None  # FAILED: the error; NO_TEXT: why, when not for want of text
    seconds: float | None  # how long the import took (INDEXED, NO_TEXT, FAILED)
    at: str


class ImportQueue(Protocol):
    def enqueue(self, document_id: int, owner: str, sha256: str, session_id: str | None, embed: bool) -> None:
        """Queue a document (again): an existing row of it goes back to ``queued`` (its
        ``embed`` kept if already set), unless it is ``running`` under a live lease, in
        which case it is left to its holder."""
        raise NotImplementedError

    def claim(self, worker: str, lease_seconds: float) -> ImportJob | None:
        """The oldest queued job (or running one whose lease has passed), now ``running``
        for ``worker`` until ``lease_seconds`` from now, ``attempts`` counted, and an
        ``importing`` event appended; None when there is nothing to take. Two callers
        never get the same job while its lease runs."""
        raise NotImplementedError

    def extend(self, document_id: int, worker: str, lease_seconds: float) -> bool:
        """Push the lease to ``lease_seconds`` from now; False if the job is not ``worker``'s."""
        raise NotImplementedError

    def done(self, document_id: int, worker: str, status: str, detail: str | None, seconds: float) -> bool:
        """The import ended with ``status`` (``indexed`` or ``no_text``): the row goes and
        the event is appended. False (and nothing changes) if the job is not ``worker``'s."""
        raise NotImplementedError

    def fail(self, document_id: int, worker: str, error: str, seconds: float) -> bool:
        """The import failed: the row is kept as ``failed`` with ``error`` and a ``failed``
        event appended. False (and nothing changes) if the job is not ``worker``'s."""
        raise NotImplementedError

    def release(self, document_id: int, worker: str) -> bool:
        """Give a claimed job back (``queued`` at once, not after its lease): an importer
        stopping cleanly. No event. False if the job is not ``worker``'s."""
        raise NotImplementedError

    def remove(self, document_id: int) -> None:
        """Drop the document's row whatever its state (the document was deleted)."""
        raise NotImplementedError

    def retry(self, owner: str, document_id: int) -> bool:
        """``owner``'s failed (or still queued) job back in the queue, its error cleared;
        False if there is none (no row, another owner's, or running)."""
        raise NotImplementedError

    def get(self, document_id: int) -> ImportJob | None:
        raise NotImplementedError

    def failures(self, owner: str) -> list[ImportJob]:
        """``owner``'s failed jobs, the latest first."""
        raise NotImplementedError

    def pending(self) -> int:
        """Jobs queued or running (not failed)."""
        raise NotImplementedError

    def backfill(self, embed: bool) -> int:
        """Queue every document whose ``index_status`` is ``pending`` or ``importing`` but
        which has no row (a crash between recording a document and queueing it); how
        many jobs are queued now in all."""
        raise NotImplementedError

    def events(self, after: int, limit: int = 100) -> list[ImportEvent]:
        """Up to ``limit`` events with ``id`` above ``after``, in ``id`` order."""
        raise NotImplementedError

    def last_event(self) -> int:
        """The highest event ``id`` so far (0 if none): where a new reader starts."""
        raise NotImplementedError

    def prune_events(self, older_than_seconds: float = EVENT_RETENTION_SECONDS) -> int:
        """Drop events older than that; how many went."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
