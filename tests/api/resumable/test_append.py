"""draft-ietf-httpbis-resumable-upload-11, "Upload Append" (and "Media Type
application/partial-upload", "Integrity Digests"), server side: one test per MUST and SHOULD."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.api.resumable.conftest import INTEROP, PARTIAL, PROBLEM, append, asgi_app, create_url, pieces_of, raw
from tests.conftest import Api, envelope
from tests.security_corpus import build_corpus


async def test_append_applies_a_patch_with_partial_upload(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await append(api, url, pdf[1000:5000], 1000)
    assert r.status_code == 204 and r.headers["upload-offset"] == "5000"


async def test_append_other_media_types_are_refused(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await api.http.patch(url, content=pdf[1000:2000], headers={
        "Content-Type": "application/offset+octet-stream", "Upload-Offset": "1000", "Upload-Complete": "?0"})
    assert r.status_code == 415 and r.headers["accept-patch"] == PARTIAL
    assert (await api.http.head(url)).headers["upload-offset"] == "1000"


async def test_append_must_indicate_the_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await api.http.patch(url, content=pdf[1000:2000], headers={"Content-Type": PARTIAL, "Upload-Complete": "?0"})
    envelope(r, "invalid_request", 400)
    r = await append(api, url, pdf[1000:2000], 1000, headers={"Upload-Offset": "-1"})  # not an sf-integer
    envelope(r, "invalid_request", 400)


async def test_append_must_include_upload_complete(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await api.http.patch(url, content=pdf[1000:2000], headers={"Content-Type": PARTIAL, "Upload-Offset": "1000"})
    envelope(r, "invalid_request", 400)


async def test_append_complete_true_must_answer_upload_complete_true(api: Api, pdf: bytes) -> None:
    """... and the response the creation's target would have given: the document."""
    url = await create_url(api, pdf[:1000])
    r = await append(api, url, pdf[1000:], 1000, complete=True)
    assert r.status_code == 200 and r.headers["upload-complete"] == "?1"
    assert r.json()["document"]["sha256"] == hashlib.sha256(pdf).hexdigest()


async def test_append_complete_false_answers_2xx_with_upload_complete_false(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await append(api, url, pdf[1000:2000], 1000)
    assert 200 <= r.status_code < 300 and r.headers["upload-complete"] == "?0"


async def test_append_with_no_content_completes_the_upload(api: Api, pdf: bytes) -> None:
    """Every byte sent with ?0: not complete (offset == length is not completeness) until
    an empty append says ?1."""
    url = await create_url(api, pdf, **{"Upload-Length": str(len(pdf))})
    head = await api.http.head(url)
    assert head.headers["upload-offset"] == head.headers["upload-length"] and head.headers["upload-complete"] == "?0"
    r = await append(api, url, b"", len(pdf), complete=True)
    assert r.status_code == 200 and r.headers["upload-complete"] == "?1"


async def test_append_must_record_the_length_from_upload_length(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await append(api, url, pdf[1000:2000], 1000, headers={"Upload-Length": str(len(pdf))})
    assert r.status_code == 204 and r.headers["upload-length"] == str(len(pdf))
    assert (await api.http.head(url)).headers["upload-length"] == str(len(pdf))


async def test_append_must_prevent_the_offset_from_exceeding_the_length(api: Api, pdf: bytes) -> None:
    """A body without Content-Length that runs past the length: refused, and the upload is
    invalid from then on."""
    url = await create_url(api, pdf[:1000], **{"Upload-Length": "3000"})

    async def too_long() -> AsyncIterator[bytes]:
        yield pdf[1000:2500]
        yield pdf[2500:4000]

    r = await api.http.patch(url, content=too_long(), headers={
        "Content-Type": PARTIAL, "Upload-Offset": "1000", "Upload-Complete": "?0"})
    assert r.status_code == 400 and r.json()["type"] == PROBLEM + "inconsistent-upload-length"
    assert (await api.http.head(url)).status_code == 404
    assert (await append(api, url, pdf[1000:3000], 1000)).status_code == 404


async def test_append_interrupted_should_append_as_much_as_possible(api: Api, small_pdf: bytes) -> None:
    """Starting at its beginning and without discontinuities; the upload is not complete."""
    url = await create_url(api, small_pdf[:1000])
    headers = {**INTEROP, "Content-Type": PARTIAL, "Upload-Offset": "1000", "Upload-Complete": "?1",
               "Content-Length": str(len(small_pdf) - 1000)}
    await raw(asgi_app(api), "PATCH", url, headers, pieces_of(small_pdf[1000:4_000_000], 64 << 10))
    head = await api.http.head(url)
    offset = int(head.headers["upload-offset"])
    assert 1000 < offset <= 4_000_000 and head.headers["upload-complete"] == "?0"
    r = await append(api, url, small_pdf[offset:], offset, complete=True)
    assert r.status_code == 200 and r.json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_content_digest_mismatch_should_not_append_the_content(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    r = await append(api, url, pdf[1000:2000], 1000, headers={"Content-Digest": f"sha-256=:{wrong}:"})
    envelope(r, "checksum_mismatch", 400)
    assert (await api.http.head(url)).headers["upload-offset"] == "1000"
    right = base64.b64encode(hashlib.sha256(pdf[1000:2000]).digest()).decode()
    r = await append(api, url, pdf[1000:2000], 1000, headers={"Content-Digest": f"sha-256=:{right}:"})
    assert r.status_code == 204 and r.headers["upload-offset"] == "2000"


async def test_append_a_refused_file_answers_upload_complete_true(api: Api, tmp_path: Path) -> None:
    """The server's verdict on the file (422 security_rejected, the API.md envelope) is
    the target's response: the client is told not to resume."""
    data = build_corpus(tmp_path)["js_open_action"].path.read_bytes()
    url = await create_url(api, b"", **{"Upload-Length": str(len(data))})
    r = await append(api, url, data, 0, complete=True)
    body = envelope(r, "security_rejected", 422)
    assert body["findings"] and r.headers["upload-complete"] == "?1"


async def test_append_not_a_pdf_is_refused_with_upload_complete_true(api: Api) -> None:
    url = await create_url(api, b"")
    r = await append(api, url, b"GIF89a" + bytes(4000), 0)
    envelope(r, "not_a_pdf", 415)
    assert r.headers["upload-complete"] == "?1"
