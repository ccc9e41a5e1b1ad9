"""The streaming scan in the real server, where it runs in the prefix worker process:
the chunk that reveals a refused keyword is itself answered 422, and so is what follows."""

from __future__ import annotations

from tests.e2e.client import ApiClient, assert_envelope
from tests.e2e.conftest import ServerProcess
from tests.security_corpus import SPLIT_AT, _obfuscated, _split_keyword


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
    """Shorter than the scanner's look-ahead: judged when the file ends, at /complete."""
    data = _obfuscated()
    async with ApiClient(server.base_url) as api:
        session = await api.initiate("obf.pdf", len(data))
        reply = await api.send_chunk(session["session_id"], 0, data, session["chunk_size"], 1)
        assert reply.status in (200, 422), reply
        body = assert_envelope(await api.complete(session["session_id"]), "security_rejected", 422)
        assert any(f["kind"] == "javascript" for f in body["findings"]), body
    server.assert_no_tracebacks()
