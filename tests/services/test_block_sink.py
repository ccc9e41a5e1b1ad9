"""BlockSink: order, the bound on blocks in flight, errors, abort, a cancelled put."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.services.block_sink import BlockSink


def _gated() -> tuple[threading.Event, list[int], Callable[[int], None]]:
    """A worker function that waits for the gate, then records what it was given."""
    gate = threading.Event()
    seen: list[int] = []

    def fn(n: int) -> None:
        gate.wait()
        seen.append(n)

    return gate, seen, fn


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(4) as p:
        yield p


async def test_blocks_are_processed_in_order_and_at_most_slots_wait(pool: ThreadPoolExecutor) -> None:
    gate, seen, fn = _gated()
    sink: BlockSink[int] = BlockSink(pool, fn, slots=2)
    await sink.put(0)
    await sink.put(1)
    third = asyncio.create_task(sink.put(2))
    await asyncio.sleep(0.05)
    assert not third.done()  # two blocks outstanding: the loop waits for a slot
    gate.set()
    await third
    for n in range(3, 50):
        await sink.put(n)
    await sink.close()
    assert seen == list(range(50))


async def test_worker_error_surfaces_at_the_next_put_or_close(pool: ThreadPoolExecutor) -> None:
    def fn(n: int) -> None:
        if n == 3:
            raise OSError(28, "No space left on device")

    sink: BlockSink[int] = BlockSink(pool, fn, slots=2)
    with pytest.raises(OSError):
        try:
            for n in range(100):
                await sink.put(n)
            await sink.close()
        except BaseException:
            await sink.abort()  # as its users do: the worker lets go
            raise


async def test_abort_skips_what_is_queued(pool: ThreadPoolExecutor) -> None:
    gate, seen, fn = _gated()
    sink: BlockSink[int] = BlockSink(pool, fn, slots=3)
    for n in range(3):
        await sink.put(n)
    aborting = asyncio.create_task(sink.abort())
    await asyncio.sleep(0.01)
    gate.set()
    await aborting
    assert seen in ([], [0])


async def test_a_cancelled_put_gives_its_slot_back(pool: ThreadPoolExecutor) -> None:
    gate, seen, fn = _gated()
    sink: BlockSink[int] = BlockSink(pool, fn, slots=1)
    await sink.put(0)
    waiting = asyncio.create_task(sink.put(1))
    await asyncio.sleep(0.02)
    waiting.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(sink.put(2), 2)  # the freed slot was not lost
    await sink.close()
    assert seen == [0, 2]
