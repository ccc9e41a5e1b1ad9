"""What the StateStore contract suite cannot say of the Redis store: two replicas (two
clients) recording chunks of one session at once, a record that does not parse set
aside, and a lost Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backend.errors import StorageUnavailable
from backend.storage.redis.state import RedisStateStore
from tests.backends import redis_client
from tests.realservers.redis_server import RedisServer


async def test_two_replicas_recording_chunks_lose_none(request: pytest.FixtureRequest) -> None:
    sid = str(uuid.uuid4())
    async with redis_client(request) as a_client, redis_client(request) as b_client:
        a, b = RedisStateStore(a_client, prefix="test"), RedisStateStore(b_client, prefix="test")
        await a.save(sid, {"session_id": sid, "status": "uploading", "chunks": {}})
        await asyncio.gather(*((a if i % 2 else b).update(sid, {"updated_at": i}, {i: f"sha{i}"})
                               for i in range(100)))
        record = await b.load(sid)
        assert record is not None and record["chunks"] == {str(i): f"sha{i}" for i in range(100)}
        assert record["status"] == "uploading" and await a_client.hget(f"test:state:{sid}", "_v") == b"101"


async def test_a_record_that_does_not_parse_is_set_aside(request: pytest.FixtureRequest) -> None:
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    async with redis_client(request) as client:
        store = RedisStateStore(client, prefix="test")
        await store.save(good, {"session_id": good, "chunks": {"0": "a"}})
        await store.save(bad, {"session_id": bad, "chunks": {}})
        await client.hset(f"test:state:{bad}", "f:status", "{not json")
        assert [r["session_id"] for r in await store.load_all()] == [good]
        assert await client.exists(f"test:state-corrupt:{bad}") == 1
        assert await store.load(bad) is None and await client.sismember("test:states", bad) == 0


async def test_redis_unreachable_is_storage_unavailable(request: pytest.FixtureRequest,
                                                        redis_server: RedisServer) -> None:
    sid = str(uuid.uuid4())
    async with redis_client(request) as client:
        store = RedisStateStore(client, prefix="test")
        redis_server.stop()
        try:
            for attempt in (store.update(sid, {"session_id": sid}, {0: "a"}), store.load(sid), store.load_all()):
                with pytest.raises(StorageUnavailable):
                    await attempt
        finally:
            redis_server.start()
