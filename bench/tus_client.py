"""One small tus 1.0 client (core protocol + creation), used for both peers alike.

POST creates the upload (``Upload-Length``, ``Upload-Metadata``), then PATCH sends
the bytes in ``chunk_size`` pieces, one after the other, each at the offset the server
acknowledged last. Chunks are read with ``os.pread`` as ``bytes``, like our own chunk
client does, so both clients pay the same per byte.

Neither peer store offers tus concatenation (@tus/file-store does not), so "N in
parallel" is N uploads of consecutive parts of the file, each sequential, all at once:
the same bytes and the same number of requests in flight as our N chunks in flight.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

TUS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True)
class Part:
    offset: int
    length: int


@dataclass(frozen=True)
class Sent:
    part: Part
    url: str  # the upload's URL, as the server's Location named it
    retries: int


def parts(size: int, n: int, chunk_size: int) -> list[Part]:
    """``n`` consecutive parts of whole chunks (the last takes the rest)."""
    per = -(-size // n // chunk_size) * chunk_size or chunk_size
    out, offset = [], 0
    while offset < size:
        length = min(per, size - offset)
        out.append(Part(offset, length))
        offset += length
    return out


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


async def _busy(r: aiohttp.ClientResponse) -> bool:
    """429/503: wait Retry-After, as a real client would; True means "send again"."""
    if r.status not in (429, 503):
        return False
    await r.read()
    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    return True


async def upload_part(http: aiohttp.ClientSession, endpoint: str, fd: int, part: Part, chunk_size: int,
                      filename: str) -> Sent:
    retries = 0
    headers = {**TUS, "Upload-Length": str(part.length), "Content-Length": "0",
               "Upload-Metadata": metadata(filename=filename, filetype="application/pdf")}
    while True:
        async with http.post(endpoint, headers=headers) as r:
            if await _busy(r):
                retries += 1
                continue
            if r.status != 201 or "Location" not in r.headers:
                raise RuntimeError(f"tus POST {endpoint} -> {r.status}: {(await r.text())[:300]}")
            url = urljoin(endpoint, r.headers["Location"])
            break
    sent = 0
    while sent < part.length:
        n = min(chunk_size, part.length - sent)
        data = os.pread(fd, n, part.offset + sent)
        if len(data) != n:
            raise OSError(f"short read at {part.offset + sent}")
        headers = {**TUS, "Upload-Offset": str(sent), "Content-Type": "application/offset+octet-stream"}
        async with http.patch(url, data=data, headers=headers) as r:
            if await _busy(r):
                retries += 1
                continue
            if r.status != 204:
                raise RuntimeError(f"tus PATCH {url} at {sent} -> {r.status}: {(await r.text())[:300]}")
            acked = int(r.headers.get("Upload-Offset", "-1"))
        if acked != sent + n:
            raise RuntimeError(f"tus PATCH {url}: server acknowledged offset {acked}, expected {sent + n}")
        sent = acked
    return Sent(part, url, retries)


async def upload(http: aiohttp.ClientSession, base: str, path: str, size: int, chunk_size: int,
                 parallel: int) -> list[Sent]:
    """The file at ``path`` as ``parallel`` concurrent uploads of its consecutive parts."""
    fd = os.open(path, os.O_RDONLY)
    try:
        name = os.path.basename(path)
        return list(await asyncio.gather(*(
            upload_part(http, base + "/files", fd, p, chunk_size, f"{name}.part{i}" if parallel > 1 else name)
            for i, p in enumerate(parts(size, parallel, chunk_size)))))
    finally:
        os.close(fd)
