"""POST /chunk: placement, order, parallelism, idempotency and every refusal."""

from __future__ import annotations

import asyncio
import hashlib
import random

from tests.conftest import MIB, Api, envelope

CS = 2 * MIB


async def _resume(api: Api, sid: str) -> dict[str, object]:
    r = await api.http.post("/api/documents/streaming/resume", json={"session_id": sid})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_in_order_upload_completes_byte_exact(api: Api, small_pdf: bytes) -> None:
    s = await api.initiate(len(small_pdf), expected_hash=hashlib.sha256(small_pdf).hexdigest())
    sid = s["session_id"]
    r = await api.chunk(sid, 0, small_pdf[:CS], chunk_size=CS)
    assert r.json() == {"success": True, "chunk_id": 0, "next_chunk_id": 1, "upload_complete": False,
                        "message": "Chunk uploaded successfully"}
    await api.upload_all(sid, small_pdf, CS, order=[1, 2])
    done = (await api.complete(sid)).json()
    assert done["duplicate"] is False
    doc = done["document"]
    assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest() and doc["file_size"] == len(small_pdf)
    assert doc["title"] == "doc" and doc["filename"] == "doc.pdf" and doc["is_file_available"] is True
    body = (await api.http.get(f"/api/documents/{doc['id']}/file")).content
    assert body == small_pdf


async def test_out_of_order_and_parallel(api: Api, medium_pdf: bytes) -> None:
    # 20 MB at 2 MiB chunks: ten chunks, all sent at once in shuffled order.
    s = await api.initiate(len(medium_pdf), chunk_size=CS)
    sid, cs = s["session_id"], s["chunk_size"]
    assert cs == CS
    order = list(range(s["total_chunks"]))
    random.Random(7).shuffle(order)
    results = await asyncio.gather(*(api.chunk(sid, i, medium_pdf[i * cs:(i + 1) * cs]) for i in order))
    assert all(r.status_code == 200 for r in results)
    assert sum(r.json()["upload_complete"] for r in results) >= 1
    doc = (await api.complete(sid)).json()["document"]
    assert doc["sha256"] == hashlib.sha256(medium_pdf).hexdigest()


async def test_next_chunk_id_is_lowest_missing(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    r = await api.chunk(sid, 2, small_pdf[2 * CS:])
    assert r.json()["next_chunk_id"] == 0
    r = await api.chunk(sid, 0, small_pdf[:CS])
    assert r.json()["next_chunk_id"] == 1
    r = await api.chunk(sid, 1, small_pdf[CS:2 * CS])
    assert r.json()["next_chunk_id"] is None and r.json()["upload_complete"] is True


async def test_same_bytes_again_is_success_other_bytes_conflict(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    chunk = small_pdf[CS:2 * CS]
    assert (await api.chunk(sid, 1, chunk)).status_code == 200
    again = await api.chunk(sid, 1, chunk)
    assert again.status_code == 200 and again.json()["message"] == "Chunk already received"
    other = bytes(len(chunk))
    envelope(await api.chunk(sid, 1, other), "chunk_conflict", 409)
    envelope(await api.chunk(sid, 1, other, checksum=False), "chunk_conflict", 409)
    await api.upload_all(sid, small_pdf, CS, order=[0, 2])
    assert (await api.complete(sid)).json()["document"]["sha256"] == hashlib.sha256(small_pdf).hexdigest()


async def test_parallel_writes_of_one_chunk(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    chunk = small_pdf[:CS]
    results = await asyncio.gather(*(api.chunk(sid, 0, chunk) for _ in range(4)),
                                   api.chunk(sid, 0, bytes(CS), checksum=False))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 4
    assert set(codes) <= {200, 409, 415}


async def test_checksum_mismatch_keeps_nothing(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    r = await api.chunk(sid, 1, small_pdf[CS:2 * CS], checksum="0" * 64)
    body = envelope(r, "checksum_mismatch", 422)
    assert "chunk 1" in body["message"]
    state = await _resume(api, sid)
    assert state["uploaded_chunks"] == [] and state["missing_chunks"] == [0, 1, 2]
    assert (await api.chunk(sid, 1, small_pdf[CS:2 * CS])).status_code == 200


async def test_first_chunk_must_be_a_pdf(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    envelope(await api.chunk(sid, 0, b"GIF89a" + small_pdf[6:CS]), "not_a_pdf", 415)
    # the header may sit a little way in (pdfid and readers accept that)
    r = await api.chunk(sid, 0, b"\x00" * 10 + small_pdf[10:CS], checksum=False)
    assert r.status_code in (200, 415)


async def test_placement_refusals(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    envelope(await api.chunk(sid, 3, small_pdf[:10]), "invalid_chunk", 422)
    envelope(await api.chunk(sid, -1, small_pdf[:10]), "invalid_chunk", 422)
    envelope(await api.chunk(sid, 10**12, small_pdf[:10]), "invalid_chunk", 422)
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS], offset=CS + 1), "invalid_chunk", 422)
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS - 1]), "invalid_chunk", 422)  # short
    envelope(await api.chunk(sid, 1, small_pdf[CS:2 * CS + 1]), "invalid_chunk", 422)  # long
    envelope(await api.chunk(sid, 2, small_pdf[2 * CS:] + b"x"), "invalid_chunk", 422)  # last, long
    r = await api.http.post(f"/api/documents/streaming/chunk/{sid}", data={"chunk_id": "zero"},
                            files={"file": ("b", b"x")})
    envelope(r, "invalid_chunk", 422)
    state = await _resume(api, sid)
    assert state["uploaded_chunks"] == []


