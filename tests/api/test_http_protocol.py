"""The zero-copy body protocol: uvicorn still does what it assumes, and bodies arrive whole."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import os
import socket
from typing import Any

import aiohttp
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


async def test_real_server_delivers_every_body_byte_through_the_protocol() -> None:
    seen: list[tuple[int, str, int]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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
        seen.append((size, digest.hexdigest(), messages))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=UploadHttpProtocol,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http:
            for size in (0, 1, 70_000, 5 * 1024 * 1024 + 3):
                body = os.urandom(size)
                async with http.post(f"http://127.0.0.1:{port}/", data=io.BytesIO(body)) as r:
                    assert r.status == 200
                assert seen[-1][:2] == (size, hashlib.sha256(body).hexdigest())
        assert seen[-1][2] > 1  # a big body comes in several messages
    finally:
        server.should_exit = True
        await task
