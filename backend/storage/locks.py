"""Per-upload locks with a token, an expiry and a release request (tusd's ``requestUnlock``).

One writer at a time per upload, on any replica. The contract (:class:`UploadLocker`,
run against every backend by tests/storage/test_locks_contract.py):

- :meth:`~UploadLocker.acquire` takes the lock with a fresh token for ``ttl`` seconds.
  If another holds it, it first asks that holder to release (a *release request*), then
  waits up to ``wait`` seconds for the lock to be released or to expire; None if not.
- The holder :meth:`~UploadLocker.renew`\\ s before ``ttl`` passes; the answer says
  whether it still holds the lock and whether a release was requested. A holder that
  sees a request stops writing, records what it has and releases. :func:`held` does
  the renewing and sets an event when the holder should stop.
- :meth:`~UploadLocker.release` only with the right token: a holder whose lock expired
  and was taken over cannot release the new holder's lock.
- A holder that died (a killed replica) stops renewing: its lock expires after ``ttl``
  and the next :meth:`~UploadLocker.acquire` takes it over.

:class:`LocalLocker` serves one process (today's behaviour); the Redis one, several
replicas (:mod:`backend.storage.redis.locks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from backend.errors import StorageUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    upload_id: str
    token: str
    ttl: float


@dataclass(frozen=True)
class Renewal:
    held: bool  # False: the lock expired and may have been taken over; stop at once
    release_requested: bool  # another request wants the lock: finish up and release


class UploadLocker(Protocol):
    async def acquire(self, upload_id: str, *, ttl: float, wait: float) -> Lease | None:
        """The lock, or None when its holder neither released it nor let it expire in ``wait``."""
        ...

    async def renew(self, lease: Lease) -> Renewal:
        """Extend the lease by its ``ttl`` if it is still held; say whether a release is wanted."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Release if ``lease`` still holds the lock (its token); False if it did not."""
        ...

    async def request_release(self, upload_id: str) -> bool:
        """Ask the holder to release; False when nobody holds the lock."""
        ...


def new_token() -> str:
    return uuid.uuid4().hex


@contextlib.asynccontextmanager
async def held(locker: UploadLocker, lease: Lease, every: float = 0.2) -> AsyncIterator[asyncio.Event]:
    """While the block runs, renew ``lease`` every ``every`` seconds (at most a third of
    its ttl), which is also how soon a release request is seen; the event yielded is set
    when the holder should stop: a release was requested, or the lease was lost. The
    lease is released when the block ends."""
    stop = asyncio.Event()
    ended = asyncio.Event()
    interval = min(every, lease.ttl / 3)

    async def renewing() -> None:
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), interval)
                return
            try:
                renewal = await locker.renew(lease)
            except Exception:  # Redis unreachable: the lease may lapse; the writer decides
                continue
            if not renewal.held or renewal.release_requested:
                stop.set()
            if not renewal.held:
                return

    # The renewal is told to end, never cancelled: a cancellation that lands inside a
    # redis-py command can be swallowed there, and awaiting the task would then hang.
    task = asyncio.create_task(renewing(), name=f"lease {lease.upload_id}")
    try:
        yield stop
    finally:
        ended.set()
        done, _ = await asyncio.wait({task}, timeout=interval + 5.0)  # a renewal in flight ends within its timeout
        if not done:
            task.cancel()
        try:
            await locker.release(lease)
        except StorageUnavailable:  # the block's outcome stands; the lease lapses on its own
            log.warning("the lock of upload %s could not be released; it expires in %.0f s",
                        lease.upload_id, lease.ttl)


@contextlib.asynccontextmanager
async def holding(locker: UploadLocker | None, key: str, *, ttl: float, wait: float,
                  busy: str) -> AsyncIterator[asyncio.Event | None]:
    """Hold the lock ``key`` for the block (renewed as :func:`held` does), or nothing
    when ``locker`` is None. ``ServerBusy`` (``busy``, Retry-After 1) when its holder does
    not release it, nor let it expire, within ``wait`` seconds."""
    if locker is None:
        yield None
        return
    lease = await locker.acquire(key, ttl=ttl, wait=wait)
    if lease is None:
        from backend.errors import ServerBusy

        raise ServerBusy(busy, retry_after=1)
    async with held(locker, lease) as stop:
        yield stop


@dataclass
class _Hold:
    token: str
    expires: float
    release_requested: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)


class LocalLocker:
    """Locks of one process, on its monotonic clock (injectable for tests)."""

    POLL = 0.05  # seconds between checks for an expiry while waiting

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._holds: dict[str, _Hold] = {}

    def _current(self, upload_id: str) -> _Hold | None:
        hold = self._holds.get(upload_id)
        if hold is not None and hold.expires <= self.clock():
            del self._holds[upload_id]
            hold.released.set()
            return None
        return hold

    async def acquire(self, upload_id: str, *, ttl: float, wait: float) -> Lease | None:
        deadline = time.monotonic() + wait
        while True:
            hold = self._current(upload_id)
            if hold is None:
                token = new_token()
                self._holds[upload_id] = _Hold(token, self.clock() + ttl)
                return Lease(upload_id, token, ttl)
            hold.release_requested = True
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold.released.wait(), min(left, self.POLL))

    async def renew(self, lease: Lease) -> Renewal:
        hold = self._current(lease.upload_id)
        if hold is None or hold.token != lease.token:
            return Renewal(False, False)
        hold.expires = self.clock() + lease.ttl
        return Renewal(True, hold.release_requested)

    async def release(self, lease: Lease) -> bool:
        hold = self._current(lease.upload_id)
        if hold is None or hold.token != lease.token:
            return False
        del self._holds[lease.upload_id]
        hold.released.set()
        return True

    async def request_release(self, upload_id: str) -> bool:
        hold = self._current(upload_id)
        if hold is None:
            return False
        hold.release_requested = True
        return True
