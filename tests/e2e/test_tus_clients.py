"""Real tus clients, unchanged, against the real server process (issue 14): tuspy (PyPI)
and tus-js-client (npm) in Node (tests/tus_js/upload.mjs). Each uploads a PDF
byte-exact (the stored file's SHA-256 is the source's), resumes after the client is
killed mid-upload, and resumes after the server is killed (SIGKILL) and restarted.

Every client runs in a process of its own that prints JSON lines (``url``, ``chunk`` per
acknowledged PATCH, then ``success`` or ``error``), so a test can kill it at a known
offset. Chunks are small and each PATCH waits a little (:data:`PAUSE`), so there is time
to kill between them. Run alone, the tests skip with the command that installs what is
missing (``make test`` installs both clients).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

TUS_JS = REPO / "tests" / "tus_js"
SIZE = 3_000_000
CHUNK = 256 << 10  # 12 PATCHes
PAUSE = 0.08  # seconds before each PATCH
KILL_AT = 3 * CHUNK  # kill once the server has acknowledged this much
TIMEOUT = 30.0

#: tuspy's uploader, unchanged, driven one chunk at a time (``upload_chunk``) so that its
#: progress can be printed. With a storage file it keeps the upload URL under the file's
#: fingerprint (tuspy's own ``FileStorage``), which is how it resumes without being told.
TUSPY = r"""
import json, os, sys, time
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

endpoint, path, chunk, url, storage, pause = sys.argv[1:7]
say = lambda event, **kw: print(json.dumps({"event": event, **kw}), flush=True)
kw = {"file_path": path, "chunk_size": int(chunk), "upload_checksum": True,
      "metadata": {"filename": os.path.basename(path), "filetype": "application/pdf"}}
if url:
    kw["url"] = url
if storage:
    kw.update(store_url=True, url_storage=FileStorage(storage))
try:
    up = TusClient(endpoint).uploader(**kw)
    if not up.url:
        up.set_url(up.create_url())
    say("url", url=up.url, offset=up.offset)
    while up.offset < up.get_file_size():
        time.sleep(float(pause))
        up.upload_chunk()
        say("chunk", accepted=up.offset, total=up.get_file_size())
except Exception as exc:
    say("error", message=repr(exc))
    sys.exit(1)
say("success", url=up.url)
"""


@dataclass
class Client:
    name: str
    command: Callable[[str, Path, str | None, Path | None], list[str]]
    env: dict[str, str]
    missing: str | None  # why it cannot run here, and what to run
    logs: Path | None = None
    runs: list[Run] = field(default_factory=list)

    def start(self, server: ServerProcess, file: Path, url: str | None = None,
              storage: Path | None = None) -> Run:
        if self.missing:
            pytest.skip(self.missing)
        assert self.logs is not None
        argv = self.command(f"{server.base_url}/files/", file, url, storage)
        run = Run(argv, {**os.environ, **self.env}, self.logs / f"{self.name}-{len(self.runs)}.stderr")
        self.runs.append(run)
        return run


def _tuspy(endpoint: str, file: Path, url: str | None, storage: Path | None) -> list[str]:
    return [sys.executable, "-c", TUSPY, endpoint, str(file), str(CHUNK), url or "", str(storage or ""), str(PAUSE)]


def _tus_js(endpoint: str, file: Path, url: str | None, storage: Path | None) -> list[str]:
    assert storage is None, "upload.mjs resumes from a URL it is given"
    endpoint = endpoint.rstrip("/")  # as protocol.md writes it (and Node follows no redirect to "/files/")
    return ["node", str(TUS_JS / "upload.mjs"), endpoint, str(file), str(CHUNK), *([url] if url else [])]


CLIENTS = {
    "tuspy": Client("tuspy", _tuspy, {}, None if importlib.util.find_spec("tusclient") else
                    "tuspy missing: pip install -e '.[test]' (make test does)"),
    "tus-js-client": Client("tus-js-client", _tus_js, {"TUS_PAUSE_MS": str(int(PAUSE * 1000))},
                            None if (TUS_JS / "node_modules" / "tus-js-client").is_dir() else
                            "tus-js-client missing: run `make tus-js` (npm ci in tests/tus_js)"),
}


class Run:
    """A client process and the JSON lines it prints, read by a thread as they come;
    its stderr goes to a file (shown when it fails)."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        self.stderr = stderr
        with open(stderr, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, cwd=TUS_JS, env=env)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "noise", "line": line.decode(errors="replace")})
        self.events.put({"event": "exit"})

    def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first event for which ``done`` holds; fails on ``exit`` or a timeout."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                pytest.fail(f"no such event within {timeout}s; seen {self.seen[-5:]}")
            self.seen.append(event)
            if done(event):
                return event
            if event["event"] == "exit":
                stderr = self.stderr.read_text(errors="replace")[-3000:]
                pytest.fail(f"the client exited ({self.proc.wait()}); seen {self.seen[-5:]}; stderr:\n{stderr}")

    def success(self) -> dict[str, Any]:
        event = self.until(lambda e: e["event"] in ("success", "error"))
        assert event["event"] == "success", self.seen[-5:]
        assert self.proc.wait(timeout=TIMEOUT) == 0
        return event

    def kill(self) -> None:
        """SIGKILL (if it still runs), and the pipe closed once the reader is done."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def pdf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tus_clients") / "upload me.pdf"
    make_pdf(path, SIZE, pages=2, seed=21)
    return path


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    client = replace(CLIENTS[request.param], logs=tmp_path, runs=[])
    yield client
    for run in client.runs:
        run.kill()


def _stored(server: ServerProcess, url: str, source: Path) -> None:
    """The upload is finished, its document is the source byte for byte, and nothing else
    was stored or left open (a resume did not start a second upload)."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        head = http.head(url, headers={"Tus-Resumable": "1.0.0"})
        assert head.status_code == 200 and head.headers["upload-offset"] == str(SIZE)
        doc_id = head.headers["upload-document-id"]
        stored = http.get(f"/api/documents/{doc_id}/file")
        assert stored.status_code == 200
        assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
        assert [d["id"] for d in http.get("/api/documents").json()] == [int(doc_id)]
        assert http.get("/api/documents/streaming/resumable").json() == []


