"""The deep inspection on /complete runs in a child under a memory and a time limit
(hardening, point 2): past either, a clear refusal with its own code, naming the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from backend.app import create_app
from backend.settings import temp_settings
from tests import hostile_corpus
from tests.conftest import Api, envelope


@pytest.fixture(scope="module")
def many_objects(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return hostile_corpus.many_objects(tmp_path_factory.mktemp("hostile") / "objects.pdf").read_bytes()


@asynccontextmanager
async def _api(tmp_path: Path, **limits: object) -> AsyncIterator[Api]:
    import httpx

    app = create_app(temp_settings(tmp_path, progress_interval_seconds=0, inspect_isolation="process", **limits))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield Api(http, app.state.services)


async def _complete(api: Api, data: bytes) -> tuple[int, dict[str, object]]:
    s = await api.initiate(len(data))
    await api.upload_all(s["session_id"], data, s["chunk_size"])
    r = await api.complete(s["session_id"])
    return r.status_code, r.json()


async def test_a_file_within_the_limits_is_inspected_in_the_child(tmp_path: Path, many_objects: bytes) -> None:
    async with _api(tmp_path) as api:
        sandbox = api.svc.validation.inspector.sandbox  # type: ignore[attr-defined]
        status, body = await _complete(api, hostile_corpus._text_pdf("small"))
        assert status == 200, body
        assert sandbox.children == 1
        status, body = await _complete(api, many_objects)
        assert status == 200, body
        assert sandbox.children == 0  # it kept what qpdf allocated: it retired, giving it back


async def test_past_the_memory_limit(tmp_path: Path, many_objects: bytes) -> None:
    async with _api(tmp_path, inspect_memory_mb=48) as api:
        status, body = await _complete(api, many_objects)
        assert status == 422, body
        assert body["error"] == "inspection_limit_exceeded" and body["limit"] == "memory"
        assert body["message"] == ("the file needs more than 48 MiB of memory to inspect "
                                   "(the memory limit, STREAMING_INSPECT_MEMORY_MB)")
        # the next file is inspected by a fresh child
        ok, _ = await _complete(api, hostile_corpus._text_pdf("after the refusal"))
        assert ok == 200


async def test_past_the_time_limit(tmp_path: Path, many_objects: bytes) -> None:
    async with _api(tmp_path, inspect_timeout_seconds=0.2) as api:
        r = await api.http.post("/api/documents/streaming/initiate", json={"filename": "x.pdf",
                                                                              "file_size": len(many_objects)})
        sid, size = r.json()["session_id"], r.json()["chunk_size"]
        await api.upload_all(sid, many_objects, size)
        body = envelope(await api.complete(sid), "inspection_limit_exceeded", 422)
        assert body["limit"] == "time" and "took longer than 0.2 s" in body["message"]
        assert "STREAMING_INSPECT_TIMEOUT_SECONDS" in body["message"]
