"""Any request of an upload on any replica: three real server processes on one real
redis-server (``STREAMING_REDIS_URL``) and one shared data directory (the bytes; the S3
store replaces it separately). Session state, upload locks, the progress bus and the
whole-file hash and scan's state live in Redis.

- chunks go round-robin, two at the same moment on two replicas, a WebSocket listens on
  the third; ``/resume`` on C, ``/complete`` on A; the document is byte-exact;
- a replica SIGKILLed mid-chunk loses that chunk only: it is sent again to another and
  the upload finishes byte-exact;
- tus PATCHes alternate replicas, HEAD on yet another; a PATCH stalled on one replica is
  taken over by a PATCH on another (the lock's release request) at once;
- ten uploads at once, spread over the replicas, all byte-exact.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.client import ApiClient
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[list[ServerProcess]]:
    """Three servers on one Redis and one data directory (the first runs the importer)."""
    shared = tmp_path / "shared"
    env = {
        "STREAMING_REDIS_URL": redis_url, "STREAMING_PROGRESS_INTERVAL_SECONDS": "0.05",
        "STREAMING_DATA_DIR": str(shared / "data"), "STREAMING_UPLOAD_DIR": str(shared / "partial"),
        "STREAMING_STATE_DIR": str(shared / "states"),
        "STREAMING_MAX_CONCURRENT_UPLOADS": "40", "STREAMING_RATE_LIMIT_BURST": "40",
        "STREAMING_IP_RATE_LIMIT_BURST": "40", "STREAMING_MAX_OPEN_SESSIONS_PER_OWNER": "40",
    }
    servers = [ServerProcess(tmp_path / f"replica{i}", env, importer=i == 0) for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop(timeout=5)
            print(f"----- server log {server.log_path} -----\n{server.log_tail()}")


def _pdf(tmp_path: Path, name: str, size: int, seed: int) -> bytes:
    path = tmp_path / name
    make_pdf(path, size, pages=3, seed=seed)
    return path.read_bytes()


async def _clients(servers: list[ServerProcess]) -> list[ApiClient]:
    return [await ApiClient(s.base_url).__aenter__() for s in servers]


async def _close(clients: list[ApiClient]) -> None:
    for client in clients:
        await client.__aexit__(None, None, None)


async def _downloaded(api: ApiClient, done: dict[str, Any]) -> str:
    sha, _, _ = await api.download_sha256(done["document"]["id"])
    return sha


async def test_chunks_round_robin_resume_on_c_complete_on_a_websocket_on_c(
        replicas: list[ServerProcess], tmp_path: Path) -> None:
    data = _pdf(tmp_path, "rr.pdf", 20 * MIB + 12345, seed=11)
    a, b, c = apis = await _clients(replicas)
    try:
        async with c.events("tab") as tab:
            await asyncio.sleep(0.3)
            s = await a.initiate("rr.pdf", len(data), client_id="tab", chunk_size=2 * MIB)
            sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
            assert total == 11

            def chunk(i: int) -> bytes:
                return data[i * cs:(i + 1) * cs]

            for i in range(0, 6, 2):  # chunk i on one replica, i + 1 on the next, at the same moment
                first, second = apis[i % 3], apis[(i + 1) % 3]
                r1, r2 = await asyncio.gather(first.send_chunk(sid, i, chunk(i), cs, total),
                                              second.send_chunk(sid, i + 1, chunk(i + 1), cs, total))
                assert r1.status == r2.status == 200, (r1, r2)
            resumed = await c.resume(sid, client_id="tab")
            assert resumed.status == 200, resumed
            assert resumed.body["uploaded_chunks"] == list(range(6)), resumed
            for i in range(6, total):
                r = await apis[i % 3].send_chunk(sid, i, chunk(i), cs, total)
                assert r.status == 200, r
            done = await a.complete(sid)
            assert done.status == 200, done
            assert done.body["document"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert await _downloaded(b, done.body) == hashlib.sha256(data).hexdigest()
            assert await tab.wait_for(lambda e: e.get("type") == "chunk_progress"
                                      and e.get("chunks_uploaded") == total, 20), tab.events
    finally:
        await _close(apis)
    for server in replicas:
        server.assert_no_tracebacks()


async def _slow_body(data: bytes, started: asyncio.Event) -> AsyncIterator[bytes]:
    """A body that sends its first half, then dawdles (the replica is killed meanwhile)."""
    half = len(data) // 2
    yield data[:half]
    started.set()
    await asyncio.sleep(30)
    yield data[half:]


async def test_a_replica_killed_mid_chunk_loses_that_chunk_only(replicas: list[ServerProcess],
                                                               tmp_path: Path) -> None:
    data = _pdf(tmp_path, "kill.pdf", 14 * MIB + 777, seed=12)
    apis = await _clients(replicas)
    try:
        s = await apis[0].initiate("kill.pdf", len(data), chunk_size=2 * MIB)
        sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
        for i in range(3):
            r = await apis[i % 3].send_chunk(sid, i, data[i * cs:(i + 1) * cs], cs, total)
            assert r.status == 200, r
        # chunk 3 streams to B, which is SIGKILLed with half of it received
        started = asyncio.Event()
        form = aiohttp.FormData()
        form.add_field("chunk_id", "3")
        form.add_field("checksum", hashlib.sha256(data[3 * cs:4 * cs]).hexdigest())
        form.add_field("file", _slow_body(data[3 * cs:4 * cs], started), filename="c",
                       content_type="application/octet-stream")

        async def doomed() -> BaseException | int:
            try:
                async with apis[1].http.post(f"/api/documents/streaming/chunk/{sid}", data=form) as resp:
                    return resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return exc

        sending = asyncio.create_task(doomed())
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.3)
        replicas[1].kill()
        assert not isinstance(await sending, int)  # the chunk was never answered
        alive = [apis[0], apis[2]]
        for i in range(3, total):  # chunk 3 again, and the rest, on the two left
            r = await alive[i % 2].send_chunk(sid, i, data[i * cs:(i + 1) * cs], cs, total)
            assert r.status == 200, r
        done = await apis[2].complete(sid)
        assert done.status == 200, done
        assert done.body["document"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert await _downloaded(apis[0], done.body) == hashlib.sha256(data).hexdigest()
    finally:
        await _close(apis)
    for server in (replicas[0], replicas[2]):
        server.assert_no_tracebacks()


async def _tus_create(api: ApiClient, name: str, length: int) -> str:
    meta = "filename " + base64.b64encode(name.encode()).decode()
    async with api.http.post("/files/", headers={**TUS, "Upload-Length": str(length),
                                                  "Upload-Metadata": meta}) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["Location"]


async def _tus_head(api: ApiClient, url: str) -> int:
    async with api.http.head(url, headers=TUS) as resp:
        assert resp.status == 200, resp.status
        return int(resp.headers["Upload-Offset"])


async def _tus_patch(api: ApiClient, url: str, offset: int, body: Any) -> aiohttp.ClientResponse:
    headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    if isinstance(body, bytes):
        body = io.BytesIO(body)  # aiohttp warns about raw bodies over 1 MiB
    async with api.http.patch(url, headers=headers, data=body) as resp:
        await resp.read()
        return resp


async def test_tus_patches_alternate_replicas_and_a_stalled_one_is_taken_over(
        replicas: list[ServerProcess], tmp_path: Path) -> None:
    data = _pdf(tmp_path, "tus.pdf", 9 * MIB + 4321, seed=13)
    apis = await _clients(replicas)
    try:
        url = await _tus_create(apis[0], "tus.pdf", len(data))
        offset, step, turn = 0, 1536 * 1024 + 17, 0
        while offset < 5 * MIB:  # pieces that do not fall on chunk boundaries, replica after replica
            piece = data[offset:offset + step]
            resp = await _tus_patch(apis[turn % 3], url, offset, piece)
            assert resp.status == 204, resp.status
            offset = int(resp.headers["Upload-Offset"])
            assert await _tus_head(apis[(turn + 1) % 3], url) == offset
            turn += 1

        # a PATCH on A sends 1 MiB and then stalls; a PATCH on B asks A's lock to be released
        stalled = asyncio.Event()

        async def stalling() -> AsyncIterator[bytes]:
            yield data[offset:offset + MIB]
            stalled.set()
            await asyncio.sleep(60)

        headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}

        async def on_a() -> int:
            try:
                async with apis[0].http.patch(url, headers=headers, data=stalling(),
                                              timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    return resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return -1

        first = asyncio.create_task(on_a())
        await asyncio.wait_for(stalled.wait(), 10)
        await asyncio.sleep(0.5)  # the megabyte is on A
        loop = asyncio.get_running_loop()
        began = loop.time()
        resp = await _tus_patch(apis[1], url, offset + MIB, data[offset + MIB:offset + 2 * MIB])
        took = loop.time() - began
        assert resp.status == 204, resp.status  # A stopped, kept its megabyte, B went on from there
        assert took < 5, took  # at once, not after a timeout
        assert int(resp.headers["Upload-Offset"]) == offset + 2 * MIB  # A's megabyte, then B's
        offset += 2 * MIB
        first.cancel()  # A's request was stopped; its answer goes nowhere
        with contextlib.suppress(asyncio.CancelledError):
            await first
        resp = await _tus_patch(apis[2], url, offset, data[offset:])
        assert resp.status == 204, resp.status
        assert resp.headers.get("Upload-Document-Id")
        doc = {"document": {"id": int(resp.headers["Upload-Document-Id"])}}
        assert await _downloaded(apis[0], doc) == hashlib.sha256(data).hexdigest()
    finally:
        await _close(apis)
    for server in replicas:
        server.assert_no_tracebacks()


async def test_ten_uploads_at_once_spread_over_the_replicas(replicas: list[ServerProcess],
                                                            tmp_path: Path) -> None:
    files = [_pdf(tmp_path, f"many{i}.pdf", (3 + i % 4) * MIB + 1000 * i, seed=100 + i) for i in range(10)]
    apis = await _clients(replicas)
    rng = random.Random(5)

    async def one(i: int, data: bytes) -> str:
        s = await apis[i % 3].initiate(f"many{i}.pdf", len(data), chunk_size=2 * MIB)
        sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
        for k in range(total):
            api = apis[rng.randrange(3)]
            r = await api.send_chunk(sid, k, data[k * cs:(k + 1) * cs], cs, total)
            assert r.status == 200, r
        done = await apis[(i + 1) % 3].complete(sid)
        assert done.status == 200, done
        return await _downloaded(apis[(i + 2) % 3], done.body)

    try:
        got = await asyncio.gather(*(one(i, d) for i, d in enumerate(files)))
    finally:
        await _close(apis)
    assert got == [hashlib.sha256(d).hexdigest() for d in files]
    for server in replicas:
        server.assert_no_tracebacks()
