"""Shared fixtures: settings on temporary directories, an in-process app and client."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.composition import Services
from backend.settings import Settings, temp_settings
from tests.pdfgen import make_pdf

MIB = 1024 * 1024

# Real servers on loopback (tests/realservers): fixtures any module may ask for.
pytest_plugins = ["tests.realservers.postgres", "tests.realservers.seaweed", "tests.realservers.redis_server"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return temp_settings(tmp_path / "srv", progress_interval_seconds=0)


@dataclass
class Api:
    """The app in-process, with helpers that speak API.md."""

    http: httpx.AsyncClient
    svc: Services

    async def initiate(self, size: int, **fields: Any) -> dict[str, Any]:
        body = {"filename": "doc.pdf", "file_size": size, **fields}
        r = await self.http.post("/api/documents/streaming/initiate", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def chunk(self, sid: str, chunk_id: int, data: bytes, *, checksum: str | None | bool = True,
                    offset: int | None = None, chunk_size: int | None = None,
                    extra: dict[str, str] | None = None) -> httpx.Response:
        fields: dict[str, str] = {"chunk_id": str(chunk_id), "is_final": "false"}
        if offset is not None:
            fields["chunk_offset"] = str(offset)
        elif chunk_size is not None:
            fields["chunk_offset"] = str(chunk_id * chunk_size)
        if checksum is True:
            fields["checksum"] = hashlib.sha256(data).hexdigest()
        elif isinstance(checksum, str):
            fields["checksum"] = checksum
        fields.update(extra or {})
        return await self.http.post(f"/api/documents/streaming/chunk/{sid}", data=fields,
                                    files={"file": ("blob", data, "application/octet-stream")})

    async def upload_all(self, sid: str, data: bytes, chunk_size: int, order: list[int] | None = None) -> None:
        total = -(-len(data) // chunk_size)
        for i in order if order is not None else range(total):
            r = await self.chunk(sid, i, data[i * chunk_size:(i + 1) * chunk_size], chunk_size=chunk_size)
            assert r.status_code == 200, r.text

    async def complete(self, sid: str) -> httpx.Response:
        return await self.http.post(f"/api/documents/streaming/complete/{sid}")

    async def upload(self, data: bytes, **fields: Any) -> dict[str, Any]:
        """Initiate, send every chunk, complete: the ``/complete`` answer."""
        s = await self.initiate(len(data), **fields)
        await self.upload_all(s["session_id"], data, s["chunk_size"])
        r = await self.complete(s["session_id"])
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Api(http, app.state.services)


@pytest.fixture(scope="session")
def pdf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pdfs")


@pytest.fixture(scope="session")
def small_pdf(pdf_dir: Path) -> bytes:
    """A 5 MB PDF: three 2 MiB chunks."""
    path = pdf_dir / "small.pdf"
    make_pdf(path, 5_000_000, pages=2)
    return path.read_bytes()


@pytest.fixture(scope="session")
def medium_pdf(pdf_dir: Path) -> bytes:
    """A 20 MB PDF: three 8 MiB chunks (2 MiB under the chunk-size rule? no: >= 10 MiB)."""
    path = pdf_dir / "medium.pdf"
    make_pdf(path, 20_000_000, seed=1)
    return path.read_bytes()


def envelope(r: httpx.Response, code: str, status: int) -> dict[str, Any]:
    """Assert the API.md error envelope with a stable code."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"] == code and isinstance(body["message"], str), body
    return dict(body)
