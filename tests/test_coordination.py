"""build_coordination: in-process parts by default, Redis parts on one client when
STREAMING_REDIS_URL is set; stop closes that client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from backend.coordination import build_coordination
from backend.services.progress import Envelope, LocalProgressBus
from backend.services.ratelimit import Rule, SlidingWindowLimiter
from backend.settings import temp_settings
from backend.storage.locks import LocalLocker
from backend.storage.redis.bus import RedisProgressBus
from backend.storage.redis.limiter import RedisRateLimiter
from backend.storage.redis.locks import RedisLocker
from backend.storage.redis.slots import RedisCounters
from backend.storage.redis.state import RedisStateStore


async def test_in_process_by_default(tmp_path: Path) -> None:
    parts = build_coordination(temp_settings(tmp_path))
    assert parts.backend == "local" and parts.redis is None and parts.states is None
    assert isinstance(parts.bus, LocalProgressBus) and isinstance(parts.limiter, SlidingWindowLimiter)
    assert isinstance(parts.locks, LocalLocker)
    await parts.start()
    await parts.stop()


async def test_redis_when_a_url_is_set(tmp_path: Path, redis_url: str) -> None:
    parts = build_coordination(temp_settings(tmp_path, redis_url=redis_url, redis_prefix="t1"))
    assert parts.backend == "redis" and parts.redis is not None
    assert isinstance(parts.bus, RedisProgressBus) and isinstance(parts.limiter, RedisRateLimiter)
    assert isinstance(parts.locks, RedisLocker) and isinstance(parts.counters, RedisCounters)
    assert isinstance(parts.states, RedisStateStore)
    begun = time.monotonic()
    await asyncio.wait_for(parts.start(), 5)
    try:
        assert await parts.limiter.acquire([("owner:x", Rule(1, 60, 1))]) is None
        parts.bus.publish(Envelope("s1", "o", (), {"type": "upload_status", "status": "processing"}))
        for _ in range(100):
            if await parts.bus.snapshot("s1") is not None:
                break
            await parts.redis.ping()
        assert await parts.redis.exists("t1:rl:owner:x") == 1  # the prefix is the setting's
    finally:
        await asyncio.wait_for(parts.stop(), 5)
    assert time.monotonic() - begun < 2
