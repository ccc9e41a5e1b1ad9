"""Progress as pub/sub: the reporter shapes and throttles events, the bus carries them.

The reporter turns what happens to a session into the four event shapes of ``API.md``.
Progress is throttled per session (last value wins, the final state always sent);
status changes are never throttled and flush any pending progress first, so a client
sees events in order. The in-process bus calls subscribers synchronously and they
must not block (the WebSocket hub only enqueues); a Redis bus would implement the same
``publish``/``subscribe`` pair across replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
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


class ProgressBus(Protocol):
    def publish(self, envelope: Envelope) -> None: ...

    def subscribe(self, subscriber: Subscriber) -> None: ...


class LocalProgressBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def publish(self, envelope: Envelope) -> None:
        for subscriber in self._subscribers:
            subscriber(envelope)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)


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
