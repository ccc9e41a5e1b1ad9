"""The sliding-window limiter on an injected clock: bursts, the sustained rate, no
fixed-window boundary, all-or-nothing across keys, forgetting idle keys.

A contract suite: every test taking ``make`` runs against each backend of
:data:`tests.backends.BACKENDS` (in-process, and Redis on a real redis-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from backend.api.errors import rest_headers, rest_status
from backend.errors import RateLimited, StorageUnavailable
from backend.services.ratelimit import RateLimiter, Rule, SessionRateLimits, SlidingWindowLimiter
from backend.storage.redis.limiter import RedisRateLimiter
from tests.backends import BACKENDS, redis_client
from tests.realservers.redis_server import RedisServer

DEFAULT = Rule(60, 60.0, 10)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Make = Callable[[Clock], RateLimiter]


@pytest.fixture(params=BACKENDS)
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """``make(clock)``: a limiter of the backend under test on that clock."""
    if request.param == "local":
        yield SlidingWindowLimiter
    else:
        async with redis_client(request) as client:
            yield lambda clock: RedisRateLimiter(client, prefix="test", clock=clock)


async def admitted(limiter: RateLimiter, key: str, rule: Rule = DEFAULT) -> bool:
    return await limiter.acquire([(key, rule)]) is None


async def test_a_burst_then_one_a_second(make: Make) -> None:
    clock = Clock()
    limiter = make(clock)
    assert [await admitted(limiter, "a") for _ in range(11)] == [True] * 10 + [False]
    refusal = await limiter.acquire([("a", DEFAULT)])
    assert refusal is not None and refusal.key == "a" and refusal.retry_after == pytest.approx(10.0)
    clock.now = 9.99
    assert not await admitted(limiter, "a")
    clock.now = 10.0  # the whole burst slid out of its 10 s window
    assert [await admitted(limiter, "a") for _ in range(11)] == [True] * 10 + [False]


async def test_the_sustained_rate_holds_over_any_minute(make: Make) -> None:
    """One event a second for two minutes: every one admitted, and never more than 60 in a minute."""
    clock = Clock()
    limiter = make(clock)
    times = []
    for step in range(240):
        clock.now = step * 0.5
        if await admitted(limiter, "a"):
            times.append(clock.now)
    assert len(times) >= 120
    for t in times:
        assert sum(1 for u in times if t <= u < t + 60) <= 60
        assert sum(1 for u in times if t <= u < t + 10) <= 10


async def test_the_minute_rule_binds_when_the_burst_is_the_whole_minute(make: Make) -> None:
    clock = Clock()
    limiter = make(clock)
    rule = Rule(5, 60.0, 5)
    for i in range(5):
        clock.now = i * 10.0
        assert await admitted(limiter, "k", rule)
    clock.now = 59.0
    refusal = await limiter.acquire([("k", rule)])
    assert refusal is not None and refusal.retry_after == pytest.approx(1.0)  # the first leaves at 60
    clock.now = 60.0
    assert await admitted(limiter, "k", rule)


async def test_all_or_nothing_across_keys(make: Make) -> None:
    clock = Clock()
    limiter = make(clock)
    tight = Rule(2, 60.0, 2)
    assert await limiter.acquire([("owner:a", DEFAULT), ("ip:1", tight)]) is None
    assert await limiter.acquire([("owner:b", DEFAULT), ("ip:1", tight)]) is None
    refusal = await limiter.acquire([("owner:a", DEFAULT), ("ip:1", tight)])
    assert refusal is not None and refusal.key == "ip:1"
    # owner:a was not charged for the refused attempt: 9 more fit from another address
    assert [await admitted(limiter, "owner:a") for _ in range(10)] == [True] * 9 + [False]


async def test_a_zero_limit_is_off_and_idle_keys_are_forgotten() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(clock)
    off = Rule(0, 60.0, 1)
    assert all([await admitted(limiter, "x", off) for _ in range(1000)])
    for i in range(50):
        await admitted(limiter, f"k{i}")
    assert len(limiter) == 50
    clock.now = 59.0
    limiter.prune()
    assert len(limiter) == 50
    clock.now = 60.0
    limiter.prune()
    assert len(limiter) == 0


async def test_session_limits_raise_rate_limited_with_a_whole_retry_after(make: Make) -> None:
    clock = Clock()
    limits = SessionRateLimits(make(clock), Rule(60, 60.0, 2), Rule(60, 60.0, 10))
    await limits.check("alice", "10.0.0.1")
    clock.now = 0.3
    await limits.check("alice", "10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        await limits.check("alice", "10.0.0.2")
    assert refused.value.retry_after == 2 and refused.value.extra["scope"] == "owner"  # ceil(2.0 - 0.3)
    assert rest_headers(refused.value) == {"Retry-After": "2"}
    assert limits.refusals == {"owner": 1, "ip": 0}


async def test_replicas_share_one_budget(request: pytest.FixtureRequest) -> None:
    """Two limiters on one Redis (two replicas): 10 at once in all, not 10 each."""
    async with redis_client(request) as a_client, redis_client(request) as b_client:
        a, b = RedisRateLimiter(a_client, prefix="test"), RedisRateLimiter(b_client, prefix="test")
        results = [await admitted(a if i % 2 else b, "owner:x") for i in range(12)]
        assert results == [True] * 10 + [False] * 2
        refusal = await a.acquire([("owner:x", DEFAULT)])
        assert refusal is not None and 9 < refusal.retry_after <= 10  # Redis's clock: the burst's 10 s window


async def test_a_lost_redis_is_storage_unavailable_then_recovers(request: pytest.FixtureRequest,
                                                                 redis_server: RedisServer) -> None:
    """Redis gone: 503 ``storage_unavailable`` with Retry-After (nothing admitted
    unchecked); back: the same client reconnects on its own."""
    async with redis_client(request) as client:
        limiter = RedisRateLimiter(client, prefix="test")
        assert await admitted(limiter, "owner:x")
        redis_server.stop()
        try:
            with pytest.raises(StorageUnavailable) as refused:
                await limiter.acquire([("owner:x", DEFAULT)])
            assert rest_status(refused.value) == 503 and rest_headers(refused.value) == {"Retry-After": "2"}
        finally:
            redis_server.start()
        assert await admitted(limiter, "owner:x")
