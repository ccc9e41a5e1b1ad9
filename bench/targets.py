"""The servers under comparison behind one shape: start and warm up, one timed upload,
then (untimed) check what the server stored byte for byte and clean it up.

Ours goes through its chunk API (bench_upload's client: chunk and whole-file SHA-256
sent, the streaming scan, qpdf on /complete, the background import) and, as
``ours-tus``, through its tus ``/files/`` with the client the peers get (tus_client).
Every stored byte is checked for every server: ours by downloading the document, the
peers by hashing the file their store wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

import tus_client
from bench_upload import API, MIB, Server, Source, chunk_checksums, imported, upload
from peers import Peer, PeerServer
from proctree import ProcTree

OURS_TUS = "ours-tus"


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

    def sent_as(self, parallel: int) -> str:
        """How the bytes go with ``parallel`` requests in flight, and what is checked."""
        raise NotImplementedError

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

    def sent_as(self, parallel: int) -> str:
        how = "one upload" if parallel == 1 else f"{parallel} chunks of one upload in flight"
        return f"{how}; chunk SHA-256 + file SHA-256"

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


class OursTus(Ours):
    """Ours over tus at ``/files/``, with the peers' client: ``Upload-Checksum: sha256`` on
    every PATCH, the whole file's SHA-256 as ``expected_hash`` metadata (what the chunk
    client sends too), and N in parallel as N partial uploads joined by concatenation.
    The file is verified and stored before the answer that finishes it (the last PATCH,
    or the final creation), which names the document: checked as ``Ours`` checks it."""

    def __init__(self, root: Path, max_file_mib: int, env: dict[str, str] | None = None,
                 name: str = OURS_TUS) -> None:
        super().__init__(root, max_file_mib, env, name)
        self.endpoint = self.url + "/files/"
        self._patch_sums: dict[tuple[str, int, int], list[list[str]]] = {}

    async def start(self, http: aiohttp.ClientSession, warm: Source) -> None:
        await self.server.wait_ready(http)
        caps = await tus_client.capabilities(http, self.endpoint)
        if not (caps.concatenation and caps.sha256_checksum):
            raise RuntimeError(f"{self.name}: OPTIONS offers {sorted(caps.extensions)}, "
                               f"{sorted(caps.checksum_algorithms)}: no concatenation or no sha256 checksum")
        await super().start(http, warm)

    def sent_as(self, parallel: int) -> str:
        how = "one upload" if parallel == 1 else f"{parallel} partial uploads + final concatenation"
        return f"{how}; sha256 Upload-Checksum per PATCH + file SHA-256"

    def prepare(self, src: Source, chunk_size: int, parallel: int) -> None:
        key = (src.sha256, chunk_size, parallel)
        if key not in self._patch_sums:
            self._patch_sums[key] = tus_client.patch_checksums(
                str(src.path), tus_client.parts(src.size, parallel, chunk_size), chunk_size)

    async def timed(self, http: aiohttp.ClientSession, src: Source, chunk_size: int,
                    parallel: int) -> tuple[dict[str, Any], Any]:
        start = time.perf_counter()
        up = await tus_client.upload(http, self.endpoint, str(src.path), src.size, chunk_size, parallel,
                                     checksums=self._patch_sums[(src.sha256, chunk_size, parallel)],
                                     concatenate=True, extra_metadata={"expected_hash": src.sha256})
        elapsed = time.perf_counter() - start
        if "Upload-Document-Id" not in up.finished_by or up.finished_by.get("Upload-Duplicate") == "true":
            raise RuntimeError(f"{self.name}: the upload did not end in a new document: {up.finished_by}")
        return _tus_figures(src, elapsed, up), int(up.finished_by["Upload-Document-Id"])


def _tus_figures(src: Source, elapsed: float, up: tus_client.Uploaded) -> dict[str, Any]:
    """Speed, retries, and where the time went: every PATCH's median round trip, the
    slowest part's last PATCH (ours finishes the file in it when there is no
    concatenation), the final creation's round trip."""
    patches = [t for s in up.parts for t in s.patch_s]
    return {"seconds": elapsed, "mib_s": src.size / MIB / elapsed, "retries": up.retries,
            "patches": len(patches), "patch_s_median": statistics.median(patches) if patches else 0.0,
            "last_patch_s": max((s.patch_s[-1] for s in up.parts if s.patch_s), default=0.0),
            "final_s": up.final_s}


