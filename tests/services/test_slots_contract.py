"""The admission counters contract (``backend/services/slots.py``) against every backend:
the active-uploads cap, an owner's count and bytes caps, idleness and expiry freeing
places, refusals naming the holders; on Redis, two replicas sharing one set of caps.
Adding a backend is one entry in ``COUNTERS``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace

import pytest

from backend.errors import StorageUnavailable
from backend.services.slots import AdmissionCounters, LocalCounters, UploadActivity
from backend.storage.redis.slots import RedisCounters
from tests.backends import redis_client
from tests.realservers.redis_server import RedisServer

IDLE = 600.0
T0 = 1_800_000_000.0  # a wall-clock time, far from 0 as real ones are


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


Make = Callable[[Clock], AbstractAsyncContextManager[AdmissionCounters]]


def _local(request: pytest.FixtureRequest) -> Make:
    shared: dict[int, LocalCounters] = {}

    @asynccontextmanager
    async def make(clock: Clock) -> AsyncIterator[AdmissionCounters]:
        yield shared.setdefault(id(clock), LocalCounters(clock))  # one process: one set of counters

    return make


def _redis(request: pytest.FixtureRequest) -> Make:
    @asynccontextmanager
    async def make(clock: Clock) -> AsyncIterator[AdmissionCounters]:
        async with redis_client(request) as client:  # each its own connections: a replica
            yield RedisCounters(client, prefix="test", clock=clock, idle=IDLE)

    return make


COUNTERS = {"local": _local, "redis": _redis}


@pytest.fixture(params=sorted(COUNTERS))
def make(request: pytest.FixtureRequest) -> Make:
    return COUNTERS[request.param](request)


def up(n: int, *, owner: str = "alice", size: int = 100, at: float = T0, status: str = "uploading",
       expires_in: float = 3600.0, rate: float = 0.0) -> UploadActivity:
    return UploadActivity(f"u{n}", owner, size, 0, status, rate, False, at, at + expires_in)


async def test_the_active_cap_and_an_active_upload_keeps_its_slot(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a, make(clock) as b:
        assert await a.claim_slot(up(1), 2, IDLE) is None
        assert await b.claim_slot(up(2), 2, IDLE) is None
        holders = await a.claim_slot(up(3), 2, IDLE)
        assert holders is not None and sorted(h.upload_id for h in holders) == ["u1", "u2"]
        assert await b.claim_slot(up(1, at=T0 + 5), 2, IDLE) is None  # already active: goes on
        assert sorted(u.upload_id for u in await b.active(IDLE)) == ["u1", "u2"]


async def test_an_idle_upload_frees_its_slot(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a:
        assert await a.claim_slot(up(1), 1, IDLE) is None
        clock.now = T0 + IDLE - 1
        assert await a.claim_slot(up(2, at=clock.now), 1, IDLE) is not None
        await a.report(up(1, at=clock.now))  # a request of u1 reported: active for another IDLE
        clock.now = T0 + IDLE + 1
        assert await a.claim_slot(up(2, at=clock.now), 1, IDLE) is not None
        clock.now = T0 + 2 * IDLE
        assert await a.claim_slot(up(2, at=clock.now), 1, IDLE) is None
        assert [u.upload_id for u in await a.active(IDLE)] == ["u2"]


async def test_a_finished_upload_holds_nothing(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a:
        assert await a.claim_owner(up(1), 1, 10_000) is None
        assert await a.claim_slot(up(1), 1, IDLE) is None
        await a.report(up(1, status="completed"))
        assert await a.active(IDLE) == [] and await a.unfinished("alice") == []
        assert await a.claim_slot(up(2), 1, IDLE) is None
        assert await a.claim_owner(up(2), 1, 10_000) is None


async def test_the_owners_caps_count_and_bytes(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a, make(clock) as b:
        assert await a.claim_owner(up(1, size=400), 3, 1000) is None
        assert await b.claim_owner(up(2, size=400), 3, 1000) is None
        too_big = await a.claim_owner(up(3, size=300), 3, 1000)
        assert too_big is not None and not too_big.too_many and too_big.pending_bytes == 800
        assert await b.claim_owner(up(3, size=200), 3, 1000) is None
        full = await a.claim_owner(up(4, size=1), 3, 1000)
        assert full is not None and full.too_many and sorted(u.upload_id for u in full.unfinished) == [
            "u1", "u2", "u3"]
        assert await a.claim_owner(up(5, owner="bob", size=1000), 3, 1000) is None  # another owner's own caps
        await b.forget("u1", "alice")
        assert await a.claim_owner(up(4, size=1), 3, 1000) is None
        assert sorted(u.upload_id for u in await b.unfinished("alice")) == ["u2", "u3", "u4"]


async def test_expiry_frees_an_owners_place(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a:
        assert await a.claim_owner(up(1, expires_in=60), 1, 10_000) is None
        assert await a.claim_owner(up(2), 1, 10_000) is not None
        clock.now = T0 + 61
        assert await a.unfinished("alice") == []
        assert await a.claim_owner(up(2, at=clock.now), 1, 10_000) is None


async def test_a_refusal_carries_the_holders_reports(make: Make) -> None:
    clock = Clock()
    async with make(clock) as a:
        fast = replace(up(1, size=10_000, rate=1000.0), uploaded=8000, in_flight=True)
        assert await a.claim_slot(fast, 1, IDLE) is None
        holders = await a.claim_slot(up(2), 1, IDLE)
        assert holders == [fast]  # every field, for Retry-After


async def test_concurrent_claims_never_pass_the_cap(request: pytest.FixtureRequest) -> None:
    """Twenty claims at once from two replicas on one Redis: exactly the cap admitted."""
    clock = Clock()
    make = _redis(request)
    async with make(clock) as a, make(clock) as b:
        results = await asyncio.gather(*((a if n % 2 else b).claim_slot(up(n), 5, IDLE) for n in range(20)))
        assert sum(r is None for r in results) == 5
        owners = await asyncio.gather(*((a if n % 2 else b).claim_owner(up(100 + n), 7, 10**9)
                                        for n in range(20)))
        assert sum(r is None for r in owners) == 7


async def test_redis_unreachable_is_storage_unavailable(request: pytest.FixtureRequest,
                                                        redis_server: RedisServer) -> None:
    async with _redis(request)(Clock()) as counters:
        redis_server.stop()
        try:
            with pytest.raises(StorageUnavailable):
                await counters.claim_slot(up(1), 5, IDLE)
            with pytest.raises(StorageUnavailable):
                await counters.claim_owner(up(1), 5, 10_000)
        finally:
            redis_server.start()
