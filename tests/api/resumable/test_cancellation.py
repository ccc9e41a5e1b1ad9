"""draft-ietf-httpbis-resumable-upload-11, "Upload Cancellation" (and the security
considerations on who may touch an upload resource), server side."""

from __future__ import annotations

import asyncio

from tests.api.conftest import Owners
from tests.api.resumable.conftest import INTEROP, NAME, PARTIAL, append, asgi_app, create_url, pieces_of, raw
from tests.conftest import Api


async def test_cancellation_should_deactivate_the_upload_resource(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    r = await api.http.delete(url)
    assert r.status_code == 204
    assert (await api.http.head(url)).status_code == 404
    assert (await append(api, url, pdf[1000:], 1000, complete=True)).status_code == 404
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []


async def test_cancellation_should_not_answer_301_or_302(api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    assert (await api.http.delete(url)).status_code not in (301, 302)
    assert (await api.http.delete(url)).status_code == 404  # gone for good


async def test_cancellation_should_terminate_in_flight_requests(api: Api, small_pdf: bytes) -> None:
    url = await create_url(api, b"", **{"Upload-Length": str(len(small_pdf))})
    headers = {**INTEROP, "Content-Type": PARTIAL, "Upload-Offset": "0", "Upload-Complete": "?1",
               "Content-Length": str(len(small_pdf))}
    stale = asyncio.create_task(raw(asgi_app(api), "PATCH", url, headers, pieces_of(small_pdf, 32 << 10, 0.01)))
    await asyncio.sleep(0.5)
    assert (await api.http.delete(url)).status_code == 204
    assert await asyncio.wait_for(stale, 10) >= 400
    assert (await api.http.head(url)).status_code == 404


async def test_security_only_authorized_clients_access_the_upload_resource(owners: Owners, pdf: bytes) -> None:
    r = await owners.alice.http.post("/uploads/", content=pdf[:1000], headers={**NAME, "Upload-Complete": "?0"})
    assert r.status_code == 201
    url = r.headers["location"]
    assert (await owners.anon.head(url)).status_code == 401
    assert (await owners.anon.post("/uploads/", content=pdf, headers={**NAME, "Upload-Complete": "?1"})
            ).status_code == 401
    assert (await owners.bob.http.head(url)).status_code == 404  # a stranger's upload does not exist
    assert (await owners.bob.http.delete(url)).status_code == 404
    assert (await owners.alice.http.head(url)).headers["upload-offset"] == "1000"
