"""Two owners, every endpoint and the WebSocket: what is Alice's is not found for Bob (404,
never 403), her rooms refuse him, her events never reach him, and deduplication never
tells him she holds the same file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings
from tests.api.conftest import ALICE_KEY, BOB_KEY, Owners, auth
from tests.api.test_auth import OPEN
from tests.conftest import MIB, Api, envelope
from tests.textpdf import make_text_pdf, page_word

CS = 2 * MIB


async def test_every_endpoint_hides_another_owners_things(owners: Owners, tmp_path: Path, small_pdf: bytes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = owners.alice, owners.bob
    text = make_text_pdf(tmp_path / "a.pdf", 2, seed=31)
    doc_id = (await alice.upload(text, filename="alice.pdf"))["document"]["id"]
    await alice.svc.importer.drain()
    from backend.importer import extract

    def broken(path: Path) -> list[str]:
        raise extract.ExtractionError("simulated")

    assert alice.svc.import_worker is not None
    monkeypatch.setattr(alice.svc.import_worker, "_extract", broken)
    failed_id = (await alice.upload(make_text_pdf(tmp_path / "f.pdf", 1, seed=32)))["document"]["id"]
    await alice.svc.importer.drain()
    monkeypatch.undo()
    open_sid = (await alice.initiate(len(small_pdf), client_id="alice_tab"))["session_id"]
    assert (await alice.chunk(open_sid, 0, small_pdf[:CS])).status_code == 200

    tried: set[tuple[str, str]] = set()

    async def as_bob(method: str, template: str, **kw: Any) -> Any:
        tried.add((method, template))
        path = template.replace("{session_id}", open_sid).replace("{doc_id}", str(doc_id))
        return await bob.http.request(method, path, **kw)

    S = "/api/documents/streaming"
    for method, template, kw in [
        ("POST", f"{S}/complete/{{session_id}}", {}),
        ("POST", f"{S}/cancel/{{session_id}}", {"json": {"reason": "bob was here"}}),
        ("POST", f"{S}/resume", {"json": {"session_id": open_sid, "client_id": "bob_tab"}}),
        ("GET", "/api/documents/{doc_id}", {}),
        ("GET", "/api/documents/{doc_id}/file", {}),
        ("DELETE", "/api/documents/{doc_id}", {}),
        ("POST", "/api/documents/{doc_id}/reimport", {}),
    ]:
        envelope(await as_bob(method, template, **kw), "not_found", 404)
    tried.add(("POST", f"{S}/chunk/{{session_id}}"))
    envelope(await bob.chunk(open_sid, 1, small_pdf[CS:2 * CS]), "not_found", 404)
    envelope(await bob.http.post(f"/api/documents/{failed_id}/reimport"), "not_found", 404)

    # the lists are Bob's own: empty, while Alice's hold her things
    for template, alices in [(f"{S}/resumable", [open_sid]), ("/api/documents", [failed_id, doc_id]),
                             ("/api/documents/import-failures", [failed_id])]:
        r = await as_bob("GET", template)
        assert r.status_code == 200 and r.json() == [], (template, r.text)
        mine = (await alice.http.get(template)).json()
        assert [x.get("session_id") or x.get("document_id") or x.get("id") for x in mine] == alices, template
    word = page_word(31, 1, 0)
    r = await as_bob("GET", "/api/documents/search", params={"q": word})
    assert r.status_code == 200 and r.json()["hits"] == []
    assert (await alice.http.get("/api/documents/search", params={"q": word})).json()["hits"][0]["document_id"] == doc_id

    # not owner data: the policy and the server's memory figures are the same for anyone
    for template in ("/files/security/config", "/api/documents/security/config", f"{S}/memory-stats"):
        assert (await as_bob("GET", template)).status_code == 200
    tried.add(("POST", f"{S}/initiate"))
    bob_sid = (await bob.initiate(len(small_pdf)))["session_id"]
    envelope(await alice.http.post(f"{S}/cancel/{bob_sid}"), "not_found", 404)

    # every API route of the schema was tried as Bob
    schema = owners.app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in schema.items() if p not in OPEN for m in ops}
    assert routes - tried == set()

    # and nothing of Alice's moved
    resumed = (await alice.http.post(f"{S}/resume", json={"session_id": open_sid})).json()
    assert resumed["uploaded_chunks"] == [0] and resumed["client_id"] != "bob_tab"
    assert (await alice.http.get(f"/api/documents/{doc_id}/file")).content == text


async def test_dedup_never_reveals_another_owners_file(owners: Owners, tmp_path: Path) -> None:
    data = make_text_pdf(tmp_path / "same.pdf", 1, seed=33)
    sha = hashlib.sha256(data).hexdigest()
    alice_doc = (await owners.alice.upload(data, expected_hash=sha))["document"]
    # Alice again: told at once
    r = await owners.alice.http.post("/api/documents/streaming/initiate",
                                     json={"filename": "x.pdf", "file_size": len(data), "expected_hash": sha})
    assert envelope(r, "duplicate_document", 409)["document"]["id"] == alice_doc["id"]
    # Bob with the same bytes: an upload like any other, a document of his own
    bob = await owners.bob.upload(data, expected_hash=sha, filename="bob.pdf")
    assert bob["duplicate"] is False and bob["document"]["id"] != alice_doc["id"]
    assert bob["document"]["filename"] == "bob.pdf"
    # Alice deleting hers leaves Bob's bytes alone (the blob is shared, invisibly)
    assert (await owners.alice.http.delete(f"/api/documents/{alice_doc['id']}")).status_code == 200
    r = await owners.bob.http.get(f"/api/documents/{bob['document']['id']}/file")
    assert r.status_code == 200 and r.content == data


def _chunk(client: TestClient, key: str, sid: str, i: int, data: bytes) -> None:
    r = client.post(f"/api/documents/streaming/chunk/{sid}", headers=auth(key),
                    data={"chunk_id": str(i), "checksum": hashlib.sha256(data).hexdigest()},
                    files={"file": ("b", data)})
    assert r.status_code == 200, r.text


def test_websocket_events_and_rooms_stay_with_their_owner(keyed_settings: Settings, small_pdf: bytes) -> None:
    """Bob connects with Alice's very client id and tries to join her room: he hears
    nothing of her upload (a ping answered first proves no event was queued before it)."""
    with TestClient(create_app(keyed_settings)) as client:
        s = client.post("/api/documents/streaming/initiate", headers=auth(ALICE_KEY),
                        json={"filename": "a.pdf", "file_size": len(small_pdf), "client_id": "shared_tab"}).json()
        sid, cs = s["session_id"], s["chunk_size"]
        with client.websocket_connect(f"/ws/shared_tab?token={ALICE_KEY}") as alice_ws, \
                client.websocket_connect("/ws/shared_tab", headers=auth(BOB_KEY)) as bob_ws, \
                client.websocket_connect(f"/ws/bob_watch?token={BOB_KEY}") as bob_watch:
            for action in ("join_upload_room", "leave_upload_room"):
                bob_watch.send_json({"type": action, "session_id": sid})
                refused = bob_watch.receive_json()
                assert (refused["type"], refused["error"]) == ("error", "not_found")
            bob_watch.send_json({"type": "join_upload_room", "session_id": sid})
            assert bob_watch.receive_json()["error"] == "not_found"
            for i in range(s["total_chunks"]):
                _chunk(client, ALICE_KEY, sid, i, small_pdf[i * cs:(i + 1) * cs])
            assert client.post(f"/api/documents/streaming/complete/{sid}", headers=auth(ALICE_KEY)).status_code == 200
            events = []
            while not events or events[-1].get("status") != "completed":
                events.append(alice_ws.receive_json())
            assert {e["type"] for e in events} >= {"upload_progress", "chunk_progress", "upload_status"}
            for ws in (bob_ws, bob_watch):
                ws.send_json({"type": "ping"})
                assert ws.receive_json() == {"type": "pong"}
