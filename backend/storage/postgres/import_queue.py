"""PostgresImportQueue: the durable import queue (:mod:`backend.storage.import_queue`) in
PostgreSQL, shared by every upload server and every importer process on any machine.

``claim`` picks the oldest claimable row with ``FOR UPDATE SKIP LOCKED``: importers
claiming at once each lock a different row instead of queueing behind one, and a row
locked by a claim in progress is never handed out twice. The other changes of state are
single statements, or one transaction that locks the row first, each conditioned on the
caller still holding the job (``state = 'running' AND worker = ...``).

Leases and times are the database's clock (``now()``), so importers on different
machines compare leases in one clock. Event ids come from a sequence, which is not commit
order, so every transaction that appends an event first takes one transaction-level
advisory lock and draws its id after it: events commit one at a time, in id order, and
a reader that has seen id n never later sees a smaller one. ``backfill`` reads the
``documents`` table of the same database (the PostgreSQL document repository's).
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow

from backend.storage.import_queue import (
    EVENT_RETENTION_SECONDS, FAILED, IMPORTING, ImportEvent, ImportJob,
)
from backend.storage.postgres.base import Connection, PostgresStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    document_id  BIGINT PRIMARY KEY,
    owner        TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    session_id   TEXT,
    embed        BOOLEAN NOT NULL DEFAULT FALSE,
    state        TEXT NOT NULL DEFAULT 'queued',
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    worker       TEXT,
    lease_until  TIMESTAMPTZ,
    enqueued_at  TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    queued_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_claim ON imports (state, queued_at, document_id);
CREATE INDEX IF NOT EXISTS imports_owner_failed ON imports (owner, updated_at) WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS import_events (
    id           BIGINT PRIMARY KEY,
    document_id  BIGINT NOT NULL,
    owner        TEXT NOT NULL,
    session_id   TEXT,
    status       TEXT NOT NULL,
    detail       TEXT,
    seconds      DOUBLE PRECISION,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS import_events_id;
CREATE INDEX IF NOT EXISTS import_events_at ON import_events (at);
"""
_EVENT_LOCK = 0x70646665  # pg_advisory_xact_lock key of event appends ("pdfe")
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
_JOB = (f"document_id, owner, sha256, session_id, embed, state, attempts, error, worker, "
        f"{_ISO.format('enqueued_at')} AS enqueued_at, {_ISO.format('updated_at')} AS updated_at")
_LAPSED = "(state = 'running' AND coalesce(lease_until, '-infinity') < now())"
_MINE = "document_id = %(doc)s AND state = 'running' AND worker = %(worker)s"

_ENQUEUE = f"""
INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at, updated_at, queued_at)
VALUES (%(doc)s, %(owner)s, %(sha)s, %(session)s, %(embed)s, 'queued', now(), now(), clock_timestamp())
ON CONFLICT (document_id) DO UPDATE SET
    state = 'queued', embed = imports.embed OR excluded.embed, error = NULL, worker = NULL, lease_until = NULL,
    updated_at = excluded.updated_at, queued_at = excluded.queued_at
WHERE NOT (imports.state = 'running' AND coalesce(imports.lease_until, '-infinity') >= now())
"""
_CLAIM = f"""
WITH pick AS (
    SELECT document_id FROM imports WHERE state = 'queued' OR {_LAPSED}
    ORDER BY state = 'running' DESC, queued_at, document_id
    LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE imports i SET state = 'running', attempts = attempts + 1, worker = %(worker)s,
    lease_until = now() + make_interval(secs => %(lease)s), updated_at = now()
FROM pick WHERE i.document_id = pick.document_id
RETURNING i.document_id
"""
_BACKFILL = """
INSERT INTO imports (document_id, owner, sha256, session_id, embed, state, enqueued_at, updated_at, queued_at)
SELECT d.id, d.owner, d.sha256, d.session_id, %s, 'queued', now(), now(), clock_timestamp()
FROM documents d WHERE d.index_status IN ('pending', 'importing')
    AND NOT EXISTS (SELECT 1 FROM imports i WHERE i.document_id = d.id)
ORDER BY d.id
ON CONFLICT (document_id) DO NOTHING
"""


def _job(row: DictRow) -> ImportJob:
    return ImportJob(document_id=int(row["document_id"]), owner=row["owner"], sha256=row["sha256"],
                     session_id=row["session_id"], embed=bool(row["embed"]), state=row["state"],
                     attempts=int(row["attempts"]), error=row["error"], enqueued_at=row["enqueued_at"],
                     updated_at=row["updated_at"], worker=row["worker"])


