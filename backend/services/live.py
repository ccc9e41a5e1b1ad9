"""A session as the running server holds it: the persisted record plus locks and the
prefix consumers, which live only in memory and are rebuilt from the bytes."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from backend.services.models import Session
from backend.services.prefix_lane import PrefixHandle


class SpeedMeter:
    """Bytes per second over a short sliding window."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._events: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, nbytes: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._events.append((now, nbytes))
        while self._events and now - self._events[0][0] > self.window:
            self._events.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._events and now - self._events[0][0] > self.window:
            self._events.popleft()
        if not self._events:
            return 0.0
        span = max(now - self._events[0][0], 0.5)
        return sum(n for _, n in self._events) / span


@dataclass(eq=False)
class LiveSession:
    session: Session
    # None: not trusted yet (loaded after a restart); rebuilt from the bytes on disk.
    prefix: PrefixHandle | None = None
    prefix_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    complete_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    chunk_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    version: int = 0
    saved_version: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    meter: SpeedMeter = field(default_factory=SpeedMeter)
    catchup_task: asyncio.Task[None] | None = None
    in_flight: int = 0

    @property
    def id(self) -> str:
        return self.session.session_id

    def chunk_lock(self, chunk_id: int) -> asyncio.Lock:
        lock = self.chunk_locks.get(chunk_id)
        if lock is None:
            lock = self.chunk_locks[chunk_id] = asyncio.Lock()
        return lock

    def touch(self) -> None:
        self.last_activity = time.monotonic()
        self.version += 1
