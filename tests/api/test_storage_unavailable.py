"""A database out of reach is 503 storage_unavailable with Retry-After (API.md's
envelope), never a 500: the app runs on PostgreSQL (STREAMING_DATABASE_URL), which is
stopped under it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import temp_settings
from tests.conftest import envelope
from tests.realservers.postgres import PostgresServer, pg_bin, start_postgres


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped mid-test."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed: run `make postgres`")
    server = start_postgres(bindir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


async def test_lost_database_is_503_with_retry_after(tmp_path: Path, own_postgres: PostgresServer) -> None:
    settings = temp_settings(tmp_path, database_url=own_postgres.url(), progress_interval_seconds=0,
                             import_in_server=False, database_timeout_seconds=1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            r = await http.get("/api/documents")
            assert r.status_code == 200 and r.json() == []
            own_postgres.stop()
            for path in ("/api/documents", "/api/documents/1", "/api/documents/search?q=word"):
                r = await http.get(path)
                envelope(r, "storage_unavailable", 503)
                assert int(r.headers["Retry-After"]) > 0
