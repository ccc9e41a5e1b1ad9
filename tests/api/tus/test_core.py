"""tus 1.0.0, Core Protocol (protocol.md "Core Protocol"): one test per MUST and SHOULD
of its Headers and Requests sections, named after them; and X-HTTP-Method-Override,
the Tus-Resumable version rule, CORS for browsers (STREAMING_CORS_ORIGINS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import temp_settings
from tests.api.tus.conftest import H, STREAM, asgi_app, create, create_url, metadata, offset_of, patch, raw
from tests.conftest import Api


def _latin1(headers: dict[str, str]) -> dict[bytes, bytes]:
    """Header values as bytes, as they come off the wire (httpx sends str values as ASCII)."""
    return {k.encode(): v.encode("latin-1") for k, v in headers.items()}


# -- Headers ------------------------------------------------------------------------------


async def test_core_upload_offset_must_be_a_non_negative_integer(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    for bad in ("-1", "abc", "1.5", "", "\xb2"):  # "²": a digit to str.isdigit, not to int (it was a 500)
        r = await api.http.patch(url, content=pdf[:10], headers=_latin1({**STREAM, "Upload-Offset": bad}))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad
    assert await offset_of(api, url) == 0
    r = await patch(api, url, pdf[:10], 0)
    assert r.headers["upload-offset"] == "10"


async def test_core_upload_length_must_be_a_non_negative_integer(api: Api) -> None:
    for bad in ("-5", "ten", "1e3", "\xb9"):
        r = await api.http.post("/files/", headers=_latin1({**H, "Upload-Length": bad, "Upload-Metadata": metadata()}))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad


async def test_core_tus_version_must_list_the_supported_versions_by_preference(api: Api) -> None:
    r = await api.http.options("/files/")
    assert r.headers["tus-version"].split(",") == ["1.0.0"]


async def test_core_tus_resumable_must_be_in_every_response_except_options(api: Api, pdf: bytes) -> None:
    """On success and on every refusal: creation, HEAD, PATCH, 404s, 409s, 412s; and on
    OPTIONS too (allowed: only the request may leave it out)."""
    url = await create_url(api, len(pdf))
    answers = [
        await create(api, len(pdf)),
        await api.http.head(url, headers=H),
        await patch(api, url, pdf[:100], 0),
        await patch(api, url, pdf[:100], 0),  # 409
        await api.http.head("/files/00000000-0000-4000-8000-000000000000", headers=H),
        await api.http.head(url),  # 412
        await api.http.options("/files/"),
        await api.http.delete(url, headers=H),
    ]
    assert [r.status_code for r in answers] == [201, 200, 204, 409, 404, 412, 204, 204]
    assert all(r.headers["tus-resumable"] == "1.0.0" for r in answers)


async def test_core_tus_resumable_other_version_must_get_412_with_tus_version(api: Api) -> None:
    r = await api.http.post("/files/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "100",
                                                "Upload-Metadata": metadata()})
    assert r.status_code == 412 and r.headers["tus-version"] == "1.0.0"
    r = await api.http.post("/files/", headers={"Upload-Length": "100", "Upload-Metadata": metadata()})
    assert r.status_code == 412 and r.headers["tus-version"] == "1.0.0"  # no version at all: the same


async def test_core_tus_resumable_other_version_must_not_be_processed(api: Api, pdf: bytes) -> None:
    r = await api.http.post("/files/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "100",
                                                "Upload-Metadata": metadata()})
    assert r.status_code == 412 and "location" not in r.headers
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []
    url = await create_url(api, len(pdf))
    r = await api.http.patch(url, content=pdf[:100], headers={**STREAM, "Tus-Resumable": "0.2.2",
                                                              "Upload-Offset": "0"})
    assert r.status_code == 412 and "upload-offset" not in r.headers
    assert await offset_of(api, url) == 0
    assert (await api.http.delete(url, headers={"Tus-Resumable": "2.0.0"})).status_code == 412
    assert (await api.http.head(url, headers=H)).status_code == 200  # not terminated


async def test_core_tus_extension_must_list_the_supported_extensions(api: Api) -> None:
    r = await api.http.options("/files/")
    extensions = r.headers["tus-extension"].split(",")
    assert {"creation", "creation-with-upload", "expiration", "checksum", "termination"} <= set(extensions)
    assert all(e and e == e.strip() for e in extensions)
    assert "checksum-trailer" not in extensions and "concatenation-unfinished" not in extensions


async def test_core_tus_max_size_must_be_a_non_negative_integer_and_should_be_set(api: Api) -> None:
    r = await api.http.options("/files/")
    assert r.headers["tus-max-size"].isdigit()
    assert int(r.headers["tus-max-size"]) == api.svc.settings.max_file_size


async def test_core_x_http_method_override_must_be_interpreted_as_the_method(api: Api, pdf: bytes) -> None:
    """A POST that says it is a PATCH, a HEAD, a DELETE is one (the actual method is
    ignored): what tus-js-client sends with ``overridePatchMethod``."""
    url = await create_url(api, len(pdf))
    r = await api.http.post(url, content=pdf[:1000], headers={**STREAM, "Upload-Offset": "0",
                                                              "X-HTTP-Method-Override": "PATCH"})
    assert r.status_code == 204 and r.headers["upload-offset"] == "1000"
    r = await api.http.post(url, headers={**H, "X-HTTP-Method-Override": "HEAD"})
    assert r.status_code == 200 and r.headers["upload-offset"] == "1000"
    r = await api.http.post(url, headers={**H, "X-HTTP-Method-Override": "delete"})
    assert r.status_code == 204
    assert (await api.http.head(url, headers=H)).status_code == 404


async def test_core_x_http_method_override_is_honoured_on_post_only(api: Api, pdf: bytes) -> None:
    """Deviation, on purpose: protocol.md says the actual method MUST be ignored, but a
    GET (or HEAD) that turns itself into a PATCH or DELETE is how a cross-site link or
    image tag would change state. Clients use the header on POST (the spec's reason for
    it: an environment without PATCH or DELETE), so only a POST is overridden."""
    url = await create_url(api, len(pdf))
    r = await api.http.get(url, headers={**H, "X-HTTP-Method-Override": "DELETE"})
    assert r.status_code == 405
    assert (await api.http.head(url, headers=H)).status_code == 200


# -- Requests: HEAD -----------------------------------------------------------------------


async def test_core_head_must_include_upload_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    assert (await api.http.head(url, headers=H)).headers["upload-offset"] == "0"  # even if 0
    await patch(api, url, pdf[:5000], 0)
    assert (await api.http.head(url, headers=H)).headers["upload-offset"] == "5000"
    r = await patch(api, url, pdf[5000:], 5000)
    assert r.status_code == 204 and "upload-document-id" in r.headers, r.text
    r = await api.http.head(url, headers=H)  # or the upload is already completed
    assert r.status_code == 200 and r.headers["upload-offset"] == str(len(pdf))


async def test_core_head_must_include_upload_length_when_known(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    assert (await api.http.head(url, headers=H)).headers["upload-length"] == str(len(pdf))


async def test_core_head_not_found_should_be_404_410_or_403_without_upload_offset(api: Api) -> None:
    for path in ("/files/00000000-0000-4000-8000-000000000000", "/files/not-an-id", "/files/..%2Fetc"):
        r = await api.http.head(path, headers=H)
        assert r.status_code in (403, 404, 410) and "upload-offset" not in r.headers, (path, r.status_code)


async def test_core_head_should_answer_200_or_204(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    assert (await api.http.head(url, headers=H)).status_code in (200, 204)


async def test_core_head_must_send_cache_control_no_store(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    assert (await api.http.head(url, headers=H)).headers["cache-control"] == "no-store"


# -- Requests: PATCH ----------------------------------------------------------------------


async def test_core_patch_should_apply_the_bytes_at_upload_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    offset = 0
    for size in (1, 1023, 70_000, 100_000):  # many small PATCHes, as the spec allows
        r = await patch(api, url, pdf[offset:offset + size], offset)
        assert r.status_code == 204, r.text
        offset += size
    r = await patch(api, url, pdf[offset:], offset)
    assert r.status_code == 204, r.text
    stored = await api.http.get(f"/api/documents/{r.headers['upload-document-id']}/file")
    assert stored.content == pdf


async def test_core_patch_must_use_offset_octet_stream_else_should_415(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    for content_type in ("application/octet-stream", "application/pdf", None):
        headers = {**H, "Upload-Offset": "0"}
        if content_type:
            headers["Content-Type"] = content_type
        r = await api.http.patch(url, content=pdf[:100], headers=headers)
        assert r.status_code == 415, content_type
    assert await offset_of(api, url) == 0


async def test_core_patch_offset_mismatch_must_be_409_without_modifying(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    await patch(api, url, pdf[:1000], 0)
    for wrong in (0, 999, 1001, 5000):
        r = await patch(api, url, pdf[wrong:wrong + 500], wrong)
        assert r.status_code == 409 and r.json()["error"] == "offset_mismatch" and r.json()["offset"] == 1000
    assert await offset_of(api, url) == 1000
    r = await patch(api, url, pdf[1000:], 1000)
    stored = await api.http.get(f"/api/documents/{r.headers['upload-document-id']}/file")
    assert stored.content == pdf  # nothing of the refused bodies got in


async def test_core_patch_must_answer_204_with_the_new_upload_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    r = await patch(api, url, pdf[:12_345], 0)
    assert r.status_code == 204 and r.headers["upload-offset"] == "12345" and not r.content
    r = await patch(api, url, b"", 12_345)  # an empty PATCH: nothing received, nothing moves
    assert r.status_code == 204 and r.headers["upload-offset"] == "12345"


async def test_core_patch_non_existent_should_be_404(api: Api, pdf: bytes) -> None:
    r = await patch(api, "/files/00000000-0000-4000-8000-000000000000", pdf[:10], 0)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_core_patch_should_store_as_much_of_the_received_data_as_possible(api: Api, pdf: bytes) -> None:
    """The client goes away after 100 kB (in 10 kB pieces): those bytes are kept, and HEAD says so."""
    url = await create_url(api, len(pdf))

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, 100_000, 10_000):
            yield pdf[i:i + 10_000]

    await raw(asgi_app(api), "PATCH", url, {**STREAM, "Upload-Offset": "0"}, pieces)
    assert await offset_of(api, url) == 100_000
    r = await patch(api, url, pdf[100_000:], 100_000)
    assert r.status_code == 204 and "upload-document-id" in r.headers, r.text


async def test_core_patch_network_timeout_should_be_handled(tmp_path: Path, pdf: bytes) -> None:
    """A body that goes quiet is ended after ``body_idle_timeout_seconds`` (408) rather than
    held forever, and the upload resumes from the offset HEAD reports."""
    settings = temp_settings(tmp_path / "srv", progress_interval_seconds=0, body_idle_timeout_seconds=0.3)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            api = Api(http, app.state.services)
            url = await create_url(api, len(pdf))

            async def stalls() -> AsyncIterator[bytes]:
                yield pdf[:50_000]
                await asyncio.sleep(5)
                yield pdf[50_000:60_000]

            status, _ = await asyncio.wait_for(
                raw(app, "PATCH", url, {**STREAM, "Upload-Offset": "0"}, stalls), 4)
            assert status == 408
            offset = await offset_of(api, url)
            assert offset == 50_000  # what arrived before the body went quiet is kept
            r = await patch(api, url, pdf[offset:], offset)
            assert r.status_code == 204 and "upload-document-id" in r.headers, r.text


# -- Requests: OPTIONS --------------------------------------------------------------------


async def test_core_options_must_contain_tus_version(api: Api) -> None:
    for path in ("/files/", "/files/00000000-0000-4000-8000-000000000000"):
        r = await api.http.options(path)
        assert r.status_code in (200, 204) and r.headers["tus-version"] == "1.0.0"


async def test_core_options_must_ignore_tus_resumable(api: Api) -> None:
    r = await api.http.options("/files/", headers={"Tus-Resumable": "0.0.1"})
    assert r.status_code == 204 and r.headers["tus-version"] == "1.0.0"


# -- CORS for browsers (STREAMING_CORS_ORIGINS) -------------------------------------------


@pytest.fixture
async def cors_api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = temp_settings(tmp_path / "srv", progress_interval_seconds=0, cors_origins="https://app.example")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield Api(http, app.state.services)


ORIGIN = {"Origin": "https://app.example"}


async def test_core_cors_preflight_allows_the_tus_request_headers(cors_api: Api) -> None:
    wanted = ["tus-resumable", "upload-length", "upload-offset", "upload-metadata", "upload-checksum",
              "x-http-method-override", "content-type"]
    for method in ("POST", "PATCH", "HEAD", "DELETE"):
        r = await cors_api.http.options("/files/", headers={
            **ORIGIN, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": ",".join(wanted)})
        assert r.status_code == 200, (method, r.text)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert set(wanted) <= allowed


async def test_core_cors_exposes_the_tus_response_headers(cors_api: Api, pdf: bytes) -> None:
    r = await create(cors_api, len(pdf), headers=ORIGIN)
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"location", "upload-offset", "upload-length", "upload-expires", "upload-metadata", "tus-resumable",
            "tus-version", "tus-extension", "tus-max-size", "tus-checksum-algorithm",
            "upload-document-id"} <= exposed
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    r = await cors_api.http.head(r.headers["location"], headers={**H, **ORIGIN})
    assert "upload-offset" in r.headers["access-control-expose-headers"].lower()
    r = await cors_api.http.options("/files/", headers=ORIGIN)  # a plain OPTIONS (tus feature detection)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert "tus-extension" in r.headers["access-control-expose-headers"].lower()


async def test_core_cors_other_origins_get_no_grant(cors_api: Api, pdf: bytes) -> None:
    r = await create(cors_api, len(pdf), headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