async def test_malformed_forms(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    url = f"/api/documents/streaming/chunk/{sid}"
    envelope(await api.http.post(url, content=b"raw", headers={"content-type": "application/octet-stream"}),
             "invalid_request", 422)
    envelope(await api.http.post(url, data={"chunk_id": "0"}, files={"other": ("b", b"x")}), "invalid_request", 422)
    envelope(await api.http.post(url, files={"file": ("b", small_pdf[:CS])}), "invalid_chunk", 422)
    truncated = (b"--XyZ\r\nContent-Disposition: form-data; name=\"chunk_id\"\r\n\r\n0\r\n--XyZ\r\n"
                 b"Content-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n%PDF-1.7 trunc")
    r = await api.http.post(url, content=truncated, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    envelope(r, "invalid_chunk", 422)


async def test_checksum_after_the_file_part(api: Api, small_pdf: bytes) -> None:
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    data = small_pdf[:CS]
    boundary = b"b0und"
    body = (b"--b0und\r\nContent-Disposition: form-data; name=\"chunk_id\"\r\n\r\n0\r\n"
            b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data +
            b"\r\n--b0und\r\nContent-Disposition: form-data; name=\"checksum\"\r\n\r\n" + b"f" * 64 +
            b"\r\n--b0und--\r\n")
    r = await api.http.post(f"/api/documents/streaming/chunk/{sid}", content=body,
                            headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()})
    envelope(r, "checksum_mismatch", 422)


async def test_unknown_and_malformed_session_ids(api: Api) -> None:
    for sid in ("00000000-0000-4000-8000-000000000000", "..%2F..%2Fetc", "not-a-uuid"):
        r = await api.chunk(sid, 0, b"%PDF-1.7")
        envelope(r, "not_found", 404)


async def test_state_persisted_after_each_chunk(api: Api, small_pdf: bytes) -> None:
    import json

    sid = (await api.initiate(len(small_pdf)))["session_id"]
    await api.chunk(sid, 1, small_pdf[CS:2 * CS])
    saved = json.loads((api.svc.settings.state_dir / f"{sid}.json").read_text())
    assert saved["chunks"] == {"1": hashlib.sha256(small_pdf[CS:2 * CS]).hexdigest()}


async def test_header_split_across_tiny_pieces(api: Api, small_pdf: bytes) -> None:
    """A client whose first piece of the file part is a few bytes long is still read right."""
    from backend.services.assembly import head_of

    pieces = [memoryview(small_pdf[i:i + 3]) for i in range(0, 30, 3)]
    assert head_of(pieces, 8) == small_pdf[:8]
    assert head_of([memoryview(b"%P"), memoryview(b"DF-1.7")], 1024) == b"%PDF-1.7"


async def test_chunk_racing_a_cancel_is_told_not_crashed(api: Api, small_pdf: bytes) -> None:
    """The session ends (here: cancelled, its partial file removed) between a chunk's
    checks and the opening of the file: the chunk hears why, never a 500."""
    sid = (await api.initiate(len(small_pdf)))["session_id"]
    live = api.svc.sessions.live[sid]
    store = api.svc.assembly.chunks
    real_open = store.open

    async def cancelled_meanwhile(upload_id: str, offset: int, length: int, **kw):  # type: ignore[no-untyped-def]
        live.session.status = "cancelled"
        await store.delete(upload_id)
        return await real_open(upload_id, offset, length, **kw)

    store.open = cancelled_meanwhile  # type: ignore[method-assign]
    try:
        r = await api.chunk(sid, 1, small_pdf[CS:2 * CS])
    finally:
        store.open = real_open  # type: ignore[method-assign]
    envelope(r, "session_not_active", 409)
