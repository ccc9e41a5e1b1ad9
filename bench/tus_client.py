"""One small tus 1.0 client (core protocol, creation, checksum, concatenation), used for
every server driven over tus alike: our ``/files/`` and both peers.

POST creates the upload (``Upload-Length``, ``Upload-Metadata``), then PATCH sends
the bytes in ``chunk_size`` pieces, one after the other, each at the offset the server
acknowledged last. Chunks are read with ``os.pread`` as ``bytes``, like our own chunk
client does, so every client pays the same per byte. ``Upload-Checksum`` is sent on a
PATCH only when the caller passes the digests, which it does for a server whose
OPTIONS offers the checksum extension with SHA-256 (:func:`capabilities`).

"N in parallel" is N uploads of consecutive parts of the file, each sequential, all at
once: the same bytes and the same number of requests in flight as our chunk API's N
chunks in flight. With ``concatenate`` (a server offering tus concatenation) they are
partial uploads, joined by a final ``Upload-Concat: final;...`` creation, timed too;
without it they stay N separate uploads (what @tus/file-store allows).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict

TUS = {"Tus-Resumable": "1.0.0"}
MAX_RETRIES = 100  # 429/503 answers one request may get before the client gives up


@dataclass(frozen=True)
class Capabilities:
    """What a server's OPTIONS answer offers."""

    extensions: frozenset[str]
    checksum_algorithms: frozenset[str]

    @property
    def concatenation(self) -> bool:
        return "concatenation" in self.extensions

    @property
    def sha256_checksum(self) -> bool:
        return "checksum" in self.extensions and "sha256" in self.checksum_algorithms


@dataclass(frozen=True)
class Part:
    offset: int
    length: int


@dataclass(frozen=True)
class Sent:
    part: Part
    url: str  # the upload's URL, as the server's Location named it
    retries: int
    patch_s: tuple[float, ...]  # each PATCH's round trip, in order
    last: CIMultiDict[str]  # the headers of the answer that finished the part


@dataclass(frozen=True)
class Uploaded:
    parts: list[Sent]
    urls: list[str]  # the uploads that hold the file now: the parts, or the one final upload
    finished_by: CIMultiDict[str]  # headers of the answer that finished the file (one PATCH or the final POST)
    final_s: float  # the final creation's round trip (concatenation), else 0
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


def patch_checksums(path: str, file_parts: list[Part], chunk_size: int) -> list[list[str]]:
    """Per part, each PATCH's ``sha256 <base64 digest>``; computed before timing (the
    client's own hashing is not what is measured)."""
    def header(body: bytes) -> str:
        return f"sha256 {base64.b64encode(hashlib.sha256(body).digest()).decode()}"

    with open(path, "rb", buffering=0) as f:
        return [[header(os.pread(f.fileno(), min(chunk_size, p.length - at), p.offset + at))
                 for at in range(0, p.length, chunk_size)] for p in file_parts]


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


async def capabilities(http: aiohttp.ClientSession, endpoint: str) -> Capabilities:
    """OPTIONS ``endpoint``: the ``Tus-Extension`` and ``Tus-Checksum-Algorithm`` lists."""
    async with http.options(endpoint, headers=TUS) as r:
        if r.status not in (200, 204):
            raise RuntimeError(f"tus OPTIONS {endpoint} -> {r.status}")

        def names(header: str) -> frozenset[str]:
            return frozenset(x.strip().lower() for x in r.headers.get(header, "").split(",") if x.strip())

        return Capabilities(names("Tus-Extension"), names("Tus-Checksum-Algorithm"))


async def _busy(r: aiohttp.ClientResponse, retries: int) -> bool:
    """429/503: wait Retry-After, as a real client would; True means "send again"."""
    if r.status not in (429, 503):
        return False
    if retries >= MAX_RETRIES:
        raise RuntimeError(f"tus {r.method} {r.url}: still {r.status} after {retries} retries")
    await r.read()
    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    return True


