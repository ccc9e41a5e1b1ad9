"""The sliding-window rate limiter on Redis: one budget per key across every replica.

Semantics are :class:`~backend.services.ratelimit.SlidingWindowLimiter`'s exactly (the
contract suite runs both): per key a log of the last ``limit`` event times, the newest
first (a list, ``LPUSH`` + ``LTRIM``), and an event fits when the ``limit``-th newest is
older than ``window`` and the ``burst``-th newest older than the burst window. One Lua
script checks every key of a decision and, only if all have room, records the event
under each (all or nothing, atomic: two replicas cannot both take the last place).

Time is Redis's own clock (``TIME``) unless a ``clock`` is given (tests), so replicas
with skewed clocks still share one window. A key expires once its window has passed
with no event, which is the in-process limiter's pruning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from backend.services.ratelimit import Refusal, Rule
from backend.storage.redis.client import unavailable

# KEYS: one log per rule. ARGV[1]: now in seconds ('' = Redis's clock); then, per key:
# limit, window, burst count, burst window. Returns {0} when admitted, else
# {index of the key that refused (1-based), wait in seconds as a string}.
SCRIPT = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local worst, worst_i = 0, 0
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 4
  local limit, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local bcount, bwindow = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local n = redis.call('LLEN', key)
  local wait = 0
  if n >= limit then
    wait = math.max(wait, tonumber(redis.call('LINDEX', key, limit - 1)) + window - now)
  end
  if n >= bcount then
    wait = math.max(wait, tonumber(redis.call('LINDEX', key, bcount - 1)) + bwindow - now)
  end
  if wait > worst then worst, worst_i = wait, i end
end
if worst_i > 0 then return {worst_i, tostring(worst)} end
local stamp = string.format('%.6f', now)
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 4
  redis.call('LPUSH', key, stamp)
  redis.call('LTRIM', key, 0, tonumber(ARGV[b + 1]) - 1)
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[b + 2]) * 1000) + 1000)
end
return {0}
"""


class RedisRateLimiter:
    """:class:`~backend.services.ratelimit.RateLimiter` on Redis (see the module doc).

    Raises :class:`~backend.errors.StorageUnavailable` when Redis cannot be reached:
    nothing is counted, and nothing is admitted unchecked."""

    def __init__(self, redis: Redis, prefix: str = "pdfup", clock: Callable[[], float] | None = None) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:rl:"
        self.clock = clock
        self._script = redis.register_script(SCRIPT)

    async def acquire(self, hits: Sequence[tuple[str, Rule]]) -> Refusal | None:
        live = [(key, rule) for key, rule in hits if rule.enabled]
        if not live:
            return None
        args: list[str | float | int] = ["" if self.clock is None else repr(float(self.clock()))]
        for _, rule in live:
            args += [rule.limit, repr(float(rule.window)), min(rule.burst, rule.limit), repr(rule.burst_window)]
        async with unavailable("rate limits"):
            result = await self._script(keys=[self.prefix + key for key, _ in live], args=args)
        if int(result[0]) == 0:
            return None
        return Refusal(live[int(result[0]) - 1][0], float(result[1]))

