"""Bad input against a real server: every refusal a clear 4xx, the session unharmed.

Each case opens its own session (a 5,000,000-byte PDF: chunks of 2 MiB, 2 MiB and
805,696 bytes) with chunk 0 already in, sends one bad request aimed at chunk 1 (over a
bare socket when no real client library would send it), and then checks that:

- the answer is the expected 4xx in the ``API.md`` envelope (a hang-up is fine only
  where the client itself hung up), never a 5xx and never a traceback in the server log;
- ``/resume`` reports exactly the chunks it did before;
- the good chunks then go in and ``/complete`` gives a byte-exact document.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.e2e.client import PREFIX, ApiClient
from tests.e2e.conftest import ServerProcess
from tests.faults import rawhttp
from tests.faults.rawhttp import RawReply
from tests.faults.victim import CS, IDLE_TIMEOUT, TARGET, TOTAL, Victim, chunk_of, expect, open_victim

pytestmark = pytest.mark.e2e

# -- the cases: (name, how to send it, what must come back) -------------------------------

Send = Callable[[Victim], Awaitable[RawReply | None]]
Check = Callable[[RawReply | None], None]


def form(v: Victim, chunk_id: Any = TARGET, data: bytes | None = None, **kw: Any) -> tuple[bytes, str]:
    data = chunk_of(v.source, TARGET) if data is None else data
    return rawhttp.chunk_form(chunk_id, data, CS, TOTAL, **kw)


def fields(chunk_id: Any = TARGET, offset: Any = None, checksum: str | None = None) -> list[tuple[str, str]]:
    out = [("chunk_id", str(chunk_id)), ("chunk_offset", str(TARGET * CS if offset is None else offset)),
           ("is_final", "false")]
    if checksum is not None:
        out.append(("checksum", checksum))
    return out


async def truncated_honest(v: Victim) -> RawReply | None:
    body, ctype = form(v)
    return await v.send(body[: len(body) // 2], ctype)


async def truncated_in_part_headers(v: Victim) -> RawReply | None:
    body, ctype = form(v)
    cut = body.index(b"Content-Type: application/octet-stream")
    return await v.send(body[:cut], ctype)


async def no_closing_boundary(v: Victim) -> RawReply | None:
    body, ctype = form(v)
    return await v.send(body[: body.rindex(b"--faults")], ctype)


async def truncated_then_eof(v: Victim) -> RawReply | None:
    body, ctype = form(v)
    return await v.send(b"", ctype, pieces=rawhttp.pieces(body[: len(body) // 2]), content_length=len(body),
                        end="eof", timeout=10)


async def disconnect_mid_chunk(v: Victim) -> RawReply | None:
    body, ctype = form(v)
    return await v.send(b"", ctype, pieces=rawhttp.pieces(body[: len(body) // 2]), content_length=len(body),
                        end="abort")


def with_form(build: Callable[[Victim], tuple[bytes, str]]) -> Send:
    async def send(v: Victim) -> RawReply | None:
        body, ctype = build(v)
        return await v.send(body, ctype)
    return send


def chunk_id_case(value: str) -> Send:
    return with_form(lambda v: rawhttp.multipart(fields(value), chunk_of(v.source, TARGET)))


def offset_case(value: Any) -> Send:
    return with_form(lambda v: rawhttp.multipart(fields(offset=value), chunk_of(v.source, TARGET)))


def sized_case(delta: int) -> Send:
    def build(v: Victim) -> tuple[bytes, str]:
        data = chunk_of(v.source, TARGET)
        data = data + b"\0" * delta if delta > 0 else data[:delta]
        return rawhttp.multipart(fields(checksum=hashlib.sha256(data).hexdigest()), data)
    return with_form(build)


def raw_case(body: bytes, ctype: str, **kw: Any) -> Send:
    async def send(v: Victim) -> RawReply | None:
        return await v.send(body, ctype, **kw)
    return send


def form_to(path: str) -> Send:
    async def send(v: Victim) -> RawReply | None:
        body, ctype = form(v)
        return await v.send(body, ctype, path=path)
    return send


def two_files(v: Victim) -> tuple[bytes, str]:
    data = chunk_of(v.source, TARGET)
    half = len(data) // 2
    body, ctype = rawhttp.multipart(fields(), data[:half], after=[])
    # a second "file" part before the closing boundary
    boundary = ctype.split("boundary=")[1]
    second = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\n').encode()
    body = body.replace(f"--{boundary}--\r\n".encode(), second + data[half:] + f"\r\n--{boundary}--\r\n".encode())
    return body, ctype


INVALID = (422, {"invalid_chunk", "invalid_request"})

CASES: dict[str, tuple[Send, Check]] = {
    # truncated bodies and hang-ups
    "truncated body, honest Content-Length": (truncated_honest, lambda r: expect(r, 422, "invalid_chunk")),
    "truncated in a part's headers": (truncated_in_part_headers, lambda r: expect(r, *INVALID)),
    "no closing boundary": (no_closing_boundary, lambda r: expect(r, 422, "invalid_chunk")),
    "half the body, then EOF": (truncated_then_eof, lambda r: r is None or expect(r, *INVALID)),
    "disconnect mid-chunk (reset)": (disconnect_mid_chunk, lambda r: None),
    # wrong and missing fields
    "chunk_id missing": (with_form(lambda v: rawhttp.multipart([("is_final", "false")], chunk_of(v.source, 1))),
                         lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id not a number": (chunk_id_case("one"), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id a float": (chunk_id_case("1.0"), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id huge": (chunk_id_case("9" * 40), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id 2**63": (chunk_id_case(str(2**63)), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id negative": (chunk_id_case("-1"), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id past the last": (chunk_id_case(str(TOTAL)), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_id 4000 digits": (chunk_id_case("7" * 4000), lambda r: expect(r, *INVALID)),
    "chunk_offset wrong": (offset_case(2 * CS), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_offset negative": (offset_case(-CS), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_offset huge": (offset_case(10**30), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk_offset not a number": (offset_case("here"), lambda r: expect(r, 422, "invalid_chunk")),
    "no file part": (with_form(lambda v: rawhttp.multipart(fields(), None)), lambda r: expect(r, *INVALID)),
    "file part under another name": (
        with_form(lambda v: rawhttp.multipart(fields(), chunk_of(v.source, 1), file_field="data")),
        lambda r: expect(r, *INVALID)),
    "chunk_id after the file": (
        with_form(lambda v: rawhttp.multipart([], chunk_of(v.source, 1), after=fields())),
        lambda r: expect(r, 422, "invalid_chunk")),
    "two file parts": (with_form(two_files), lambda r: expect(r, *INVALID)),
    "checksum not hex": (with_form(lambda v: form(v, checksum="zz" * 32)), lambda r: expect(r, 422, "invalid_chunk")),
    "checksum of other bytes": (with_form(lambda v: form(v, checksum=hashlib.sha256(b"x").hexdigest())),
                                lambda r: expect(r, 422, "checksum_mismatch")),
    "field longer than allowed": (with_form(lambda v: form(v, checksum="a" * 5000)), lambda r: expect(r, *INVALID)),
    "too many fields": (
        with_form(lambda v: rawhttp.multipart(fields() + [(f"x{i}", "1") for i in range(40)], chunk_of(v.source, 1))),
        lambda r: expect(r, *INVALID)),
    # sizes
    "chunk one byte larger than chunk_size": (sized_case(1), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk 1 MiB larger than chunk_size": (sized_case(1 << 20), lambda r: expect(r, 422, "invalid_chunk")),
    "chunk one byte short": (sized_case(-1), lambda r: expect(r, 422, "invalid_chunk")),
    "empty chunk": (with_form(lambda v: rawhttp.multipart(fields(), b"")), lambda r: expect(r, 422, "invalid_chunk")),
    # not a multipart form at all
    "JSON instead of a form": (raw_case(b'{"chunk_id": 1}', "application/json"), lambda r: expect(r, *INVALID)),
    "multipart without a boundary": (raw_case(b"--x\r\n", "multipart/form-data"), lambda r: expect(r, *INVALID)),
    "garbage under a boundary": (raw_case(os.urandom(4096), "multipart/form-data; boundary=zzz"),
                                 lambda r: expect(r, *INVALID)),
    "no body": (raw_case(b"", "multipart/form-data; boundary=zzz"), lambda r: expect(r, *INVALID)),
    # the session id
    "unknown session": (form_to(f"{PREFIX}/chunk/00000000-0000-4000-8000-000000000000"),
                        lambda r: expect(r, 404, "not_found")),
    "a path for a session id": (form_to(f"{PREFIX}/chunk/..%2F..%2Fupload_states"),
                                lambda r: expect(r, 404, "not_found")),
    # HTTP framing (refused by the server's protocol layer, in the envelope too)
    "Content-Length negative": (raw_case(b"", "multipart/form-data; boundary=zzz", headers={"Content-Length": "-5"}),
                                lambda r: expect(r, 400, "bad_request")),
    "Content-Length not a number": (raw_case(b"", "multipart/form-data; boundary=zzz",
                                             headers={"Content-Length": "lots"}), lambda r: expect(r, 400, "bad_request")),
    "Content-Length and chunked both": (
        raw_case(b"0\r\n\r\n", "multipart/form-data; boundary=zzz",
                 headers={"Content-Length": "5", "Transfer-Encoding": "chunked"}),
        lambda r: expect(r, 400, "bad_request")),
    "bad chunked encoding": (raw_case(b"zz\r\nxx\r\n", "multipart/form-data; boundary=zzz",
                                      headers={"Transfer-Encoding": "chunked"}), lambda r: expect(r, 400, "bad_request")),
    # headers
    "a 1 MiB header": (raw_case(b"", "multipart/form-data; boundary=zzz", headers={"X-Big": "a" * (1 << 20)}),
                       lambda r: expect(r, 431)),
    "5,000 headers": (raw_case(b"", "multipart/form-data; boundary=zzz",
                               headers={f"X-H{i}": "v" * 30 for i in range(5000)}),
                      lambda r: expect(r, 431)),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_chunk_request(bad_server: ServerProcess, source: bytes, case: str) -> None:
    send, check = CASES[case]
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        before = await victim.uploaded()
        reply = await send(victim)
        check(reply)
        assert await victim.uploaded() == before, f"{case}: the session's chunks changed"
        await victim.finish(before)
    bad_server.assert_no_tracebacks()


async def test_stalled_client_lets_go_of_its_chunk(bad_server: ServerProcess, source: bytes) -> None:
    """A client whose network vanished mid-chunk (no FIN, no reset: the socket just goes
    quiet) must not hold the chunk forever: after the idle timeout it is dropped (408),
    and the retry from the client's new connection goes in."""
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        body, ctype = form(victim)
        reader, writer = await asyncio.open_connection(bad_server.host, bad_server.port)
        try:
            head = (f"POST {victim.chunk_url} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            await asyncio.sleep(0.2)  # the server is inside the chunk now, holding it
            started = asyncio.get_running_loop().time()
            retry = await asyncio.wait_for(
                api.send_chunk(victim.sid, TARGET, chunk_of(source, TARGET), CS, TOTAL), IDLE_TIMEOUT + 10)
            waited = asyncio.get_running_loop().time() - started
            assert retry.status == 200, retry
            stalled = await asyncio.wait_for(rawhttp._read_reply(reader), 5)
            expect(stalled, 408, "request_timeout")
        finally:
            writer.close()
        assert await victim.uploaded() == [0, TARGET]
        await victim.finish([0, TARGET])
        print(f"the retry of a chunk held by a stalled client went in after {waited:.1f} s "
              f"(idle timeout {IDLE_TIMEOUT} s)")
    bad_server.assert_no_tracebacks()


async def test_slow_client_is_not_cut(bad_server: ServerProcess, source: bytes) -> None:
    """The idle timeout is between pieces, not for the whole chunk: a chunk that takes
    twice the timeout, a piece every 0.3 s, goes in."""
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        body, ctype = form(victim)
        pieces = rawhttp.pieces(body, len(body) // 7 + 1)
        reply = await victim.send(b"", ctype, pieces=pieces, pace=0.3)
        assert reply is not None and reply.status == 200, reply
        assert len(pieces) * 0.3 > 2 * IDLE_TIMEOUT
        await victim.finish(await victim.uploaded())
    bad_server.assert_no_tracebacks()


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"{PREFIX}/chunk/..%2F..%2Fupload_states"),  # no route for the path: 404
    ("PUT", f"{PREFIX}/chunk/00000000-0000-4000-8000-000000000000"),  # not for the method: 405
])
async def test_a_refusal_by_the_router_is_heard_over_a_large_body(bad_server: ServerProcess, method: str,
                                                                  path: str) -> None:
    """The router refuses before any endpoint reads the body. Closing on the unread body
    would reset the connection, and the client's kernel drops the answer with it (this
    case failed now and then under load, with a BrokenPipe and no answer): the server
    reads the body on, so every try hears its 4xx."""
    body = os.urandom(4 << 20)
    for _ in range(5):
        reply = await rawhttp.request(bad_server.host, bad_server.port, method, path,
                                      headers={"Content-Type": "application/octet-stream"}, body=[body])
        expect(reply, {404, 405}, {"not_found", "method_not_allowed"})
    bad_server.assert_no_tracebacks()
