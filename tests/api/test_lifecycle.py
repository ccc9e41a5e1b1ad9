"""/complete, /resume, /cancel, /resumable, /memory-stats, expiry, backpressure, restart."""

from __future__ import annotations

import asyncio

import pytest
import hashlib
import json
import time

from backend.app import create_app
from backend.errors import ServerBusy
from backend.settings import Settings
from tests.conftest import MIB, Api, envelope

CS = 2 * MIB


async def test_complete_refuses_missing_chunks(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.chunk(sid, 1, small_pdf[CS:2 * CS])
    body = envelope(await api.complete(sid), "upload_incomplete", 409)
    assert body["missing_chunks"] == [0, 2]


async def test_complete_twice_returns_the_same_document(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.upload_all(sid, small_pdf, CS)
    first, second = (await api.complete(sid)).json(), (await api.complete(sid)).json()
    # the import runs on in the background: its status may move between the two calls
    for body in (first, second):
        body["document"].pop("index_status", None)
        body["document"].pop("index_error", None)
    assert first == second
    assert len((await api.http.get("/api/documents")).json()) == 1


async def test_expected_hash_enforced(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf), expected_hash="a" * 64))["session_id"]
    await api.upload_all(sid, small_pdf, CS)
    body = envelope(await api.complete(sid), "integrity_failed", 422)
    assert body["sha256"] == hashlib.sha256(small_pdf).hexdigest()
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()
    envelope(await api.chunk(sid, 0, small_pdf[:CS]), "session_not_active", 409)


async def test_duplicates_kept_once(api: Api, small_pdf: bytes) -> None:
    sha = hashlib.sha256(small_pdf).hexdigest()
    first_sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.upload_all(first_sid, small_pdf, CS)
    first = (await api.complete(first_sid)).json()
    # without expected_hash the duplicate is found at /complete
    sid = (await api.initiate(len(small_pdf), filename="again.pdf"))["session_id"]
    await api.upload_all(sid, small_pdf, CS)
    again = (await api.complete(sid)).json()
    assert again["duplicate"] is True and again["document"]["id"] == first["document"]["id"]
    blobs = list((api.svc.settings.data_dir / "documents").rglob("*.pdf"))
    assert len(blobs) == 1
    # with expected_hash it is refused at /initiate, before any byte
    r = await api.http.post("/api/documents/streaming/initiate",
                            json={"filename": "x.pdf", "file_size": len(small_pdf), "expected_hash": sha})
    body = envelope(r, "duplicate_document", 409)
    assert body["document"]["id"] == first["document"]["id"]
    # check_duplicates false: a second document, still one copy of the bytes
    sid = (await api.initiate(len(small_pdf), expected_hash=sha, check_duplicates=False))["session_id"]
    await api.upload_all(sid, small_pdf, CS)
    third = (await api.complete(sid)).json()
    assert third["duplicate"] is False and third["document"]["id"] != first["document"]["id"]
    assert len(list((api.svc.settings.data_dir / "documents").rglob("*.pdf"))) == 1


async def test_unparsable_pdf_is_refused(api: Api) -> None:
    data = b"%PDF-1.7\n" + b"garbage " * 1000
    sid = (await api.initiate(len(data)))["session_id"]
    assert (await api.chunk(sid, 0, data)).status_code == 200
    envelope(await api.complete(sid), "invalid_pdf", 422)
    assert (await api.http.get("/api/documents")).json() == []


async def test_resume_reports_chunks_and_adds_client(api: Api, small_pdf: bytes) -> None:
    s = await api.initiate(len(small_pdf), client_id="first")
    sid = s["session_id"]
    await api.chunk(sid, 0, small_pdf[:CS])
    await api.chunk(sid, 2, small_pdf[2 * CS:])
    r = await api.http.post("/api/documents/streaming/resume",
                            json={"session_id": sid, "client_id": "second", "last_chunk_id": 0})
    body = r.json()
    assert r.status_code == 200
    assert body["uploaded_chunks"] == [0, 2] and body["missing_chunks"] == [1]
    assert body["next_chunk_id"] == 1 and body["client_id"] == "second"
    assert body["chunk_size"] == CS and body["total_chunks"] == 3
    assert body["progress_percentage"] == round(100 * (len(small_pdf) - CS) / len(small_pdf), 2)
    assert api.svc.sessions.live[sid].session.client_ids == ["first", "second"]


