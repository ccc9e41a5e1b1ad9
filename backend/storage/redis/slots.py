"""Admission counters on Redis: :class:`~backend.services.slots.AdmissionCounters` shared
by every replica.

Keys (``{prefix}:slot:...``):

- ``up:{id}``: the upload's last report, JSON, expiring when the upload does;
- ``active``: a sorted set of upload ids scored by the time their slot lapses (last
  report + ``idle``): the active uploads are those scored after now;
- ``owner:{owner}``: a sorted set of the owner's unfinished uploads scored by expiry,
  and ``size:{owner}``, a hash of their sizes.

Each claim is one Lua script: expired entries are dropped, the cap is checked and the
place taken together, so two replicas cannot both take the last slot. A refusal names
the holders; their reports are then read (``MGET``) for Retry-After, a hint that need
not be atomic with the claim. Redis unreachable:
:class:`~backend.errors.StorageUnavailable`; nothing is admitted unchecked.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict

from redis.asyncio import Redis

from backend.services.slots import OwnerRefusal, UploadActivity
from backend.storage.redis.client import unavailable

# KEYS: active, up:{id}. ARGV: id, now, cap, lapses at, report, expires at (ms).
# {1}: admitted; {0, holder ids...}: refused.
CLAIM_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local holders = redis.call('ZRANGE', KEYS[1], 0, -1)
  table.insert(holders, 1, 0)
  return holders
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('SET', KEYS[2], ARGV[5], 'PXAT', ARGV[6])
return {1}
"""
# KEYS: owner:{owner}, size:{owner}, up:{id}. ARGV: id, now, max open, max bytes, size,
# report, expires at (ms), expires at (s).
# {1}: admitted; {0, too many (1/0), pending bytes, holder ids...}: refused.
CLAIM_OWNER = """
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  redis.call('HDEL', KEYS[2], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local others, pending = {}, 0
for _, other in ipairs(ids) do
  if other ~= ARGV[1] then
    table.insert(others, other)
    pending = pending + tonumber(redis.call('HGET', KEYS[2], other) or '0')
  end
end
local too_many = #others >= tonumber(ARGV[3])
if too_many or pending + tonumber(ARGV[5]) > tonumber(ARGV[4]) then
  local out = {0, too_many and 1 or 0, pending}
  for _, other in ipairs(others) do table.insert(out, other) end
  return out
end
redis.call('ZADD', KEYS[1], ARGV[8], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
redis.call('SET', KEYS[3], ARGV[6], 'PXAT', ARGV[7])
return {1}
"""
# KEYS: active, owner:{owner}, size:{owner}, up:{id}. ARGV: id, lapses at, report,
# expires at (ms), expires at (s), size.
REPORT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
redis.call('SET', KEYS[4], ARGV[3], 'PXAT', ARGV[4])
return 1
"""


class RedisCounters:
    def __init__(self, redis: Redis, prefix: str = "pdfup", clock: Callable[[], float] = time.time,
                 idle: float = 600.0) -> None:
        """``idle``: how long a report keeps an upload active (``active_idle_seconds``)."""
        self.redis = redis
        self.prefix = f"{prefix}:slot:"
        self.clock = clock
        self.idle = idle
        self._claim_slot = redis.register_script(CLAIM_SLOT)
        self._claim_owner = redis.register_script(CLAIM_OWNER)
        self._report = redis.register_script(REPORT)

    def _up(self, upload_id: str) -> str:
        return f"{self.prefix}up:{upload_id}"

    def _owner(self, owner: str) -> list[str]:
        return [f"{self.prefix}owner:{owner}", f"{self.prefix}size:{owner}"]

    @staticmethod
    def _encode(upload: UploadActivity) -> str:
        return json.dumps(asdict(upload), separators=(",", ":"))

    @staticmethod
    def _expiry_ms(upload: UploadActivity) -> int:
        return max(1, math.ceil(upload.expires_at * 1000))

    async def _read(self, ids: list[str]) -> list[UploadActivity]:
        if not ids:
            return []
        async with unavailable("admission counters"):
            blobs = await self.redis.mget([self._up(i) for i in ids])
        return [UploadActivity(**json.loads(b)) for b in blobs if b is not None]

    async def claim_slot(self, upload: UploadActivity, cap: int, idle: float) -> list[UploadActivity] | None:
        now = self.clock()
        async with unavailable("admission counters"):
            result = await self._claim_slot(
                keys=[f"{self.prefix}active", self._up(upload.upload_id)],
                args=[upload.upload_id, repr(now), cap, repr(upload.last_activity + idle), self._encode(upload),
                      self._expiry_ms(upload)])
        if int(result[0]) == 1:
            return None
        return await self._read([_text(i) for i in result[1:]])

    async def claim_owner(self, upload: UploadActivity, max_open: int, max_bytes: int) -> OwnerRefusal | None:
        now = self.clock()
        async with unavailable("admission counters"):
            result = await self._claim_owner(
                keys=[*self._owner(upload.owner), self._up(upload.upload_id)],
                args=[upload.upload_id, repr(now), max_open, max_bytes, upload.file_size, self._encode(upload),
                      self._expiry_ms(upload), repr(upload.expires_at)])
        if int(result[0]) == 1:
            return None
        holders = await self._read([_text(i) for i in result[3:]])
        return OwnerRefusal(bool(int(result[1])), int(result[2]), holders)

    async def report(self, upload: UploadActivity) -> None:
        if not upload.unfinished:
            await self.forget(upload.upload_id, upload.owner)
            return
        async with unavailable("admission counters"):
            await self._report(
                keys=[f"{self.prefix}active", *self._owner(upload.owner), self._up(upload.upload_id)],
                args=[upload.upload_id, repr(upload.last_activity + self.idle), self._encode(upload),
                      self._expiry_ms(upload), repr(upload.expires_at), upload.file_size])

    async def forget(self, upload_id: str, owner: str) -> None:
        owner_set, sizes = self._owner(owner)
        async with unavailable("admission counters"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(f"{self.prefix}active", upload_id)
            pipe.zrem(owner_set, upload_id)
            pipe.hdel(sizes, upload_id)
            pipe.delete(self._up(upload_id))
            await pipe.execute()

    async def active(self, idle: float) -> list[UploadActivity]:
        now = self.clock()
        async with unavailable("admission counters"):
            ids = await self.redis.zrangebyscore(f"{self.prefix}active", f"({now!r}", "+inf")
        return [u for u in await self._read([_text(i) for i in ids]) if u.active(now, idle)]

    async def unfinished(self, owner: str) -> list[UploadActivity]:
        now = self.clock()
        async with unavailable("admission counters"):
            ids = await self.redis.zrangebyscore(self._owner(owner)[0], f"({now!r}", "+inf")
        return [u for u in await self._read([_text(i) for i in ids]) if u.unfinished]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
