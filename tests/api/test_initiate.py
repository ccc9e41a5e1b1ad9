"""POST /initiate: the chunk-size rule, limits, echoes, and refusals."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.conftest import MIB, Api, envelope


@pytest.mark.parametrize(
    ("size", "requested", "expected"),
    [
        (5_000_000, None, 2 * MIB),
        (5_000_000, 8 * MIB, 2 * MIB),
        (50 * MIB, 16 * MIB, 8 * MIB),
        (50 * MIB, None, 8 * MIB),
        (500 * MIB, 1 * MIB, 2 * MIB),
        (500 * MIB, 4 * MIB, 4 * MIB),
        (500 * MIB, 100 * MIB, 8 * MIB),
    ],
)
async def test_chunk_size_rule(api: Api, size: int, requested: int | None, expected: int) -> None:
    body = {"chunk_size": requested} if requested else {}
    s = await api.initiate(size, **body)
    assert s["chunk_size"] == expected
    assert s["total_chunks"] == -(-size // expected)


async def test_initiate_response_shape(api: Api) -> None:
    s = await api.initiate(5_000_000, client_id="client_123", filename="My Report.pdf")
    assert re.fullmatch(r"[0-9a-f-]{36}", s["session_id"])
    assert s["upload_url"] == f"/api/documents/streaming/chunk/{s['session_id']}"
    assert s["websocket_room"] == f"upload_{s['session_id']}"
    assert s["client_id"] == "client_123"
    expires = datetime.strptime(s["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    hours = (expires - datetime.now(timezone.utc)).total_seconds() / 3600
    assert 23.9 < hours <= 24


async def test_generated_client_id(api: Api) -> None:
    s = await api.initiate(1000)
    assert s["client_id"].startswith("client_")


async def test_state_saved_at_initiate(api: Api) -> None:
    s = await api.initiate(1000)
    state = api.svc.settings.state_dir / f"{s['session_id']}.json"
    assert state.exists()
    assert (api.svc.settings.partial_dir / f"{s['session_id']}.part").exists()


async def test_too_large_refused_before_any_byte(api: Api) -> None:
    r = await api.http.post("/api/documents/streaming/initiate",
                            json={"filename": "big.pdf", "file_size": 1024 * MIB + 1})
    envelope(r, "file_too_large", 413)


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.pdf", "file_size": 0},
        {"filename": "a.pdf", "file_size": -5},
        {"filename": "a.pdf"},
        {"file_size": 100},
        {"filename": "a.pdf", "file_size": 100, "expected_hash": "xyz"},
        {"filename": "a.pdf", "file_size": 100, "client_id": "bad id!"},
        {"filename": "/", "file_size": 100},
    ],
)
async def test_bad_initiate_bodies(api: Api, body: dict[str, object]) -> None:
    r = await api.http.post("/api/documents/streaming/initiate", json=body)
    envelope(r, "invalid_request", 422)


async def test_non_json_body(api: Api) -> None:
    r = await api.http.post("/api/documents/streaming/initiate", content=b"not json",
                            headers={"content-type": "application/json"})
    envelope(r, "invalid_request", 422)


async def test_path_in_filename_is_stripped(api: Api) -> None:
    s = await api.initiate(1000, filename="../../etc/passwd.pdf")
    assert s["filename"] == "passwd.pdf"


async def test_concurrent_upload_cap(api: Api) -> None:
    api.svc.settings.max_concurrent_uploads = 2
    await api.initiate(1000)
    await api.initiate(1000)
    r = await api.http.post("/api/documents/streaming/initiate", json={"filename": "c.pdf", "file_size": 1000})
    body = envelope(r, "too_many_uploads", 429)
    assert "retry_after" in body and r.headers["Retry-After"]


async def test_unknown_route_and_method_use_the_envelope(api: Api) -> None:
    envelope(await api.http.get("/api/nothing"), "not_found", 404)
    envelope(await api.http.get("/api/documents/streaming/initiate"), "method_not_allowed", 405)


async def test_concurrent_upload_cap_says_when_a_slot_frees(api: Api, small_pdf: bytes) -> None:
    """Retry-After comes from the active uploads, not a fixed guess: here the one upload
    under way has sent its first chunk and goes idle after ``active_idle_seconds``."""
    api.svc.settings.max_concurrent_uploads = 1
    api.svc.settings.active_idle_seconds = 20
    s = await api.initiate(len(small_pdf))
    await api.chunk(s["session_id"], 0, small_pdf[:s["chunk_size"]])
    r = await api.http.post("/api/documents/streaming/initiate", json={"filename": "c.pdf", "file_size": 1000})
    body = envelope(r, "too_many_uploads", 429)
    assert 1 <= int(r.headers["Retry-After"]) <= 20 and body["retry_after"] == int(r.headers["Retry-After"])
