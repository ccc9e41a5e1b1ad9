"""draft-ietf-httpbis-resumable-upload-11, "Offset Retrieval" (and "Offset", "Concurrency"),
server side: one test per MUST and SHOULD."""

from __future__ import annotations

import asyncio
import hashlib

from tests.api.resumable.conftest import INTEROP, PARTIAL, append, asgi_app, create, create_url, pieces_of, raw
from tests.conftest import Api


async def test_offset_retrieval_must_include_upload_offset(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:12_345])
    r = await api.http.head(url)
    assert r.status_code == 204 and r.headers["upload-offset"] == "12345"


async def test_offset_retrieval_must_include_upload_complete(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    assert (await api.http.head(url)).headers["upload-complete"] == "?0"
    assert (await append(api, url, pdf[1000:], 1000, complete=True)).status_code == 200
    assert (await api.http.head(url)).headers["upload-complete"] == "?1"


async def test_offset_retrieval_must_include_upload_length_unless_not_supplied(api: Api, pdf: bytes) -> None:
    known = await create_url(api, pdf[:1000], **{"Upload-Length": str(len(pdf))})
    assert (await api.http.head(known)).headers["upload-length"] == str(len(pdf))
    unknown = await create_url(api, pdf[:1000])
    assert "upload-length" not in (await api.http.head(unknown)).headers


async def test_offset_retrieval_must_indicate_the_limits(api: Api, pdf: bytes) -> None:
    r = await api.http.head(await create_url(api, pdf[:1000]))
    limits = dict(member.strip().split("=") for member in r.headers["upload-limit"].split(","))
    assert int(limits["max-size"]) == api.svc.settings.max_file_size and int(limits["max-age"]) > 0


async def test_offset_retrieval_should_include_cache_control_no_store(api: Api, pdf: bytes) -> None:
    assert (await api.http.head(await create_url(api, pdf[:1000]))).headers["cache-control"] == "no-store"


async def test_offset_retrieval_should_not_answer_301_or_302(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    for path in (url, url + "/"):
        assert (await api.http.head(path)).status_code not in (301, 302)


async def test_offset_retrieval_with_get_answers_the_same_fields(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await api.http.get(url)
    assert r.status_code == 204 and r.headers["upload-offset"] == "1000" and r.headers["upload-complete"] == "?0"


async def test_offset_an_unknown_or_cancelled_upload_is_not_found(api: Api, pdf: bytes) -> None:
    assert (await api.http.head("/uploads/00000000-0000-4000-8000-000000000000")).status_code == 404
    assert (await api.http.head("/uploads/not-an-upload-id")).status_code == 404
    url = await create_url(api, pdf[:1000])
    assert (await api.http.delete(url)).status_code == 204
    assert (await api.http.head(url)).status_code == 404


async def test_concurrency_must_not_send_outdated_offsets(api: Api, small_pdf: bytes) -> None:
    """An append still trickling in when the offset is asked for (the client thinks it
    failed): it is stopped and recorded first, so the offset given is accepted next."""
    url = await create_url(api, b"", **{"Upload-Length": str(len(small_pdf))})
    headers = {**INTEROP, "Content-Type": PARTIAL, "Upload-Offset": "0", "Upload-Complete": "?1",
               "Content-Length": str(len(small_pdf))}
    stale = asyncio.create_task(raw(asgi_app(api), "PATCH", url, headers, pieces_of(small_pdf, 32 << 10, 0.01)))
    await asyncio.sleep(1.0)
    head = await asyncio.wait_for(api.http.head(url), 10)
    assert head.status_code == 204
    offset = int(head.headers["upload-offset"])
    assert await asyncio.wait_for(stale, 10) == 400  # stopped: nobody listens to it anyway
    assert 0 < offset < len(small_pdf)
    r = await append(api, url, small_pdf[offset:], offset, complete=True)
    assert r.status_code == 200, r.text
    assert r.json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_offset_must_not_decrease(api: Api, pdf: bytes) -> None:
    url = await create_url(api, b"")
    seen = []
    for start in range(0, 200_000, 50_000):
        assert (await append(api, url, pdf[start:start + 50_000], start)).status_code == 204
        seen.append(int((await api.http.head(url)).headers["upload-offset"]))
    assert seen == sorted(seen) == [50_000, 100_000, 150_000, 200_000]