class PeerTarget(Target):
    """A peer over tus. ``Upload-Checksum`` and concatenation are used when its OPTIONS
    offers them (read at start); without concatenation, N in parallel is N uploads."""

    def __init__(self, peer: Peer, scratch: Path, root: Path, max_size: int, concatenate: bool = True) -> None:
        self.name = peer.name
        self.concatenate = concatenate  # False: N in flight as N uploads even where concatenation is offered
        self.server = PeerServer(peer, scratch, root, max_size)
        self.url, self.tree = self.server.url, self.server.tree
        self.caps = tus_client.Capabilities(frozenset(), frozenset())
        self._expect: dict[tuple[str, int, int], list[tuple[str, int]]] = {}
        self._patch_sums: dict[tuple[str, int, int], list[list[str]] | None] = {}

    async def start(self, http: aiohttp.ClientSession, warm: Source) -> None:
        await self.server.wait_ready(http)
        self.caps = await tus_client.capabilities(http, self.url + "/files/")
        if not self.concatenate:
            self.caps = tus_client.Capabilities(self.caps.extensions - {"concatenation"}, self.caps.checksum_algorithms)
        self.prepare(warm, 2 * MIB, 1)
        _, handle = await self.timed(http, warm, 2 * MIB, 1)
        await self.check(http, warm, handle)

    def sent_as(self, parallel: int) -> str:
        if parallel == 1:
            how = "one upload"
        elif self.caps.concatenation:
            how = f"{parallel} partial uploads + final concatenation"
        else:
            how = f"{parallel} concurrent uploads " + ("(concatenation not used)" if not self.concatenate
                                                       else "(no concatenation offered)")
        return how + ("; sha256 Upload-Checksum per PATCH" if self.caps.sha256_checksum
                      else "; no checksum (extension not offered)")

    def prepare(self, src: Source, chunk_size: int, parallel: int) -> None:
        key = (src.sha256, chunk_size, parallel)
        if key in self._expect:
            return
        pieces = tus_client.parts(src.size, parallel, chunk_size)
        self._expect[key] = [(src.sha256, src.size)] if len(pieces) == 1 or self.caps.concatenation else [
            (sha256_range(src.path, p.offset, p.length), p.length) for p in pieces]
        self._patch_sums[key] = (tus_client.patch_checksums(str(src.path), pieces, chunk_size)
                                 if self.caps.sha256_checksum else None)

    async def timed(self, http: aiohttp.ClientSession, src: Source, chunk_size: int,
                    parallel: int) -> tuple[dict[str, Any], Any]:
        key = (src.sha256, chunk_size, parallel)
        start = time.perf_counter()
        up = await tus_client.upload(http, self.url + "/files", str(src.path), src.size, chunk_size, parallel,
                                     checksums=self._patch_sums[key], concatenate=self.caps.concatenation)
        elapsed = time.perf_counter() - start
        return _tus_figures(src, elapsed, up), (self._expect[key], up.urls)

    async def check(self, http: aiohttp.ClientSession, src: Source, handle: Any) -> None:
        expect, urls = handle
        for (want, length), url in zip(expect, urls, strict=True):
            path = self.server.stored(url)
            got = await asyncio.to_thread(sha256_range, path, 0, length + 1)
            if got != want or path.stat().st_size != length:
                raise RuntimeError(f"{self.name}: {path.name} differs from the {length} bytes it should hold "
                                   f"of {src.path.name}")
            self.server.remove(url)

    def stop(self) -> None:
        self.server.stop()
