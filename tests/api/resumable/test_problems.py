"""draft-ietf-httpbis-resumable-upload-11, "Problem Types" (RFC 9457 documents, which here
also carry the API.md envelope) and the refusals that use them."""

from __future__ import annotations

import httpx

from tests.api.resumable.conftest import PROBLEM, append, create, create_url
from tests.conftest import Api


def problem(r: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + kind and isinstance(body["title"], str)
    assert body["success"] is False and isinstance(body["error"], str) and isinstance(body["message"], str)
    return dict(body)


async def test_mismatching_offset_must_be_409_with_the_correct_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await append(api, url, pdf[2000:3000], 2000)
    body = problem(r, 409, "mismatching-upload-offset")
    assert r.headers["upload-offset"] == "1000" and r.headers["upload-complete"] == "?0"
    assert body["error"] == "offset_mismatch"
    assert (await api.http.head(url)).headers["upload-offset"] == "1000"  # nothing appended


async def test_mismatching_offset_should_populate_expected_and_provided_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    body = problem(await append(api, url, pdf[:1000], 0), 409, "mismatching-upload-offset")
    assert body["expected-offset"] == 1000 and body["provided-offset"] == 0


async def test_inconsistent_length_creation_upload_length_and_content_length_must_match(
        api: Api, pdf: bytes) -> None:
    r = await create(api, pdf, complete=True, headers={"Upload-Length": str(len(pdf) + 1)})
    problem(r, 400, "inconsistent-upload-length")
    assert r.headers["upload-complete"] == "?0"
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []  # nothing created


async def test_inconsistent_length_values_of_several_requests_must_match(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000], **{"Upload-Length": str(len(pdf))})
    r = await append(api, url, pdf[1000:2000], 1000, headers={"Upload-Length": str(len(pdf) - 1)})
    problem(r, 400, "inconsistent-upload-length")
    r = await append(api, url, pdf[1000:2000], 1000, complete=True)  # ?1 with Content-Length: 2000 != length
    problem(r, 400, "inconsistent-upload-length")
    assert (await api.http.head(url)).headers["upload-offset"] == "1000"


async def test_inconsistent_length_a_length_shorter_than_the_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:5000])
    problem(await append(api, url, b"", 5000, headers={"Upload-Length": "4000"}), 400, "inconsistent-upload-length")


async def test_completed_upload_a_non_empty_append_is_an_inconsistent_length(api: Api, pdf: bytes) -> None:
    """draft 11: the server MUST NOT modify a completed upload and MUST reject the request."""
    url = (await create(api, pdf, complete=True)).headers["location"]
    r = await append(api, url, b"more", len(pdf), complete=True)
    problem(r, 400, "inconsistent-upload-length")
    assert r.headers["upload-document-id"]


async def test_completed_upload_an_empty_append_is_410_completed_upload(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf, complete=True)
    url, doc = r.headers["location"], r.headers["upload-document-id"]
    r = await append(api, url, b"", len(pdf), complete=True)
    problem(r, 410, "completed-upload")
    assert r.headers["upload-document-id"] == doc


async def test_problems_other_refusals_are_the_api_envelope(api: Api, pdf: bytes) -> None:
    r = await api.http.head("/uploads/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404
    r = await append(api, "/uploads/00000000-0000-4000-8000-000000000000", b"x", 0)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "not_found" and r.json()["success"] is False
