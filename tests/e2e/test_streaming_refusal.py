"""The streaming scan in the real server, where it runs in the prefix worker process:
the chunk that reveals a refused keyword is itself answered 422, and so is what follows."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.e2e.client import ApiClient, assert_envelope
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf
from tests.security_corpus import SPLIT_AT, _obfuscated, _split_keyword
from tests.services.test_prefix_worker import tail_javascript


async def test_the_chunk_that_completes_javascript_is_refused(server: ServerProcess) -> None:
    chunk = SPLIT_AT
    data = _split_keyword()  # "/JavaScript" straddles the first chunk's end
    data += b"\n" * (3 * chunk - len(data))  # a third chunk, never needed
    total = 3
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("split.pdf", len(data), chunk_size=chunk)
        sid = session["session_id"]
        first = await api.send_chunk(sid, 0, data[:chunk], chunk, total)
        assert first.status == 200, first
        second = await api.send_chunk(sid, 1, data[chunk:2 * chunk], chunk, total)
        body = assert_envelope(second, "security_rejected", 422)
        assert any(f["kind"] == "javascript" for f in body["findings"]), body
        later = await api.send_chunk(sid, 2, data[2 * chunk:], chunk, total)
        assert_envelope(later, "security_rejected", 422)
        assert_envelope(await api.complete(sid), "security_rejected", 422)
    assert not list(server.upload_dir.glob("*.part")), "the refused upload's bytes stay on disk"
    server.assert_no_tracebacks()


async def test_a_small_file_with_obfuscated_javascript_is_refused(server: ServerProcess) -> None:
    """Shorter than the scanner's look-ahead: judged when the file ends, on its one chunk."""
    data = _obfuscated()
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("obf.pdf", len(data))
        reply = await api.send_chunk(session["session_id"], 0, data, session["chunk_size"], 1)
        assert_envelope(reply, "security_rejected", 422)
        body = assert_envelope(await api.complete(session["session_id"]), "security_rejected", 422)
        assert any(f["kind"] == "javascript" for f in body["findings"]), body
    server.assert_no_tracebacks()


async def test_a_killed_prefix_worker_costs_a_rebuild_not_the_upload(server: ServerProcess, tmp_path: Path) -> None:
    """The worker holds every session's whole-file hash and scan: killed mid-upload, the
    chunks still land (each checked against its own checksum), a new worker starts, and
    /complete rebuilds the hash and the scan from the bytes on disk."""
    source = tmp_path / "doc.pdf"
    digest = make_pdf(source, 12 * MIB)
    data = source.read_bytes()
    chunk = 2 * MIB
    total = len(data) // chunk
    assert server.pid is not None
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("doc.pdf", len(data), chunk_size=chunk)
        sid = session["session_id"]
        for i in range(3):
            assert (await api.send_chunk(sid, i, data[i * chunk:(i + 1) * chunk], chunk, total)).status == 200
        workers = [p for p in psutil.Process(server.pid).children()
                   if "backend.services.prefix_worker" in " ".join(p.cmdline())]
        assert len(workers) == 1, workers
        workers[0].kill()
        workers[0].wait(5)
        for i in range(3, total):
            assert (await api.send_chunk(sid, i, data[i * chunk:(i + 1) * chunk], chunk, total)).status == 200
        done = await api.complete(sid)
        assert done.status == 200, done
        doc = done.body["document"]
        assert doc["sha256"] == digest and doc["security"]["verdict"] == "clean", doc
        sha, size, _ = await api.download_sha256(doc["id"])
        assert (sha, size) == (digest, len(data))
    assert "lost its state" in server.log_text()
    server.assert_no_tracebacks()


async def test_javascript_in_the_last_kib_is_refused_on_the_one_chunk(server: ServerProcess) -> None:
    """The prefix worker finishes the scan with the chunk that ends the file: what its
    16 KiB look-ahead held is that chunk's answer."""
    data = tail_javascript(300_000)
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("tail.pdf", len(data))
        sid = session["session_id"]
        body = assert_envelope(await api.send_chunk(sid, 0, data, session["chunk_size"], 1), "security_rejected", 422)
        assert any(f["kind"] == "javascript" for f in body["findings"]), body
        assert_envelope(await api.complete(sid), "security_rejected", 422)
    assert not list(server.upload_dir.glob("*.part"))
    server.assert_no_tracebacks()


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 0, 2]], ids=["final-first", "final-last"])
async def test_the_chunk_that_brings_the_prefix_to_the_end_is_refused(server: ServerProcess, order: list[int]) -> None:
    """Out of order, JavaScript in the final chunk's last KiB: the chunk whose arrival
    makes the contiguous prefix reach the end of the file gets the 422."""
    chunk = 2 * MIB
    data = tail_javascript(2 * chunk + chunk // 2)
    async with ApiClient(server.base_url) as api:
        sid = (await api.initiate("tail.pdf", len(data), chunk_size=chunk))["session_id"]
        for i in order[:-1]:
            reply = await api.send_chunk(sid, i, data[i * chunk:(i + 1) * chunk], chunk, 3)
            assert reply.status == 200, (i, reply)
        last = order[-1]
        reply = await api.send_chunk(sid, last, data[last * chunk:(last + 1) * chunk], chunk, 3)
        body = assert_envelope(reply, "security_rejected", 422)
        assert any(f["kind"] == "javascript" for f in body["findings"]), body
        assert_envelope(await api.complete(sid), "security_rejected", 422)
    assert not list(server.upload_dir.glob("*.part"))
    server.assert_no_tracebacks()
