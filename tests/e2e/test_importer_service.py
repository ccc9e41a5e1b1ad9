"""The importer as its own service, with real processes: the upload server never loads
LlamaIndex or PDFium and stays small; the importer's progress still reaches the
WebSocket; several importers share one queue; imports survive SIGKILLs of either side."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.e2e.client import ApiClient
from tests.e2e.conftest import MIB, ServerProcess
from tests.textpdf import make_text_pdf, page_word

SERVER_TREE_LIMIT_MIB = 100
CHUNK = 2 * MIB
TERMINAL = {"indexed", "no_text", "failed"}


def tree_memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process and all its children, MiB. RSS sums count the pages the
    processes share (the interpreter, libraries) once per process; PSS splits them."""
    root = psutil.Process(pid)
    rss = pss = 0
    for proc in (root, *root.children(recursive=True)):
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += info.pss
    return rss / MIB, pss / MIB


def tree_breakdown(pid: int) -> list[tuple[str, float]]:
    """Each process of the tree: (its command line's end, RSS MiB)."""
    root = psutil.Process(pid)
    out = []
    for proc in (root, *root.children(recursive=True)):
        try:
            out.append((" ".join(proc.cmdline())[-60:], round(proc.memory_info().rss / MIB, 1)))
        except psutil.Error:
            continue
    return out


async def upload(api: ApiClient, data: bytes, name: str, client_id: str | None = None) -> dict[str, Any]:
    fields = {"client_id": client_id} if client_id else {}
    session = await api.initiate(name, len(data), **fields)
    sid = session["session_id"]
    total = math.ceil(len(data) / CHUNK)
    for n in range(total):
        reply = await api.send_chunk(sid, n, data[n * CHUNK:(n + 1) * CHUNK], CHUNK, total)
        assert reply.status == 200, reply
    reply = await api.complete(sid)
    assert reply.status == 200, reply
    document: dict[str, Any] = {**reply.body["document"], "upload_session": sid}
    return document


