"""draft-ietf-httpbis-resumable-upload-11, "Upload Creation" (and "Length", "Completeness"),
server side: one test per MUST and SHOULD, plus our metadata (Content-Disposition,
X-Client-Id, X-Expected-Hash, Repr-Digest)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from backend.app import create_app
from backend.settings import temp_settings
from tests.api.resumable.conftest import INTEROP, NAME, append, asgi_app, create, pieces_of, raw
from tests.conftest import Api, envelope


async def test_creation_complete_true_the_server_processes_the_request_and_answers(api: Api, pdf: bytes) -> None:
    """Upload-Complete: ?1 and the whole body: the answer is the resource's (the document)."""
    r = await create(api, pdf, complete=True)
    assert r.status_code == 200, r.text
    assert r.headers["upload-complete"] == "?1"
    body = r.json()
    assert body["document"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert body["document"]["filename"] == "draft.pdf" and body["duplicate"] is False
    assert r.headers["upload-document-id"] == str(body["document"]["id"])
    download = await api.http.get(f"/api/documents/{body['document']['id']}/file")
    assert download.content == pdf


async def test_creation_complete_false_must_include_location_and_upload_limit(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf[:1000], headers={"Upload-Length": str(len(pdf))})
    assert r.headers["location"].startswith("/uploads/")
    assert "max-size=" in r.headers["upload-limit"]


async def test_creation_complete_false_servers_are_recommended_to_use_201(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf[:1000])
    assert r.status_code == 201, r.text


async def test_creation_should_include_upload_complete_in_the_response(api: Api, pdf: bytes) -> None:
    assert (await create(api, pdf[:1000])).headers["upload-complete"] == "?0"
    assert (await create(api, pdf, complete=True)).headers["upload-complete"] == "?1"


async def test_creation_the_request_content_can_be_empty(api: Api, pdf: bytes) -> None:
    """Careful creation: the URI first, every byte by append."""
    r = await create(api)
    assert r.status_code == 201 and r.headers["upload-offset"] == "0"
    r = await append(api, r.headers["location"], pdf, 0, complete=True)
    assert r.status_code == 200 and r.json()["document"]["sha256"] == hashlib.sha256(pdf).hexdigest()


async def test_creation_must_record_the_length_from_upload_length(api: Api, pdf: bytes) -> None:
    url = (await create(api, pdf[:1000], headers={"Upload-Length": str(len(pdf))})).headers["location"]
    assert (await api.http.head(url)).headers["upload-length"] == str(len(pdf))


async def test_creation_must_record_the_length_from_content_length_and_complete_true(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf, complete=True)
    head = await api.http.head(r.headers["location"])
    assert head.headers["upload-length"] == head.headers["upload-offset"] == str(len(pdf))


async def test_length_the_client_may_not_know_it_at_creation(api: Api, pdf: bytes) -> None:
    """No Upload-Length: the length is declared by the request that completes the upload."""
    r = await create(api, pdf[:50_000])
    assert r.status_code == 201 and "upload-length" not in r.headers
    url = r.headers["location"]
    assert "upload-length" not in (await api.http.head(url)).headers
    r = await append(api, url, pdf[50_000:], 50_000, complete=True)
    assert r.status_code == 200 and r.json()["document"]["file_size"] == len(pdf)


async def test_length_complete_true_without_any_length_is_the_whole_body(api: Api, pdf: bytes) -> None:
    """Upload-Complete: ?1, a chunked body and no length at all: the body's end is the length."""
    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(pdf), 40_000):
            yield pdf[i:i + 40_000]

    r = await api.http.post("/uploads/", content=chunked(), headers={**NAME, "Upload-Complete": "?1"})
    assert r.status_code == 200 and r.headers["upload-complete"] == "?1", r.text
    assert r.json()["document"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert (await api.http.head(r.headers["location"])).headers["upload-length"] == str(len(pdf))


async def test_creation_interrupted_should_append_as_much_as_possible(api: Api, small_pdf: bytes) -> None:
    """The client goes away after 3 MB: what arrived is kept (never more than was sent),
    the upload is not complete, and it resumes from HEAD's offset."""
    app = asgi_app(api)
    headers = {**INTEROP, **NAME, "Upload-Complete": "?1", "Upload-Length": str(len(small_pdf)),
               "Content-Length": str(len(small_pdf))}
    await raw(app, "POST", "/uploads/", headers, pieces_of(small_pdf[:3_000_000], 64 << 10))
    listed = (await api.http.get("/api/documents/streaming/resumable")).json()
    assert len(listed) == 1
    url = f"/uploads/{listed[0]['session_id']}"
    head = await api.http.head(url)
    offset = int(head.headers["upload-offset"])
    assert 0 < offset <= 3_000_000 and head.headers["upload-complete"] == "?0"
    r = await append(api, url, small_pdf[offset:], offset, complete=True)
    assert r.status_code == 200 and r.json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_creation_requires_upload_complete(api: Api, pdf: bytes) -> None:
    r = await api.http.post("/uploads/", content=pdf, headers=NAME)
    envelope(r, "invalid_request", 400)


async def test_completeness_other_values_must_cause_the_field_to_be_ignored(api: Api, pdf: bytes) -> None:
    r = await api.http.post("/uploads/", content=pdf, headers={**NAME, "Upload-Complete": "true"})
    envelope(r, "invalid_request", 400)  # ignored, hence missing


async def test_creation_content_disposition_names_the_file(api: Api, pdf: bytes) -> None:
    r = await api.http.post("/uploads/", content=pdf, headers={"Upload-Complete": "?1"})
    assert "Content-Disposition" in envelope(r, "invalid_request", 400)["message"]
    utf8 = {"Content-Disposition": "inline; filename=\"plain.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"}
    r = await create(api, pdf, complete=True, headers=utf8)
    assert r.status_code == 200 and r.json()["document"]["filename"] == "résumé.pdf"


async def test_creation_x_client_id_names_the_websocket_client(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf[:1000], headers={"X-Client-Id": "draft-client-1"})
    live = api.svc.sessions.live[r.headers["location"].rsplit("/", 1)[-1]]
    assert live.session.client_ids == ["draft-client-1"]
    envelope(await create(api, pdf[:1000], headers={"X-Client-Id": "not ok!"}), "invalid_request", 400)


async def test_creation_x_expected_hash_is_checked_when_the_upload_completes(api: Api, pdf: bytes) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = await create(api, pdf, complete=True, headers={"X-Expected-Hash": wrong})
    assert r.status_code == 422 and r.json()["error"] == "integrity_failed"
    assert r.headers["upload-complete"] == "?1"  # the verdict on the file: resuming cannot help
    right = hashlib.sha256(pdf).hexdigest()
    assert (await create(api, pdf, complete=True, headers={"X-Expected-Hash": right})).status_code == 200


async def test_repr_digest_sha256_is_the_expected_hash(api: Api, pdf: bytes) -> None:
    digest = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
    r = await create(api, pdf, complete=True, headers={"Repr-Digest": f"sha-256=:{digest}:"})
    assert r.status_code == 200, r.text
    bad = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    r = await create(api, pdf, complete=True, headers={"Repr-Digest": f"sha-256=:{bad}:"})
    assert r.status_code == 422 and r.json()["error"] == "integrity_failed"


async def test_creation_from_a_browser_cors_allows_and_exposes_the_draft_fields(tmp_path: Path) -> None:
    app = create_app(temp_settings(tmp_path / "cors", cors_origins="http://page.example"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            r = await http.options("/uploads/", headers={
                "Origin": "http://page.example", "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "upload-complete, upload-offset, content-disposition, x-client-id"})
            assert r.status_code == 200, r.text
            r = await http.post("/uploads/", headers={**NAME, "Upload-Complete": "?0", "Origin": "http://page.example"})
            exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
            assert {"location", "upload-complete", "upload-offset", "upload-limit"} <= exposed
