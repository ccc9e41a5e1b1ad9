"""Import after /complete, search, failures and reimport, delete, restart: through the API."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from backend.app import create_app
from backend.settings import Settings
from tests.conftest import Api, envelope
from tests.textpdf import make_blank_pdf, make_text_pdf, page_word

import httpx


async def _search(api: Api, q: str, top_k: int = 5) -> list[dict[str, Any]]:
    r = await api.http.get("/api/documents/search", params={"q": q, "top_k": top_k})
    assert r.status_code == 200, r.text
    return list(r.json()["hits"])


async def test_import_then_search_finds_document_and_page(api: Api, tmp_path: Path) -> None:
    one = await api.upload(make_text_pdf(tmp_path / "a.pdf", 4, seed=1), filename="alpha.pdf", title="Alpha")
    two = await api.upload(make_text_pdf(tmp_path / "b.pdf", 3, seed=2), filename="beta.pdf", title="Beta")
    assert one["document"]["index_status"] == "pending"
    await api.svc.importer.drain()
    doc = (await api.http.get(f"/api/documents/{two['document']['id']}")).json()
    assert doc["index_status"] == "indexed" and doc["index_error"] is None
    hits = await _search(api, page_word(1, 2, 3))
    assert hits[0]["document_id"] == one["document"]["id"] and hits[0]["page"] == 3
    assert hits[0]["title"] == "Alpha" and page_word(1, 2, 3) in hits[0]["text"] and hits[0]["score"] > 0
    hits = await _search(api, f"{page_word(2, 0, 1)} {page_word(2, 0, 5)}")
    assert (hits[0]["document_id"], hits[0]["page"]) == (two["document"]["id"], 1)
    assert await _search(api, "nonexistentwordzzz") == []
    envelope(await api.http.get("/api/documents/search"), "invalid_request", 422)


async def test_pdf_without_text_is_no_text(api: Api, tmp_path: Path) -> None:
    body = await api.upload(make_blank_pdf(tmp_path / "blank.pdf", 2))
    await api.svc.importer.drain()
    doc = (await api.http.get(f"/api/documents/{body['document']['id']}")).json()
    assert doc["index_status"] == "no_text"


async def test_failure_is_kept_and_reimport_succeeds(api: Api, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.importer import extract

    def broken(path: Path) -> list[str]:
        raise extract.ExtractionError("cannot read the PDF's text: simulated")

    assert api.svc.import_worker is not None  # in-process tests import in the server
    monkeypatch.setattr(api.svc.import_worker, "_extract", broken)
    body = await api.upload(make_text_pdf(tmp_path / "f.pdf", 2, seed=7))
    doc_id = body["document"]["id"]
    await api.svc.importer.drain()
    doc = (await api.http.get(f"/api/documents/{doc_id}")).json()
    assert doc["index_status"] == "failed" and "simulated" in doc["index_error"]
    failures = (await api.http.get("/api/documents/import-failures")).json()
    assert [f["document_id"] for f in failures] == [doc_id] and "simulated" in failures[0]["error"]

    monkeypatch.undo()
    r = await api.http.post(f"/api/documents/{doc_id}/reimport")
    assert r.status_code == 200 and r.json()["index_status"] == "pending", r.text
    await api.svc.importer.drain()
    assert (await api.http.get(f"/api/documents/{doc_id}")).json()["index_status"] == "indexed"
    assert (await api.http.get("/api/documents/import-failures")).json() == []
    assert (await _search(api, page_word(7, 1, 0)))[0]["page"] == 2
    envelope(await api.http.post("/api/documents/999/reimport"), "not_found", 404)


async def test_delete_removes_hits_but_keeps_a_duplicate(api: Api, tmp_path: Path) -> None:
    data = make_text_pdf(tmp_path / "d.pdf", 2, seed=9)
    first = await api.upload(data, check_duplicates=False, title="First")
    second = await api.upload(data, check_duplicates=False, title="Second")
    await api.svc.importer.drain()
    word = page_word(9, 0, 2)
    assert {h["document_id"] for h in await _search(api, word)} == {first["document"]["id"], second["document"]["id"]}
    nodes = api.svc.importer.index.node_count()
    assert (await api.http.delete(f"/api/documents/{first['document']['id']}")).status_code == 200
    hits = await _search(api, word)
    assert [h["document_id"] for h in hits] == [second["document"]["id"]] and hits[0]["title"] == "Second"
    assert api.svc.importer.index.node_count() == nodes  # indexed once
    assert (await api.http.delete(f"/api/documents/{second['document']['id']}")).status_code == 200
    assert await _search(api, word) == [] and api.svc.importer.index.node_count() == 0


async def test_search_within_one_document(api: Api, tmp_path: Path) -> None:
    data = make_text_pdf(tmp_path / "w.pdf", 3, seed=13)
    first = await api.upload(data, check_duplicates=False, title="First")
    second = await api.upload(data, check_duplicates=False, title="Second")
    other = await api.upload(make_text_pdf(tmp_path / "o.pdf", 2, seed=14), title="Other")
    await api.svc.importer.drain()
    word = page_word(13, 1, 2)
    assert {h["document_id"] for h in await _search(api, word)} == {first["document"]["id"], second["document"]["id"]}

    async def within(doc_id: int, q: str) -> list[dict[str, Any]]:
        r = await api.http.get("/api/documents/search", params={"q": q, "document_id": doc_id})
        assert r.status_code == 200, r.text
        return list(r.json()["hits"])

    hits = await within(second["document"]["id"], word)
    assert [(h["document_id"], h["page"], h["title"]) for h in hits] == [(second["document"]["id"], 2, "Second")]
    assert await within(other["document"]["id"], word) == []
    assert (await within(other["document"]["id"], page_word(14, 0, 1)))[0]["page"] == 1
    envelope(await api.http.get("/api/documents/search", params={"q": word, "document_id": 999}), "not_found", 404)
    envelope(await api.http.get("/api/documents/search", params={"q": word, "document_id": 0}),
             "invalid_request", 422)


async def test_pending_import_survives_a_restart(settings: Settings, tmp_path: Path) -> None:
    data = make_text_pdf(tmp_path / "r.pdf", 3, seed=11)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        svc = app.state.services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, svc)
            await svc.importer.ready()
            assert svc.import_worker is not None
            await svc.import_worker.stop()  # no importer: the job stays queued
            svc.import_worker = None
            body = await api.upload(data)
            assert svc.importer.queue.pending() == 1
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            await api.svc.importer.drain()
            doc = (await http.get(f"/api/documents/{body['document']['id']}")).json()
            assert doc["index_status"] == "indexed"
            assert (await _search(api, page_word(11, 2, 4)))[0]["page"] == 3


async def test_no_socket_leaves_the_machine(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Import and search with every non-local connection refused (a test hook, not a sandbox)."""
    attempts: list[object] = []

    def local(address: object) -> bool:
        host = address[0] if isinstance(address, tuple) else address
        return isinstance(host, (str, bytes)) and (
            isinstance(address, (str, bytes)) or str(host) in ("localhost", "::1") or str(host).startswith("127."))

    def guard(real: Any) -> Any:
        def connect(self: socket.socket, address: Any, *args: Any) -> Any:
            if not local(address):
                attempts.append(address)
                raise OSError(f"network access blocked in tests: {address!r}")
            return real(self, address, *args)
        return connect

    real_create = socket.create_connection

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not local(address):
            attempts.append(address)
            raise OSError(f"network access blocked in tests: {address!r}")
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guard(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "create_connection", create_connection)
    body = await api.upload(make_text_pdf(tmp_path / "n.pdf", 2, seed=5))
    await api.svc.importer.drain()
    hits = await _search(api, page_word(5, 1, 1))
    assert hits[0]["document_id"] == body["document"]["id"] and attempts == []


async def test_an_install_of_the_previous_version_comes_up_searchable(settings: Settings) -> None:
    """documents.sqlite3 with indexed documents and the previous version's ``index/``
    directory (written as it wrote it): after the upgrade every document is found."""
    from backend.services.auth import SINGLE_OWNER
    from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository
    from tests.services.test_index_migration import contents, write_previous_index

    docs = contents(21, 22)
    repo = SqliteDocumentRepository(settings.data_dir / "documents.sqlite3")
    ids = {}
    for sha, (_, meta) in docs.items():
        record = repo.insert(DocumentRecord(0, SINGLE_OWNER, meta["title"], meta["filename"], 1000, sha,
                                            "2026-01-01T00:00:00Z", index_status="indexed"))
        ids[sha] = record.id
    repo.close()
    write_previous_index(settings.data_dir, docs)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            await api.svc.importer.drain()
            for seed, sha in zip((21, 22), docs):
                hits = await _search(api, page_word(seed, 2, 1))
                assert (hits[0]["document_id"], hits[0]["page"]) == (ids[sha], 3), hits
                assert hits[0]["title"] == f"Doc {seed}"
    assert (settings.data_dir / "index.migrated").is_dir() and not (settings.data_dir / "index").exists()
