"""One upload session to mistreat: a 5,000,000-byte PDF in chunks of 2 MiB, 2 MiB and
805,696 bytes, and the checks that it came to no harm.

Used by the bad-input and race tests (their server and source PDF are fixtures in
conftest.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tests.e2e.client import PREFIX, ApiClient, Reply
from tests.e2e.conftest import ServerProcess
from tests.faults import rawhttp
from tests.faults.rawhttp import RawReply

SIZE = 5_000_000
CS = 2 * 1024 * 1024
TOTAL = 3
TARGET = 1  # the chunk the bad requests aim at
IDLE_TIMEOUT = 1.0  # the server's body idle timeout here (default 30 s)


def chunk_of(source: bytes, i: int) -> bytes:
    return source[i * CS:(i + 1) * CS]


@dataclass
class Victim:
    server: ServerProcess
    api: ApiClient
    source: bytes
    session: dict[str, Any]

    @property
    def sid(self) -> str:
        return str(self.session["session_id"])

    @property
    def chunk_url(self) -> str:
        return f"{PREFIX}/chunk/{self.sid}"

    async def uploaded(self) -> list[int]:
        reply = await self.api.resume(self.sid)
        assert reply.status == 200, reply
        return list(reply.body["uploaded_chunks"])

    async def send(self, body: bytes, ctype: str, **kw: Any) -> RawReply | None:
        """A request to this session's chunk URL over a bare socket."""
        headers = {"Content-Type": ctype, **kw.pop("headers", {})}
        return await rawhttp.request(self.server.host, self.server.port, "POST", kw.pop("path", self.chunk_url),
                                     headers=headers, body=kw.pop("pieces", None) or [body], **kw)

    async def good(self, i: int) -> None:
        reply = await self.api.send_chunk(self.sid, i, chunk_of(self.source, i), CS, TOTAL)
        assert reply.status == 200, reply

    async def finish(self, uploaded: list[int], expected: bytes | None = None) -> None:
        """The chunks not ``uploaded``, good; /complete; the stored file byte-exact."""
        expected = self.source if expected is None else expected
        for i in sorted(set(range(TOTAL)) - set(uploaded)):
            await self.good(i)
        done = await self.api.complete(self.sid)
        assert done.status == 200, done
        sha, size, _ = await self.api.download_sha256(done.body["document"]["id"])
        assert (sha, size) == (hashlib.sha256(expected).hexdigest(), len(expected)), "stored file not byte-exact"


async def open_victim(server: ServerProcess, api: ApiClient, source: bytes, *, chunk0: bool = True) -> Victim:
    # the same bytes every time: after the first, /complete finds the whole file's SHA-256
    # equal to the stored document's and answers with it (no second import to wait for)
    session = await api.initiate("victim.pdf", SIZE)
    assert (session["chunk_size"], session["total_chunks"]) == (CS, TOTAL), session
    victim = Victim(server, api, source, session)
    if chunk0:
        await victim.good(0)
    return victim


def expect(reply: RawReply | Reply | None, status: int | set[int], code: str | set[str] | None = None) -> None:
    """A clear refusal: the status, the envelope of API.md and its error code."""
    assert reply is not None, "no answer"
    statuses = {status} if isinstance(status, int) else status
    assert reply.status in statuses, reply
    body = reply.body
    assert isinstance(body, dict) and body.get("success") is False, f"not the error envelope: {reply}"
    assert isinstance(body.get("message"), str) and body["message"], reply
    if code is not None:
        codes = {code} if isinstance(code, str) else code
        assert body.get("error") in codes, reply
