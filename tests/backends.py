"""Backends for the contract suites: each suite's fixture is parametrized over
:data:`BACKENDS`, and asks for a Redis client only when it runs on Redis (so the
in-process half runs where no redis-server is installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from backend.storage.redis.client import connect

BACKENDS = ["local", "redis"]


@asynccontextmanager
async def redis_client(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """A client of the test's real redis-server (flushed for this test), closed after it."""
    client = connect(request.getfixturevalue("redis_url"))
    try:
        yield client
    finally:
        await client.aclose()