def _offset(server: ServerProcess, url: str) -> int:
    r = httpx.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert r.status_code == 200, r.status_code
    return int(r.headers["upload-offset"])


def test_uploads_a_pdf_byte_exact(client: Client, server: ServerProcess, pdf_file: Path) -> None:
    run = client.start(server, pdf_file)
    url = run.until(lambda e: e["event"] == "url")["url"]
    done = run.success()
    assert done["url"] == url
    assert [e["accepted"] for e in run.seen if e["event"] == "chunk"][-1] == SIZE
    _stored(server, url, pdf_file)
    server.assert_no_tracebacks()


def test_resumes_after_the_client_is_killed(client: Client, server: ServerProcess, pdf_file: Path,
                                            tmp_path: Path) -> None:
    """tuspy finds its URL again in its URL storage (by the file's fingerprint);
    upload.mjs is handed the URL. Either way it goes on from HEAD's offset, not from 0."""
    storage = tmp_path / "tuspy-urls.json" if client.name == "tuspy" else None
    run = client.start(server, pdf_file, storage=storage)
    url = run.until(lambda e: e["event"] == "url")["url"]
    acked = run.until(lambda e: e["event"] == "chunk" and e["accepted"] >= KILL_AT)["accepted"]
    run.kill()
    assert _offset(server, url) >= acked
    again = client.start(server, pdf_file, url=None if storage else url, storage=storage)
    first = again.until(lambda e: e["event"] == "chunk")
    assert first["accepted"] > acked  # resumed where the bytes end
    assert again.success()["url"] == url
    _stored(server, url, pdf_file)
    server.assert_no_tracebacks()


def test_resumes_after_the_server_is_killed(client: Client, server: ServerProcess, pdf_file: Path) -> None:
    """SIGKILL mid-upload: the client fails; after the restart HEAD reports at least
    every byte that was acknowledged, and a new client run finishes from there."""
    run = client.start(server, pdf_file)
    url = run.until(lambda e: e["event"] == "url")["url"]
    acked = run.until(lambda e: e["event"] == "chunk" and e["accepted"] >= KILL_AT)["accepted"]
    server.kill()
    run.until(lambda e: e["event"] == "error")
    assert run.proc.wait(timeout=TIMEOUT) != 0
    server.start()
    offset = _offset(server, url)
    assert acked <= offset < SIZE
    again = client.start(server, pdf_file, url=url)
    assert again.success()["url"] == url
    _stored(server, url, pdf_file)
