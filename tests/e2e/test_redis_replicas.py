"""Two real server processes on one real redis-server (``STREAMING_REDIS_URL``): the rate
limit is one budget across them, a WebSocket on B hears the events of an upload sent to
A (by its client id, and in its room with the current state first), and a lost Redis is
503 ``storage_unavailable`` with ``Retry-After``, never a 500, until it is back.

The uploads here go to A only; tests/e2e/test_replicas_any_request.py sends each
request of an upload to any of three replicas."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.e2e.client import PREFIX, ApiClient
from tests.e2e.conftest import ServerProcess
from tests.realservers.redis_server import RedisServer

pytestmark = pytest.mark.e2e


def _pair(make_server: Callable[..., ServerProcess], redis_url: str, **env: str) -> tuple[ServerProcess, ...]:
    shared = {"STREAMING_REDIS_URL": redis_url, "STREAMING_PROGRESS_INTERVAL_SECONDS": "0.05", **env}
    return make_server(**shared), make_server(**shared)


async def test_the_owners_rate_limit_is_shared(make_server: Callable[..., ServerProcess], redis_url: str) -> None:
    a, b = _pair(make_server, redis_url, STREAMING_RATE_LIMIT_BURST="4", STREAMING_IP_RATE_LIMIT_BURST="10")
    async with ApiClient(a.base_url) as on_a, ApiClient(b.base_url) as on_b:
        for i in range(4):  # the owner's burst of 4, spread over both replicas
            await (on_a if i % 2 else on_b).initiate("a.pdf", 1000)
        for api in (on_a, on_b):
            refused = await api.post_json(f"{PREFIX}/initiate", {"filename": "a.pdf", "file_size": 1000})
            assert refused.status == 429 and refused.body["error"] == "rate_limited", refused
            assert refused.body["scope"] == "owner" and int(refused.headers["Retry-After"]) >= 1
    for server in (a, b):
        server.assert_no_tracebacks()


async def test_a_websocket_on_b_hears_an_upload_sent_to_a(make_server: Callable[..., ServerProcess],
                                                          redis_url: str, small_pdf: bytes) -> None:
    a, b = _pair(make_server, redis_url)
    async with ApiClient(a.base_url) as on_a, ApiClient(b.base_url) as on_b:
        async with on_b.events("tab") as tab, on_b.events("watcher") as watcher:
            await asyncio.sleep(0.5)  # B's subscription is up well before: it starts with the server
            s = await on_a.initiate("a.pdf", len(small_pdf), client_id="tab")
            sid, cs, total = s["session_id"], s["chunk_size"], s["total_chunks"]
            for i in range(total - 1):
                r = await on_a.send_chunk(sid, i, small_pdf[i * cs:(i + 1) * cs], cs, total)
                assert r.status == 200, r
            assert await tab.wait_for(lambda e: e.get("type") == "chunk_progress"
                                      and e["chunks_uploaded"] == total - 1, 10), tab.events

            # a late joiner on B: the room's current state first, though B does not hold the session
            assert watcher._ws is not None
            await watcher._ws.send_json({"type": "join_upload_room", "session_id": sid})
            assert await watcher.wait_for(lambda e: e.get("type") == "chunk_progress", 10), watcher.events
            kinds = [e["type"] for e in watcher.events]
            assert kinds[:3] == ["joined_upload_room", "upload_progress", "chunk_progress"], kinds
            assert watcher.events[1]["data"]["uploaded_chunks"] == total - 1

            r = await on_a.send_chunk(sid, total - 1, small_pdf[(total - 1) * cs:], cs, total)
            assert r.status == 200, r
            done = await on_a.complete(sid)
            assert done.status == 200, done
            for stream in (tab, watcher):
                assert await stream.wait_for(lambda e: e.get("status") == "completed", 30), stream.events
                progress = [e["data"]["progress_percentage"] for e in stream.events
                            if e["type"] == "upload_progress"]
                assert progress == sorted(progress) and progress[-1] == 100.0
    for server in (a, b):
        server.assert_no_tracebacks()


async def test_a_room_of_another_owner_stays_closed_across_replicas(make_server: Callable[..., ServerProcess],
                                                                    redis_url: str, small_pdf: bytes) -> None:
    keys = {"STREAMING_API_KEYS": "alicekey0123456789abcdef:alice,bobkey0123456789abcdef:bob"}
    a, b = _pair(make_server, redis_url, **keys)
    alice = {"Authorization": "Bearer alicekey0123456789abcdef"}
    async with ApiClient(a.base_url) as on_a, ApiClient(b.base_url) as on_b:
        async with on_a.http.post(f"{PREFIX}/initiate", headers=alice,
                                  json={"filename": "a.pdf", "file_size": len(small_pdf)}) as resp:
            sid = (await resp.json())["session_id"]
        form_sent = await _chunk_as(on_a, alice, sid, small_pdf)
        assert form_sent == 200
        replies: dict[str, list[dict[str, Any]]] = {}
        for who, key in (("bob", "bobkey0123456789abcdef"), ("alice", "alicekey0123456789abcdef")):
            async with on_b.http.ws_connect(f"/ws/{who}_tab?token={key}") as ws:
                for _ in range(50):  # the state reaches Redis a moment after the chunk
                    await ws.send_json({"type": "join_upload_room", "session_id": sid})
                    reply = await ws.receive_json(timeout=10)
                    if who == "bob" or reply["type"] == "joined_upload_room":
                        break
                    await asyncio.sleep(0.1)
                replies[who] = [reply]
        assert replies["bob"][0]["type"] == "error" and replies["bob"][0]["error"] == "not_found"
        assert replies["alice"][0]["type"] == "joined_upload_room"


async def _chunk_as(api: ApiClient, headers: dict[str, str], sid: str, data: bytes) -> int:
    chunk = data[:2 * 1024 * 1024]
    form = aiohttp.FormData()
    form.add_field("chunk_id", "0")
    form.add_field("checksum", hashlib.sha256(chunk).hexdigest())
    form.add_field("file", io.BytesIO(chunk), filename="c", content_type="application/octet-stream")
    async with api.http.post(f"{PREFIX}/chunk/{sid}", data=form, headers=headers) as resp:
        return resp.status


async def test_a_lost_redis_is_503_with_retry_after_then_recovers(make_server: Callable[..., ServerProcess],
                                                                  redis_url: str,
                                                                  redis_server: RedisServer) -> None:
    a = make_server(STREAMING_REDIS_URL=redis_url)
    async with ApiClient(a.base_url) as api:
        await api.initiate("a.pdf", 1000)
        redis_server.stop()
        try:
            refused = await api.post_json(f"{PREFIX}/initiate", {"filename": "a.pdf", "file_size": 1000})
            assert refused.status == 503 and refused.body["error"] == "storage_unavailable", refused
            assert int(refused.headers["Retry-After"]) >= 1 and refused.body["retry_after"] >= 1
            health = await api.get("/health")
            assert health.status == 200  # the server itself is up
        finally:
            redis_server.start()
        for _ in range(50):  # the pool reconnects on the next command
            again = await api.post_json(f"{PREFIX}/initiate", {"filename": "a.pdf", "file_size": 1000})
            if again.status == 201:
                break
            await asyncio.sleep(0.1)
        assert again.status == 201, again
    a.assert_no_tracebacks()


async def test_a_server_started_while_redis_is_away_serves_503_then_sets_up(
        make_server: Callable[..., ServerProcess], redis_url: str, redis_server: RedisServer) -> None:
    """A replica (re)started during a Redis outage does not crash-loop: it listens,
    /health is 200, /ready names the pending set-up, an upload is 503 with Retry-After;
    once Redis is back the set-up finishes by itself and uploads go in."""
    redis_server.stop()
    try:
        a = make_server(STREAMING_REDIS_URL=redis_url)
        async with ApiClient(a.base_url) as api:
            assert (await api.get("/health")).status == 200
            ready = await api.get("/ready")
            assert ready.status == 503 and ready.body["checks"]["storage"] == {"ok": False, "state": "starting"}
            refused = await api.post_json(f"{PREFIX}/initiate", {"filename": "a.pdf", "file_size": 1000})
            assert refused.status == 503 and refused.body["error"] == "storage_unavailable", refused
            assert int(refused.headers["Retry-After"]) >= 1
    finally:
        redis_server.start()
    async with ApiClient(a.base_url) as api:
        for _ in range(100):  # the set-up retries with a backoff from 1 s
            ready = await api.get("/ready")
            if ready.status == 200:
                break
            await asyncio.sleep(0.2)
        assert ready.status == 200, ready
        session = await api.initiate("a.pdf", 1000)
        assert session["session_id"]
    a.assert_no_tracebacks()
