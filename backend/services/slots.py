"""Admission counters every replica shares: which uploads hold an active slot, and each
owner's unfinished uploads and their size.

:class:`~backend.services.admission.Admission` reads this process's live sessions; with
several replicas, one replica sees only its own. :class:`AdmissionCounters` is the
shared view: each replica reports what its uploads do (:class:`UploadActivity`), and a
claim checks a cap and takes a place in one atomic step, so two replicas cannot both
take the last slot. The semantics are Admission's:

- An upload is *active* while it is ``uploading`` or ``processing`` and was reported
  less than ``idle`` seconds ago. Replicas report at each request's start and end, and
  at least every ``idle / 2`` seconds while a request lasts (a long tus PATCH): so a
  request in flight keeps its slot, and a killed replica's uploads free theirs after
  ``idle`` seconds. :meth:`~AdmissionCounters.claim_slot` admits an upload that is
  active already, or any while fewer than ``cap`` others are.
- An owner's *unfinished* uploads are those not expired and not forgotten (completed,
  failed, cancelled, expired). :meth:`~AdmissionCounters.claim_owner` admits a new one
  while the owner has fewer than ``max_open`` and their sizes stay within ``max_bytes``.

A refusal carries the uploads that hold the places, so the caller computes Retry-After
from them as Admission does (:func:`~backend.services.admission.frees_in`).

:class:`LocalCounters` is the in-process implementation; the Redis one is
:class:`~backend.storage.redis.slots.RedisCounters`. Times are wall-clock seconds from
an injected clock (replicas' clocks agree to well within ``idle``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from backend.services.models import PROCESSING, UPLOADING


@dataclass(frozen=True)
class UploadActivity:
    """One upload as admission sees it, as a replica last reported it."""

    upload_id: str
    owner: str
    file_size: int
    uploaded: int  # bytes received
    status: str
    rate: float  # bytes a second lately
    in_flight: bool  # a request is writing to it now
    last_activity: float  # wall clock, seconds
    expires_at: float  # wall clock, seconds
    length_deferred: bool = False

    def active(self, now: float, idle: float) -> bool:
        return self.status in (UPLOADING, PROCESSING) and now - self.last_activity < idle

    @property
    def unfinished(self) -> bool:
        return self.status in (UPLOADING, PROCESSING)


@dataclass(frozen=True)
class OwnerRefusal:
    too_many: bool  # the count cap (else the bytes cap)
    pending_bytes: int
    unfinished: list[UploadActivity]


class AdmissionCounters(Protocol):
    async def claim_slot(self, upload: UploadActivity, cap: int, idle: float) -> list[UploadActivity] | None:
        """Admit ``upload`` to an active slot and record it (None), or refuse: the active
        uploads holding the ``cap`` slots."""
        ...

    async def claim_owner(self, upload: UploadActivity, max_open: int, max_bytes: int) -> OwnerRefusal | None:
        """Count a new unfinished upload of its owner (None), or refuse past either cap."""
        ...

    async def report(self, upload: UploadActivity) -> None:
        """Record what the upload does now (a request starts or ends, a status changes)."""
        ...

    async def forget(self, upload_id: str, owner: str) -> None:
        """The upload finished, failed, was cancelled or expired: it holds nothing."""
        ...

    async def active(self, idle: float) -> list[UploadActivity]: ...

    async def unfinished(self, owner: str) -> list[UploadActivity]: ...


class LocalCounters:
    """The counters of one process: a dict of the latest reports."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._uploads: dict[str, UploadActivity] = {}
        self._owned: dict[str, set[str]] = {}

    async def claim_slot(self, upload: UploadActivity, cap: int, idle: float) -> list[UploadActivity] | None:
        now = self.clock()
        known = self._uploads.get(upload.upload_id)
        if known is None or not known.active(now, idle):
            holders = [u for u in await self.active(idle) if u.upload_id != upload.upload_id]
            if len(holders) >= cap:
                return holders
        self._uploads[upload.upload_id] = upload
        return None

    async def claim_owner(self, upload: UploadActivity, max_open: int, max_bytes: int) -> OwnerRefusal | None:
        mine = [u for u in await self.unfinished(upload.owner) if u.upload_id != upload.upload_id]
        pending = sum(u.file_size for u in mine)
        if len(mine) >= max_open:
            return OwnerRefusal(True, pending, mine)
        if pending + upload.file_size > max_bytes:
            return OwnerRefusal(False, pending, mine)
        self._uploads[upload.upload_id] = upload
        self._owned.setdefault(upload.owner, set()).add(upload.upload_id)
        return None

    async def report(self, upload: UploadActivity) -> None:
        if not upload.unfinished:
            await self.forget(upload.upload_id, upload.owner)
            return
        self._uploads[upload.upload_id] = upload
        self._owned.setdefault(upload.owner, set()).add(upload.upload_id)

    async def forget(self, upload_id: str, owner: str) -> None:
        self._uploads.pop(upload_id, None)
        owned = self._owned.get(owner)
        if owned is not None:
            owned.discard(upload_id)
            if not owned:
                del self._owned[owner]

    async def active(self, idle: float) -> list[UploadActivity]:
        now = self.clock()
        for gone in [u for u in self._uploads.values() if u.expires_at <= now]:
            await self.forget(gone.upload_id, gone.owner)
        return [u for u in self._uploads.values() if u.active(now, idle)]

    async def unfinished(self, owner: str) -> list[UploadActivity]:
        now = self.clock()
        found = []
        for upload_id in list(self._owned.get(owner, ())):
            upload = self._uploads.get(upload_id)
            if upload is None or upload.expires_at <= now:
                await self.forget(upload_id, owner)
            elif upload.unfinished:
                found.append(upload)
        return found
