"""tus 1.0.0 at /files/, end to end in process: create, append in pieces with checksums,
an offset mismatch, a checksum mismatch, the last PATCH storing the document."""

from __future__ import annotations

import base64
import hashlib

from tests.conftest import Api

H = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}


def sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


async def test_a_tus_upload_from_creation_to_document(api: Api, small_pdf: bytes) -> None:
    c = api.http
    meta = "filename " + base64.b64encode(b"report.pdf").decode()
    r = await c.post("/files/", headers={**H, "Upload-Length": str(len(small_pdf)), "Upload-Metadata": meta})
    assert r.status_code == 201 and r.headers["tus-resumable"] == "1.0.0", r.text
    url = r.headers["location"]
    offset = 0
    for size in (1000, 200_000):
        part = small_pdf[offset:offset + size]
        r = await c.patch(url, content=part, headers={**H, **STREAM, "Upload-Offset": str(offset),
                                                      "Upload-Checksum": sha1(part)})
        assert r.status_code == 204, r.text
        offset = int(r.headers["upload-offset"])
    assert offset == 201_000
    r = await c.patch(url, content=b"x", headers={**H, **STREAM, "Upload-Offset": "7"})
    assert r.status_code == 409 and r.json()["error"] == "offset_mismatch" and r.json()["offset"] == offset
    r = await c.patch(url, content=small_pdf[offset:offset + 10],
                      headers={**H, **STREAM, "Upload-Offset": str(offset), "Upload-Checksum": sha1(b"other")})
    assert r.status_code == 460
    assert (await c.head(url, headers=H)).headers["upload-offset"] == str(offset)  # the bytes were discarded
    r = await c.patch(url, content=small_pdf[offset:], headers={**H, **STREAM, "Upload-Offset": str(offset)})
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(small_pdf))
    doc = (await c.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest() and doc["filename"] == "report.pdf"
    assert (await c.head(url)).status_code == 412
