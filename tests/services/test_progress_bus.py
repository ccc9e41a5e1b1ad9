"""The progress bus contract, against every backend: local delivery in order, the room's
latest state for late joiners; and, on a real redis-server, events across replicas and
what a lost Redis costs (events to other replicas, never the room state, never a crash)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from backend.errors import StorageUnavailable
from backend.services.progress import Envelope, LocalProgressBus, ProgressBus
from backend.storage.redis.bus import RedisProgressBus
from tests.backends import BACKENDS, redis_client
from tests.realservers.redis_server import RedisServer

Make = Callable[[], ProgressBus]


@pytest.fixture(params=BACKENDS)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[ProgressBus]:
    if request.param == "local":
        made: ProgressBus = LocalProgressBus()
        yield made
        return
    async with redis_client(request) as client:
        made = RedisProgressBus(client, prefix="test")
        await made.start()
        try:
            yield made
        finally:
            await made.stop()


def progress(sid: str, n: int) -> dict[str, Any]:
    return {"type": "upload_progress", "data": {"session_id": sid, "uploaded_chunks": n}}


def chunk(sid: str, n: int) -> dict[str, Any]:
    return {"type": "chunk_progress", "session_id": sid, "chunk_id": n}


def status(sid: str, value: str) -> dict[str, Any]:
    return {"type": "upload_status", "session_id": sid, "status": value, "message": value}


def env(event: dict[str, Any], sid: str | None = "s1", owner: str | None = "alice") -> Envelope:
    return Envelope(sid, owner, ("c1",), event)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the timeout"
        await asyncio.sleep(0.02)


async def test_subscribers_hear_events_at_once_in_order(bus: ProgressBus) -> None:
    seen: list[Envelope] = []
    bus.subscribe(seen.append)
    sent = [env(progress("s1", n)) for n in range(5)] + [env(status("s1", "processing"))]
    for e in sent:
        bus.publish(e)
    assert seen == sent  # synchronously, before any await


async def test_a_late_joiner_gets_the_latest_of_each_kind(bus: ProgressBus) -> None:
    for n in range(3):
        bus.publish(env(progress("s1", n)))
        bus.publish(env(chunk("s1", n)))
    bus.publish(env(status("s1", "processing")))
    bus.publish(env({"type": "memory_warning", "data": {}}, sid=None, owner=None))  # no room's state
    bus.publish(env(progress("s2", 7), sid="s2", owner="bob"))

    async def latest() -> list[dict[str, Any]] | None:
        snap = await bus.snapshot("s1")
        return None if snap is None else snap.events

    want = [progress("s1", 2), chunk("s1", 2), status("s1", "processing")]
    for _ in range(250):
        if await latest() == want:
            break
        await asyncio.sleep(0.02)
    snap = await bus.snapshot("s1")
    assert snap is not None and snap.owner == "alice" and snap.events == want
    other = await bus.snapshot("s2")
    assert other is not None and other.owner == "bob" and other.events == [progress("s2", 7)]
    assert await bus.snapshot("nobody") is None


async def test_a_status_is_replaced_not_appended(bus: ProgressBus) -> None:
    for value in ("processing", "importing", "completed"):
        bus.publish(env(status("s1", value)))
    for _ in range(250):
        snap = await bus.snapshot("s1")
        if snap is not None and snap.events == [status("s1", "completed")]:
            break
        await asyncio.sleep(0.02)
    assert snap is not None and snap.events == [status("s1", "completed")]


async def test_the_local_state_expires() -> None:
    now = [0.0]
    bus = LocalProgressBus(state_ttl=60, clock=lambda: now[0])
    bus.publish(env(status("s1", "processing")))
    now[0] = 59.0
    assert await bus.snapshot("s1") is not None
    now[0] = 61.0
    assert await bus.snapshot("s1") is None


# -- Redis only: several replicas, a lost Redis ----------------------------------------------


@pytest.fixture
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisProgressBus, RedisProgressBus]]:
    """Two buses on one redis-server, each with its own connections: two replicas."""
    async with redis_client(request) as a_client, redis_client(request) as b_client:
        a, b = RedisProgressBus(a_client, prefix="test"), RedisProgressBus(b_client, prefix="test")
        await a.start()
        await b.start()
        await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 5)
        try:
            yield a, b
        finally:
            await a.stop()
            await b.stop()


async def test_every_replica_hears_every_other_replicas_events_once(
        replicas: tuple[RedisProgressBus, RedisProgressBus]) -> None:
    a, b = replicas
    heard_a: list[Envelope] = []
    heard_b: list[Envelope] = []
    a.subscribe(heard_a.append)
    b.subscribe(heard_b.append)
    sent = [env(progress("s1", n)) for n in range(20)] + [env(status("s1", "completed"))]
    for e in sent:
        a.publish(e)
    await eventually(lambda: len(heard_b) == len(sent))
    assert heard_b == sent  # in order, with owner and client ids
    await asyncio.sleep(0.1)
    assert heard_a == sent  # its own events once (delivered at publish), not again from Redis
    b.publish(env(chunk("s9", 1), sid="s9"))
    await eventually(lambda: len(heard_a) == len(sent) + 1)
    snap = await b.snapshot("s1")  # the state written by A, read on B
    assert snap is not None and snap.events[-1] == status("s1", "completed")


async def test_a_lost_redis_loses_events_to_other_replicas_but_not_the_state(
        replicas: tuple[RedisProgressBus, RedisProgressBus], redis_server: RedisServer) -> None:
    a, b = replicas
    heard_a: list[Envelope] = []
    heard_b: list[Envelope] = []
    a.subscribe(heard_a.append)
    b.subscribe(heard_b.append)
    redis_server.stop()
    try:
        a.publish(env(progress("s1", 5)))  # never raises; this replica's own sockets still hear it
        a.publish(env(status("s1", "processing")))
        assert len(heard_a) == 2
        await eventually(lambda: not b.subscribed.is_set())
        with pytest.raises(StorageUnavailable):
            await b.snapshot("s1")
    finally:
        redis_server.start()  # empty: no persistence in tests
    await asyncio.wait_for(b.subscribed.wait(), 10)  # the subscription comes back on its own
    await eventually(lambda: a._unsaved == {}, timeout=10)  # the state kept aside is written now
    snap = await b.snapshot("s1")
    assert snap is not None and snap.owner == "alice"
    assert snap.events == [progress("s1", 5), status("s1", "processing")]
    a.publish(env(status("s1", "completed")))
    await eventually(lambda: any(e.event.get("status") == "completed" for e in heard_b))


async def test_stop_ends_even_when_it_lands_inside_a_redis_command(request: pytest.FixtureRequest) -> None:
    """Stopping right after a publish cancels the sender inside its pipeline, where
    redis-py may swallow the cancellation; the bus still stops, at once (a server's
    shutdown must not hang)."""
    async with redis_client(request) as client:
        for n in range(20):
            bus = RedisProgressBus(client, prefix="test")
            await bus.start()
            for i in range(50):
                bus.publish(env(progress("s1", i)))
            await asyncio.sleep(0.001 * (n % 5))
            stopping = asyncio.create_task(bus.stop())
            done, _ = await asyncio.wait({stopping}, timeout=2)  # not wait_for: it could be swallowed too
            assert stopping in done, f"stop hung (round {n})"


async def test_a_redis_that_refuses_writes_does_not_end_the_bus(
        replicas: tuple[RedisProgressBus, RedisProgressBus], request: pytest.FixtureRequest) -> None:
    """Out of memory under ``noeviction``, Redis refuses the state's HSET (a RedisError,
    not a lost connection): the sender keeps going, and writes the state once it may."""
    a, b = replicas
    heard_b: list[Envelope] = []
    b.subscribe(heard_b.append)
    async with redis_client(request) as admin:
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        try:
            a.publish(env(status("s1", "processing")))
            await eventually(lambda: len(heard_b) == 1)  # PUBLISH is still allowed
            await asyncio.sleep(0.2)
            assert a._unsaved and not any(t.done() for t in a._tasks)
        finally:
            await admin.config_set("maxmemory", "0")
        await eventually(lambda: a._unsaved == {}, timeout=10)
        snap = await b.snapshot("s1")
        assert snap is not None and snap.events == [status("s1", "processing")]
        a.publish(env(status("s1", "completed")))
        await eventually(lambda: len(heard_b) == 2)