async def create(http: aiohttp.ClientSession, endpoint: str,
                 headers: dict[str, str]) -> tuple[str, CIMultiDict[str], int]:
    """POST ``endpoint``: (the new upload's URL, the answer's headers, retries)."""
    retries = 0
    while True:
        async with http.post(endpoint, headers={**TUS, "Content-Length": "0", **headers}) as r:
            if await _busy(r, retries):
                retries += 1
                continue
            if r.status != 201 or "Location" not in r.headers:
                raise RuntimeError(f"tus POST {endpoint} -> {r.status}: {(await r.text())[:300]}")
            return urljoin(endpoint, r.headers["Location"]), CIMultiDict(r.headers), retries


async def upload_part(http: aiohttp.ClientSession, endpoint: str, fd: int, part: Part, chunk_size: int,
                      meta: str, checksums: list[str] | None = None, concat: str | None = None) -> Sent:
    head = {"Upload-Length": str(part.length), "Upload-Metadata": meta}
    if concat:
        head["Upload-Concat"] = concat
    url, last, retries = await create(http, endpoint, head)
    sent, times = 0, []
    while sent < part.length:
        n = min(chunk_size, part.length - sent)
        data = os.pread(fd, n, part.offset + sent)
        if len(data) != n:
            raise OSError(f"short read at {part.offset + sent}")
        headers = {**TUS, "Upload-Offset": str(sent), "Content-Type": "application/offset+octet-stream"}
        if checksums is not None:
            headers["Upload-Checksum"] = checksums[sent // chunk_size]
        start = time.perf_counter()
        async with http.patch(url, data=data, headers=headers) as r:
            if await _busy(r, retries):
                retries += 1
                continue
            if r.status != 204:
                raise RuntimeError(f"tus PATCH {url} at {sent} -> {r.status}: {(await r.text())[:300]}")
            last = CIMultiDict(r.headers)
        times.append(time.perf_counter() - start)
        acked = int(last.get("Upload-Offset", "-1"))
        if acked != sent + n:
            raise RuntimeError(f"tus PATCH {url}: server acknowledged offset {acked}, expected {sent + n}")
        sent = acked
    return Sent(part, url, retries, tuple(times), last)


async def upload(http: aiohttp.ClientSession, endpoint: str, path: str, size: int, chunk_size: int, parallel: int,
                 *, checksums: list[list[str]] | None = None, concatenate: bool = False,
                 extra_metadata: dict[str, str] | None = None) -> Uploaded:
    """The file at ``path`` as ``parallel`` concurrent uploads of its consecutive parts;
    with ``concatenate`` (and ``parallel`` > 1) as partial uploads joined by a final one.
    ``checksums``: :func:`patch_checksums` of the same parts, or None to send none.
    ``extra_metadata`` goes on the upload that is the whole file (the single or final one)."""
    fd = os.open(path, os.O_RDONLY)
    name = os.path.basename(path)
    whole = metadata(filename=name, filetype="application/pdf", **(extra_metadata or {}))
    pieces = parts(size, parallel, chunk_size)
    joined = concatenate and len(pieces) > 1
    try:
        sent = list(await asyncio.gather(*(
            upload_part(http, endpoint, fd, p, chunk_size,
                        whole if len(pieces) == 1 else metadata(filename=f"{name}.part{i}", filetype="application/pdf"),
                        checksums[i] if checksums else None, "partial" if joined else None)
            for i, p in enumerate(pieces))))
    finally:
        os.close(fd)
    retries = sum(s.retries for s in sent)
    if not joined:
        return Uploaded(sent, [s.url for s in sent], sent[-1].last, 0.0, retries)
    start = time.perf_counter()
    url, headers, n = await create(http, endpoint, {
        "Upload-Concat": "final;" + " ".join(urlsplit(s.url).path for s in sent), "Upload-Metadata": whole})
    return Uploaded(sent, [url], headers, time.perf_counter() - start, retries + n)
