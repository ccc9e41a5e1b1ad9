"""The Redis connection every Redis backend shares, and how its failures read.

Timeouts are short and retries few: a request waiting on a Redis that is gone should
hear 503 ``storage_unavailable`` in about a second, not hang. :func:`unavailable`
turns redis-py's errors of reach (refused, reset, timed out, still loading its data)
into :class:`~backend.errors.StorageUnavailable` with ``Retry-After``: nothing was
decided or stored, and the client may retry. Other Redis errors (a wrong type, a script
error) are bugs and propagate as they are.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.errors import StorageUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER = 2  # seconds: a Redis restart or failover takes about that long
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
REACH_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)  # OSError: refused, reset, timed out


def connect(url: str) -> Redis:
    """A client over a connection pool for ``url`` (``redis://``, ``rediss://``,
    ``unix://``). Connections open lazily, in the event loop that first uses them."""
    return Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2), health_check_interval=30,
        decode_responses=False)


@asynccontextmanager
async def unavailable(what: str) -> AsyncIterator[None]:
    """Run a block of Redis calls; a lost Redis becomes ``StorageUnavailable``."""
    try:
        yield
    except REACH_ERRORS as exc:
        log.warning("redis (%s) is unavailable: %s", what, exc)
        raise StorageUnavailable(f"the shared store ({what}) cannot be reached; retry later",
                                 retry_after=RETRY_AFTER) from exc
