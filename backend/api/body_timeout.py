"""A request body that may go quiet only for so long.

uvicorn has no timeout on reading a request body: a client whose network vanishes
mid-chunk (no FIN, no reset) leaves its request waiting forever, holding the chunk's
lock, a share of the memory budget and the session's in-flight count, so the client's
own retry of that chunk waits forever too. Here the waits for the next piece are
bounded; the time the server itself spends between pieces (waiting for the chunk's
lock, writing) is not counted. The bound is on silence, so a slow but steady client is
never cut.

This sits on the upload hot path, so a piece costs a clock read and two attribute
writes; one timer per request checks, at most once per ``seconds``, whether the wait in
progress has gone on too long (``asyncio.timeout`` around each piece cost ~8 us a piece,
a few percent of the server's CPU per byte).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect

from backend.errors import RequestTimeout, UploadError

#: Most of a refused body read on so that the client hears the refusal (more: the
#: connection is closed on it).
DRAIN_LIMIT = 16 << 20


class _Watch:
    """The timer side: cancels the request's task when a wait outlasts ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.waiting = False
        self.since = self.loop.time()
        self.fired = False
        self.handle = self.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        if self.task is None or self.task.done():
            return
        now = self.loop.time()
        if self.waiting and now - self.since >= self.seconds:
            self.fired = True
            self.task.cancel()
            return
        due = self.since + self.seconds if self.waiting else now + self.seconds
        self.handle = self.loop.call_at(due, self._check)

    def stop(self) -> None:
        self.handle.cancel()


async def idle_bounded(stream: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """``stream``'s pieces; RequestTimeout (408) when none arrives for ``seconds``."""
    watch = _Watch(seconds)
    pieces = aiter(stream)
    clock = watch.loop.time
    try:
        while True:
            watch.since, watch.waiting = clock(), True
            try:
                piece = await anext(pieces)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not watch.fired or watch.task is None:
                    raise
                watch.task.uncancel()
                raise RequestTimeout(f"no byte of the request arrived for {seconds:g} s; send it again") from None
            finally:
                watch.waiting = False
            yield piece
    finally:
        watch.stop()


async def drain(stream: AsyncIterator[bytes], limit: int = DRAIN_LIMIT) -> None:
    """Read what is left of a refused body, up to ``limit`` bytes, so the client hears the
    refusal: a server that answers and closes with the body unread resets the connection,
    and the client's kernel then drops the answer before the client has read it."""
    seen = 0
    try:
        async for piece in stream:
            seen += len(piece)
            if seen > limit:
                return
    except (ClientDisconnect, OSError, UploadError):
        return