async def test_resume_detects_damaged_bytes(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.upload_all(sid, small_pdf, CS, order=[0, 1])
    part = api.svc.settings.partial_dir / f"{sid}.part"
    with open(part, "r+b") as f:
        f.seek(CS + 100)
        f.write(b"XXXX")
    body = (await api.http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
    assert body["uploaded_chunks"] == [0] and body["missing_chunks"] == [1, 2]
    await api.upload_all(sid, small_pdf, CS, order=[1, 2])
    assert (await api.complete(sid)).json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_cancel_removes_everything(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.chunk(sid, 0, small_pdf[:CS])
    r = await api.http.post(f"/api/documents/streaming/cancel/{sid}", json={"reason": "changed my mind"})
    assert r.json() == {"success": True, "session_id": sid, "status": "cancelled"}
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()
    assert not (api.svc.settings.state_dir / f"{sid}.json").exists()
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS]), "not_found", 404)
    envelope(await api.http.post(f"/api/documents/streaming/cancel/{sid}"), "not_found", 404)


async def test_resumable_lists_unfinished_only(api: Api, small_pdf: bytes) -> None:
    done = (await api.initiate(len(small_pdf)))["session_id"]
    await api.upload_all(done, small_pdf, CS)
    await api.complete(done)
    open_sid = (await api.initiate(len(small_pdf), filename="half.pdf"))["session_id"]
    await api.chunk(open_sid, 0, small_pdf[:CS])
    items = (await api.http.get("/api/documents/streaming/resumable")).json()
    assert [i["session_id"] for i in items] == [open_sid]
    item = items[0]
    assert item["filename"] == "half.pdf" and item["uploaded_chunks"] == 1 and item["total_chunks"] == 3
    assert item["total_size"] == len(small_pdf) and 0 <= item["age_hours"] < 0.1
    assert item["progress_percentage"] == round(100 * CS / len(small_pdf), 2)


async def test_expired_sessions_answer_410_and_are_swept(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.chunk(sid, 0, small_pdf[:CS])
    api.svc.sessions.live[sid].session.expires_at = time.time() - 1
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS]), "session_expired", 410)
    envelope(await api.http.post("/api/documents/streaming/resume", json={"session_id": sid}),
             "session_expired", 410)
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []
    assert await api.svc.sessions.sweep() == 1
    assert not (api.svc.settings.partial_dir / f"{sid}.part").exists()
    assert not (api.svc.settings.state_dir / f"{sid}.json").exists()
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS]), "not_found", 404)


async def test_memory_stats(api: Api) -> None:
    stats = (await api.http.get("/api/documents/streaming/memory-stats")).json()
    for key in ("active_sessions", "memory_usage_mb", "peak_memory_mb", "temp_files_count", "temp_files_size_mb",
                "concurrent_uploads", "memory_limit_mb", "disk_space_available_mb"):
        assert isinstance(stats[key], (int, float)), key
    assert stats["memory_usage_mb"] > 10 and stats["memory_limit_mb"] == 500.0


async def test_backpressure_refuses_with_retry_after(api: Api, small_pdf: bytes) -> None:
    budget = api.svc.assembly.budget
    budget.wait_seconds = 0.2
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    async with budget.reserve(budget.limit):
        r = await api.chunk(sid, 0, small_pdf[:CS])
    body = envelope(r, "server_busy", 503)
    assert r.headers["Retry-After"] == "1" and body["retry_after"] == 1
    assert budget.refusals == 1
    assert (await api.chunk(sid, 0, small_pdf[:CS])).status_code == 200
    stats = (await api.http.get("/api/documents/streaming/memory-stats")).json()
    assert stats["backpressure_refusals"] == 1


async def test_budget_waits_briefly_then_proceeds() -> None:
    from backend.services.backpressure import MemoryBudget

    budget = MemoryBudget(10, wait_seconds=1.0)
    order: list[str] = []

    async def hold() -> None:
        async with budget.reserve(8):
            order.append("a")
            await asyncio.sleep(0.1)

    async def late() -> None:
        await asyncio.sleep(0.01)
        async with budget.reserve(8):
            order.append("b")

    await asyncio.gather(hold(), late())
    assert order == ["a", "b"] and budget.waits == 1 and budget.peak == 8
    try:
        async with budget.reserve(8):
            budget.wait_seconds = 0.05
            async with budget.reserve(8):
                raise AssertionError("over budget")
    except ServerBusy as exc:
        assert exc.retry_after == 1


