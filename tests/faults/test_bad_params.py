"""Numbers in paths and query strings past what the database can hold.

Found by Schemathesis: a document id or a list offset above 2**63-1 reached sqlite3,
which raised OverflowError (a 500). They are refused at the edge now (422), and the
schema says so.
"""

from __future__ import annotations

import pytest

from tests.e2e.client import ApiClient
from tests.e2e.conftest import ServerProcess
from tests.faults import rawhttp
from tests.faults.victim import expect

pytestmark = pytest.mark.e2e

HUGE = str(2**63)
CASES = [
    ("GET", f"/api/documents/{HUGE}"),
    ("GET", f"/api/documents/{HUGE}/file"),
    ("DELETE", f"/api/documents/{HUGE}"),
    ("POST", f"/api/documents/{HUGE}/reimport"),
    ("GET", f"/api/documents/{'9' * 40}"),
    ("GET", f"/api/documents?offset={HUGE}"),
    ("GET", "/api/documents/0"),
    ("GET", "/api/documents/-1"),
]


@pytest.mark.parametrize(("method", "path"), CASES)
async def test_out_of_range_numbers_are_refused(bad_server: ServerProcess, method: str, path: str) -> None:
    reply = await rawhttp.request(bad_server.host, bad_server.port, method, path)
    expect(reply, 422, "invalid_request")
    async with ApiClient(bad_server.base_url) as api:
        assert (await api.get("/api/documents")).status == 200
    bad_server.assert_no_tracebacks()
