"""Session state in Redis: :class:`~backend.storage.base.StateStore` for several replicas.

One hash per session, ``{prefix}:state:{session_id}``: a field per top-level entry of
the record (``f:<name>``, its JSON) and one per recorded chunk (``c:<id>``, its digest),
plus ``_v``, a counter of writes. Recording a chunk is one ``HSET`` of its field in a
``MULTI`` with the fields it changes: there is no read-modify-write of the record, so
two replicas recording chunks of one session at once lose neither. ``save`` replaces
the whole hash in one ``MULTI`` (a reader sees the old record or the new). A set,
``{prefix}:states``, lists the sessions for ``load_all``.

A record whose fields do not parse is renamed to ``{prefix}:state-corrupt:{id}`` and
never loaded. Redis unreachable: :class:`~backend.errors.StorageUnavailable` (nothing
recorded; the chunk's answer is 503, and the client sends it again).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from backend.storage.redis.client import unavailable

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VERSION = "_v"


class RedisStateStore:
    def __init__(self, redis: Redis, prefix: str = "pdfup") -> None:
        self.redis = redis
        self.prefix = prefix
        self.index = f"{prefix}:states"

    def _key(self, session_id: str) -> str:
        if not _ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return f"{self.prefix}:state:{session_id}"

    @staticmethod
    def _fields(fields: Mapping[str, Any]) -> dict[FieldT, EncodableT]:
        return {f"f:{name}": json.dumps(value, separators=(",", ":")) for name, value in fields.items()
                if name != "chunks"}

    async def save(self, session_id: str, record: dict[str, Any]) -> None:
        key = self._key(session_id)
        mapping = self._fields(record)
        for chunk_id, digest in (record.get("chunks") or {}).items():
            mapping[f"c:{chunk_id}"] = digest
        async with unavailable("session state"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={**mapping, VERSION: 1})
            pipe.sadd(self.index, session_id)
            await pipe.execute()

    async def update(self, session_id: str, fields: dict[str, Any], chunks: Mapping[int, str | None]) -> None:
        key = self._key(session_id)
        mapping = self._fields(fields)
        gone = [f"c:{chunk_id}" for chunk_id, digest in chunks.items() if digest is None]
        for chunk_id, digest in chunks.items():
            if digest is not None:
                mapping[f"c:{chunk_id}"] = digest
        async with unavailable("session state"):
            pipe = self.redis.pipeline(transaction=True)
            if mapping:
                pipe.hset(key, mapping=mapping)
            if gone:
                pipe.hdel(key, *gone)
            pipe.hincrby(key, VERSION, 1)
            pipe.sadd(self.index, session_id)
            await pipe.execute()

    async def load(self, session_id: str) -> dict[str, Any] | None:
        try:
            key = self._key(session_id)
        except ValueError:
            return None
        async with unavailable("session state"):
            raw = await self.redis.hgetall(key)
        return await self._decode(session_id, raw)

    async def load_all(self) -> list[dict[str, Any]]:
        async with unavailable("session state"):
            ids = sorted(_text(i) for i in await self.redis.smembers(self.index))
            pipe = self.redis.pipeline(transaction=False)
            for session_id in ids:
                pipe.hgetall(self._key(session_id))
            raws = await pipe.execute()
        records = []
        for session_id, raw in zip(ids, raws):
            if not raw:  # deleted between the two reads, or an index entry left behind
                continue
            record = await self._decode(session_id, raw)
            if record is not None:
                records.append(record)
        return records

    async def delete(self, session_id: str) -> None:
        try:
            key = self._key(session_id)
        except ValueError:
            return
        async with unavailable("session state"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(key)
            pipe.srem(self.index, session_id)
            await pipe.execute()

    async def _decode(self, session_id: str, raw: Mapping[Any, Any]) -> dict[str, Any] | None:
        if not raw:
            return None
        record: dict[str, Any] = {}
        chunks: dict[str, str] = {}
        try:
            for name, value in ((_text(k), _text(v)) for k, v in raw.items()):
                if name.startswith("f:"):
                    record[name[2:]] = json.loads(value)
                elif name.startswith("c:"):
                    chunks[name[2:]] = value
            if record.get("session_id") != session_id:
                raise ValueError("the record does not hold its session")
        except ValueError as exc:
            log.error("session state %s is unreadable (%s); moved aside", session_id, exc)
            async with unavailable("session state"):
                pipe = self.redis.pipeline(transaction=True)
                pipe.rename(self._key(session_id), f"{self.prefix}:state-corrupt:{session_id}")
                pipe.srem(self.index, session_id)
                await pipe.execute()
            return None
        record["chunks"] = dict(sorted(chunks.items(), key=lambda item: int(item[0])))
        return record


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
