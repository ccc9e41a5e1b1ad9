"""tus 1.0.0, Creation and Creation With Upload (protocol.md "Creation", "Creation With
Upload"): one test per MUST and SHOULD, named after the section. Upload-Defer-Length is
creation-defer-length's, in test_creation_defer_length.py."""

from __future__ import annotations

import hashlib

from tests.api.tus.conftest import H, STREAM, b64, create, metadata, offset_of, patch
from tests.conftest import Api

# -- Creation -----------------------------------------------------------------------------


async def test_creation_must_be_in_tus_extension(api: Api) -> None:
    assert "creation" in (await api.http.options("/files/")).headers["tus-extension"].split(",")


async def test_creation_post_must_answer_201_with_location(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location.startswith("/files/")  # relative: allowed
    assert (await api.http.head(location, headers=H)).status_code == 200


async def test_creation_upload_defer_length_must_be_omitted_when_the_length_is_known(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    assert "upload-defer-length" not in (await api.http.head(r.headers["location"], headers=H)).headers


async def test_creation_post_to_the_endpoint_without_its_slash(api: Api, pdf: bytes) -> None:
    """protocol.md's examples POST to ``/files``: answered there, not redirected to
    ``/files/`` (tus-js-client in Node does not follow a 307)."""
    r = await api.http.post("/files", headers={**H, "Upload-Length": str(len(pdf)), "Upload-Metadata": metadata()})
    assert r.status_code == 201 and r.headers["location"].startswith("/files/"), r.status_code
    r = await api.http.options("/files")
    assert r.status_code == 204 and "creation" in r.headers["tus-extension"]


async def test_creation_new_upload_has_implicit_offset_0(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    assert await offset_of(api, r.headers["location"]) == 0


async def test_creation_post_must_include_upload_length(api: Api) -> None:
    r = await api.http.post("/files/", headers={**H, "Upload-Metadata": metadata()})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_creation_upload_length_over_tus_max_size_must_be_413(api: Api) -> None:
    too_big = api.svc.settings.max_file_size + 1
    r = await create(api, too_big)
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    assert (await create(api, too_big - 1)).status_code == 201


async def test_creation_upload_length_0_is_refused_as_no_pdf(api: Api) -> None:
    """Deviation, on purpose: protocol.md lets a client create an empty upload, complete at
    once. An empty file is no PDF, and this server stores only PDFs, so it is refused (400)
    rather than created and left unfinishable."""
    r = await create(api, 0)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_creation_upload_metadata_must_be_in_head_as_sent(api: Api, pdf: bytes) -> None:
    meta = metadata(filename="résumé.pdf", filetype="application/pdf", title="A title")
    r = await create(api, len(pdf), meta=meta + ",is_confidential")
    head = await api.http.head(r.headers["location"], headers=H)
    pairs = dict((p.split(" ") + [""])[:2] for p in head.headers["upload-metadata"].split(","))
    assert pairs["filename"] == b64("résumé.pdf") and pairs["filetype"] == b64("application/pdf")
    assert pairs["title"] == b64("A title") and "is_confidential" in pairs


async def test_creation_upload_metadata_malformed_is_refused(api: Api, pdf: bytes) -> None:
    """Keys unique and without spaces, values base64: anything else is a 400."""
    for bad in (metadata() + ",filename " + b64("b.pdf"), metadata() + ",title not-base64!",
                metadata() + ",title " + b64("a") + " extra"):
        r = await create(api, len(pdf), meta=bad)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad


async def test_creation_upload_metadata_should_be_sanitized_against_header_smuggling(api: Api, pdf: bytes) -> None:
    """A value with CR LF in it comes back base64, never as a header of its own."""
    r = await create(api, len(pdf), meta=metadata(title="x\r\nX-Smuggled: 1\r\n"))
    head = await api.http.head(r.headers["location"], headers=H)
    assert "x-smuggled" not in head.headers and "\n" not in head.headers["upload-metadata"]
    assert b64("x\r\nX-Smuggled: 1\r\n") in head.headers["upload-metadata"]


async def test_creation_client_must_upload_with_the_core_protocol(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    r = await patch(api, r.headers["location"], pdf, 0)
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(pdf))


# -- Creation With Upload -----------------------------------------------------------------


async def test_creation_with_upload_must_be_in_tus_extension_with_creation(api: Api) -> None:
    extensions = (await api.http.options("/files/")).headers["tus-extension"].split(",")
    assert "creation-with-upload" in extensions and "creation" in extensions


async def test_creation_with_upload_must_answer_upload_offset(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf), body=pdf[:5000])
    assert r.status_code == 201 and r.headers["upload-offset"] == "5000", r.text
    assert await offset_of(api, r.headers["location"]) == 5000
    r = await patch(api, r.headers["location"], pdf[5000:], 5000)
    assert r.status_code == 204 and "upload-document-id" in r.headers


async def test_creation_with_upload_the_whole_file_is_stored_at_once(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf), body=pdf)
    assert r.status_code == 201 and r.headers["upload-offset"] == str(len(pdf))
    doc = (await api.http.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["sha256"] == hashlib.sha256(pdf).hexdigest()


async def test_creation_with_upload_must_send_offset_octet_stream(api: Api, pdf: bytes) -> None:
    """Without ``Content-Type: application/offset+octet-stream`` the body is not upload data."""
    r = await api.http.post("/files/", content=pdf[:5000], headers={
        **H, "Upload-Length": str(len(pdf)), "Upload-Metadata": metadata(), "Content-Type": "application/pdf"})
    assert r.status_code == 201 and "upload-offset" not in r.headers
    assert await offset_of(api, r.headers["location"]) == 0


async def test_creation_with_upload_not_a_pdf_is_refused_with_its_status(api: Api, pdf: bytes) -> None:
    """The rules of PATCH apply to the body of the POST: the header check's 415."""
    r = await create(api, len(pdf), body=b"GIF89a" + bytes(5000))
    assert r.status_code == 415 and r.json()["error"] == "not_a_pdf"
    assert not [lv for lv in api.svc.sessions.live.values() if lv.session.unfinished], \
        "a refused creation-with-upload leaves no upload behind: the client never learnt its URL"


async def test_creation_with_upload_checksum_mismatch_leaves_no_orphan(api: Api, pdf: bytes) -> None:
    """A POST whose body fails its checksum (460): the client never got a Location and
    will POST again, so the upload it started is removed rather than left holding a slot."""
    r = await create(api, len(pdf), body=pdf[:5000], headers={"Upload-Checksum": "sha1 " + b64(bytes(20))})
    assert r.status_code == 460
    assert not [lv for lv in api.svc.sessions.live.values() if lv.session.unfinished]
