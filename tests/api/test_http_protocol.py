"""The zero-copy body protocol: uvicorn still does what it assumes, and bodies arrive whole."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import io
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from backend.api.http_protocol import BodyPieces, UploadHttpProtocol


def test_uvicorn_still_uses_body_the_way_body_pieces_stands_in_for() -> None:
    """If uvicorn changes these two lines, BodyPieces no longer saves the copies: revisit."""
    assert "self.cycle.body += body" in inspect.getsource(HttpToolsProtocol.on_body)
    assert "bytes(self.body)" in inspect.getsource(RequestResponseCycle.receive)


def test_body_pieces_hands_back_a_lone_piece_itself() -> None:
    body = BodyPieces()
    assert not body and len(body) == 0 and bytes(body) == b""
    piece = os.urandom(100_000)
    body += piece
    assert bytes(body) is piece
    body += b""
    body += b"tail"
    assert len(body) == 100_004 and bytes(body) == piece + b"tail"
    assert body[-4:] == b"tail" and body == piece + b"tail"
    assert bytes(BodyPieces(bytearray(b"ab"))) == b"ab"


class EchoDigest:
    """An ASGI app that answers each request with its body's length and SHA-256."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        digest, size, messages = hashlib.sha256(), 0, 0
        while True:
            message = await receive()
            assert isinstance(message["body"], bytes)
            digest.update(message["body"])
            size += len(message["body"])
            messages += 1
            if not message.get("more_body"):
                break
        self.seen.append((size, digest.hexdigest(), messages))
        answer = f"{size} {digest.hexdigest()}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=UploadHttpProtocol,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_real_server_delivers_every_body_byte_through_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    bypassed: list[int] = []
    through = UploadHttpProtocol._body_received

    def counted(self: UploadHttpProtocol, data: bytes) -> None:
        bypassed.append(len(data))
        through(self, data)

    monkeypatch.setattr(UploadHttpProtocol, "_body_received", counted)
    app = EchoDigest()
    async with serving(app) as port, aiohttp.ClientSession() as http:
        for size in (0, 1, 70_000, 5 * 1024 * 1024 + 3):
            body = os.urandom(size)
            async with http.post(f"http://127.0.0.1:{port}/", data=io.BytesIO(body)) as r:
                assert r.status == 200
            assert app.seen[-1][:2] == (size, hashlib.sha256(body).hexdigest())
        assert app.seen[-1][2] > 1  # a big body comes in several messages
        assert sum(bypassed) > 4 * 1024 * 1024  # and most of it never went through httptools
        bypassed.clear()

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield os.urandom(50_000)

        async with http.post(f"http://127.0.0.1:{port}/", data=chunked()) as r:  # Transfer-Encoding: chunked
            assert r.status == 200 and app.seen[-1][0] == 2_000_000
        assert not bypassed  # a chunked body is httptools' to parse


def _post(body: bytes) -> bytes:
    return b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body) + body


async def _answers(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    answers = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        answers.append(await reader.readexactly(length))
    return answers


@pytest.mark.parametrize("cut", [1, 7, 4096, 300_000])
async def test_bodies_counted_by_the_protocol_keep_pipelined_requests_apart(cut: int) -> None:
    """Content-Length bodies bypass httptools after the head: the bytes of the next
    request, in the same read or cut anywhere, still reach a parser; every body is whole."""
    bodies = [os.urandom(n) for n in (0, 5, 70_000, 1, 600_000, 3)]
    wire = b"".join(_post(b) for b in bodies)
    app = EchoDigest()
    async with serving(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(0, len(wire), cut):
                writer.write(wire[i:i + cut])
                if cut < 10 and i % 97 == 0:
                    await writer.drain()
            await writer.drain()
            answers = await _answers(reader, len(bodies))
        finally:
            writer.close()
    assert answers == [f"{len(b)} {hashlib.sha256(b).hexdigest()}".encode() for b in bodies]


async def test_a_body_answered_before_it_was_read_leaves_the_connection_usable() -> None:
    """The app answers without reading the body (a refusal): the rest of the body still
    arrives and is counted off, and the next request on the connection is parsed whole."""

    async def early(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await EchoDigest()(scope, receive, send)
            return
        if scope["path"] == "/early":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
            await send({"type": "http.response.body", "body": b"early"})
            return
        await EchoDigest()(scope, receive, send)

    body, after = os.urandom(3_000_000), os.urandom(70_000)
    async with serving(early) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST /early HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(5) == b"early"
            for i in range(0, len(body), 100_000):
                writer.write(body[i:i + 100_000])
                await writer.drain()
            writer.write(_post(after))
            await writer.drain()
            assert await _answers(reader, 1) == [f"{len(after)} {hashlib.sha256(after).hexdigest()}".encode()]
        finally:
            writer.close()
