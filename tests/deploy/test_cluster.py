"""``make cluster`` for real: SeaweedFS, Redis, PostgreSQL, three replicas, an importer and
nginx, started by ``deploy/cluster.py`` as a user would, then used only through nginx.

- chunks of one upload go round-robin over the replicas (each replica's log shows one),
  a WebSocket through nginx hears the upload through to ``completed`` (the import on
  the importer included), and the document downloads byte-exact, whole and by Range;
- a tus upload (tuspy, 5 MiB PATCHes) through nginx lands on every replica in turn and
  comes back byte-exact;
- twenty uploads at once through nginx all come back byte-exact;
- a replica SIGKILLed while an upload's chunks are in flight costs only those chunks:
  the client sends them again, they land on the other replicas, the file is byte-exact;
- Ctrl-C stops every process the cluster started and removes its files.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from deploy.cluster import _nginx
from tests.e2e.client import PREFIX, ApiClient, upload_chunks
from tests.pdfgen import make_pdf
from tests.realservers.postgres import pg_bin
from tests.realservers.procs import free_ports, missing
from tests.realservers.redis_server import redis_binary
from tests.realservers.seaweed import weed_binary

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    root: Path
    descendants: list[int]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    for what, found, how in (("nginx", _nginx(), "make nginx"), ("weed", weed_binary(), "make seaweedfs"),
                             ("redis-server", redis_binary(), "make redis"), ("postgresql", pg_bin(), "make postgres")):
        if found is None:
            missing(what, how)
    root = tmp_path_factory.mktemp("cluster") / "root"
    (port,) = free_ports(1)
    # every replica inherits the cluster's environment: room for twenty uploads at once
    env = {**os.environ, "STREAMING_MAX_CONCURRENT_UPLOADS": "100", "STREAMING_MAX_OPEN_SESSIONS_PER_OWNER": "100",
           "STREAMING_RATE_LIMIT_PER_MINUTE": "0", "STREAMING_IP_RATE_LIMIT_PER_MINUTE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cluster", "--port", str(port), "--root", str(root)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("cluster ready"):
            break
    if not lines or not lines[-1].startswith("cluster ready"):
        proc.kill()
        pytest.fail("the cluster did not start:\n" + "".join(lines) + (proc.stdout.read() or ""))
    descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    running = Running(proc, f"http://127.0.0.1:{port}", root, descendants)
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        proc.stdout.close()


def replica_logs(root: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text(errors="replace") for p in sorted(root.glob("replica-*/log.jsonl"))}


async def test_chunks_round_robin_with_progress_through_nginx(cluster: Running, tmp_path: Path) -> None:
    source = tmp_path / "c.pdf"
    digest = make_pdf(source, 24 * MIB)
    data = source.read_bytes()
    async with ApiClient(cluster.url) as api:
        async with api.events("cluster_tab") as ws:
            session = await api.initiate("c.pdf", len(data), client_id="cluster_tab")
            sid, cs, total = session["session_id"], session["chunk_size"], session["total_chunks"]
            assert cs >= 5 * MIB and total >= 3, session  # S3 mode: parts of at least 5 MiB
            for i in range(total):
                reply = await api.send_chunk(sid, i, data[i * cs:(i + 1) * cs], cs, total)
                assert reply.status == 200, reply
            done = await api.complete(sid)
            assert done.status == 200, done
            doc = done.body["document"]
            assert await ws.wait_for(lambda e: e.get("type") == "upload_status" and e.get("status") == "completed"
                                     and e.get("document_id") == doc["id"], 120), ws.events
        sha, size, _ = await api.download_sha256(doc["id"])
        assert (sha, size) == (digest, len(data))
        status, body, _ = await api.get_range(doc["id"], "bytes=100-199")
        assert (status, body) == (206, data[100:200])
    chunk_path = re.compile(rf"{re.escape(PREFIX)}/chunk/{sid} 200")
    served = {name: len(chunk_path.findall(log)) for name, log in replica_logs(cluster.root).items()}
    assert len(served) == 3 and all(n >= 1 for n in served.values()), served


async def test_tus_patches_round_robin_through_nginx(cluster: Running, tmp_path: Path) -> None:
    pytest.importorskip("tusclient")
    from tusclient.client import TusClient

    source = tmp_path / "t.pdf"
    digest = make_pdf(source, 16 * MIB)

    def send() -> str:
        with open(source, "rb") as stream:  # given a path, tuspy leaves its file open
            up = TusClient(f"{cluster.url}/files/").uploader(
                file_stream=stream, chunk_size=5 * MIB, upload_checksum=True,
                metadata={"filename": "t.pdf", "filetype": "application/pdf"})
            up.upload()
            return str(up.url)

    url = await asyncio.get_running_loop().run_in_executor(None, send)
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    async with ApiClient(cluster.url) as api:
        async with api.http.head(f"/files/{upload_id}", headers={"Tus-Resumable": "1.0.0"}) as head:
            assert head.status == 200, head
            doc_id = int(head.headers["Upload-Document-Id"])
        sha, size, _ = await api.download_sha256(doc_id)
        assert (sha, size) == (digest, source.stat().st_size)
    patches = {name: log.count(f'"PATCH /files/{upload_id} 204"') for name, log in replica_logs(cluster.root).items()}
    assert sum(patches.values()) == 4 and sum(1 for n in patches.values() if n) >= 2, patches


async def upload_until_done(api: ApiClient, source: Path, *, on_first: Callable[[], None] = lambda: None,
                            tries: int = 6) -> dict[str, Any]:
    """Initiate, send every chunk (4 in flight), and resend what /resume says is missing
    until /complete answers, as a client does when a replica goes away under it (nginx then
    answers 502 for the requests that were on it); the document."""
    session = await api.initiate(source.name, source.stat().st_size)
    sid = session["session_id"]
    todo: list[int] = list(range(session["total_chunks"]))
    for attempt in range(tries):
        await upload_chunks(api, session, source, todo, in_flight=4,
                            on_ack=lambda run, _: on_first() if len(run.acked) == 1 else None)
        done = await api.complete(sid)
        if done.status == 200:
            return dict(done.body["document"])
        assert done.status in (409, 502, 503), done
        resumed = await api.resume(sid)
        assert resumed.status == 200, resumed
        todo = list(resumed.body["missing_chunks"])
        await asyncio.sleep(0.2 * attempt)
    raise AssertionError(f"{source.name}: not complete after {tries} tries")


async def test_twenty_uploads_at_once_come_back_byte_exact(cluster: Running, tmp_path: Path) -> None:
    sources = [tmp_path / f"u{i}.pdf" for i in range(20)]
    digests = [make_pdf(path, (1 + i % 3) * MIB, seed=i) for i, path in enumerate(sources)]
    async with ApiClient(cluster.url) as api:
        docs = await asyncio.gather(*(upload_until_done(api, path) for path in sources))
        for doc, path, digest in zip(docs, sources, digests):
            sha, size, _ = await api.download_sha256(doc["id"])
            assert (sha, size) == (digest, path.stat().st_size), path.name
    served = {name: log.count("/complete/") for name, log in replica_logs(cluster.root).items()}
    assert all(served.values()), served


async def test_a_replica_killed_mid_upload_costs_only_its_chunks(cluster: Running, tmp_path: Path) -> None:
    """SIGKILL one replica while an upload's chunks are in flight on all three: nginx
    answers 502 for those on it (they were never acknowledged), the client sends them
    again, they land on the two others, and the file comes back byte-exact."""
    source = tmp_path / "k.pdf"
    digest = make_pdf(source, 40 * MIB)
    victim = next(p for p in psutil.Process(cluster.proc.pid).children()
                  if p.cmdline()[1:3] == ["-m", "backend"] and p.cwd() == str(cluster.root / "replica-2"))
    killed: list[int] = []

    def kill() -> None:
        if killed:
            return  # once: a later round acknowledges a first chunk again
        victim.kill()
        killed.append(victim.pid)

    async with ApiClient(cluster.url) as api:
        doc = await upload_until_done(api, source, on_first=kill)
        assert killed, "the replica was not killed mid-upload"
        sha, size, _ = await api.download_sha256(doc["id"])
        assert (sha, size) == (digest, source.stat().st_size)


def test_ctrl_c_stops_everything(cluster: Running) -> None:
    cluster.proc.send_signal(signal.SIGINT)
    assert cluster.proc.wait(60) == 0
    deadline = time.monotonic() + 15
    while (alive := [pid for pid in cluster.descendants if psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, [psutil.Process(pid).cmdline()[:3] for pid in alive]
    assert not cluster.root.exists()
