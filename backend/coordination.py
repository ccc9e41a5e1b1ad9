"""What replicas must share, built from settings: in this process (the default), or in
Redis when ``STREAMING_REDIS_URL`` is set.

:func:`build_coordination` is called by the composition root only. The parts are seams
with one contract suite each, run against both backends: the rate limiter
(tests/services/test_ratelimit.py), the progress bus (test_progress_bus.py), the upload
locks (tests/storage/test_locks_contract.py), the admission counters
(tests/services/test_slots_contract.py) and, on Redis, the session state store
(tests/storage/test_state_store.py; in-process it is the composition's file store).
:meth:`Coordination.start` starts the bus's background work; :meth:`Coordination.stop`
stops it and closes the Redis connections.

All are wired by the composition: with Redis, ``states`` is the session state store,
``digests`` keeps the prefix states that move between replicas
(:mod:`backend.services.digest_handover`), ``locks`` serialize appends and ``counters``
admit uploads across replicas (see README, "Several replicas: Redis").
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from backend.services.progress import LocalProgressBus, ProgressBus
from backend.services.ratelimit import RateLimiter, SlidingWindowLimiter
from backend.services.slots import AdmissionCounters, LocalCounters
from backend.settings import Settings
from backend.storage.base import StateStore
from backend.storage.locks import LocalLocker, UploadLocker
from backend.storage.redis.bus import RedisProgressBus
from backend.storage.redis.client import connect
from backend.storage.redis.digests import RedisDigestStates
from backend.storage.redis.limiter import RedisRateLimiter
from backend.storage.redis.locks import RedisLocker
from backend.storage.redis.slots import RedisCounters
from backend.storage.redis.state import RedisStateStore


@dataclass
class Coordination:
    bus: ProgressBus
    limiter: RateLimiter
    locks: UploadLocker
    counters: AdmissionCounters
    states: StateStore | None = None  # None: the composition's own (files in state_dir)
    redis: Redis | None = None
    digests: RedisDigestStates | None = None  # saved prefix states (several replicas only)

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
        return Coordination(LocalProgressBus(ttl), SlidingWindowLimiter(), LocalLocker(), LocalCounters())
    redis = connect(settings.redis_url)
    prefix = settings.redis_prefix
    return Coordination(RedisProgressBus(redis, prefix, ttl), RedisRateLimiter(redis, prefix),
                        RedisLocker(redis, prefix), RedisCounters(redis, prefix, idle=settings.active_idle_seconds),
                        RedisStateStore(redis, prefix), redis, RedisDigestStates(redis, prefix, ttl))