class PostgresImportQueue(PostgresStore):
    def __init__(self, url: str, **pool: Any) -> None:
        super().__init__(url, _SCHEMA, what="the import queue", **pool)

    def _event(self, db: Connection, doc: int, status: str, detail: str | None, seconds: float | None) -> None:
        """Append an event for ``doc``'s row (inside the caller's transaction: see the module doc)."""
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_EVENT_LOCK,))
        db.execute("INSERT INTO import_events (id, document_id, owner, session_id, status, detail, seconds) "
                   "SELECT nextval('import_events_id'), document_id, owner, session_id, %s, %s, %s "
                   "FROM imports WHERE document_id = %s", (status, detail, seconds, doc))

    def _get(self, db: Connection, doc: int) -> ImportJob | None:
        row = db.execute(f"SELECT {_JOB} FROM imports WHERE document_id = %s", (doc,)).fetchone()
        return _job(row) if row is not None else None

    # -- the queue ------------------------------------------------------------------------

    def enqueue(self, document_id: int, owner: str, sha256: str, session_id: str | None, embed: bool) -> None:
        with self.tx() as db:
            db.execute(_ENQUEUE, {"doc": document_id, "owner": owner, "sha": sha256, "session": session_id,
                                  "embed": embed})

    def claim(self, worker: str, lease_seconds: float) -> ImportJob | None:
        with self.tx() as db:
            row = db.execute(_CLAIM, {"worker": worker, "lease": lease_seconds}).fetchone()
            if row is None:
                return None
            doc = int(row["document_id"])
            self._event(db, doc, IMPORTING, None, None)
            return self._get(db, doc)

    def extend(self, document_id: int, worker: str, lease_seconds: float) -> bool:
        with self.tx() as db:
            cur = db.execute(f"UPDATE imports SET lease_until = now() + make_interval(secs => %(lease)s) "
                             f"WHERE {_MINE}", {"doc": document_id, "worker": worker, "lease": lease_seconds})
            return cur.rowcount > 0

    def done(self, document_id: int, worker: str, status: str, detail: str | None, seconds: float) -> bool:
        with self.tx() as db:
            if db.execute(f"SELECT 1 FROM imports WHERE {_MINE} FOR UPDATE",
                          {"doc": document_id, "worker": worker}).fetchone() is None:
                return False
            self._event(db, document_id, status, detail, seconds)
            db.execute("DELETE FROM imports WHERE document_id = %s", (document_id,))
        return True

    def fail(self, document_id: int, worker: str, error: str, seconds: float) -> bool:
        with self.tx() as db:
            cur = db.execute(f"UPDATE imports SET state = 'failed', error = %(error)s, worker = NULL, "
                             f"lease_until = NULL, updated_at = now() WHERE {_MINE}",
                             {"doc": document_id, "worker": worker, "error": error})
            if cur.rowcount == 0:
                return False
            self._event(db, document_id, FAILED, error, seconds)
        return True

    def release(self, document_id: int, worker: str) -> bool:
        with self.tx() as db:
            cur = db.execute(f"UPDATE imports SET state = 'queued', worker = NULL, lease_until = NULL "
                             f"WHERE {_MINE}", {"doc": document_id, "worker": worker})
            return cur.rowcount > 0

    def remove(self, document_id: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM imports WHERE document_id = %s", (document_id,))

    def retry(self, owner: str, document_id: int) -> bool:
        with self.tx() as db:
            cur = db.execute("UPDATE imports SET state = 'queued', error = NULL, enqueued_at = now(), "
                             "updated_at = now(), queued_at = clock_timestamp() "
                             "WHERE document_id = %s AND owner = %s AND state != 'running'", (document_id, owner))
            return cur.rowcount > 0

    def get(self, document_id: int) -> ImportJob | None:
        with self.tx() as db:
            return self._get(db, document_id)

    def failures(self, owner: str) -> list[ImportJob]:
        rows = self.fetchall(f"SELECT {_JOB} FROM imports WHERE owner = %s AND state = 'failed' "
                             "ORDER BY imports.updated_at DESC, document_id DESC", owner)
        return [_job(r) for r in rows]

    def pending(self) -> int:
        row = self.fetchone("SELECT count(*) AS n FROM imports WHERE state != 'failed'")
        return int(row["n"]) if row else 0

    def backfill(self, embed: bool) -> int:
        with self.tx() as db:
            if db.execute("SELECT to_regclass('documents') IS NOT NULL AS there").fetchone() == {"there": True}:
                db.execute(_BACKFILL, (embed,))
            row = db.execute("SELECT count(*) AS n FROM imports WHERE state = 'queued'").fetchone()
        return int(row["n"]) if row else 0

    # -- events ---------------------------------------------------------------------------

    def events(self, after: int, limit: int = 100) -> list[ImportEvent]:
        rows = self.fetchall(f"SELECT id, document_id, owner, session_id, status, detail, seconds, "
                             f"{_ISO.format('at')} AS at FROM import_events WHERE id > %s ORDER BY id LIMIT %s",
                             after, limit)
        return [ImportEvent(id=int(r["id"]), document_id=int(r["document_id"]), owner=r["owner"],
                            session_id=r["session_id"], status=r["status"], detail=r["detail"],
                            seconds=r["seconds"], at=r["at"]) for r in rows]

    def last_event(self) -> int:
        row = self.fetchone("SELECT coalesce(max(id), 0) AS n FROM import_events")
        return int(row["n"]) if row else 0

    def prune_events(self, older_than_seconds: float = EVENT_RETENTION_SECONDS) -> int:
        with self.tx() as db:
            cur = db.execute("DELETE FROM import_events WHERE at < now() - make_interval(secs => %s)",
                             (older_than_seconds,))
            return cur.rowcount
