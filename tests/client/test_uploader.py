"""``AsyncUploader`` against a small fake of the API on loopback (aiohttp.web).

The fake speaks API.md closely enough for the client (2 MiB chunks, multipart with the
fields before ``file``, per-chunk checksums, ``/resume``, ``/complete`` with
``upload_incomplete``) and can inject failures: a queue of canned answers for the next
chunk requests, a dropped connection, chunks "lost" once at ``/complete``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer

from pdf_upload_client import (
    AsyncUploader, ResumeImpossible, RetryPolicy, ServerError, StateStore, UploadCancelled, Unavailable,
)
from tests.pdfgen import make_pdf, sha256_file

MIB = 1 << 20
CHUNK = 2 * MIB
P = "/api/documents/streaming"
FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)


def err(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response({"success": False, "error": code, "message": f"{code} (fake)", **extra},
                             status=status, headers=headers)


@dataclass
class Fake:
    size: int = 0
    sha: str | None = None
    received: dict[int, bytes] = field(default_factory=dict)
    log: list[tuple[int, float, int]] = field(default_factory=list)  # (chunk_id, time, status)
    part_order: list[list[str]] = field(default_factory=list)
    inject: list[web.Response | str] = field(default_factory=list)  # next chunk answers; "drop" = reset
    refuse_initiate: list[web.Response] = field(default_factory=list)  # next /initiate answers
    initiated: list[float] = field(default_factory=list)  # when /initiate was called
    lose_at_complete: set[int] = field(default_factory=set)
    gone: bool = False
    cancelled: list[str] = field(default_factory=list)
    completes: int = 0

    @property
    def total(self) -> int:
        return math.ceil(self.size / CHUNK)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * MIB)
        app.router.add_post(f"{P}/initiate", self.initiate)
        app.router.add_post(f"{P}/chunk/{{sid}}", self.chunk)
        app.router.add_post(f"{P}/complete/{{sid}}", self.complete)
        app.router.add_post(f"{P}/resume", self.resume)
        app.router.add_post(f"{P}/cancel/{{sid}}", self.cancel)
        return app

    def session(self) -> dict[str, Any]:
        return {"session_id": "s1", "upload_url": f"{P}/chunk/s1", "chunk_size": CHUNK, "total_chunks": self.total,
                "expires_at": "2030-01-01T00:00:00Z", "websocket_room": "upload_s1", "client_id": "c"}

    async def initiate(self, request: web.Request) -> web.Response:
        self.initiated.append(time.monotonic())
        if self.refuse_initiate:
            return self.refuse_initiate.pop(0)
        body = await request.json()
        self.size, self.sha = body["file_size"], body.get("expected_hash")
        return web.json_response(self.session(), status=201)

    async def chunk(self, request: web.Request) -> web.StreamResponse:
        fields: dict[str, str] = {}
        order: list[str] = []
        data = b""
        async for part in await request.multipart():
            assert isinstance(part, BodyPartReader) and part.name is not None
            order.append(part.name)
            if part.name == "file":
                data = await part.read()
            else:
                fields[part.name] = await part.text()
        self.part_order.append(order)
        cid = int(fields["chunk_id"])
        answer = self.inject.pop(0) if self.inject else None
        if answer == "drop":
            self.log.append((cid, time.monotonic(), 0))
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if isinstance(answer, web.Response):
            self.log.append((cid, time.monotonic(), answer.status))
            return answer
        assert int(fields["chunk_offset"]) == cid * CHUNK
        if hashlib.sha256(data).hexdigest() != fields["checksum"]:
            return err(422, "checksum_mismatch")
        self.received[cid] = data
        self.log.append((cid, time.monotonic(), 200))
        return web.json_response({"success": True, "chunk_id": cid, "next_chunk_id": None,
                                  "upload_complete": len(self.received) == self.total, "message": "ok"})

    def missing(self) -> list[int]:
        return [i for i in range(self.total) if i not in self.received]

    async def complete(self, request: web.Request) -> web.Response:
        self.completes += 1
        for cid in self.lose_at_complete:
            self.received.pop(cid, None)
        self.lose_at_complete = set()
        if self.missing():
            return err(409, "upload_incomplete", missing_chunks=self.missing())
        whole = b"".join(self.received[i] for i in range(self.total))
        assert hashlib.sha256(whole).hexdigest() == self.sha
        return web.json_response({"document": {"id": 7, "file_size": len(whole)}, "duplicate": False})

    async def resume(self, request: web.Request) -> web.Response:
        if self.gone:
            return err(410, "session_expired")
        return web.json_response({**self.session(), "uploaded_chunks": sorted(self.received),
                                  "missing_chunks": self.missing(), "next_chunk_id": None,
                                  "progress_percentage": 0.0})

    async def cancel(self, request: web.Request) -> web.Response:
        self.cancelled.append(request.match_info["sid"])
        return web.json_response({"success": True, "session_id": request.match_info["sid"], "status": "cancelled"})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    state = Fake()
    server = TestServer(state.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdfs") / "five.pdf"
    make_pdf(path, 5 * MIB + 12345, seed=5)  # chunks of 2, 2 and 1 MiB
    return path


def set_if(chunks_done: int, event: asyncio.Event) -> None:
    if chunks_done:
        event.set()


def uploader(url: str, tmp_path: Path, **kw: Any) -> AsyncUploader:
    kw.setdefault("retry", FAST)
    return AsyncUploader(url, store=StateStore(tmp_path / "state"), **kw)


async def test_upload_parallel_checksummed_with_progress(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    seen: list[tuple[int, int, int, int]] = []
    async with uploader(url, tmp_path, parallel=3) as up:
        res = await up.upload(pdf, progress=lambda *a: seen.append(a))
    assert res.document["id"] == 7 and not res.duplicate and not res.resumed
    assert (res.chunks_sent, res.total_chunks) == (3, 3)
    assert all(order[:4] == ["chunk_id", "chunk_offset", "is_final", "checksum"] and order[4] == "file"
               for order in srv.part_order)
    assert seen[0] == (0, pdf.stat().st_size, 0, 3) and seen[-1] == (pdf.stat().st_size, pdf.stat().st_size, 3, 3)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)
    assert list((tmp_path / "state").glob("*.json")) == []  # done: no local state left


async def test_retry_on_503_honours_retry_after(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.inject = [err(503, "server_busy", {"Retry-After": "1"}), err(503, "server_busy", {"Retry-After": "1"})]
    retries: list[float] = []
    start = time.monotonic()
    async with uploader(url, tmp_path, parallel=2, on_retry=lambda w, a, d, e: retries.append(d)) as up:
        res = await up.upload(pdf)
    assert res.chunks_sent == 3 and len(srv.received) == 3
    assert len(retries) == 2 and all(d >= 1.0 for d in retries)
    assert time.monotonic() - start >= 1.0
    for cid, t503, status in [e for e in srv.log if e[2] == 503]:
        t_next = min(t for c, t, s in srv.log if c == cid and t > t503)
        assert t_next - t503 >= 0.95, "retried before Retry-After"


async def test_retry_on_429_with_body_retry_after(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.inject = [err(429, "rate_limited", retry_after=0.5)]
    async with uploader(url, tmp_path, parallel=1) as up:
        res = await up.upload(pdf)
    assert res.chunks_sent == 3
    (cid, t429, _), (cid2, t_next, status) = srv.log[0], srv.log[1]
    assert cid == cid2 and status == 200 and t_next - t429 >= 0.45


async def test_busy_server_at_initiate_is_waited_out_as_long_as_it_says(
        fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.refuse_initiate = [err(429, "too_many_uploads", {"Retry-After": "0.3"}),
                           err(503, "server_busy", {"Retry-After": "0.2"}),
                           err(429, "too_many_uploads", retry_after=0.3)]
    waits: list[tuple[str, float]] = []
    async with uploader(url, tmp_path, parallel=1, retry=RetryPolicy(max_attempts=2, base_delay=5, max_delay=5),
                        on_retry=lambda w, a, d, e: waits.append((getattr(e, "code", ""), d))) as up:
        res = await up.upload(pdf)
    assert res.chunks_sent == 3, "three refusals and max_attempts=2: waits for room are not attempts"
    assert waits == [("too_many_uploads", 0.3), ("server_busy", 0.2), ("too_many_uploads", 0.3)]
    gaps = [b - a for a, b in zip(srv.initiated, srv.initiated[1:], strict=False)]
    assert len(gaps) == 3 and all(0.15 <= g <= 1.0 for g in gaps), f"as soon as the server said, not later: {gaps}"


async def test_connection_dropped_is_retried(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.inject = ["drop"]
    async with uploader(url, tmp_path, parallel=1) as up:
        res = await up.upload(pdf)
    assert res.chunks_sent == 3 and srv.log[0][2] == 0


async def test_checksum_mismatch_is_not_retried(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.inject = [err(422, "checksum_mismatch")]
    async with uploader(url, tmp_path, parallel=1) as up:
        with pytest.raises(ServerError) as info:
            await up.upload(pdf)
    assert (info.value.code, info.value.status) == ("checksum_mismatch", 422)
    assert len(srv.log) == 1  # no retry
    assert srv.cancelled == ["s1"] and list((tmp_path / "state").glob("*.json")) == []


async def test_gives_up_after_max_attempts(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    srv.inject = [err(503, "server_busy", {"Retry-After": "0"}) for _ in range(3)]
    async with uploader(url, tmp_path, parallel=1, retry=RetryPolicy(3, 0.01, 0.02)) as up:
        with pytest.raises(ServerError) as info:
            await up.upload(pdf)
    assert info.value.code == "server_busy" and info.value.retryable
    assert len(list((tmp_path / "state").glob("*.json"))) == 1  # kept: resumable later
    async with AsyncUploader("http://127.0.0.1:9", retry=RetryPolicy(2, 0.01, 0.02),
                             store=StateStore(tmp_path / "other")) as up:
        with pytest.raises(Unavailable):
            await up.upload(pdf)


async def test_upload_incomplete_sends_missing_and_completes(fake: tuple[Fake, str], pdf: Path,
                                                             tmp_path: Path) -> None:
    srv, url = fake
    srv.lose_at_complete = {1}
    async with uploader(url, tmp_path) as up:
        res = await up.upload(pdf)
    assert res.chunks_sent == 4 and srv.completes == 2


async def test_interrupted_upload_resumes_only_missing(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    first = asyncio.Event()
    async with uploader(url, tmp_path, parallel=1) as up:
        task = asyncio.ensure_future(up.upload(pdf, progress=lambda b, t, c, n: set_if(c, first)))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    have = len(srv.received)
    assert 1 <= have < 3
    notes: list[str] = []
    async with uploader(url, tmp_path) as up:
        res = await up.upload(pdf, notify=notes.append)
    assert res.resumed and res.chunks_sent == 3 - have and any("resuming" in n for n in notes)


async def test_resume_refuses_changed_file_and_gone_session(fake: tuple[Fake, str], pdf: Path,
                                                            tmp_path: Path) -> None:
    srv, url = fake
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(pdf.read_bytes())
    srv.inject = [err(503, "server_busy", {"Retry-After": "0"})] * 2
    store = StateStore(tmp_path / "state")
    async with AsyncUploader(url, store=store, retry=RetryPolicy(1, 0.01, 0.01)) as up:
        with pytest.raises(ServerError):
            await up.upload(copy)
        (state,) = store.all()
        srv.gone = True
        with pytest.raises(ResumeImpossible) as gone:
            await up.resume(state)
        assert gone.value.code == "session_expired"
        with open(copy, "r+b") as f:  # same size, other bytes, same mtime
            st = os.stat(copy)
            f.seek(100)
            f.write(b"X")
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(ResumeImpossible) as changed:
            await up.resume(state)
        assert changed.value.code == "file_changed"


async def test_cancel_event_cancels_on_server(fake: tuple[Fake, str], pdf: Path, tmp_path: Path) -> None:
    srv, url = fake
    stop = asyncio.Event()
    async with uploader(url, tmp_path, parallel=1) as up:
        with pytest.raises(UploadCancelled):
            await up.upload(pdf, cancel_event=stop, progress=lambda b, t, c, n: set_if(c, stop))
    assert srv.cancelled == ["s1"] and list((tmp_path / "state").glob("*.json")) == []
    assert sha256_file(pdf)  # the source is untouched
