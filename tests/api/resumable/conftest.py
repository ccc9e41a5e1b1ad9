"""Helpers for the draft's conformance suite: a small PDF, the request fields, creation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from starlette.types import ASGIApp, Message, Scope

from tests.conftest import Api
from tests.pdfgen import make_pdf

INTEROP = {"Upload-Draft-Interop-Version": "8"}
NAME = {"Content-Disposition": 'attachment; filename="draft.pdf"'}
PARTIAL = "application/partial-upload"
PROBLEM = "https://iana.org/assignments/http-problem-types#"


@pytest.fixture(scope="session")
def pdf(pdf_dir: Path) -> bytes:
    """A 300 kB PDF: big enough to cut into parts, small enough to upload in a blink."""
    path = pdf_dir / "draft.pdf"
    make_pdf(path, 300_000, seed=14)
    return path.read_bytes()


async def create(api: Api, body: bytes = b"", *, complete: bool = False,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.http.post("/uploads/", content=body, headers={
        **INTEROP, **NAME, "Upload-Complete": "?1" if complete else "?0", **(headers or {})})


async def create_url(api: Api, body: bytes = b"", **headers: str) -> str:
    r = await create(api, body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


async def append(api: Api, url: str, body: bytes, offset: int, *, complete: bool = False,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.http.patch(url, content=body, headers={
        **INTEROP, "Content-Type": PARTIAL, "Upload-Offset": str(offset),
        "Upload-Complete": "?1" if complete else "?0", **(headers or {})})


def asgi_app(api: Api) -> ASGIApp:
    """The app behind the ``api`` fixture, for requests httpx cannot make: a body that
    breaks off, or one that trickles."""
    return cast(httpx.ASGITransport, api.http._transport).app


async def raw(app: ASGIApp, method: str, path: str, headers: dict[str, str],
              pieces: AsyncIterator[bytes]) -> int:
    """One request straight through ASGI; its body is ``pieces``, and when they run out the
    client "goes away" (``http.disconnect``). The response status."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5),
        "server": ("test", 80), "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    status = 0

    async def receive() -> Message:
        piece = await anext(pieces, None)
        if piece is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def pieces_of(data: bytes, size: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if pause:
            await asyncio.sleep(pause)
        yield data[i:i + size]
