"""What replicas must share, built from settings: in this process (the default), or in
Redis when ``STREAMING_REDIS_URL`` is set.

:func:`build_coordination` is called by the composition root only. The parts are seams
with one contract suite each (tests/services/test_ratelimit.py, test_progress_bus.py,
tests/storage/test_locks_contract.py, test_slots_contract.py), run against both backends.
:meth:`Coordination.start` starts the bus's background work; :meth:`Coordination.stop`
stops it and closes the Redis connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from backend.services.progress import LocalProgressBus, ProgressBus
from backend.services.ratelimit import RateLimiter, SlidingWindowLimiter
from backend.settings import Settings
from backend.storage.redis.bus import RedisProgressBus
from backend.storage.redis.client import connect
from backend.storage.redis.limiter import RedisRateLimiter


@dataclass
class Coordination:
    bus: ProgressBus
    limiter: RateLimiter
    redis: Redis | None = None

    @property
    def backend(self) -> str:
        return "local" if self.redis is None else "redis"

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()
        if self.redis is not None:
            await self.redis.aclose()


def build_coordination(settings: Settings) -> Coordination:
    ttl = settings.session_timeout_seconds
    if not settings.redis_url:
        return Coordination(LocalProgressBus(ttl), SlidingWindowLimiter())
    redis = connect(settings.redis_url)
    prefix = settings.redis_prefix
    return Coordination(RedisProgressBus(redis, prefix, ttl), RedisRateLimiter(redis, prefix), redis)
