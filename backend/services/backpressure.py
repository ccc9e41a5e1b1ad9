"""A global budget of chunk bytes held in memory, shared by every upload.

A chunk request reserves the most it can hold at once (two blocks: one filling from the
socket, one in a worker thread) before reading its body. Past the budget it waits a
little for others to finish, then is refused with ``ServerBusy`` (503 + Retry-After),
so memory is a budget, not a hope.

``on_rest`` is called once no chunk byte has been held for ``REST_SECONDS`` (the
uploads stopped): the server gives its idle heap back then (:mod:`backend.services.heap`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from backend.errors import ServerBusy

REST_SECONDS = 2.0


class MemoryBudget:
    def __init__(self, limit: int, wait_seconds: float, on_pressure: Callable[[], None] | None = None,
                 on_rest: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.in_use = 0
        self.peak = 0
        self.waits = 0
        self.refusals = 0
        self.on_pressure = on_pressure
        self.on_rest = on_rest
        self._rest: asyncio.TimerHandle | None = None
        self._cond = asyncio.Condition()

    @property
    def under_pressure(self) -> bool:
        return self.in_use >= self.limit * 0.9

    @asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[None]:
        nbytes = min(nbytes, self.limit)
        async with self._cond:
            if self.in_use + nbytes > self.limit:
                self.waits += 1
                if self.on_pressure is not None:
                    self.on_pressure()
                try:
                    await asyncio.wait_for(
                        self._cond.wait_for(lambda: self.in_use + nbytes <= self.limit), self.wait_seconds
                    )
                except TimeoutError:
                    self.refusals += 1
                    raise ServerBusy(
                        "the server is holding as much upload data as its memory budget allows; retry shortly",
                        retry_after=1,
                    ) from None
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            async with self._cond:
                self.in_use -= nbytes
                self._cond.notify_all()
            if self.in_use == 0 and self.on_rest is not None:
                if self._rest is not None:
                    self._rest.cancel()
                self._rest = asyncio.get_running_loop().call_later(REST_SECONDS, self._rested)

    def _rested(self) -> None:
        self._rest = None
        if self.in_use == 0 and self.on_rest is not None:
            self.on_rest()
