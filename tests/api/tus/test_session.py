"""What this project promises of a tus upload beyond protocol.md: it is a session like
the chunk API's (issue 14, "A tus upload is a session like any other"). Metadata
``filename`` required; ``client_id`` joins the WebSocket room; ``expected_hash`` checked;
the PDF header check (415) and the streaming scan (422, on the PATCH that reveals it);
a line in ``/resumable``; ``Upload-Document-Id`` on the last PATCH; dedup; the rate
limit on creation; API keys."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings
from tests.api.conftest import Owners
from tests.api.test_limits import fake_clock
from tests.api.tus.conftest import H, STREAM, b64, create, create_url, metadata, offset_of, patch
from tests.conftest import MIB, Api, envelope
from tests.hostile_corpus import javascript_at_the_end
from tests.security_corpus import SPLIT_AT, Sample, session_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return session_corpus(tmp_path_factory)


async def test_session_filename_is_required(api: Api, pdf: bytes) -> None:
    for meta in ("", "title " + b64("no name"), "filename"):  # none, another key, an empty name
        r = await create(api, len(pdf), meta=meta)
        assert envelope(r, "invalid_request", 400)["message"], meta
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []


async def test_session_last_patch_names_the_document(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf), title="Quarterly")
    r = await patch(api, url, pdf[:1000], 0)
    assert "upload-document-id" not in r.headers
    r = await patch(api, url, pdf[1000:], 1000)
    doc_id = int(r.headers["upload-document-id"])
    listed = {d["id"]: d for d in (await api.http.get("/api/documents")).json()}
    assert listed[doc_id]["filename"] == "tus.pdf" and listed[doc_id]["sha256"] == hashlib.sha256(pdf).hexdigest()
    head = await api.http.head(url, headers=H)  # and HEAD says so afterwards
    assert head.headers["upload-document-id"] == str(doc_id)


async def test_session_same_content_twice_is_a_duplicate(api: Api, pdf: bytes) -> None:
    first = await create(api, len(pdf), body=pdf)
    again = await create(api, len(pdf), body=pdf)
    assert again.status_code == 201 and again.headers["upload-duplicate"] == "true"
    assert again.headers["upload-document-id"] == first.headers["upload-document-id"]


async def test_session_is_listed_in_resumable(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf), filename="half.pdf")
    await patch(api, url, pdf[:100_000], 0)
    items = (await api.http.get("/api/documents/streaming/resumable")).json()
    assert [i["session_id"] for i in items] == [url.rsplit("/", 1)[-1]]
    assert items[0]["filename"] == "half.pdf" and items[0]["total_size"] == len(pdf)


async def test_session_expected_hash_is_checked(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf), meta=metadata(expected_hash="not-hex"))
    envelope(r, "invalid_request", 400)
    url = await create_url(api, len(pdf), expected_hash=hashlib.sha256(b"another file").hexdigest())
    r = await patch(api, url, pdf, 0)
    assert envelope(r, "integrity_failed", 422)
    url = await create_url(api, len(pdf), expected_hash=hashlib.sha256(pdf).hexdigest().upper())
    r = await patch(api, url, pdf, 0)
    assert r.status_code == 204 and "upload-document-id" in r.headers, r.text


async def test_session_not_a_pdf_is_refused_415_with_the_envelope(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    r = await patch(api, url, b"GIF89a" + bytes(4000), 0)
    envelope(r, "not_a_pdf", 415)
    assert await offset_of(api, url) == 0  # not kept; as with the chunk API, the right bytes may follow
    assert (await api.http.get("/api/documents")).json() == []
    r = await patch(api, url, pdf, 0)
    assert r.status_code == 204 and "upload-document-id" in r.headers, r.text


async def test_session_javascript_is_refused_on_the_patch_that_reveals_it(
        api: Api, corpus: dict[str, Sample]) -> None:
    """``/JavaScript`` starts 5 bytes before 2 MiB: the PATCH that brings the scan past
    it is refused 422 with the findings, and nothing is accepted after it. (The streaming
    scan reads in blocks: a PATCH that ends a few KB past the keyword may still pass, the
    next one is refused; 64 KiB past it is always enough.)"""
    data = corpus["split_keyword"].path.read_bytes()
    data += b"\n" * (3 * 2 * MIB - len(data))  # a third MiB-sized part that is never needed
    cut = SPLIT_AT + (64 << 10)
    url = await create_url(api, len(data))
    r = await patch(api, url, data[:SPLIT_AT - 100], 0)
    assert r.status_code == 204, r.text
    r = await patch(api, url, data[SPLIT_AT - 100:cut], SPLIT_AT - 100)
    body = envelope(r, "security_rejected", 422)
    assert any(f["kind"] == "javascript" for f in body["findings"]), body
    r = await patch(api, url, data[cut:], cut)
    assert r.status_code in (404, 409, 410, 422) and "upload-document-id" not in r.headers
    head = await api.http.head(url, headers=H)
    assert head.status_code == 422 and "upload-offset" not in head.headers
    assert not (api.svc.settings.partial_dir / f"{url.rsplit('/', 1)[-1]}.part").exists()
    assert (await api.http.get("/api/documents")).json() == []


async def test_session_javascript_in_the_last_kib_is_refused_on_the_last_patch(api: Api, tmp_path: Path) -> None:
    data = javascript_at_the_end(tmp_path / "js.pdf").read_bytes()
    at = data.index(b"/JavaScript")
    url = await create_url(api, len(data))
    assert (await patch(api, url, data[:at], 0)).status_code == 204
    r = await patch(api, url, data[at:], at)
    assert envelope(r, "security_rejected", 422)["findings"]
    assert "upload-document-id" not in r.headers
    assert (await api.http.get("/api/documents")).json() == []


def test_session_client_id_joins_the_websocket_room(settings: Settings, small_pdf: bytes) -> None:
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect("/ws/tab7") as ws:
            r = client.post("/files/", headers={**H, "Upload-Length": str(len(small_pdf)),
                                                "Upload-Metadata": metadata(client_id="tab7")})
            url = r.headers["location"]
            for start, end in ((0, 2 * MIB), (2 * MIB, len(small_pdf))):
                r = client.patch(url, content=small_pdf[start:end], headers={**STREAM, "Upload-Offset": str(start)})
                assert r.status_code == 204, r.text
            events: list[dict[str, Any]] = []
            while not events or events[-1].get("status") != "completed":
                events.append(ws.receive_json())
    progress = [e["data"] for e in events if e["type"] == "upload_progress"]
    assert progress and progress[-1]["progress_percentage"] == 100.0
    assert all(e.get("session_id", url.rsplit("/", 1)[-1]) == url.rsplit("/", 1)[-1] for e in events)


async def test_session_creation_is_rate_limited_with_retry_after(owners: Owners, pdf: bytes) -> None:
    """The owner's burst (10) then 429 with Retry-After, like the chunk API's initiate."""
    fake_clock(owners.alice)
    for _ in range(10):
        assert (await create(owners.alice, len(pdf))).status_code == 201
    r = await create(owners.alice, len(pdf))
    assert envelope(r, "rate_limited", 429) and r.headers["retry-after"] == "10"
    assert r.headers["tus-resumable"] == "1.0.0"


async def test_session_api_keys_are_required(owners: Owners, pdf: bytes) -> None:
    url = await create_url(owners.alice, len(pdf))
    anon = owners.anon
    r = await anon.post("/files/", headers={**H, "Upload-Length": "100", "Upload-Metadata": metadata()})
    envelope(r, "unauthorized", 401)
    assert (await anon.head(url, headers=H)).status_code == 401
    envelope(await anon.patch(url, content=pdf[:10], headers={**STREAM, "Upload-Offset": "0"}), "unauthorized", 401)
    envelope(await anon.delete(url, headers=H), "unauthorized", 401)
    assert (await anon.options("/files/")).status_code == 204  # feature detection needs no key
    # another owner's key does not reach the upload
    assert (await owners.bob.http.head(url, headers=H)).status_code == 404
    assert (await patch(owners.bob, url, pdf[:10], 0)).status_code == 404
    assert await offset_of(owners.alice, url) == 0


async def test_session_active_uploads_cap_is_429_with_retry_after(api: Api, pdf: bytes) -> None:
    """The cap on active uploads (5 by default) counts tus uploads like any; a terminated
    one frees its place."""
    urls = [(await create(api, len(pdf), body=pdf[:2000])).headers["location"] for _ in range(5)]
    r = await create(api, len(pdf), body=pdf[:2000])
    assert envelope(r, "too_many_uploads", 429) and int(r.headers["retry-after"]) > 0
    assert (await api.http.delete(urls[0], headers=H)).status_code == 204
    assert (await create(api, len(pdf), body=pdf[:2000])).status_code == 201


async def test_session_filename_is_sanitized(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf), meta=metadata(filename="../../x/..\\evil\x00.pdf"), body=pdf)
    doc = (await api.http.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["filename"] == "evil.pdf"
