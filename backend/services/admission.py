"""Admission: whether a new or reawakening upload may go on, server-wide and per owner.

Three caps, all read from the live sessions (nothing is counted twice): uploads active
right now (``max_concurrent_uploads``: recent activity or a chunk in flight), and per
owner the unfinished sessions and their total size. All recover as uploads complete,
are cancelled, go idle or expire.

A refusal says when to come back (``Retry-After``) from what the live sessions show: the
soonest of an active upload finishing at its current speed, one going idle (no request in
flight), one completing (``processing``) or, for the owner's cap, one expiring. Clients
that wait that long start as soon as a slot frees, not after a fixed guess.

With several replicas each sees only its own live sessions: :meth:`Admission.claim_slot`
and :meth:`Admission.claim_owner` take the same decisions on the shared
:class:`~backend.services.slots.AdmissionCounters` (in-process or Redis), with the same
Retry-After (:func:`frees_in` over the holders' reports).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from backend.errors import QuotaExceeded, TooManyUploads
from backend.services.live import LiveSession
from backend.services.models import PROCESSING, UPLOADING
from backend.services.slots import AdmissionCounters, UploadActivity
from backend.settings import Settings


class Admission:
    def __init__(self, settings: Settings, live: dict[str, LiveSession], clock: Callable[[], float],
                 counters: AdmissionCounters | None = None) -> None:
        self.settings = settings
        self.live = live  # SessionService's own map of sessions
        self.clock = clock
        self.counters = counters  # the shared view, for claim_slot / claim_owner (several replicas)

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
        """Whole seconds (at least 1) until the first of ``lives`` should stop holding a slot
        (see :func:`frees_in`)."""
        return frees_in([self.activity(lv) for lv in lives], owner_cap=owner_cap,
                        idle=self.settings.active_idle_seconds, now=self.clock())

    def activity(self, live: LiveSession) -> UploadActivity:
        """The session as the shared counters see it (times on the wall clock)."""
        s, mono, wall = live.session, time.monotonic(), self.clock()
        return UploadActivity(s.session_id, s.owner, s.file_size, s.uploaded_bytes, s.status, live.meter.rate(mono),
                              live.in_flight > 0, wall - (mono - live.last_activity), s.expires_at,
                              s.length_deferred)

    # -- the shared view (several replicas): AdmissionCounters ------------------------------

    async def admit(self, live: LiveSession) -> None:
        """A request of ``live`` may go on: :meth:`ensure_slot` in this process, or
        :meth:`claim_slot` on the shared counters (several replicas)."""
        if self.counters is None:
            self.ensure_slot(live)
        else:
            await self.claim_slot(live)

    async def admit_new(self, live: LiveSession) -> None:
        """Shared counters only: a session about to be saved counts against its owner's
        caps and takes an active slot (nothing held if either refuses)."""
        assert self.counters is not None
        await self.claim_owner(live)
        try:
            await self.claim_slot(live)
        except BaseException:
            await self.counters.forget(live.id, live.session.owner)
            raise

    async def report(self, live: LiveSession) -> None:
        """Shared counters only: what the upload does now (a finished one is forgotten)."""
        if self.counters is not None:
            await self.counters.report(self.activity(live))

    async def claim_slot(self, live: LiveSession) -> None:
        """:meth:`ensure_slot` across replicas: the counters decide, Retry-After comes from
        the holders' reports. Raises StorageUnavailable when the counters cannot be reached."""
        assert self.counters is not None
        holders = await self.counters.claim_slot(self.activity(live), self.settings.max_concurrent_uploads,
                                                 self.settings.active_idle_seconds)
        if holders is not None:
            wait = frees_in(holders, owner_cap=False, idle=self.settings.active_idle_seconds, now=self.clock())
            raise TooManyUploads(
                f"{self.settings.max_concurrent_uploads} uploads are already active; the first slot should "
                f"free in about {wait} s", retry_after=wait,
            )

    async def claim_owner(self, live: LiveSession) -> None:
        """:meth:`ensure_owner_quota` across replicas, for a session about to be created."""
        assert self.counters is not None
        cap, quota = self.settings.max_open_sessions_per_owner, self.settings.max_pending_bytes_per_owner
        refusal = await self.counters.claim_owner(self.activity(live), cap, quota)
        if refusal is None:
            return
        if refusal.too_many:
            wait = frees_in(refusal.unfinished, owner_cap=True, idle=self.settings.active_idle_seconds,
                            now=self.clock())
            raise TooManyUploads(f"you have {len(refusal.unfinished)} unfinished uploads, the most allowed; "
                                 f"complete or cancel one first", retry_after=wait, scope="owner", limit=cap)
        raise QuotaExceeded(f"your unfinished uploads hold {refusal.pending_bytes} bytes; {live.session.file_size} "
                            f"more would pass the quota of {quota} bytes", quota_bytes=quota,
                            pending_bytes=refusal.pending_bytes)


def frees_in(uploads: Iterable[UploadActivity], *, owner_cap: bool, idle: float, now: float) -> int:
    """Whole seconds (at least 1) until the first of ``uploads`` should stop holding a slot.

    An upload frees its slot when it completes (its remaining bytes at its speed over the
    last seconds, then ``processing``), and, for the active cap, when it goes idle
    (nothing in flight for ``idle`` seconds); for the owner's cap, when it expires
    instead. With nothing to go by, the idle period (or the soonest expiry). ``now`` is
    the wall clock the uploads' times are on."""
    soonest = math.inf
    for u in uploads:
        if u.status == PROCESSING:
            soonest = min(soonest, 1.0)
            continue
        if u.rate > 0 and not u.length_deferred:
            soonest = min(soonest, (u.file_size - u.uploaded) / u.rate)
        if owner_cap:
            soonest = min(soonest, u.expires_at - now)
        elif not u.in_flight:
            soonest = min(soonest, idle - (now - u.last_activity))
    if math.isinf(soonest):
        soonest = idle
    return max(1, math.ceil(soonest))
