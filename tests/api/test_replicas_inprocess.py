"""Two servers in this process on one Redis and one data directory (as two replicas):
each request of an upload may go to either, and the digest state moves with the bytes.

- an in-order upload alternating replicas is hashed and scanned as it streams in: neither
  replica's digest reads a byte back from the store;
- a replica that held the session acts on the current state (chunks recorded on the
  other), and one that never held it loads it;
- a lost digest state is rebuilt from the stored bytes: the SHA-256 is still right;
- shared admission: the active-uploads cap counts both replicas' uploads.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from backend.app import create_app
from backend.errors import SecurityRejected
from backend.composition import Services
from backend.settings import temp_settings
from tests.conftest import Api
from tests.pdfgen import make_pdf

MIB = 1 << 20


class CountingReader:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.read = 0

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        got: int = self.inner.read_into(upload_id, offset, buf)
        self.read += got
        return got


async def _replicas(tmp_path: Path, redis_url: str, n: int, **overrides: Any) -> AsyncIterator[list[Api]]:
    settings = temp_settings(tmp_path / "shared", redis_url=redis_url, **overrides)
    apps = [create_app(settings) for _ in range(n)]
    apis: list[Api] = []
    contexts = []
    try:
        for app in apps:
            ctx = app.router.lifespan_context(app)
            await ctx.__aenter__()
            contexts.append(ctx)
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            apis.append(Api(http, app.state.services))
        yield apis
    finally:
        for api in apis:
            await api.http.aclose()
        for ctx in reversed(contexts):
            await ctx.__aexit__(None, None, None)


@pytest.fixture
async def pair(tmp_path: Path, redis_url: str) -> AsyncIterator[list[Api]]:
    async for apis in _replicas(tmp_path, redis_url, 2):
        yield apis


def _readers(svc: Services) -> CountingReader:
    book = svc.sessions.prefix.digests.book  # type: ignore[attr-defined]
    book.chunks = CountingReader(book.chunks)
    return book.chunks  # type: ignore[no-any-return]


async def _complete(api: Api, sid: str) -> dict[str, Any]:
    r = await api.http.post(f"/api/documents/streaming/complete/{sid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_an_in_order_upload_alternating_replicas_is_never_read_back(pair: list[Api],
                                                                           medium_pdf: bytes) -> None:
    readers = [_readers(api.svc) for api in pair]
    s = await pair[0].initiate(len(medium_pdf), chunk_size=2 * MIB)
    sid, cs = s["session_id"], s["chunk_size"]
    for i in range(s["total_chunks"]):
        r = await pair[(i + 1) % 2].chunk(sid, i, medium_pdf[i * cs:(i + 1) * cs])
        assert r.status_code == 200, r.text
    done = await _complete(pair[0], sid)
    assert done["document"]["sha256"] == hashlib.sha256(medium_pdf).hexdigest()
    assert [reader.read for reader in readers] == [0, 0]


async def test_a_replica_acts_on_the_state_the_other_recorded(pair: list[Api], small_pdf: bytes) -> None:
    a, b = pair
    s = await a.initiate(len(small_pdf))
    sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
    assert (await a.chunk(sid, 0, small_pdf[:cs])).status_code == 200
    for i in range(1, total):  # A holds the session; B records the rest
        assert (await b.chunk(sid, i, small_pdf[i * cs:(i + 1) * cs])).status_code == 200
    resumed = await a.http.post("/api/documents/streaming/resume", json={"session_id": sid})
    assert resumed.status_code == 200 and resumed.json()["missing_chunks"] == [], resumed.text
    again = await a.chunk(sid, 1, small_pdf[cs:2 * cs])  # a retry A never saw: a duplicate, not a rewrite
    assert again.status_code == 200 and again.json()["message"] == "Chunk already received", again.text
    done = await _complete(a, sid)
    assert done["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()
    assert (await _complete(b, sid))["document"]["id"] == done["document"]["id"]  # B sees it completed


async def test_a_lost_digest_state_is_rebuilt_from_the_bytes(pair: list[Api], redis_client: Redis,
                                                             medium_pdf: bytes) -> None:
    a, b = pair
    reader = _readers(b.svc)
    s = await a.initiate(len(medium_pdf), chunk_size=2 * MIB)
    sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
    half = total // 2
    for i in range(half):
        assert (await a.chunk(sid, i, medium_pdf[i * cs:(i + 1) * cs])).status_code == 200
    assert await redis_client.delete(f"pdfup:digest:{sid}") == 1  # as after a Redis restart
    for i in range(half, total):
        assert (await b.chunk(sid, i, medium_pdf[i * cs:(i + 1) * cs])).status_code == 200
    done = await _complete(b, sid)
    assert done["document"]["sha256"] == hashlib.sha256(medium_pdf).hexdigest()
    assert half * cs <= reader.read <= len(medium_pdf)  # B read back (at least) what A had hashed


async def test_the_active_uploads_cap_counts_every_replica(tmp_path: Path, redis_url: str) -> None:
    async for a, b in _replicas(tmp_path, redis_url, 2, max_concurrent_uploads=2):
        await a.initiate(1000)
        await b.initiate(1000)
        refused = await a.http.post("/api/documents/streaming/initiate",
                                    json={"filename": "doc.pdf", "file_size": 1000})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_uploads" and int(refused.headers["Retry-After"]) >= 1


async def test_rounds_of_ten_uploads_on_three_replicas(tmp_path: Path, redis_url: str) -> None:
    """Chunks of ten uploads at once, each to any of three replicas (per-chunk locks,
    lock renewals ending while Redis commands are in flight: this once hung)."""
    files = []
    for i in range(10):
        path = tmp_path / f"m{i}.pdf"
        make_pdf(path, (3 + i % 4) * MIB + 1000 * i, pages=3, seed=100 + i)
        files.append(path.read_bytes())
    async for apis in _replicas(tmp_path, redis_url, 3, max_concurrent_uploads=40, rate_limit_per_minute=0,
                                ip_rate_limit_per_minute=0, max_open_sessions_per_owner=40):
        rng = random.Random(5)

        async def one(i: int, data: bytes) -> str:
            s = await apis[i % 3].initiate(len(data), chunk_size=2 * MIB)
            sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
            for k in range(total):
                r = await apis[rng.randrange(3)].chunk(sid, k, data[k * cs:(k + 1) * cs])
                assert r.status_code == 200, r.text
            return str((await _complete(apis[(i + 1) % 3], sid))["document"]["sha256"])

        for _ in range(3):
            got = await asyncio.wait_for(asyncio.gather(*(one(i, d) for i, d in enumerate(files))), 60)
            assert got == [hashlib.sha256(d).hexdigest() for d in files]


async def test_a_completion_interrupted_on_a_dead_replica_is_redone_on_another(
        pair: list[Api], redis_client: Redis, small_pdf: bytes) -> None:
    a, b = pair
    s = await a.initiate(len(small_pdf))
    sid, cs = s["session_id"], s["chunk_size"]
    for i in range(s["total_chunks"]):
        assert (await a.chunk(sid, i, small_pdf[i * cs:(i + 1) * cs])).status_code == 200
    # A died inside /complete: the state says processing, and nobody holds the lock
    await redis_client.hset(f"pdfup:state:{sid}", "f:status", '"processing"')
    done = await _complete(b, sid)
    assert done["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_an_idle_session_leaves_a_replicas_memory_and_comes_back_from_the_store(
        pair: list[Api], small_pdf: bytes) -> None:
    a, b = pair
    s = await a.initiate(len(small_pdf))
    sid, cs = s["session_id"], s["chunk_size"]
    assert (await a.chunk(sid, 0, small_pdf[:cs])).status_code == 200
    live = a.svc.sessions.live[sid]
    await a.svc.sessions.prefix.wait_caught_up(live)
    live.last_activity -= a.svc.settings.active_idle_seconds + 1
    await a.svc.sessions.sweep()
    assert sid not in a.svc.sessions.live, (live.version, live.saved_version, live.in_flight)  # evicted
    for i in range(1, s["total_chunks"]):
        assert (await a.chunk(sid, i, small_pdf[i * cs:(i + 1) * cs])).status_code == 200
    done = await _complete(b, sid)
    assert done["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_an_owner_cap_place_is_given_back_when_the_scan_fails_the_upload(
        tmp_path: Path, redis_url: str) -> None:
    """A session the scan's verdict fails (the ledger fails it, not a request) stops
    counting against its owner's cap at once, on every replica."""
    async for a, b in _replicas(tmp_path, redis_url, 2, max_open_sessions_per_owner=1):
        s = await a.initiate(4000)
        live = a.svc.sessions.live[s["session_id"]]
        await a.svc.sessions.ledger.fail(live, SecurityRejected("refused", findings=[]))
        await b.initiate(4000)  # the place is free again