async def test_restart_brings_sessions_back(settings: Settings, small_pdf: bytes) -> None:
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            sid = (await api.initiate(len(small_pdf)))["session_id"]
            await api.upload_all(sid, small_pdf, CS, order=[0, 2])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            assert api.svc.sessions.live[sid].prefix is None  # untrusted until rebuilt from the bytes
            body = (await http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
            assert body["uploaded_chunks"] == [0, 2] and body["missing_chunks"] == [1]
            await api.upload_all(sid, small_pdf, CS, order=[1])
            doc = (await api.complete(sid)).json()["document"]
            assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_complete_after_restart_without_resume(settings: Settings, small_pdf: bytes) -> None:
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            sid = (await Api(http, app.state.services).initiate(len(small_pdf)))["session_id"]
            await Api(http, app.state.services).upload_all(sid, small_pdf, CS)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await http.post(f"/api/documents/streaming/complete/{sid}")
            assert r.json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_corrupt_state_file_is_set_aside(settings: Settings, small_pdf: bytes) -> None:
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            sid = (await Api(http, app.state.services).initiate(len(small_pdf)))["session_id"]
    state = settings.state_dir / f"{sid}.json"
    state.write_text(state.read_text()[:20])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert sid not in app.state.services.sessions.live
        assert state.with_suffix(".corrupt").exists()
        # its partial file had no session left: swept at start-up
        assert not (settings.partial_dir / f"{sid}.part").exists()
    json.loads(state.with_suffix(".corrupt").read_text()[:0] or "{}")


async def test_backpressure_sends_memory_warning(api: Api, small_pdf: bytes) -> None:
    from backend.services.progress import Envelope

    seen: list[Envelope] = []
    api.svc.reporter.bus.subscribe(seen.append)
    budget = api.svc.assembly.budget
    budget.wait_seconds = 0.05
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    async with budget.reserve(budget.limit):
        envelope(await api.chunk(sid, 0, small_pdf[:CS]), "server_busy", 503)
    warnings = [e.event for e in seen if e.event["type"] == "memory_warning"]
    assert warnings and set(warnings[0]["data"]) == {"memory_usage_mb", "memory_limit_mb", "warning"}


async def test_disk_full_is_507_and_the_session_stays_resumable(
    api: Api, small_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    real = os.pwritev

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.chunk(sid, 0, small_pdf[:CS])
    monkeypatch.setattr(os, "pwritev", full)
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS]), "insufficient_storage", 507)
    monkeypatch.setattr(os, "pwritev", real)
    body = (await api.http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
    assert body["uploaded_chunks"] == [0] and body["missing_chunks"] == [1, 2]
    await api.upload_all(sid, small_pdf, CS, order=[1, 2])
    assert (await api.complete(sid)).json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_crash_after_the_file_was_stored_is_finished_at_start_up(settings: Settings, small_pdf: bytes) -> None:
    """Killed between moving the file into the store and recording it: the next start
    records it, so /resume does not ask for the whole file again."""
    import httpx

    from backend.storage.local_blobs import LocalBlobStore
    from backend.storage.local_chunks import LocalChunkStore

    sha = hashlib.sha256(small_pdf).hexdigest()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            api = Api(http, app.state.services)
            sid = (await api.initiate(len(small_pdf)))["session_id"]
            await api.upload_all(sid, small_pdf, CS)
    state_file = settings.state_dir / f"{sid}.json"
    state = json.loads(state_file.read_text())
    state.update(status="processing", sha256=sha)
    state_file.write_text(json.dumps(state))
    await LocalBlobStore(settings.data_dir / "documents").adopt(LocalChunkStore(settings.partial_dir), sid, sha)

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            body = (await http.post("/api/documents/streaming/resume", json={"session_id": sid})).json()
            assert body["missing_chunks"] == [] and body["status"] == "completed"
            doc = (await http.post(f"/api/documents/streaming/complete/{sid}")).json()["document"]
            assert doc["sha256"] == sha
            assert (await http.get(f"/api/documents/{doc['id']}/file")).content == small_pdf


async def test_the_budget_calls_rest_once_no_chunk_byte_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The heap is given back when uploads stop, not between two chunks of one."""
    from backend.services import backpressure
    from backend.services.backpressure import MemoryBudget

    monkeypatch.setattr(backpressure, "REST_SECONDS", 0.05)
    rests: list[int] = []
    budget = MemoryBudget(10, wait_seconds=1.0, on_rest=lambda: rests.append(budget.in_use))
    for _ in range(3):  # chunks back to back: no rest between them
        async with budget.reserve(4):
            pass
    async with budget.reserve(4):
        await asyncio.sleep(0.1)  # held: the earlier rest timer finds bytes held and does nothing
    assert rests == []
    await asyncio.sleep(0.1)
    assert rests == [0]


def test_the_heap_settings_take_on_glibc() -> None:
    from backend.services import heap

    if heap._LIBC is None:
        pytest.skip("not glibc")
    assert heap.tune() is True
    heap.trim()
