"""Two upload servers and two importers, real processes, on one real PostgreSQL
(STREAMING_DATABASE_URL): every replica lists every document and searches one index,
the importers share one queue (a killed one's job is taken up when its lease runs out),
and nothing of the database is in the data dirs. The bytes are still on a shared local
data dir (the S3 byte store is another piece of work)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.client import ApiClient
from tests.e2e.conftest import ServerProcess
from tests.e2e.test_importer_service import search, start_importer, upload, wait_imported
from tests.textpdf import make_text_pdf, page_word

pytestmark = pytest.mark.e2e


async def test_two_replicas_and_two_importers_on_one_postgresql(
        postgres_url: str, make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    # postgres_url first: its database is dropped after the servers stop, not under them
    shared = {"STREAMING_DATABASE_URL": postgres_url, "STREAMING_DATA_DIR": str(tmp_path / "shared-data"),
              "STREAMING_IMPORT_LEASE_SECONDS": "2"}
    a, b = make_server(start=False, **shared), make_server(start=False, **shared)
    for replica in (a, b):
        replica.with_importer = False
        replica.start()
    importers = [start_importer(a, "importer_a", **shared), start_importer(b, "importer_b", **shared)]
    try:
        async with ApiClient(a.base_url) as on_a, ApiClient(b.base_url) as on_b:
            docs = [await upload(on_a if n % 2 == 0 else on_b,
                                 make_text_pdf(tmp_path / f"{n}.pdf", 30, seed=70 + n), f"{n}.pdf")
                    for n in range(4)]
            await asyncio.sleep(0.3)
            importers[0].kill()  # perhaps mid-import: importer_b takes its job up after the lease
            importers[0].wait(timeout=10)
            status = await wait_imported(on_a, [d["id"] for d in docs], timeout=120)
            assert set(status.values()) == {"indexed"}, status
            for api in (on_a, on_b):  # one repository, one index, whichever replica answers
                listed = await api.get("/api/documents")
                assert sorted(d["id"] for d in listed.body) == sorted(d["id"] for d in docs)
                for n, doc in enumerate(docs):
                    hits = await search(api, page_word(70 + n, 29, 1))
                    assert hits and (hits[0]["document_id"], hits[0]["page"]) == (doc["id"], 30), (n, hits)
            again = await upload(on_b, make_text_pdf(tmp_path / "0.pdf", 30, seed=70), "again.pdf")
            assert again["id"] == docs[0]["id"]  # sent to A before, found by B: one repository
    finally:
        for proc in importers:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    assert not list((tmp_path / "shared-data").glob("*.sqlite3*")), "SQLite files next to a PostgreSQL setup"
    logs = (b.root / "importer_b.log").read_text()
    assert "Traceback" not in logs, logs[-4000:]
    for replica in (a, b):
        replica.assert_no_tracebacks()
