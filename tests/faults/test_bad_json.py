"""Bad JSON bodies for ``/initiate``, ``/resume``, ``/cancel`` and ``/complete``.

Not JSON at all, the wrong JSON, missing and mistyped fields, negative and absurd sizes,
nesting deep enough to break a recursive parser: each a clear 4xx in the envelope.
A refused ``/initiate`` leaves no session behind; a refused ``/resume``, ``/cancel`` or
``/complete`` leaves the session it named as it was, and it completes byte-exact.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.client import PREFIX, ApiClient
from tests.e2e.conftest import ServerProcess
from tests.faults import rawhttp
from tests.faults.victim import SIZE, expect, open_victim

pytestmark = pytest.mark.e2e

INVALID = (422, "invalid_request")
UNPARSABLE = ({400, 422}, {"bad_request", "invalid_request"})  # bytes that are not JSON text at all
TOO_LARGE = (413, "request_too_large")  # the body cap (64 KiB off the chunk endpoint) comes first
DEEP = b"[" * 100_000 + b"]" * 100_000


def initiate(**fields: Any) -> bytes:
    return json.dumps({"filename": "a.pdf", "file_size": SIZE, **fields}).encode()


INITIATE: dict[str, tuple[bytes, Any]] = {
    "not JSON": (b"hello", INVALID),
    "not UTF-8": (b"\xff\xfe{}", UNPARSABLE),
    "empty body": (b"", INVALID),
    "a JSON array": (b"[]", INVALID),
    "JSON null": (b"null", INVALID),
    "a JSON string": (b'"a.pdf"', INVALID),
    "nested 100,000 deep": (DEEP, TOO_LARGE),
    "nested in a field": (b'{"filename": ' + DEEP + b', "file_size": 5}', TOO_LARGE),
    "filename missing": (b'{"file_size": 5000000}', INVALID),
    "file_size missing": (b'{"filename": "a.pdf"}', INVALID),
    "file_size negative": (initiate(file_size=-1), INVALID),
    "file_size zero": (initiate(file_size=0), INVALID),
    "file_size a fraction": (initiate(file_size=12.5), INVALID),
    "file_size infinite": (b'{"filename": "a.pdf", "file_size": 1e400}', INVALID),
    "file_size NaN": (b'{"filename": "a.pdf", "file_size": NaN}', INVALID),
    "file_size a word": (initiate(file_size="big"), INVALID),
    "file_size 10**30": (initiate(file_size=10**30), (413, "file_too_large")),
    "file_size 5,000 digits": (b'{"filename": "a.pdf", "file_size": ' + b"9" * 5000 + b"}", UNPARSABLE),
    "chunk_size negative": (initiate(chunk_size=-5), INVALID),
    "chunk_size zero": (initiate(chunk_size=0), INVALID),
    "filename empty": (initiate(filename=""), INVALID),
    "filename a directory": (initiate(filename="/"), INVALID),
    # control characters (NUL too) are stripped, not refused: tests/api/test_limits.py
    "filename 2,000 characters": (initiate(filename="a" * 2000 + ".pdf"), INVALID),
    "filename a lone surrogate": (b'{"filename": "\\ud800.pdf", "file_size": 5000000}', INVALID),
    "client_id with spaces": (initiate(client_id="bad id!"), INVALID),
    "expected_hash not hex": (initiate(expected_hash="xyz"), INVALID),
    "title 600 characters": (initiate(title="t" * 600), INVALID),
    "check_duplicates a word": (initiate(check_duplicates="perhaps"), INVALID),
}


@pytest.mark.parametrize("case", list(INITIATE))
async def test_bad_initiate(bad_server: ServerProcess, case: str) -> None:
    body, (status, code) = INITIATE[case]
    async with ApiClient(bad_server.base_url) as api:
        before = await api.get(f"{PREFIX}/resumable")
        reply = await rawhttp.post_json_raw(bad_server.host, bad_server.port, f"{PREFIX}/initiate", body)
        expect(reply, status, code)
        after = await api.get(f"{PREFIX}/resumable")
        assert after.body == before.body, f"{case}: a refused /initiate left a session"
    bad_server.assert_no_tracebacks()


def sid_body(v: Any, **fields: Any) -> bytes:
    return json.dumps({"session_id": v.sid, **fields}).encode()


# (path template, body builder, expected): {sid} is the victim's session id
OTHERS: dict[str, tuple[str, Any, Any]] = {
    "resume: not JSON": ("resume", lambda v: b"garbage", INVALID),
    "resume: nested 100,000 deep": ("resume", lambda v: DEEP, TOO_LARGE),
    "resume: session_id missing": ("resume", lambda v: b"{}", INVALID),
    "resume: session_id a number": ("resume", lambda v: b'{"session_id": 5}', INVALID),
    "resume: session_id 100 characters": ("resume", lambda v: json.dumps({"session_id": "a" * 100}).encode(),
                                          INVALID),
    "resume: session_id unknown": ("resume", lambda v: b'{"session_id": "00000000-0000-4000-8000-000000000000"}',
                                   (404, "not_found")),
    "resume: last_chunk_id negative": ("resume", lambda v: sid_body(v, last_chunk_id=-5), INVALID),
    "resume: client_id with spaces": ("resume", lambda v: sid_body(v, client_id="bad id!"), INVALID),
    "cancel: not JSON": ("cancel/{sid}", lambda v: b"garbage", INVALID),
    "cancel: nested 100,000 deep": ("cancel/{sid}", lambda v: DEEP, TOO_LARGE),
    "cancel: reason a number": ("cancel/{sid}", lambda v: b'{"reason": 5}', INVALID),
    "cancel: reason 1,000 characters": ("cancel/{sid}", lambda v: json.dumps({"reason": "r" * 1000}).encode(),
                                        INVALID),
    "complete: not all chunks in": ("complete/{sid}", lambda v: b"", (409, "upload_incomplete")),
    "complete: with a garbage body": ("complete/{sid}", lambda v: b"\xff" * 100, (409, "upload_incomplete")),
    "complete: unknown session": ("complete/00000000-0000-4000-8000-000000000000", lambda v: b"",
                                  (404, "not_found")),
    "complete: a path for a session": ("complete/..%2Fupload_states", lambda v: b"", (404, "not_found")),
}


@pytest.mark.parametrize("case", list(OTHERS))
async def test_bad_session_request(bad_server: ServerProcess, source: bytes, case: str) -> None:
    path, build, (status, code) = OTHERS[case]
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        before = await victim.uploaded()
        reply = await rawhttp.post_json_raw(bad_server.host, bad_server.port,
                                            f"{PREFIX}/{path.format(sid=victim.sid)}", build(victim))
        expect(reply, status, code)
        if code == "upload_incomplete":
            assert reply is not None and reply.body["missing_chunks"] == [1, 2], reply
        assert await victim.uploaded() == before, f"{case}: the session's chunks changed"
        await victim.finish(before)
    bad_server.assert_no_tracebacks()
