"""Per-upload locks on Redis: :class:`~backend.storage.locks.UploadLocker` for replicas.

Two keys per upload: ``{prefix}:lock:{id}`` holds the holder's token and expires after
the lease's ttl (``SET NX PX``); ``{prefix}:unlock:{id}`` is the release request, set by
a waiter and seen by the holder when it renews. Each step is one Lua script, so a token
is compared and acted on atomically: only the holder renews or releases, and a holder
whose lease expired cannot touch its successor's. A waiter retries every
:data:`POLL` seconds until the lock is free or its wait is over; the holder sees the
request at its next renewal (:func:`~backend.storage.locks.held`: every 0.2 s).

Redis unreachable: :class:`~backend.errors.StorageUnavailable` from every method.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from backend.storage.locks import Lease, Renewal, new_token
from backend.storage.redis.client import unavailable

POLL = 0.05

# KEYS: lock, request. ARGV: token, ttl in ms. 1: taken (any old request cleared); 0: held
# by another, whom the request now asks to release.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""
# KEYS: lock, request. ARGV: token, ttl in ms. 0: not held; 1: renewed; 3: renewed, release requested.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1 + 2 * redis.call('EXISTS', KEYS[2])
"""
# KEYS: lock, request. ARGV: token.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""
# KEYS: lock, request.
REQUEST = """
local left = redis.call('PTTL', KEYS[1])
if left <= 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', left)
return 1
"""


class RedisLocker:
    def __init__(self, redis: Redis, prefix: str = "pdfup") -> None:
        self.redis = redis
        self.prefix = prefix
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)
        self._request = redis.register_script(REQUEST)

    def _keys(self, upload_id: str) -> list[str]:
        return [f"{self.prefix}:lock:{upload_id}", f"{self.prefix}:unlock:{upload_id}"]

    async def acquire(self, upload_id: str, *, ttl: float, wait: float) -> Lease | None:
        token, ms = new_token(), max(1, int(ttl * 1000))
        deadline = time.monotonic() + wait
        while True:
            async with unavailable("upload locks"):
                taken = await self._acquire(keys=self._keys(upload_id), args=[token, ms])
            if int(taken) == 1:
                return Lease(upload_id, token, ttl)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(POLL, left))

    async def renew(self, lease: Lease) -> Renewal:
        async with unavailable("upload locks"):
            state = int(await self._renew(keys=self._keys(lease.upload_id),
                                          args=[lease.token, max(1, int(lease.ttl * 1000))]))
        return Renewal(held=state > 0, release_requested=state == 3)

    async def release(self, lease: Lease) -> bool:
        async with unavailable("upload locks"):
            return int(await self._release(keys=self._keys(lease.upload_id), args=[lease.token])) == 1

    async def request_release(self, upload_id: str) -> bool:
        async with unavailable("upload locks"):
            return int(await self._request(keys=self._keys(upload_id), args=[])) == 1