async def wait_imported(api: ApiClient, doc_ids: list[int], timeout: float = 60.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        status = {}
        for doc_id in doc_ids:
            reply = await api.get(f"/api/documents/{doc_id}")
            assert reply.status == 200, reply
            status[doc_id] = reply.body["index_status"]
        if all(s in TERMINAL for s in status.values()) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def search(api: ApiClient, q: str) -> list[dict[str, Any]]:
    reply = await api.get(f"/api/documents/search?q={q}")
    assert reply.status == 200, reply
    return list(reply.body["hits"])


async def test_the_server_never_loads_llama_index_and_its_tree_stays_small(tmp_path: Path) -> None:
    report = tmp_path / "lean.txt"
    server = ServerProcess(tmp_path / "srv", {"LEAN_REPORT": str(report), "STREAMING_PROGRESS_INTERVAL_SECONDS": "0",
                                              "STREAMING_CHILD_IDLE_SECONDS": "1"},
                           module="tests.e2e.lean_backend")
    server.start()
    try:
        assert server.pid is not None
        await asyncio.sleep(1.0)
        at_start = tree_memory_mib(server.pid)
        data = make_text_pdf(tmp_path / "t.pdf", 3, seed=41)
        async with ApiClient(server.base_url) as api:
            async with api.events("lean_tab") as ws:
                doc = await upload(api, data, "lean.pdf", client_id="lean_tab")
                assert await ws.wait_for(lambda e: e.get("type") == "upload_status"
                                         and e.get("status") == "completed" and e.get("document_id") == doc["id"], 60)
                statuses = [e["status"] for e in ws.of_type("upload_status")]
                assert statuses.index("importing") < statuses.index("completed"), statuses
                done = next(e for e in ws.of_type("upload_status") if e["status"] == "completed")
                assert done["index_status"] == "indexed" and done["session_id"] == doc["upload_session"]
            hits = await search(api, page_word(41, 1, 2))
            assert hits and (hits[0]["document_id"], hits[0]["page"]) == (doc["id"], 2)
            docs = await api.get("/api/documents")
            assert docs.status == 200
        # At rest again: the helper children (the digest's, the inspection's sandbox)
        # leave once idle (STREAMING_CHILD_IDLE_SECONDS, 1 s here), so the tree is the server.
        deadline = time.monotonic() + 20
        while psutil.Process(server.pid).children(recursive=True) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        at_rest = tree_memory_mib(server.pid)
        print(f"server tree (RSS, PSS) MiB: {at_start} after start, {at_rest} at rest after an upload and import: "
              f"{tree_breakdown(server.pid)}")
        assert at_start[0] <= SERVER_TREE_LIMIT_MIB, (at_start, tree_breakdown(server.pid))
        assert at_rest[0] <= SERVER_TREE_LIMIT_MIB, (at_rest, tree_breakdown(server.pid))
    finally:
        server.stop()
    lines = report.read_text().splitlines() if report.exists() else []
    assert lines and lines[-1] == "exit", f"the server did not exit cleanly: {lines}\n{server.log_tail()}"
    assert lines == ["exit"], f"the upload server loaded what only the importer may: {lines}"
    server.assert_no_tracebacks()


def start_importer(server: ServerProcess, name: str, **env: str) -> subprocess.Popen[bytes]:
    log = open(server.root / f"{name}.log", "ab")  # noqa: SIM115  (the child keeps its copy)
    try:
        return subprocess.Popen([sys.executable, "-m", "backend.importer"], cwd=server.root,
                                env={**server._env(), **env}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


async def test_two_importers_share_the_queue_and_a_killed_ones_job_is_taken_up(
        make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = make_server(start=False, STREAMING_IMPORT_LEASE_SECONDS="2")
    server.with_importer = False
    server.start()
    a = start_importer(server, "importer_a", STREAMING_IMPORT_LEASE_SECONDS="2")
    b = start_importer(server, "importer_b", STREAMING_IMPORT_LEASE_SECONDS="2")
    try:
        async with ApiClient(server.base_url) as api:
            docs = [await upload(api, make_text_pdf(tmp_path / f"{n}.pdf", 40, seed=50 + n), f"{n}.pdf")
                    for n in range(6)]
            await asyncio.sleep(0.5)
            a.kill()  # likely mid-import: its job waits for its lease, then b takes it
            a.wait(timeout=10)
            status = await wait_imported(api, [d["id"] for d in docs], timeout=120)
            assert set(status.values()) == {"indexed"}, status
            for n, d in enumerate(docs):
                hits = await search(api, page_word(50 + n, 39, 1))
                assert any(h["document_id"] == d["id"] and h["page"] == 40 for h in hits), (n, hits)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    logs = "".join((server.root / f"importer_{x}.log").read_text() for x in "ab")
    assert "Traceback" not in logs, logs[-4000:]


async def test_queued_imports_complete_after_both_sides_are_killed(
        make_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = make_server(STREAMING_IMPORT_LEASE_SECONDS="2")
    server.kill_importer()  # uploads queue up with no importer
    async with ApiClient(server.base_url) as api:
        docs = [await upload(api, make_text_pdf(tmp_path / f"{n}.pdf", 2, seed=60 + n), f"{n}.pdf")
                for n in range(3)]
        assert {d["index_status"] for d in docs} == {"pending"}
    server.kill()
    server.start()  # the importer too
    await asyncio.sleep(0.3)
    server.kill_importer()  # perhaps mid-import
    server.start_importer()
    async with ApiClient(server.base_url) as api:
        status = await wait_imported(api, [d["id"] for d in docs], timeout=60)
        assert set(status.values()) == {"indexed"}, status
        listed = await api.get("/api/documents")
        assert {d["index_status"] for d in listed.body} == {"indexed"}, listed
        assert (await search(api, page_word(61, 1, 0)))[0]["document_id"] == docs[1]["id"]
