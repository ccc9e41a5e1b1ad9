"""The servers under comparison behind one shape: start and warm up, one timed upload,
then (untimed) check what the server stored byte for byte and clean it up.

Ours goes through its chunk API (bench_upload's client: chunk and whole-file SHA-256
sent, the streaming scan, qpdf on /complete, the background import); the peers go
through the same tus 1.0 client. Every stored byte is checked for every server: ours
by downloading the document, the peers by hashing the file their store wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import aiohttp

import tus_client
from bench_upload import API, MIB, Server, Source, chunk_checksums, imported, upload
from peers import Peer, PeerServer
from proctree import ProcTree


def sha256_range(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        while length > 0:
            block = f.read(min(MIB, length))
            if not block:
                break
            h.update(block)
            length -= len(block)
    return h.hexdigest()


class Target:
    name: str
    url: str
    tree: ProcTree

    async def start(self, http: aiohttp.ClientSession, warm: Source) -> None:
        raise NotImplementedError

    async def timed(self, http: aiohttp.ClientSession, src: Source, chunk_size: int,
                    parallel: int) -> tuple[dict[str, Any], Any]:
        """One upload, timed from its first request to the answer that finishes it;
        returns (figures, what ``check`` needs). Call ``prepare`` first (untimed)."""
        raise NotImplementedError

    def prepare(self, src: Source, chunk_size: int, parallel: int) -> None:
        """Client-side work done before timing (checksums, part hashes)."""

    async def check(self, http: aiohttp.ClientSession, src: Source, handle: Any) -> None:
        """Raise unless the server stored exactly ``src``'s bytes; then drop them."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Ours(Target):
    def __init__(self, root: Path, max_file_mib: int, env: dict[str, str] | None = None, name: str = "ours") -> None:
        self.name = name
        self.server = Server(root, max_file_mib, env)
        self.url, self.tree = self.server.url, ProcTree(self.server.popen.pid)
        self._checksums: dict[tuple[str, int], list[str]] = {}

    async def start(self, http: aiohttp.ClientSession, warm: Source) -> None:
        """Warm-up: one upload and its import, so that one-time loading (modules,
        thread pools, the index, the import worker) is not counted as growth."""
        await self.server.wait_ready(http)
        self.prepare(warm, 2 * MIB, 1)
        res, handle = await self.timed(http, warm, 2 * MIB, 1)
        await self.check(http, warm, handle)
        await asyncio.sleep(0.3)

    def prepare(self, src: Source, chunk_size: int, parallel: int) -> None:
        key = (src.sha256, chunk_size)
        if key not in self._checksums:
            self._checksums[key] = chunk_checksums(src, chunk_size)

    async def timed(self, http: aiohttp.ClientSession, src: Source, chunk_size: int,
                    parallel: int) -> tuple[dict[str, Any], Any]:
        res = await upload(http, self.url, src, chunk_size, self._checksums[(src.sha256, chunk_size)], parallel,
                           lambda: sum(self.tree.cpu_by_pid().values()))
        return res, res["document_id"]

    async def check(self, http: aiohttp.ClientSession, src: Source, handle: Any) -> None:
        """Download the stored document and hash it; wait for its import to end (so it
        does not run into the next timed upload of any server), then delete it so every
        run stores its bytes anew."""
        h, n = hashlib.sha256(), 0
        async with http.get(f"{self.url}/api/documents/{handle}/file") as r:
            if r.status != 200:
                raise RuntimeError(f"ours: GET document {handle} -> {r.status}")
            async for block in r.content.iter_chunked(MIB):
                h.update(block)
                n += len(block)
        if h.hexdigest() != src.sha256 or n != src.size:
            raise RuntimeError(f"ours: document {handle} differs from {src.path.name}")
        await imported(http, self.url, handle, timeout=300)
        async with http.delete(f"{self.url}/api/documents/{handle}") as r:
            if r.status not in (200, 204):
                raise RuntimeError(f"ours: DELETE document {handle} -> {r.status}: {await r.text()}")

    async def memory_stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.url + API + "/memory-stats") as r:
            stats: dict[str, Any] = await r.json()
            return stats

    def stop(self) -> None:
        self.server.stop()


class PeerTarget(Target):
    def __init__(self, peer: Peer, scratch: Path, root: Path, max_size: int) -> None:
        self.name = peer.name
        self.server = PeerServer(peer, scratch, root, max_size)
        self.url, self.tree = self.server.url, self.server.tree
        self._hashes: dict[tuple[str, int, int], list[str]] = {}
        self._key: tuple[str, int, int] | None = None

    async def start(self, http: aiohttp.ClientSession, warm: Source) -> None:
        await self.server.wait_ready(http)
        self.prepare(warm, 2 * MIB, 1)
        _, handle = await self.timed(http, warm, 2 * MIB, 1)
        await self.check(http, warm, handle)

    def prepare(self, src: Source, chunk_size: int, parallel: int) -> None:
        key = (src.sha256, chunk_size, parallel)
        if key not in self._hashes:
            self._hashes[key] = [src.sha256] if parallel == 1 else [
                sha256_range(src.path, p.offset, p.length) for p in tus_client.parts(src.size, parallel, chunk_size)]

    async def timed(self, http: aiohttp.ClientSession, src: Source, chunk_size: int,
                    parallel: int) -> tuple[dict[str, Any], Any]:
        start = time.perf_counter()
        sent = await tus_client.upload(http, self.url, str(src.path), src.size, chunk_size, parallel)
        elapsed = time.perf_counter() - start
        return ({"seconds": elapsed, "mib_s": src.size / MIB / elapsed, "retries": sum(s.retries for s in sent)},
                (self._hashes[(src.sha256, chunk_size, parallel)], sent))

    async def check(self, http: aiohttp.ClientSession, src: Source, handle: Any) -> None:
        hashes, sent = handle
        for want, s in zip(hashes, sent, strict=True):
            path = self.server.stored(s.url)
            got = await asyncio.to_thread(sha256_range, path, 0, s.part.length + 1)
            if got != want or path.stat().st_size != s.part.length:
                raise RuntimeError(f"{self.name}: {path.name} differs from bytes {s.part.offset}+{s.part.length} "
                                   f"of {src.path.name}")
            self.server.remove(s.url)

    def stop(self) -> None:
        self.server.stop()
