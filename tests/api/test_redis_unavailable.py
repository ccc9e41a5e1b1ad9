"""A server on Redis whose Redis stops: every way of opening an upload (the chunk API,
and tus) answers 503 ``storage_unavailable`` with Retry-After,
creates nothing, and works again once Redis is back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import Settings, temp_settings
from tests.realservers.redis_server import RedisServer

TUS = {"Tus-Resumable": "1.0.0", "Upload-Length": "1000", "Upload-Metadata": "filename YS5wZGY="}  # a.pdf


@pytest.fixture
async def http(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = temp_settings(tmp_path / "srv", redis_url=redis_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client, settings


async def test_opening_an_upload_is_503_while_redis_is_away(http: tuple[httpx.AsyncClient, Settings],
                                                            redis_server: RedisServer) -> None:
    client, settings = http
    initiate = {"filename": "a.pdf", "file_size": 1000}
    assert (await client.post("/api/documents/streaming/initiate", json=initiate)).status_code == 201
    redis_server.stop()
    try:
        for r in (await client.post("/api/documents/streaming/initiate", json=initiate),
                  await client.post("/files/", headers=TUS)):
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "storage_unavailable" and r.headers["retry-after"] == "2"
        # Nothing created: the session state lives in Redis (no record could be written,
        # so no bytes were made room for either).
        assert len(list(settings.partial_dir.iterdir())) == 1
    finally:
        redis_server.start()
    assert (await client.post("/api/documents/streaming/initiate", json=initiate)).status_code == 201
    assert (await client.post("/files/", headers=TUS)).status_code == 201


async def test_every_request_of_an_open_upload_is_503_while_redis_is_away(
        http: tuple[httpx.AsyncClient, Settings], redis_server: RedisServer, small_pdf: bytes) -> None:
    """The session state, the upload locks and the digest state are Redis's: a chunk, a
    tus PATCH or HEAD, /resume and /complete answer 503 with Retry-After, and nothing is
    acknowledged. (This test's Redis keeps nothing across a restart: see the README for
    what each persistence mode keeps.)"""
    client, settings = http
    r = await client.post("/api/documents/streaming/initiate", json={"filename": "a.pdf", "file_size": len(small_pdf)})
    sid = r.json()["session_id"]
    created = await client.post("/files/", headers={**TUS, "Upload-Length": str(len(small_pdf))})
    url = created.headers["Location"]
    chunk = small_pdf[:2 * 1024 * 1024]
    redis_server.stop()
    try:
        answers = [
            await client.post(f"/api/documents/streaming/chunk/{sid}", data={"chunk_id": "0"},
                              files={"file": ("c", chunk, "application/octet-stream")}),
            await client.patch(url, content=chunk, headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                                            "Content-Type": "application/offset+octet-stream"}),
            await client.head(url, headers={"Tus-Resumable": "1.0.0"}),
            await client.post("/api/documents/streaming/resume", json={"session_id": sid}),
            await client.post(f"/api/documents/streaming/complete/{sid}"),
        ]
        for answer in answers:
            assert answer.status_code == 503, (answer.request.method, answer.request.url, answer.text)
            assert answer.headers["retry-after"] == "2"
        # no byte of the chunk reached its place (the session is read from Redis first)
        assert all(not any(p.read_bytes()[:1024]) for p in settings.partial_dir.iterdir())
    finally:
        redis_server.start()
