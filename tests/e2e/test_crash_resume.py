"""End-to-end: a real server process on loopback, killed with SIGKILL mid-upload.

The issue: a 64 MB PDF uploaded with aiohttp (multipart, as API.md), 4 chunks in
flight, the server killed with SIGKILL half-way, restarted, ``/resume``, the rest sent,
``/complete``, and the downloaded file's SHA-256 equal to the source; WebSocket events
received and well-formed throughout. Also: a partial file tampered with while the server
is down (the bytes decide what ``/resume`` reports), ``/resume`` of an unknown session
after a restart, and ``/resume`` after a crash inside ``/complete``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import (
    ISO_UTC, PREFIX, SHA256, ApiClient, EventStream, UploadRun, assert_envelope, check_event,
    check_progress_order, check_session, upload_chunks,
)
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

IN_FLIGHT = 4
CHUNK_SIZE = 4 * MIB  # a wish: 64 MiB in 16 chunks; the server decides and the test follows
EVENT_WAIT = 3.0  # seconds for an event to arrive


def chunk_bytes(chunk_size: int, file_size: int, chunk_ids: list[int]) -> int:
    return sum(min(chunk_size, file_size - i * chunk_size) for i in chunk_ids)


def check_resume(body: Any, session: dict[str, Any], file_size: int,
                 client_id: str | None) -> tuple[set[int], set[int]]:
    """The /resume answer: the session view plus a partition of the chunks; returns (uploaded, missing)."""
    assert isinstance(body, dict), body
    check_session(body, file_size)
    for key in ("session_id", "chunk_size", "total_chunks", "upload_url", "websocket_room"):
        assert body[key] == session[key], (key, body)
    if client_id is not None:
        assert body["client_id"] == client_id, body
    uploaded, missing = body["uploaded_chunks"], body["missing_chunks"]
    total, cs = session["total_chunks"], session["chunk_size"]
    assert isinstance(uploaded, list) and isinstance(missing, list), body
    assert uploaded == sorted(set(uploaded)) and missing == sorted(set(missing)), body
    assert not set(uploaded) & set(missing), f"a chunk both uploaded and missing: {body}"
    assert set(uploaded) | set(missing) == set(range(total)), f"not a partition of range({total}): {body}"
    assert body["next_chunk_id"] == (missing[0] if missing else None), body
    expected_pct = 100.0 * chunk_bytes(cs, file_size, uploaded) / file_size
    assert math.isclose(body["progress_percentage"], expected_pct, abs_tol=0.01), body
    return set(uploaded), set(missing)


def check_chunk_replies(run: UploadRun, total: int) -> None:
    for chunk_id, reply in run.replies.items():
        if reply.status != 200:
            continue
        body = reply.body
        assert body["success"] is True and body["chunk_id"] == chunk_id, reply
        assert isinstance(body["upload_complete"], bool) and isinstance(body["message"], str), reply
        nxt = body["next_chunk_id"]
        assert nxt is None or (isinstance(nxt, int) and 0 <= nxt < total), reply


async def finish_and_verify(api: ApiClient, session: dict[str, Any], source: Path, source_sha: str,
                            missing: set[int]) -> dict[str, Any]:
    """Send the missing chunks (4 in flight), /complete, and download byte-exact."""
    sid, total, size = session["session_id"], session["total_chunks"], source.stat().st_size
    run = await upload_chunks(api, session, source, sorted(missing), in_flight=IN_FLIGHT)
    assert not run.broken and not run.refused, (run.broken, run.refused)
    assert run.acked == missing
    check_chunk_replies(run, total)
    assert any(r.body["upload_complete"] for r in run.replies.values()), run.replies
    last = [r.body for r in run.replies.values() if r.body["upload_complete"]]
    assert all(b["next_chunk_id"] is None for b in last), last

    reply = await api.complete(sid)
    assert reply.status == 200, reply
    doc = reply.body["document"]
    assert reply.body["duplicate"] is False, reply
    assert isinstance(doc["id"], int) and not isinstance(doc["id"], bool), doc
    assert doc["sha256"] == source_sha, f"stored sha256 {doc['sha256']} != source {source_sha}"
    assert SHA256.match(doc["sha256"])
    assert doc["file_size"] == size and doc["filename"] == session["filename"], doc
    assert doc["is_file_available"] is True and isinstance(doc["title"], str), doc
    assert isinstance(doc["created_at"], str) and ISO_UTC.match(doc["created_at"]), doc

    again = await api.complete(sid)  # idempotent: the same document
    assert again.status == 200 and again.body == reply.body, again

    sha, nbytes, headers = await api.download_sha256(doc["id"])
    assert nbytes == size, f"downloaded {nbytes} bytes, source has {size}"
    assert sha == source_sha, f"downloaded sha256 {sha} != source {source_sha}"
    assert headers.get("Content-Type", "").startswith("application/pdf"), headers
    return dict(doc)


async def check_ranges(api: ApiClient, doc_id: int, source: Path, chunk_size: int) -> None:
    size = source.stat().st_size
    with open(source, "rb") as f:
        def span(start: int, end: int) -> bytes:
            f.seek(start)
            return f.read(end - start + 1)

        cases = [
            ("bytes=0-1023", 0, 1023),
            (f"bytes={chunk_size - 100}-{chunk_size + 99}", chunk_size - 100, chunk_size + 99),  # across a chunk seam
            ("bytes=-512", size - 512, size - 1),
            (f"bytes={size - 10}-", size - 10, size - 1),
        ]
        for spec, start, end in cases:
            status, body, headers = await api.get_range(doc_id, spec)
            assert status == 206, (spec, status, body[:200])
            assert headers.get("Content-Range") == f"bytes {start}-{end}/{size}", (spec, headers)
            assert body == span(start, end), f"{spec}: wrong bytes"


def check_stream(stream: EventStream, session: dict[str, Any]) -> None:
    """Every event of one connection well-formed (API.md shapes); progress never going back."""
    assert not stream.problems, stream.problems
    for event in stream.events:
        check_event(event, session_id=session["session_id"], file_size=session["file_size"],
                    total_chunks=session["total_chunks"], chunk_size=session["chunk_size"])
    check_progress_order(stream.events)


async def test_sigkill_halfway_then_resume_completes_byte_exact(server: ServerProcess,
                                                                big_pdf: tuple[Path, str]) -> None:
    source, source_sha = big_pdf
    size = source.stat().st_size
    client_id = f"e2e_{uuid.uuid4().hex[:12]}"

    # -- first lifetime: initiate, listen, upload 4 in flight, SIGKILL half-way -----------------
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("e2e-64mib.pdf", size, client_id=client_id, chunk_size=CHUNK_SIZE)
        assert session["client_id"] == client_id, session
        sid, cs, total = session["session_id"], session["chunk_size"], session["total_chunks"]
        assert total >= 8, f"{total} chunks: too few to kill half-way with {IN_FLIGHT} in flight"
        first_pid = server.pid
        stop = asyncio.Event()
        at_kill: dict[str, Any] = {}

        def kill_half_way(run: UploadRun, chunk_id: int) -> None:
            if stop.is_set() or len(run.acked) < total // 2:
                return
            at_kill.update(acked=set(run.acked), in_flight=run.started - run.acked - set(run.broken))
            at_kill["exit"] = server.kill()
            stop.set()

        async with api.events(client_id) as ws1:
            run1 = await upload_chunks(api, session, source, range(total), in_flight=IN_FLIGHT,
                                       on_ack=kill_half_way, stop=stop)

    assert stop.is_set(), "the server was never killed"
    assert at_kill["exit"] == -9, f"server exit code {at_kill['exit']}, expected SIGKILL"
    assert not run1.refused, f"chunks refused before the kill: {run1.refused}"
    assert run1.max_in_flight == IN_FLIGHT, run1.max_in_flight
    assert at_kill["in_flight"], "no chunk was in flight at the kill"
    never_sent = set(range(total)) - run1.started
    assert never_sent, "every chunk was sent before the kill: not half-way"
    assert run1.started == run1.acked | set(run1.broken), run1
    check_chunk_replies(run1, total)
    # WebSocket, first lifetime: events arrived and are well-formed
    check_stream(ws1, session)
    assert ws1.of_type("upload_progress") and ws1.of_type("chunk_progress"), ws1.events
    assert not ws1.of_type("upload_status"), ws1.events

    # -- second lifetime: same directories, same client --------------------------------
    await server.arestart()
    assert server.pid != first_pid
    async with ApiClient(server.base_url) as api, api.events(client_id) as ws2:
        reply = await api.resume(sid, client_id)
        assert reply.status == 200, reply
        uploaded, missing = check_resume(reply.body, session, size, client_id)
        lost = run1.acked - uploaded
        assert not lost, (f"chunks acknowledged with 200 before the kill are gone after the restart: "
                          f"{sorted(lost)}; acked {sorted(run1.acked)}, in flight at kill "
                          f"{sorted(at_kill['in_flight'])}, /resume: {reply.body}")
        assert uploaded <= run1.started, f"chunks never sent reported uploaded: {sorted(uploaded - run1.started)}"
        assert never_sent <= missing
        print(f"SIGKILL after {len(at_kill['acked'])}/{total} acks; in flight then: {sorted(at_kill['in_flight'])}; "
              f"acked in all: {sorted(run1.acked)}; never sent: {sorted(never_sent)}; "
              f"after restart uploaded {sorted(uploaded)}, missing {sorted(missing)}")

        doc = await finish_and_verify(api, {**session, "filename": "e2e-64mib.pdf"}, source, source_sha, missing)
        await check_ranges(api, doc["id"], source, cs)
        one = await api.get(f"/api/documents/{doc['id']}")
        assert one.status == 200 and one.body["sha256"] == source_sha, one
        resumable = await api.get(f"{PREFIX}/resumable")
        assert resumable.status == 200 and sid not in {s["session_id"] for s in resumable.body}, resumable

        completed = await ws2.wait_for(
            lambda e: e.get("type") == "upload_status" and e.get("status") == "completed", EVENT_WAIT)
        assert completed, f"no upload_status completed within {EVENT_WAIT}s; events: {ws2.events}"

    # WebSocket, second lifetime: progress for the rest, the final state, all well-formed
    check_stream(ws2, session)
    progress = ws2.of_type("upload_progress")
    assert progress and ws2.of_type("chunk_progress"), ws2.events
    final = progress[-1]["data"]
    assert final["uploaded_chunks"] == total and final["progress_percentage"] == 100.0, final
    statuses = [e["status"] for e in ws2.of_type("upload_status")]
    assert statuses[-1] == "completed" and not {"failed", "cancelled"} & set(statuses), statuses
    server.assert_no_tracebacks()


@pytest.mark.parametrize("where", ["in_prefix", "after_gap"])
async def test_tampered_partial_file_is_reported_missing(server: ServerProcess, big_pdf: tuple[Path, str],
                                                         where: str) -> None:
    source, source_sha = big_pdf
    size = source.stat().st_size
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("tampered.pdf", size, chunk_size=CHUNK_SIZE)
        sid, cs, total = session["session_id"], session["chunk_size"], session["total_chunks"]
        # in_prefix: chunks 0..n/2-1 (verified in the contiguous prefix pass);
        # after_gap: every other chunk (verified one by one, after a hole)
        first = list(range(total // 2)) if where == "in_prefix" else list(range(0, total, 2))
        victim = first[len(first) // 2 + 1]
        run = await upload_chunks(api, session, source, first, in_flight=IN_FLIGHT)
        assert run.acked == set(first) and not run.broken and not run.refused, run
    assert server.kill() == -9

    part = server.partial_file(sid)
    assert part.stat().st_size == size, f"partial file {part} is {part.stat().st_size} bytes"
    offset = victim * cs + cs // 3
    with open(part, "r+b") as f:
        f.seek(offset)
        original = f.read(16)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in original))

    await server.arestart()
    async with ApiClient(server.base_url) as api:
        reply = await api.resume(sid)
        assert reply.status == 200, reply
        uploaded, missing = check_resume(reply.body, session, size, None)
        assert victim in missing, f"chunk {victim} was tampered with on disk but /resume reports it uploaded"
        assert uploaded == set(first) - {victim}, reply.body
        await finish_and_verify(api, {**session, "filename": "tampered.pdf"}, source, source_sha, missing)
    server.assert_no_tracebacks()


async def test_resume_unknown_session_after_restart_is_404(server: ServerProcess) -> None:
    async with ApiClient(server.base_url) as api:
        known = await api.initiate("known.pdf", 12 * MIB, client_id="e2e_known")
    assert server.kill() == -9
    await server.arestart()
    async with ApiClient(server.base_url) as api:
        for sid in (str(uuid.uuid4()), "not-a-session-id"):
            reply = await api.resume(sid, client_id="e2e_known")
            body = assert_envelope(reply, "not_found", 404)
            assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
            assert "Traceback" not in body["message"], body
        # the server did bring back its sessions: the known one resumes, nothing uploaded
        reply = await api.resume(known["session_id"])
        assert reply.status == 200, reply
        uploaded, missing = check_resume(reply.body, known, 12 * MIB, None)
        assert not uploaded and missing == set(range(known["total_chunks"]))
    server.assert_no_tracebacks()


async def test_resume_after_crash_inside_complete_needs_no_upload_again(
    server: ServerProcess, tmp_path: Path,
) -> None:
    """A SIGKILL inside /complete, after the file was moved into the document store and
    before the session was marked completed: ``/resume`` must not ask for every chunk again.

    The window (``blobs.adopt`` .. the COMPLETED save in ``CompletionService._finish``) is
    too short to hit with a timed SIGKILL, so the test leaves the server's directories as
    such a kill does: state saved as ``processing`` with the file's ``sha256``, the partial
    file renamed to ``data/documents/ab/cd/<sha256>.pdf``, no document recorded yet.
    """
    source = tmp_path / "twelve.pdf"
    source_sha = make_pdf(source, 12 * MIB, text="Crash in complete", seed=12)
    size = source.stat().st_size
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("crash-in-complete.pdf", size, chunk_size=CHUNK_SIZE)
        sid, total = session["session_id"], session["total_chunks"]
        run = await upload_chunks(api, session, source, range(total), in_flight=IN_FLIGHT)
        assert run.acked == set(range(total)), run
    assert server.kill() == -9

    # what /complete had done when it was killed: PROCESSING + sha256 saved, file adopted
    state_file = server.state_dir / f"{sid}.json"
    state = json.loads(state_file.read_text())
    assert state["status"] == "uploading" and len(state["chunks"]) == total, state
    state.update(status="processing", sha256=source_sha)
    state_file.write_text(json.dumps(state))
    blob = server.data_dir / "documents" / source_sha[:2] / source_sha[2:4] / f"{source_sha}.pdf"
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.replace(server.partial_file(sid), blob)

    await server.arestart()
    async with ApiClient(server.base_url) as api:
        reply = await api.resume(sid)
        assert reply.status == 200, reply
        uploaded, missing = check_resume(reply.body, session, size, None)
        assert not missing, (f"the server holds the whole file (stored before the crash), yet /resume asks "
                             f"for chunks {sorted(missing)} again: {reply.body}")
        done = await api.complete(sid)
        assert done.status == 200 and done.body["document"]["sha256"] == source_sha, done
        sha, nbytes, _ = await api.download_sha256(done.body["document"]["id"])
        assert (sha, nbytes) == (source_sha, size)
