"""Appends on a real server, where a body arrives in many pieces (uvicorn hands them over
as the socket delivers them)."""

from __future__ import annotations

import base64
import hashlib
import http.client
from pathlib import Path

import pytest

from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e


def test_a_big_first_patch_is_checked_for_its_header_once(server: ServerProcess, tmp_path: Path) -> None:
    """The header check looked at the writer thread's count of bytes written: a second
    block read before the first was written was taken for the file's start (415)."""
    path = tmp_path / "big.pdf"
    make_pdf(path, 6 * MIB, seed=3)
    data = path.read_bytes()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    meta = "filename " + base64.b64encode(b"big.pdf").decode()
    conn.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
                                             "Upload-Metadata": meta})
    created = conn.getresponse()
    created.read()
    assert created.status == 201
    url = created.headers["Location"]
    conn.putrequest("PATCH", url)
    for name, value in {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Length": str(len(data)),
                        "Content-Type": "application/offset+octet-stream"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    for i in range(0, len(data), 64 << 10):  # many small writes: many pieces on the server's side
        conn.send(data[i:i + (64 << 10)])
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 204, answer.status
    conn.request("GET", f"/api/documents/{answer.headers['Upload-Document-Id']}/file")
    stored = conn.getresponse().read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    conn.close()
