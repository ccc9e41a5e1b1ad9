"""Admission: whether a new or reawakening upload may go on, server-wide and per owner.

Three caps, all read from the live sessions (nothing is counted twice): uploads active
right now (``max_concurrent_uploads``: recent activity or a chunk in flight), and per
owner the unfinished sessions and their total size. All recover as uploads complete,
are cancelled, go idle or expire.

A refusal says when to come back (``Retry-After``) from what the live sessions show: the
soonest of an active upload finishing at its current speed, one going idle (no request in
flight), one completing (``processing``) or, for the owner's cap, one expiring. Clients
that wait that long start as soon as a slot frees, not after a fixed guess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from backend.errors import QuotaExceeded, TooManyUploads
from backend.services.live import LiveSession
from backend.services.models import PROCESSING, UPLOADING
from backend.settings import Settings


class Admission:
    def __init__(self, settings: Settings, live: dict[str, LiveSession], clock: Callable[[], float]) -> None:
        self.settings = settings
        self.live = live  # SessionService's own map of sessions
        self.clock = clock

    def _active(self) -> list[LiveSession]:
        now = time.monotonic()
        idle = self.settings.active_idle_seconds
        return [lv for lv in self.live.values()
                if lv.session.status in (UPLOADING, PROCESSING) and (lv.in_flight or now - lv.last_activity < idle)]

    def active_count(self) -> int:
        return len(self._active())

    def _unfinished(self) -> list[LiveSession]:
        """Sessions holding (or about to hold) a partial file and not expired."""
        now = self.clock()
        return [lv for lv in self.live.values() if lv.session.unfinished and not lv.session.expired(now)]

    def open_count(self) -> int:
        """Unfinished sessions, all owners (for the metrics)."""
        return len(self._unfinished())

    def ensure_owner_quota(self, owner: str, file_size: int) -> None:
        """Refuse a new session past the owner's caps: unfinished sessions (429
        ``too_many_uploads``) and their total size (507 ``upload_quota_exceeded``).
        Both recover as the owner's uploads complete, are cancelled or expire."""
        mine = [lv for lv in self._unfinished() if lv.session.owner == owner]
        cap = self.settings.max_open_sessions_per_owner
        if len(mine) >= cap:
            raise TooManyUploads(f"you have {len(mine)} unfinished uploads, the most allowed; complete or cancel "
                                 f"one first", retry_after=self.frees_in(mine, owner_cap=True),
                                 scope="owner", limit=cap)
        quota = self.settings.max_pending_bytes_per_owner
        pending = sum(lv.session.file_size for lv in mine)
        if pending + file_size > quota:
            raise QuotaExceeded(f"your unfinished uploads hold {pending} bytes; {file_size} more would pass the "
                                f"quota of {quota} bytes", quota_bytes=quota, pending_bytes=pending)

    def ensure_slot(self, live: LiveSession | None) -> None:
        """Refuse a new (or idle, reawakening) upload when the active cap is reached."""
        if live is not None and time.monotonic() - live.last_activity < self.settings.active_idle_seconds:
            return
        active = self._active()
        if len(active) >= self.settings.max_concurrent_uploads:
            wait = self.frees_in(active, owner_cap=False)
            raise TooManyUploads(
                f"{self.settings.max_concurrent_uploads} uploads are already active; the first slot should "
                f"free in about {wait} s", retry_after=wait,
            )

    def frees_in(self, lives: Iterable[LiveSession], *, owner_cap: bool) -> int:
        """Whole seconds (at least 1) until the first of ``lives`` should stop holding a slot.

        An upload frees its slot when it completes (its remaining bytes at its speed over
        the last seconds, then ``processing``), and, for the active cap, when it goes idle
        (nothing in flight for ``active_idle_seconds``); for the owner's cap, when it
        expires instead. With nothing to go by, the idle period (or the soonest expiry)."""
        now, wall = time.monotonic(), self.clock()
        idle = self.settings.active_idle_seconds
        soonest = math.inf
        for lv in lives:
            s = lv.session
            if s.status == PROCESSING:
                soonest = min(soonest, 1.0)
                continue
            rate = lv.meter.rate(now)
            if rate > 0 and not s.length_deferred:
                soonest = min(soonest, (s.file_size - s.uploaded_bytes) / rate)
            if owner_cap:
                soonest = min(soonest, s.expires_at - wall)
            elif not lv.in_flight:
                soonest = min(soonest, idle - (now - lv.last_activity))
        if math.isinf(soonest):
            soonest = idle
        return max(1, math.ceil(soonest))
