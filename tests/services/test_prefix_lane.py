"""The prefix worker in its own process: messages in order, answers, death and restart."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.services.prefix_lane import LaneError, PrefixHandle, PrefixLane
from backend.services.prefix_worker import serve
from backend.services.validation import ValidationService
from backend.settings import temp_settings
from backend.storage.local_chunks import LocalChunkStore, LocalRangeReader
from tests.pdfgen import make_pdf

MIB = 1 << 20


@pytest.fixture
async def lane(tmp_path: Path) -> AsyncIterator[PrefixLane]:
    settings = temp_settings(tmp_path / "srv")
    validation = ValidationService(settings, None, None)  # type: ignore[arg-type]
    lane = PrefixLane(LocalChunkStore(settings.partial_dir).blocking_reader(), validation.scanner_factory, "process")
    yield lane
    lane.close()


def _partial(lane: PrefixLane, upload_id: str, data: bytes) -> None:
    reader = lane.chunks
    assert isinstance(reader, LocalRangeReader)
    (reader.root / f"{upload_id}.part").write_bytes(data)


async def test_a_fork_fed_block_by_block_is_adopted_and_finished(lane: PrefixLane, tmp_path: Path) -> None:
    src = tmp_path / "a.pdf"
    make_pdf(src, 3 * MIB)
    data = src.read_bytes()
    _partial(lane, "u1", data)
    prefix = lane.new_state()
    lane.tell("fork", 7, prefix.id)
    for offset in range(0, len(data), 512 << 10):  # as the writer thread tells it
        lane.tell("fork_feed", 7, "u1", offset, min(512 << 10, len(data) - offset))
    adopted, findings, progress = await lane.ask("commit", prefix.id, 7, len(data))
    prefix.update(progress)
    assert adopted and findings == [] and prefix.offset == len(data)
    assert prefix.scan_summary()["header_version"] == "1.7"
    digest, _, summary, offset = await lane.ask("finish", prefix.id)
    assert digest == hashlib.sha256(data).hexdigest() and offset == len(data)
    assert summary["bytes_scanned"] == len(data)


async def test_a_fork_that_skips_bytes_is_not_good(lane: PrefixLane, tmp_path: Path) -> None:
    _partial(lane, "u2", b"%PDF-1.7\n" + bytes(4096))
    prefix = lane.new_state()
    lane.tell("fork", 1, prefix.id)
    lane.tell("fork_feed", 1, "u2", 100, 100)  # not where the prefix ends
    # the state still ends where the fork began: only the spoilt fork keeps it out
    adopted, findings, progress = await lane.ask("commit", prefix.id, 1, 4105)
    assert not adopted and findings == [] and progress[0] == 0


async def test_a_killed_worker_fails_the_waiting_and_a_new_one_starts(lane: PrefixLane) -> None:
    pid = await lane.ask("ping")
    old = lane.new_state()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(LaneError):
        for _ in range(100):  # the answer reader notices the death
            await lane.ask("finish", old.id)
            await asyncio.sleep(0.05)
    assert await lane.ask("ping") != pid
    with pytest.raises(LaneError):  # the old state died with its worker
        await lane.ask("finish", old.id)
    fresh = lane.new_state()
    digest, *_ = await lane.ask("finish", fresh.id)
    assert digest == hashlib.sha256(b"").hexdigest()


async def test_a_dropped_handle_drops_its_state(lane: PrefixLane) -> None:
    prefix: PrefixHandle | None = lane.new_state()
    assert prefix is not None
    state_id = prefix.id
    await lane.ask("ping")
    prefix = None
    gc.collect()
    await lane.ask("ping")  # carries the drop before it
    with pytest.raises(LaneError, match="KeyError"):
        await lane.ask("finish", state_id)


async def test_closing_stops_the_worker(lane: PrefixLane) -> None:
    pid = await lane.ask("ping")
    lane.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_worker_returns_quietly_when_the_server_is_gone(tmp_path: Path) -> None:
    """A server killed while its worker answers: the answer's write fails, and the worker
    ends without a traceback (it would land in the server's log)."""
    ours, theirs = multiprocessing.Pipe()
    ours.send((1, "ping", ()))
    ours.close()
    serve(theirs, LocalRangeReader(tmp_path), lambda: None, os.getppid())  # returns; raising would fail the test


def test_a_worker_holding_no_state_exits_when_idle_and_not_before(tmp_path: Path) -> None:
    """A server at rest has no worker (its ~40 MiB): one that holds no state and hears
    nothing for ``idle_exit`` seconds returns; one that holds a state (a paused upload's
    hash) waits for as long as it takes."""
    ours, theirs = multiprocessing.Pipe()
    started = time.monotonic()
    serve(theirs, LocalRangeReader(tmp_path), lambda: None, os.getppid(), idle_exit=0.2)
    assert 0.2 <= time.monotonic() - started < 5
    ours, theirs = multiprocessing.Pipe()
    worker = threading.Thread(target=serve, args=(theirs, LocalRangeReader(tmp_path), lambda: None, os.getppid(),
                                                  0.2))
    ours.send((0, "open", (1,)))
    worker.start()
    time.sleep(0.6)
    assert worker.is_alive(), "a worker holding a state must not leave"
    ours.send((0, "drop", (1,)))
    worker.join(5)
    assert not worker.is_alive(), "once its last state is dropped, an idle worker leaves"


async def test_the_worker_starts_at_first_use_and_a_dropped_last_handle_reaches_it(lane: PrefixLane) -> None:
    """Nothing runs until an upload needs it; a handle dropped while the lane is free is
    sent at once (not with the next message, which may never come), so the worker can see
    it holds nothing and leave."""
    assert lane._process is None
    prefix: PrefixHandle | None = lane.new_state()
    assert prefix is not None and lane._process is not None
    state_id = prefix.id
    await lane.ask("ping")
    prefix = None
    gc.collect()
    assert not lane._forgotten, "the drop waited for another message"
    with pytest.raises(LaneError, match="KeyError"):
        await lane.ask("finish", state_id)
