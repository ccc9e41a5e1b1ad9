"""Saved prefix states (whole-file SHA-256 + scan) in Redis, so that the replica that
holds an upload's next contiguous bytes continues them (:mod:`backend.services.digest_handover`).

One hash per session, ``{prefix}:digest:{session_id}``: ``offset`` and ``state`` (the
bytes of :meth:`~backend.services.prefix_state.PrefixState.dumps`). The version check is
the offset: a save is one Lua script that writes only if its offset is beyond the saved
one, so a slower replica never replaces a state with an older one (two replicas at one
offset hold the same state: the bytes decide it). The key expires with the session
(``ttl``), so a session ended anywhere leaves nothing behind for long.

Redis unreachable: :class:`~backend.errors.StorageUnavailable`.
"""

from __future__ import annotations

from redis.asyncio import Redis

from backend.storage.redis.client import unavailable

# KEYS: the state. ARGV: offset, state, ttl in ms. 1: saved; 0: the saved one is as far or further.
SAVE = """
local saved = tonumber(redis.call('HGET', KEYS[1], 'offset') or '-1')
if tonumber(ARGV[1]) <= saved then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[1], 'state', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisDigestStates:
    def __init__(self, redis: Redis, prefix: str = "pdfup", ttl: float = 86400.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl * 1000))
        self._save = redis.register_script(SAVE)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:digest:{session_id}"

    async def save(self, session_id: str, offset: int, state: bytes) -> bool:
        """Keep ``state`` (at ``offset``) unless a state as far or further is saved."""
        async with unavailable("digest state"):
            return int(await self._save(keys=[self._key(session_id)], args=[offset, state, self.ttl_ms])) == 1

    async def load(self, session_id: str) -> tuple[int, bytes] | None:
        async with unavailable("digest state"):
            offset, state = await self.redis.hmget(self._key(session_id), ["offset", "state"])
        if offset is None or state is None:
            return None
        return int(offset), state if isinstance(state, bytes) else str(state).encode()

    async def delete(self, session_id: str) -> None:
        async with unavailable("digest state"):
            await self.redis.delete(self._key(session_id))
