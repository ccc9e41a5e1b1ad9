"""End-to-end: the IETF resumable-upload draft (``/uploads/``) on a real server process,
killed with SIGKILL in the middle of an append.

A 12 MB PDF goes up in several appends; while the third trickles in, the server is
killed. After the restart, HEAD's offset is at least what was acknowledged and at most
what was sent (the bytes decide), the rest goes up from there, and the stored file is
byte-exact.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

INTEROP = {"Upload-Draft-Interop-Version": "8"}
PARTIAL = "application/partial-upload"
PART = 3 * MIB
PIECE = 64 << 10


def _append_headers(offset: int, complete: bool) -> dict[str, str]:
    return {**INTEROP, "Content-Type": PARTIAL, "Upload-Offset": str(offset),
            "Upload-Complete": "?1" if complete else "?0"}


async def test_draft_upload_survives_sigkill_and_resumes_from_head(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "draft.pdf"
    sha = make_pdf(path, 12 * MIB + 12_345, pages=2, text="IETF draft", seed=14)
    data = path.read_bytes()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        r = await http.post("/uploads/", headers={
            **INTEROP, "Upload-Complete": "?0", "Upload-Length": str(len(data)),
            "Content-Disposition": 'attachment; filename="draft.pdf"'})
        assert r.status_code == 201, r.text
        url = r.headers["location"]
        for start in (0, PART):  # two whole appends, acknowledged
            r = await http.patch(url, content=data[start:start + PART], headers=_append_headers(start, False))
            assert r.status_code == 204 and r.headers["upload-offset"] == str(start + PART), r.text
        acknowledged = 2 * PART

        sent = acknowledged
        killed = asyncio.Event()

        async def trickle() -> AsyncIterator[bytes]:
            nonlocal sent
            for i in range(acknowledged, len(data), PIECE):
                if killed.is_set():
                    return
                yield data[i:i + PIECE]
                sent = i + len(data[i:i + PIECE])
                await asyncio.sleep(0.005)

        async def kill_midway() -> None:
            while sent < acknowledged + 2 * MIB:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(server.kill)
            killed.set()

        killer = asyncio.create_task(kill_midway())
        with pytest.raises(httpx.HTTPError):
            await http.patch(url, content=trickle(), headers=_append_headers(acknowledged, True))
        await killer
        assert sent < len(data), "the kill came after the whole body"

    await server.arestart(graceful=False)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        head = await http.head(url)
        assert head.status_code == 204, head.headers
        offset = int(head.headers["upload-offset"])
        assert acknowledged <= offset <= sent, (acknowledged, offset, sent)
        assert head.headers["upload-complete"] == "?0" and head.headers["upload-length"] == str(len(data))
        middle = offset + (len(data) - offset) // 2
        r = await http.patch(url, content=data[offset:middle], headers=_append_headers(offset, False))
        assert r.status_code == 204 and r.headers["upload-offset"] == str(middle), r.text
        r = await http.patch(url, content=data[middle:], headers=_append_headers(middle, True))
        assert r.status_code == 200 and r.headers["upload-complete"] == "?1", r.text
        document = r.json()["document"]
        assert document["sha256"] == sha == hashlib.sha256(data).hexdigest()
        stored = await http.get(f"/api/documents/{document['id']}/file")
        assert stored.status_code == 200 and stored.content == data
        head = await http.head(url)
        assert head.headers["upload-complete"] == "?1" and head.headers["upload-offset"] == str(len(data))
    server.assert_no_tracebacks()
