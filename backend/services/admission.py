"""Admission: whether a new or reawakening upload may go on, server-wide and per owner.

Three caps, all read from the live sessions (nothing is counted twice): uploads active
right now (``max_concurrent_uploads``: recent activity or a chunk in flight), and per
owner the unfinished sessions and their total size. All recover as uploads complete,
are cancelled, go idle or expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from backend.errors import QuotaExceeded, TooManyUploads
from backend.services.live import LiveSession
from backend.services.models import PROCESSING, UPLOADING, Session
from backend.settings import Settings


class Admission:
    def __init__(self, settings: Settings, live: dict[str, LiveSession], clock: Callable[[], float]) -> None:
        self.settings = settings
        self.live = live  # SessionService's own map of sessions
        self.clock = clock

    def active_count(self) -> int:
        now = time.monotonic()
        idle = self.settings.active_idle_seconds
        return sum(
            1 for lv in self.live.values()
            if lv.session.status in (UPLOADING, PROCESSING) and (lv.in_flight or now - lv.last_activity < idle)
        )

    def _unfinished(self) -> list[Session]:
        """Sessions holding (or about to hold) a partial file and not expired."""
        now = self.clock()
        return [lv.session for lv in self.live.values() if lv.session.unfinished and not lv.session.expired(now)]

    def open_count(self) -> int:
        """Unfinished sessions, all owners (for the metrics)."""
        return len(self._unfinished())

    def ensure_owner_quota(self, owner: str, file_size: int) -> None:
        """Refuse a new session past the owner's caps: unfinished sessions (429
        ``too_many_uploads``) and their total size (507 ``upload_quota_exceeded``).
        Both recover as the owner's uploads complete, are cancelled or expire."""
        mine = [s for s in self._unfinished() if s.owner == owner]
        cap = self.settings.max_open_sessions_per_owner
        if len(mine) >= cap:
            raise TooManyUploads(f"you have {len(mine)} unfinished uploads, the most allowed; complete or cancel "
                                 f"one first", retry_after=30, scope="owner", limit=cap)
        quota = self.settings.max_pending_bytes_per_owner
        pending = sum(s.file_size for s in mine)
        if pending + file_size > quota:
            raise QuotaExceeded(f"your unfinished uploads hold {pending} bytes; {file_size} more would pass the "
                                f"quota of {quota} bytes", quota_bytes=quota, pending_bytes=pending)

    def ensure_slot(self, live: LiveSession | None) -> None:
        """Refuse a new (or idle, reawakening) upload when the active cap is reached."""
        if live is not None and time.monotonic() - live.last_activity < self.settings.active_idle_seconds:
            return
        if self.active_count() >= self.settings.max_concurrent_uploads:
            raise TooManyUploads(
                f"{self.settings.max_concurrent_uploads} uploads are already active; retry later",
                retry_after=30,
            )
