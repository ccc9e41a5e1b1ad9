"""ProgressReporter and WebSocketHub: shapes, throttling, routing, slow sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from backend.services.live import LiveSession
from backend.services.models import Session
from backend.services.progress import Envelope, LocalProgressBus, ProgressReporter
from backend.services.ws_hub import OUTBOX, WebSocketHub

MIB = 1024 * 1024


def _live(total_chunks: int = 10, owner: str = "alice", client: str = "c1") -> LiveSession:
    s = Session(session_id="s1", owner=owner, filename="a.pdf", title="a", file_size=total_chunks * 2 * MIB,
                chunk_size=2 * MIB, created_at=0, expires_at=1e12, client_ids=[client])
    return LiveSession(s)


def _recorder(interval: float) -> tuple[ProgressReporter, list[Envelope]]:
    bus = LocalProgressBus()
    seen: list[Envelope] = []
    bus.subscribe(seen.append)
    return ProgressReporter(bus, interval), seen


async def test_progress_is_throttled_and_the_final_state_sent() -> None:
    reporter, seen = _recorder(0.2)
    live = _live()
    for i in range(10):
        live.session.chunks[i] = "x"
        reporter.chunk_recorded(live, i)
    kinds = [e.event["type"] for e in seen]
    assert kinds.count("upload_progress") == 2  # the first, and the final (complete) one
    last = [e.event for e in seen if e.event["type"] == "upload_progress"][-1]
    assert last["data"]["progress_percentage"] == 100.0 and last["data"]["uploaded_chunks"] == 10


async def test_trailing_value_is_flushed() -> None:
    reporter, seen = _recorder(0.05)
    live = _live()
    for i in range(3):
        live.session.chunks[i] = "x"
        reporter.chunk_recorded(live, i)
    await asyncio.sleep(0.1)
    progress = [e.event for e in seen if e.event["type"] == "chunk_progress"]
    assert [p["chunk_id"] for p in progress] == [0, 2]  # last value wins


async def test_status_flushes_pending_progress_first() -> None:
    reporter, seen = _recorder(10)
    live = _live()
    for i in range(2):
        live.session.chunks[i] = "x"
        reporter.chunk_recorded(live, i)
    reporter.status(live, "processing", "Validating uploaded file...")
    kinds = [e.event["type"] for e in seen]
    assert kinds == ["upload_progress", "chunk_progress", "upload_progress", "chunk_progress", "upload_status"]


async def test_event_shapes_match_api_md() -> None:
    reporter, seen = _recorder(0)
    live = _live()
    live.session.chunks[0] = "x"
    live.meter.add(2 * MIB)
    reporter.chunk_recorded(live, 0)
    reporter.status(live, "processing", "Validating uploaded file...")
    reporter.memory_warning(live, 450.2, 500.0, "Approaching memory limit")
    progress, chunk, status, warning = (e.event for e in seen)
    assert set(progress) == {"type", "data"} and set(progress["data"]) == {
        "session_id", "status", "uploaded_bytes", "total_bytes", "uploaded_chunks", "total_chunks",
        "progress_percentage", "upload_speed_bps", "estimated_time_remaining", "current_chunk", "message"}
    assert progress["data"]["message"] == "Uploading... 1/10 chunks"
    assert set(chunk) == {"type", "session_id", "chunk_id", "chunks_uploaded", "total_chunks", "bytes_uploaded",
                          "total_bytes", "progress_percentage", "upload_speed_bps", "eta_seconds"}
    assert status == {"type": "upload_status", "session_id": "s1", "status": "processing",
                      "message": "Validating uploaded file..."}
    assert warning == {"type": "memory_warning", "data": {"memory_usage_mb": 450.2, "memory_limit_mb": 500.0,
                                                          "warning": "Approaching memory limit"}}


class FakeSocket:
    def __init__(self, delay: float = 0.0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.delay = delay

    async def send_text(self, data: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.sent.append(json.loads(data))


def _env(session_id: str = "s1", owner: str = "alice", clients: tuple[str, ...] = ("c1",), n: int = 0) -> Envelope:
    return Envelope(session_id, owner, clients, {"type": "upload_status", "n": n})


async def test_hub_routes_by_client_room_and_owner() -> None:
    hub = WebSocketHub()
    mine, joined, stranger, other_owner = FakeSocket(), FakeSocket(), FakeSocket(), FakeSocket()
    hub.attach("c1", "alice", mine)
    j = hub.attach("c2", "alice", joined)
    hub.join(j, "s1")
    hub.attach("c3", "alice", stranger)
    hub.attach("c1", "mallory", other_owner)  # same client id, other owner
    hub.deliver(_env())
    await asyncio.sleep(0.01)
    assert len(mine.sent) == 1 and len(joined.sent) == 1
    assert stranger.sent == [] and other_owner.sent == []
    hub.leave(j, "s1")
    hub.deliver(_env(n=1))
    await asyncio.sleep(0.01)
    assert len(joined.sent) == 1


async def test_slow_socket_drops_oldest_and_never_blocks() -> None:
    hub = WebSocketHub()
    slow = FakeSocket(delay=10)
    conn = hub.attach("c1", "alice", slow)
    for n in range(OUTBOX * 3):
        hub.deliver(_env(n=n))  # returns at once: delivery only enqueues
    assert conn.outbox.qsize() <= OUTBOX and conn.dropped >= OUTBOX
    hub.detach(conn)
    assert "c1" not in hub.by_client
