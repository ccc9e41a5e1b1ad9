"""draft-ietf-httpbis-resumable-upload-11, "Limits" (``Upload-Limit``), server side."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import temp_settings
from tests.api.resumable.conftest import NAME, PARTIAL, append, create, create_url
from tests.conftest import Api

SMALL_LIMIT = 262_144  # STREAMING_MAX_FILE_SIZE_MB=0.25


def limits(r: httpx.Response) -> dict[str, int]:
    return {k.strip(): int(v) for k, v in (m.split("=") for m in r.headers["upload-limit"].split(","))}


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Api]:
    """An app whose largest file is 256 KiB."""
    app = create_app(temp_settings(tmp_path / "small", progress_interval_seconds=0, max_file_size_mb=0.25))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield Api(http, app.state.services)


async def test_limits_options_includes_upload_limit_and_accept_patch(api: Api) -> None:
    """draft 11: Accept-Patch MUST list application/partial-upload; Upload-Limit SHOULD be
    there (the editor's copy makes it a MUST)."""
    r = await api.http.options("/uploads/")
    assert r.status_code == 204 and PARTIAL in r.headers["accept-patch"]
    assert limits(r) == {"max-size": api.svc.settings.max_file_size}


async def test_limits_are_announced_when_the_upload_resource_is_created(api: Api, pdf: bytes) -> None:
    r = await create(api, pdf[:1000])
    assert limits(r)["max-size"] == api.svc.settings.max_file_size and limits(r)["max-age"] > 0


async def test_limits_max_size_creation_over_it_is_413_with_upload_limit(small: Api, pdf: bytes) -> None:
    r = await create(small, headers={"Upload-Length": str(SMALL_LIMIT + 1)})
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    assert limits(r) == {"max-size": SMALL_LIMIT}


async def test_limits_a_413_from_the_body_cap_should_include_upload_limit(small: Api, pdf: bytes) -> None:
    r = await create(small, pdf, complete=True)  # 300 kB: refused on its Content-Length, unread
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"
    assert limits(r) == {"max-size": SMALL_LIMIT}


async def test_limits_max_size_an_unknown_length_past_it_ends_the_upload(small: Api, pdf: bytes) -> None:
    url = await create_url(small, pdf[:1000])

    async def body() -> AsyncIterator[bytes]:
        for i in range(1000, len(pdf), 50_000):
            yield pdf[i:i + 50_000]

    r = await small.http.patch(url, content=body(), headers={
        "Content-Type": PARTIAL, "Upload-Offset": "1000", "Upload-Complete": "?1"})
    assert r.status_code == 413 and limits(r)["max-size"] == SMALL_LIMIT
    assert (await small.http.head(url)).status_code == 404


async def test_limits_max_size_should_not_decrease_and_max_age_end_should_not_move_earlier(
        api: Api, pdf: bytes) -> None:
    url = await create_url(api, pdf[:1000])
    first = limits(await api.http.head(url))
    end = time.time() + first["max-age"]
    assert (await append(api, url, pdf[1000:2000], 1000)).status_code == 204
    second = limits(await api.http.head(url))
    assert second["max-size"] >= first["max-size"]
    assert time.time() + second["max-age"] >= end - 1  # whole seconds


async def test_limits_no_append_size_limits_one_request_may_carry_the_whole_file(api: Api, small_pdf: bytes) -> None:
    r = await api.http.options("/uploads/")
    assert "max-append-size" not in r.headers["upload-limit"] and "min-append-size" not in r.headers["upload-limit"]
    url = await create_url(api, b"")
    assert (await append(api, url, small_pdf, 0, complete=True)).status_code == 200


async def test_limits_a_completed_upload_announces_no_max_age(api: Api, pdf: bytes) -> None:
    r = await api.http.post("/uploads/", content=pdf, headers={**NAME, "Upload-Complete": "?1"})
    assert "max-age" not in (await api.http.head(r.headers["location"])).headers["upload-limit"]
