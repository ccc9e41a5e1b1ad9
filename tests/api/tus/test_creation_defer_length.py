"""tus creation-defer-length: the length comes with a later PATCH."""

from __future__ import annotations

import base64
import hashlib

from tests.conftest import Api

H = {"Tus-Resumable": "1.0.0"}
STREAM = {**H, "Content-Type": "application/offset+octet-stream"}
META = "filename " + base64.b64encode(b"later.pdf").decode()


async def _create_deferred(api: Api) -> str:
    r = await api.http.post("/files/", headers={**H, "Upload-Defer-Length": "1", "Upload-Metadata": META})
    assert r.status_code == 201, r.text
    return r.headers["location"]


async def test_options_lists_creation_defer_length(api: Api) -> None:
    r = await api.http.options("/files/")
    assert "creation-defer-length" in r.headers["tus-extension"].split(",")


async def test_head_must_say_upload_defer_length_until_the_length_is_known(api: Api, small_pdf: bytes) -> None:
    url = await _create_deferred(api)
    r = await api.http.head(url, headers=H)
    assert r.headers["upload-defer-length"] == "1" and "upload-length" not in r.headers
    r = await api.http.patch(url, content=small_pdf[:3_000_000], headers={**STREAM, "Upload-Offset": "0"})
    assert r.status_code == 204 and r.headers["upload-offset"] == "3000000"
    assert "upload-document-id" not in r.headers  # not the end: the length is not known
    r = await api.http.patch(url, content=small_pdf[3_000_000:],
                             headers={**STREAM, "Upload-Offset": "3000000", "Upload-Length": str(len(small_pdf))})
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(small_pdf))
    doc = (await api.http.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest() and doc["file_size"] == len(small_pdf)
    head = await api.http.head(url, headers=H)
    assert head.headers["upload-length"] == str(len(small_pdf)) and "upload-defer-length" not in head.headers


async def test_the_length_may_come_after_every_byte(api: Api, small_pdf: bytes) -> None:
    url = await _create_deferred(api)
    r = await api.http.patch(url, content=small_pdf, headers={**STREAM, "Upload-Offset": "0"})
    assert r.status_code == 204 and "upload-document-id" not in r.headers
    r = await api.http.patch(url, content=b"", headers={**STREAM, "Upload-Offset": str(len(small_pdf)),
                                                         "Upload-Length": str(len(small_pdf))})
    assert r.status_code == 204 and "upload-document-id" in r.headers, r.text


async def test_a_length_shorter_than_what_was_sent_or_changed_is_refused(api: Api, small_pdf: bytes) -> None:
    url = await _create_deferred(api)
    await api.http.patch(url, content=small_pdf[:1_000_000], headers={**STREAM, "Upload-Offset": "0"})
    r = await api.http.patch(url, content=b"", headers={**STREAM, "Upload-Offset": "1000000", "Upload-Length": "10"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await api.http.patch(url, content=b"", headers={**STREAM, "Upload-Offset": "1000000",
                                                         "Upload-Length": str(len(small_pdf))})
    assert r.status_code == 204
    r = await api.http.patch(url, content=b"", headers={**STREAM, "Upload-Offset": "1000000",
                                                         "Upload-Length": str(len(small_pdf) + 1)})
    assert r.status_code == 400


async def test_defer_length_and_upload_length_together_are_refused(api: Api) -> None:
    r = await api.http.post("/files/", headers={**H, "Upload-Defer-Length": "1", "Upload-Length": "10",
                                                "Upload-Metadata": META})
    assert r.status_code == 400
