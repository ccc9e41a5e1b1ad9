"""Saved prefix states in Redis: the offset is the version (a save never goes backwards),
the key expires with the session, and a lost Redis is StorageUnavailable."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from backend.errors import StorageUnavailable
from backend.storage.redis.digests import RedisDigestStates
from tests.realservers.redis_server import RedisServer

SID = "0b5e3c1e-2f4a-4c0e-9a53-6a1f0e7b9d21"


async def test_a_save_is_kept_only_when_further(redis_client: Redis) -> None:
    states = RedisDigestStates(redis_client, "t", ttl=60)
    assert await states.load(SID) is None
    assert await states.save(SID, 100, b"at 100")
    assert not await states.save(SID, 100, b"also at 100")  # as far: the first stays
    assert not await states.save(SID, 50, b"behind")  # a slower replica's older state
    assert await states.load(SID) == (100, b"at 100")
    assert await states.save(SID, 200, b"\x00\xffbinary")
    assert await states.load(SID) == (200, b"\x00\xffbinary")
    assert 0 < await redis_client.pttl(f"t:digest:{SID}") <= 60_000
    await states.delete(SID)
    assert await states.load(SID) is None


async def test_a_lost_redis_is_storage_unavailable(redis_client: Redis, redis_server: RedisServer) -> None:
    states = RedisDigestStates(redis_client, "t")
    redis_server.stop()
    try:
        with pytest.raises(StorageUnavailable):
            await states.save(SID, 1, b"x")
        with pytest.raises(StorageUnavailable):
            await states.load(SID)
    finally:
        redis_server.start()
