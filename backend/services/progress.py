"""Progress as pub/sub: the reporter shapes and throttles events, the bus carries them.

The reporter turns what happens to a session into the four event shapes of ``API.md``.
Progress is throttled per session (last value wins, the final state always sent);
status changes are never throttled and flush any pending progress first, so a client
sees events in order. The bus calls its subscribers synchronously for events published
in this process, and they must not block (the WebSocket hub only enqueues).

A bus also keeps each room's latest state (the last event of each kind in
:data:`ROOM_STATE`), so a WebSocket that joins late hears where the upload stands
before the next event: :meth:`ProgressBus.snapshot`. :class:`LocalProgressBus` keeps it
in this process; :class:`~backend.storage.redis.bus.RedisProgressBus` carries events
between replicas (pub/sub) and keeps the state in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.services.live import LiveSession


@dataclass(frozen=True)
class Envelope:
    """An event and who may see it: the session's room and its clients, all one owner's."""

    session_id: str | None
    owner: str | None
    client_ids: tuple[str, ...]
    event: dict[str, Any]


Subscriber = Callable[[Envelope], None]

#: The kinds of event that make up a room's state, in the order a late joiner hears them.
ROOM_STATE = ("upload_progress", "chunk_progress", "upload_status")
STATE_TTL = 24 * 3600.0  # seconds a room's state is kept after its last event


@dataclass
class Snapshot:
    """A room's latest state: the session's owner and its last event of each kind."""

    owner: str | None
    events: list[dict[str, Any]] = field(default_factory=list)


def room_state_kind(envelope: Envelope) -> str | None:
    """The :data:`ROOM_STATE` kind this event updates, if any."""
    kind = envelope.event.get("type")
    return kind if envelope.session_id is not None and kind in ROOM_STATE else None


class ProgressBus(Protocol):
    def publish(self, envelope: Envelope) -> None:
        """Hand an event to every subscriber (here at once, elsewhere soon); never blocks
        and never raises: a bus that cannot reach its peers drops (at most once)."""
        ...

    def subscribe(self, subscriber: Subscriber) -> None: ...

    async def snapshot(self, session_id: str) -> Snapshot | None:
        """The room's latest state, or None when it has had no event (or it expired)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalProgressBus:
    """The bus of one process: subscribers called in order, state in a dict."""

    def __init__(self, state_ttl: float = STATE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._subscribers: list[Subscriber] = []
        self._state: dict[str, tuple[float, Snapshot]] = {}
        self.state_ttl = state_ttl
        self.clock = clock
        self._since_prune = 0

    def publish(self, envelope: Envelope) -> None:
        kind = room_state_kind(envelope)
        if kind is not None:
            assert envelope.session_id is not None
            self._remember(envelope.session_id, envelope.owner, kind, envelope.event)
        for subscriber in self._subscribers:
            subscriber(envelope)

    def _remember(self, session_id: str, owner: str | None, kind: str, event: dict[str, Any]) -> None:
        now = self.clock()
        _, snap = self._state.pop(session_id, (now, Snapshot(owner)))
        snap.events = [e for e in snap.events if e.get("type") != kind] + [event]
        snap.events.sort(key=lambda e: ROOM_STATE.index(e["type"]))
        self._state[session_id] = (now, snap)  # re-inserted: the dict stays in order of last event
        self._since_prune += 1
        if self._since_prune >= 1024:
            self._since_prune = 0
            for sid in [sid for sid, (at, _) in self._state.items() if now - at > self.state_ttl]:
                del self._state[sid]

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def snapshot(self, session_id: str) -> Snapshot | None:
        entry = self._state.get(session_id)
        if entry is None or self.clock() - entry[0] > self.state_ttl:
            return None
        return Snapshot(entry[1].owner, list(entry[1].events))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class ProgressReporter:
    def __init__(self, bus: ProgressBus, interval: float) -> None:
        self.bus = bus
        self.interval = interval
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, tuple[LiveSession, int]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def _publish(self, live: LiveSession, event: dict[str, Any]) -> None:
        s = live.session
        self.bus.publish(Envelope(s.session_id, s.owner, tuple(s.client_ids), event))

    # -- progress ---------------------------------------------------------------------

    def chunk_recorded(self, live: LiveSession, chunk_id: int) -> None:
        """Report progress now, or once the interval has passed (last value wins)."""
        sid = live.id
        final = live.session.complete
        now = time.monotonic()
        if final or now - self._last_sent.get(sid, 0.0) >= self.interval:
            self._cancel_timer(sid)
            self._send_progress(live, chunk_id)
            return
        self._pending[sid] = (live, chunk_id)
        if sid not in self._timers:
            delay = self.interval - (now - self._last_sent.get(sid, 0.0))
            self._timers[sid] = asyncio.get_running_loop().call_later(delay, self._flush, sid)

    def _cancel_timer(self, sid: str) -> None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()
        self._pending.pop(sid, None)

    def _flush(self, sid: str) -> None:
        self._timers.pop(sid, None)
        pending = self._pending.pop(sid, None)
        if pending is not None:
            self._send_progress(*pending)

    def _send_progress(self, live: LiveSession, chunk_id: int) -> None:
        s = live.session
        self._last_sent[s.session_id] = time.monotonic()
        uploaded = s.uploaded_bytes
        speed = live.meter.rate()
        eta = int((s.file_size - uploaded) / speed) if speed > 0 else None
        pct = s.progress_percentage
        done = len(s.chunks)
        self._publish(live, {
            "type": "upload_progress",
            "data": {
                "session_id": s.session_id, "status": s.status, "uploaded_bytes": uploaded,
                "total_bytes": s.file_size, "uploaded_chunks": done, "total_chunks": s.total_chunks,
                "progress_percentage": pct, "upload_speed_bps": int(speed),
                "estimated_time_remaining": eta, "current_chunk": chunk_id,
                "message": f"Uploading... {done}/{s.total_chunks} chunks",
            },
        })
        self._publish(live, {
            "type": "chunk_progress", "session_id": s.session_id, "chunk_id": chunk_id,
            "chunks_uploaded": done, "total_chunks": s.total_chunks, "bytes_uploaded": uploaded,
            "total_bytes": s.file_size, "progress_percentage": pct, "upload_speed_bps": int(speed),
            "eta_seconds": eta,
        })

    # -- status and warnings ------------------------------------------------------------

    def status(self, live: LiveSession, status: str, message: str, **extra: Any) -> None:
        sid = live.id
        if sid in self._pending:
            _, chunk_id = self._pending[sid]
            self._cancel_timer(sid)
            self._send_progress(live, chunk_id)
        event = {"type": "upload_status", "session_id": sid, "status": status, "message": message}
        event.update(extra)
        self._publish(live, event)
        if status in ("completed", "failed", "cancelled"):
            self._last_sent.pop(sid, None)

    def status_for(self, session_id: str, owner: str, client_ids: tuple[str, ...], status: str, message: str,
                   **extra: Any) -> None:
        """A status for a session the server no longer holds live (e.g. an import that
        finishes after a restart): its room and the given clients hear it."""
        event = {"type": "upload_status", "session_id": session_id, "status": status, "message": message}
        event.update(extra)
        self.bus.publish(Envelope(session_id, owner, client_ids, event))

    def memory_warning(self, live: LiveSession | None, usage_mb: float, limit_mb: float, warning: str) -> None:
        event = {"type": "memory_warning", "data": {
            "memory_usage_mb": round(usage_mb, 1), "memory_limit_mb": limit_mb, "warning": warning}}
        if live is None:
            self.bus.publish(Envelope(None, None, (), event))
        else:
            self._publish(live, event)

    def forget(self, session_id: str) -> None:
        self._cancel_timer(session_id)
        self._last_sent.pop(session_id, None)
