"""Admission's Retry-After: when the first slot should free, from the live sessions; and
the same decisions across replicas on the shared counters (in-process and Redis)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from backend.errors import QuotaExceeded, TooManyUploads
from backend.services.admission import Admission
from backend.services.live import LiveSession
from backend.services.models import PROCESSING, Session
from backend.services.slots import AdmissionCounters, LocalCounters
from backend.settings import temp_settings
from backend.storage.redis.slots import RedisCounters
from tests.backends import BACKENDS, redis_client

MIB = 1 << 20


def _live(size: int, *, received: int = 0, rate: float = 0.0, idle_for: float = 0.0, in_flight: int = 0,
          expires_in: float = 3600.0, status: str = "uploading") -> LiveSession:
    now = time.time()
    s = Session(session_id=f"s{size}{received}{rate}", owner="o", filename="a.pdf", title="a", file_size=size,
                chunk_size=MIB, created_at=now, expires_at=now + expires_in, status=status)
    for i in range(received // MIB):
        s.chunks[i] = "0" * 64
    lv = LiveSession(s, in_flight=in_flight)
    lv.last_activity = time.monotonic() - idle_for
    if rate:
        t = time.monotonic()
        lv.meter.add(int(rate * 4), t - 4)  # a steady rate over the window's last 4 s
        lv.meter.add(0, t)
    return lv


def _admission(*lives: LiveSession, idle: float = 600) -> Admission:
    settings = temp_settings(active_idle_seconds=idle, max_concurrent_uploads=len(lives))
    return Admission(settings, {lv.id: lv for lv in lives}, time.time)


def test_the_upload_nearest_to_done_at_its_speed_decides() -> None:
    # 8 MiB left at 1 MiB/s, 2 MiB left at ~1 MiB/s: the second frees first, in about 2 s
    slow, near = _live(10 * MIB, received=2 * MIB, rate=MIB, in_flight=1), _live(4 * MIB, received=2 * MIB, rate=MIB,
                                                                                in_flight=1)
    assert _admission(slow, near).frees_in([slow, near], owner_cap=False) in (2, 3)


def test_an_upload_gone_quiet_frees_its_slot_when_it_turns_idle() -> None:
    quiet = _live(10 * MIB, idle_for=590)  # nothing in flight for 590 of 600 s
    busy = _live(10 * MIB, rate=MIB / 100, in_flight=1)  # 1000 s to go
    assert _admission(quiet, busy).frees_in([quiet, busy], owner_cap=False) == 10


def test_a_completing_upload_frees_its_slot_at_once() -> None:
    done = _live(MIB, received=MIB, status=PROCESSING)
    assert _admission(done).frees_in([done], owner_cap=False) == 1


def test_the_owners_cap_waits_for_a_finish_or_an_expiry_not_idleness() -> None:
    quiet = _live(10 * MIB, idle_for=590, expires_in=120)
    assert _admission(quiet).frees_in([quiet], owner_cap=True) == 120


def test_with_nothing_to_go_by_the_idle_period() -> None:
    stuck = _live(10 * MIB, in_flight=1)
    assert _admission(stuck, idle=45).frees_in([stuck], owner_cap=False) == 45


# -- the shared view: two replicas, each with its own live sessions, one set of counters ----


@pytest.fixture(params=BACKENDS)
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AdmissionCounters, AdmissionCounters]]:
    """The counters as two replicas hold them (in-process: one object both see)."""
    if request.param == "local":
        shared = LocalCounters()
        yield shared, shared
        return
    async with redis_client(request) as a, redis_client(request) as b:
        yield RedisCounters(a, prefix="test"), RedisCounters(b, prefix="test")


async def test_replicas_share_the_active_cap_with_its_retry_after(
        counters: tuple[AdmissionCounters, AdmissionCounters]) -> None:
    settings = temp_settings(max_concurrent_uploads=1)
    on_a = Admission(settings, {}, time.time, counters[0])
    on_b = Admission(settings, {}, time.time, counters[1])
    busy = _live(10 * MIB, received=2 * MIB, rate=MIB, in_flight=1)  # 8 MiB left at 1 MiB/s
    await on_a.claim_slot(busy)
    with pytest.raises(TooManyUploads) as refused:
        await on_b.claim_slot(_live(MIB))
    assert refused.value.retry_after in (8, 9)
    await on_b.claim_slot(busy)  # its next chunk, on the other replica: it holds the slot already


async def test_replicas_share_the_owners_caps(counters: tuple[AdmissionCounters, AdmissionCounters]) -> None:
    settings = temp_settings(max_open_sessions_per_owner=2, max_pending_mb_per_owner=25)
    on_a = Admission(settings, {}, time.time, counters[0])
    on_b = Admission(settings, {}, time.time, counters[1])
    await on_a.claim_owner(_live(10 * MIB, expires_in=120))
    with pytest.raises(QuotaExceeded) as over:
        await on_b.claim_owner(_live(16 * MIB))
    assert over.value.extra["pending_bytes"] == 10 * MIB
    await on_b.claim_owner(_live(12 * MIB))
    with pytest.raises(TooManyUploads) as refused:
        await on_a.claim_owner(_live(MIB))
    assert refused.value.extra["scope"] == "owner" and refused.value.retry_after in (119, 120)
