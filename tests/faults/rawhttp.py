"""HTTP/1.1 over a bare asyncio stream, for requests no well-behaved client sends.

aiohttp will not send a body shorter than its Content-Length, hang up half-way through a
chunk, pace a body on purpose or send a 64 KiB header; these helpers do. The reply is
read with ``Content-Length`` (every response of this server has one) and closed after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "/api/documents/streaming"
PIECE = 64 << 10
REPLY_TIMEOUT = 30.0


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError:
            return self.raw.decode(errors="replace")

    def __repr__(self) -> str:
        return f"RawReply({self.status}, {self.raw[:300]!r})"


def multipart(fields: Sequence[tuple[str, str]], file: bytes | None, *, file_field: str = "file",
              boundary: str | None = None, after: Sequence[tuple[str, str]] = ()) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (fields, then the file part, then ``after``) and its
    Content-Type."""
    b = boundary or f"faults{uuid.uuid4().hex}"
    out = bytearray()

    def field(name: str, value: str) -> None:
        out.extend(f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())

    for name, value in fields:
        field(name, value)
    if file is not None:
        out.extend(f'--{b}\r\nContent-Disposition: form-data; name="{file_field}"; filename="chunk.bin"\r\n'
                   f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.extend(file)
        out.extend(b"\r\n")
    for name, value in after:
        field(name, value)
    out.extend(f"--{b}--\r\n".encode())
    return bytes(out), f"multipart/form-data; boundary={b}"


def chunk_form(chunk_id: int | str, data: bytes, chunk_size: int, total: int, *,
               checksum: str | None | bool = True) -> tuple[bytes, str]:
    """The form of ``API.md`` for one chunk (``checksum=True``: the SHA-256 of ``data``)."""
    cid = int(chunk_id)
    fields = [("chunk_id", str(chunk_id)), ("chunk_offset", str(cid * chunk_size)),
              ("is_final", "true" if cid == total - 1 else "false")]
    if checksum is True:
        fields.append(("checksum", hashlib.sha256(data).hexdigest()))
    elif isinstance(checksum, str):
        fields.append(("checksum", checksum))
    return multipart(fields, data)


def pieces(data: bytes, size: int = PIECE) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


async def _read_reply(reader: asyncio.StreamReader) -> RawReply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    raw = await reader.readexactly(length) if length else b""
    return RawReply(status, headers, raw)


async def request(host: str, port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
                  body: Iterable[bytes] = (), content_length: int | None = None, pace: float = 0.0,
                  end: str = "read", timeout: float = REPLY_TIMEOUT) -> RawReply | None:
    """Send a request whose body is ``body``'s pieces (``pace`` seconds between them).

    ``content_length`` may lie (more than is sent: a truncated body). After the last
    piece, ``end`` says what the client does: ``read`` the reply; ``abort`` the
    connection (a reset, as from a crashed client; ``None`` is returned); or send ``eof``
    (half-close, as from a client that stopped sending) and read what comes, ``None`` if
    the server just closes."""
    parts = list(body)
    length = sum(len(p) for p in parts) if content_length is None else content_length
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    framed = any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {})
    if method in ("POST", "PUT", "PATCH") and not framed:  # else the caller frames it (or lies)
        head.append(f"Content-Length: {length}")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for i, part in enumerate(parts):
                writer.write(part)
                await writer.drain()
                if pace and i < len(parts) - 1:
                    await asyncio.sleep(pace)
        except (BrokenPipeError, ConnectionResetError):
            if end != "read":
                raise
            # The server answered early and closed (a refusal it sent without reading
            # the body): its answer may be waiting to be read.
            return await asyncio.wait_for(_read_reply(reader), timeout)
        if end == "abort":
            writer.transport.abort()
            return None
        if end == "eof":
            writer.write_eof()
            try:
                return await asyncio.wait_for(_read_reply(reader), timeout)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
        return await asyncio.wait_for(_read_reply(reader), timeout)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def post_json_raw(host: str, port: int, path: str, raw: bytes,
                        content_type: str = "application/json") -> RawReply:
    reply = await request(host, port, "POST", path, headers={"Content-Type": content_type}, body=[raw])
    assert reply is not None
    return reply
