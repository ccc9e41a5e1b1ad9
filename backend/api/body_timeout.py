"""A request body that may go quiet only for so long.

uvicorn has no timeout on reading a request body: a client whose network vanishes
mid-chunk (no FIN, no reset) leaves its request waiting forever, holding the chunk's
lock, a share of the memory budget and the session's in-flight count, so the client's
own retry of that chunk waits forever too. Here each wait for the next piece is bounded;
the time the server itself spends between pieces (waiting for the chunk's lock, writing)
is not counted. The bound is on silence, so a slow but steady client is never cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from backend.errors import RequestTimeout


async def idle_bounded(stream: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """``stream``'s pieces; RequestTimeout (408) when none arrives for ``seconds``."""
    pieces = aiter(stream)
    while True:
        try:
            async with asyncio.timeout(seconds):
                piece = await anext(pieces)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(f"no byte of the request arrived for {seconds:g} s; send it again") from None
        yield piece
