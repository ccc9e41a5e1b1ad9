"""``Api``: a server never reached fails fast; one that answered once is retried."""

from __future__ import annotations

import time

import pytest

from pdf_upload_client.api import Api, RetryPolicy, Unavailable
from tests.e2e.conftest import free_port


async def test_unreachable_server_fails_at_once_without_retries(blackhole: str) -> None:
    retries: list[str] = []
    refused = f"http://127.0.0.1:{free_port()}"
    for url, why in ((refused, "connection refused"), (blackhole, "no connection within the connect timeout")):
        start = time.monotonic()
        async with Api(url, connect_timeout=0.5, retry=RetryPolicy(max_attempts=8),
                       on_retry=lambda what, *_: retries.append(what)) as api:
            with pytest.raises(Unavailable) as info:
                await api.resumable()
        assert time.monotonic() - start < 3.0
        assert str(info.value).endswith(f"cannot reach {url}: {why}")
        assert not api.reached
    assert retries == []


async def test_connect_failures_are_retried_once_the_server_has_answered() -> None:
    retries: list[int] = []
    async with Api(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5,
                   retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
                   on_retry=lambda _what, attempt, *_: retries.append(attempt)) as api:
        api.reached = True  # as after /initiate: the server went away mid-upload
        with pytest.raises(Unavailable, match="after 3 attempts: connection refused"):
            await api.resumable()
    assert retries == [1, 2]
