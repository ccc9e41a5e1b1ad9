"""Helpers for the tus 1.0.0 conformance suite (tests/api/tus/test_*.py, one test per
MUST and SHOULD of protocol.md, named after its section): a small PDF, the request
headers, creation, and a raw ASGI request for bodies httpx cannot send (one that breaks
off, one that goes quiet)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import httpx
import pytest
from starlette.types import ASGIApp, Message, Scope

from tests.conftest import Api
from tests.pdfgen import make_pdf

H = {"Tus-Resumable": "1.0.0"}
STREAM = {**H, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="session")
def pdf(pdf_dir: Path) -> bytes:
    """A 300 kB PDF: big enough to cut into parts, small enough to upload in a blink."""
    path = pdf_dir / "tus.pdf"
    make_pdf(path, 300_000, seed=10)
    return path.read_bytes()


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def metadata(**pairs: str) -> str:
    """``Upload-Metadata`` from keyword pairs (a filename unless one is given)."""
    pairs = {"filename": "tus.pdf", **pairs}
    return ",".join(f"{k} {b64(v)}" for k, v in pairs.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {b64(hashlib.new(algorithm, data).digest())}"


async def create(api: Api, length: int, *, meta: str | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    """POST /files/ (with ``body``: creation-with-upload)."""
    fields = {**(STREAM if body is not None else H), "Upload-Length": str(length),
              "Upload-Metadata": metadata() if meta is None else meta, **(headers or {})}
    return await api.http.post("/files/", content=body or b"", headers=fields)


async def create_url(api: Api, length: int, **kw: str) -> str:
    r = await create(api, length, meta=metadata(**kw))
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


async def patch(api: Api, url: str, body: bytes, offset: int, **headers: str) -> httpx.Response:
    return await api.http.patch(url, content=body, headers={**STREAM, "Upload-Offset": str(offset), **headers})


async def offset_of(api: Api, url: str) -> int:
    r = await api.http.head(url, headers=H)
    assert r.status_code == 200, r.status_code
    return int(r.headers["upload-offset"])


def asgi_app(api: Api) -> ASGIApp:
    return cast(httpx.ASGITransport, api.http._transport).app


async def raw(app: ASGIApp, method: str, path: str, headers: dict[str, str],
              pieces: Callable[[], AsyncIterator[bytes]]) -> tuple[int, dict[str, str]]:
    """One request straight through ASGI: its body is ``pieces()``; when they run out the
    client "goes away" (``http.disconnect``). The status and headers of the answer."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5),
        "server": ("test", 80), "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    body = pieces()
    answer: dict[str, object] = {"status": 0, "headers": {}}

    async def receive() -> Message:
        piece = await anext(body, None)
        if piece is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = int(message["status"])
            answer["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}

    await app(scope, receive, send)
    return int(cast(int, answer["status"])), cast(dict[str, str], answer["headers"])
