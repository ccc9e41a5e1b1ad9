"""The upload lock contract (``backend/storage/locks.py``) against every backend: a token,
renewal, release only with the right token, release requests seen by the holder, and
expiry taking over from a dead holder. Adding a backend is one entry in ``LOCKERS``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from backend.errors import StorageUnavailable
from backend.storage.locks import Lease, LocalLocker, UploadLocker, held
from backend.storage.redis.locks import RedisLocker
from tests.backends import redis_client
from tests.realservers.redis_server import RedisServer

Lockers = Callable[[], AbstractAsyncContextManager[UploadLocker]]


@asynccontextmanager
async def _local(request: pytest.FixtureRequest) -> AsyncIterator[UploadLocker]:
    yield LocalLocker()


@asynccontextmanager
async def _redis(request: pytest.FixtureRequest) -> AsyncIterator[UploadLocker]:
    async with redis_client(request) as client:  # one client per locker: one replica each
        yield RedisLocker(client, prefix="test")


LOCKERS = {"local": _local, "redis": _redis}


@pytest.fixture(params=sorted(LOCKERS))
async def replica(request: pytest.FixtureRequest) -> AsyncIterator[Lockers]:
    """``replica()``: a locker as another replica would hold it, on the same shared state
    (in-process: the same locker, as two requests of one server share it)."""
    if request.param == "local":
        shared = LocalLocker()

        @asynccontextmanager
        async def same() -> AsyncIterator[UploadLocker]:
            yield shared

        yield same
    else:
        yield lambda: LOCKERS[request.param](request)


async def test_one_holder_at_a_time_and_a_waiter_asks_it_to_release(replica: Lockers) -> None:
    async with replica() as a, replica() as b:
        lease = await a.acquire("u1", ttl=5, wait=0)
        assert lease is not None and lease.token
        assert (await a.renew(lease)).release_requested is False
        assert await b.acquire("u1", ttl=5, wait=0.1) is None  # held: refused after its wait...
        renewal = await a.renew(lease)
        assert renewal.held and renewal.release_requested  # ...and the holder was asked to let go
        assert await a.release(lease)
        other = await b.acquire("u1", ttl=5, wait=0)
        assert other is not None and other.token != lease.token
        assert (await b.renew(other)).release_requested is False  # the old request went with the old lease
        assert await b.acquire("u2", ttl=5, wait=0) is not None  # another upload: its own lock


async def test_release_only_with_the_right_token(replica: Lockers) -> None:
    async with replica() as a, replica() as b:
        lease = await a.acquire("u1", ttl=5, wait=0)
        assert lease is not None
        forged = Lease("u1", "not-the-token", 5)
        assert not await b.release(forged)
        assert not (await b.renew(forged)).held
        assert await b.acquire("u1", ttl=5, wait=0) is None  # still held
        assert await a.release(lease)
        assert not await a.release(lease)  # once


async def test_renewing_keeps_the_lock_past_its_ttl(replica: Lockers) -> None:
    async with replica() as a, replica() as b:
        lease = await a.acquire("u1", ttl=0.3, wait=0)
        assert lease is not None
        for _ in range(6):
            await asyncio.sleep(0.1)
            assert (await a.renew(lease)).held
        assert await b.acquire("u1", ttl=5, wait=0) is None


async def test_a_dead_holders_lock_expires_and_is_taken_over(replica: Lockers) -> None:
    async with replica() as a, replica() as b:
        dead = await a.acquire("u1", ttl=0.3, wait=0)
        assert dead is not None  # and never renewed: its replica was killed
        begun = time.monotonic()
        taken = await b.acquire("u1", ttl=5, wait=3)
        assert taken is not None and 0.1 < time.monotonic() - begun < 2
        assert not (await a.renew(dead)).held  # the old holder learns it lost the lock...
        assert not await a.release(dead)  # ...and cannot release its successor's
        assert (await b.renew(taken)).held


async def test_a_holder_sees_a_release_request_and_hands_over(replica: Lockers) -> None:
    """tusd's requestUnlock: a new request asks, the writer stops and releases, the new
    one goes on, well within its wait (not after the ttl)."""
    async with replica() as a, replica() as b:
        lease = await a.acquire("u1", ttl=30, wait=0)
        assert lease is not None
        stopped = asyncio.Event()

        async def writer() -> None:
            async with held(a, lease, every=0.05) as stop:
                await asyncio.wait_for(stop.wait(), 10)
                stopped.set()  # records what it has, then the block's end releases

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.1)
        begun = time.monotonic()
        taken = await b.acquire("u1", ttl=30, wait=5)
        assert taken is not None and stopped.is_set() and time.monotonic() - begun < 2
        await task
        assert not await b.request_release("u2")  # nobody holds u2
        assert await b.request_release("u1") and (await b.renew(taken)).release_requested


async def test_held_sets_stop_when_the_lease_is_lost(replica: Lockers) -> None:
    async with replica() as a, replica() as b:
        lease = await a.acquire("u1", ttl=0.3, wait=0)
        assert lease is not None
        async with held(a, lease, every=0.05) as stop:
            assert await b.release(lease)  # as if it expired and was taken: the token no longer holds
            await asyncio.wait_for(stop.wait(), 2)


async def test_redis_unreachable_is_storage_unavailable(request: pytest.FixtureRequest,
                                                        redis_server: RedisServer) -> None:
    async with _redis(request) as locker:
        lease = await locker.acquire("u1", ttl=5, wait=0)
        assert lease is not None
        redis_server.stop()
        try:
            for attempt in (locker.acquire("u2", ttl=5, wait=0), locker.renew(lease), locker.release(lease),
                            locker.request_release("u1")):
                with pytest.raises(StorageUnavailable) as refused:
                    await attempt
                assert refused.value.retry_after
        finally:
            redis_server.start()
        assert await locker.acquire("u1", ttl=5, wait=0) is not None  # empty after the restart
