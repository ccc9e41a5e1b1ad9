"""Crash loop: N uploads, each cut by a SIGKILL of the server, resumed and completed.

Every round uploads its own PDF (2-4 chunks of 2 MiB) and kills the server at one of
four points, in turn:

- ``chunks``: at a random moment while chunks stream in (paced, two in flight, so the
  kill lands inside chunk bodies as often as between them);
- ``complete``: a random 0-60 ms after ``/complete`` was sent (before it, inside the
  validation, between storing the file and recording it, or after);
- ``state_torn`` / ``state_unrenamed``: inside the K-th state write of the server's life
  (K random), with half the record in the temporary file, or with all of it synced but
  not renamed; the server kills itself there (tests/faults/hooked_backend.py).

Then the server is restarted on the same directories; ``/resume`` must hold every chunk
acknowledged before the kill (and none never sent); the missing chunks are sent, and the
stored document must be byte-exact, one per upload. After every round no state file may
have been found corrupt. After the loop a last restart sweeps, and nothing may be left
over: no partial file, no temporary or corrupt state file, no stored file without its
document, no child process of a killed server; once the sessions expire, the sweep
removes their records too, and every document is still there, byte-exact.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from tests.e2e.client import PREFIX, ApiClient, read_chunk, upload_chunks
from tests.e2e.conftest import MIB, ServerProcess
from tests.e2e.test_crash_resume import check_resume
from tests.faults import rawhttp
from tests.faults.conftest import HOOKED_BACKEND, env_int
from tests.faults.hooked_backend import ENV as STATE_HOOK
from tests.faults.hooked_backend import arm
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

POINTS = ("chunks", "complete", "state_torn", "state_unrenamed")
PACE = 0.001  # seconds between 64 KiB pieces of a paced chunk: ~40 ms per 2 MiB chunk
COMPLETE_DELAY = 0.06
IMPORT_WAIT = 60.0
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, asyncio.IncompleteReadError)


@dataclass
class Round:
    """One upload and what the client saw of it before the kill."""

    number: int
    point: str
    source: Path
    sha256: str
    session: dict[str, Any] | None = None
    acked: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    landed: str = ""  # where the kill fell, for the report
    document_id: int | None = None
    children: set[int] = field(default_factory=set)  # the killed server's child processes

    @property
    def size(self) -> int:
        return self.source.stat().st_size


@dataclass
class Tally:
    points: Counter[str] = field(default_factory=Counter)
    landed: Counter[str] = field(default_factory=Counter)
    chunks_resent: int = 0
    restarts: int = 0
    children: int = 0

    def line(self, n: int, seconds: float) -> str:
        landed = ", ".join(f"{k} {v}" for k, v in sorted(self.landed.items()))
        return (f"crash loop: {n} uploads, {sum(self.points.values()) + 1} SIGKILLs "
                f"({', '.join(f'{p} {self.points[p]}' for p in POINTS)}, 1 after the imports), "
                f"{self.restarts} restarts, "
                f"{self.chunks_resent} chunks re-sent after restarts, all {n} byte-exact in {seconds:.1f} s; "
                f"{self.children} child processes of killed servers, all gone; "
                f"kills landed: {landed}")


# -- the first life of an upload: until the kill -------------------------------------------


def note_children(server: ServerProcess, rnd: Round) -> None:
    """Remember the server's children (the digest child, the inspection's sandbox), to
    check that none outlives a SIGKILL of the server."""
    try:
        if server.running:
            rnd.children |= {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        pass


def kill(server: ServerProcess, rnd: Round) -> None:
    note_children(server, rnd)
    assert server.kill() == -signal.SIGKILL


async def paced_chunk(server: ServerProcess, session: dict[str, Any], source: Path, chunk_id: int) -> int | None:
    """One chunk sent slowly over a bare socket; its status, or None if the server died."""
    sid, cs, total = session["session_id"], session["chunk_size"], session["total_chunks"]
    body, ctype = rawhttp.chunk_form(chunk_id, read_chunk(source, chunk_id, cs), cs, total)
    try:
        reply = await rawhttp.request(server.host, server.port, "POST", f"{PREFIX}/chunk/{sid}",
                                      headers={"Content-Type": ctype}, body=rawhttp.pieces(body), pace=PACE)
    except CONNECTION_ERRORS:
        return None
    assert reply is not None
    assert reply.status == 200, reply
    return reply.status


async def kill_during_chunks(server: ServerProcess, api: ApiClient, rnd: Round, rng: random.Random) -> None:
    session = rnd.session = await api.initiate(rnd.source.name, rnd.size)
    total = session["total_chunks"]
    queue = list(range(total))
    rng.shuffle(queue)

    async def sender() -> None:
        while queue and server.running:
            chunk_id = queue.pop()
            rnd.started.add(chunk_id)
            if await paced_chunk(server, session, rnd.source, chunk_id) == 200:
                rnd.acked.add(chunk_id)

    # two in flight: a whole upload takes about total/2 chunk times of ~40 ms
    budget = 0.045 * (total + 1) / 2
    delay = rng.uniform(0.0, budget)

    async def killer() -> None:
        await asyncio.sleep(delay)
        kill(server, rnd)

    await asyncio.gather(sender(), sender(), killer())
    cut = len(rnd.started - rnd.acked)
    rnd.landed = f"chunks:{len(rnd.acked)}/{total} acked, {cut} in flight"


async def kill_during_complete(server: ServerProcess, api: ApiClient, rnd: Round, rng: random.Random) -> None:
    session = rnd.session = await api.initiate(rnd.source.name, rnd.size)
    run = await upload_chunks(api, session, rnd.source, range(session["total_chunks"]), in_flight=2)
    assert not run.refused and not run.broken, run
    rnd.acked, rnd.started = run.acked, run.started
    sid = session["session_id"]

    async def complete() -> Any:
        try:
            return await api.complete(sid)
        except CONNECTION_ERRORS:
            return None

    task = asyncio.create_task(complete())
    await asyncio.sleep(rng.uniform(0.0, COMPLETE_DELAY))
    kill(server, rnd)
    reply = await task
    state = (server.state_dir / f"{sid}.json").read_text()
    status = next(s for s in ("uploading", "processing", "completed") if f'"status":"{s}"' in state)
    if reply is not None:
        assert reply.status == 200, reply
        rnd.document_id = reply.body["document"]["id"]
        rnd.landed = f"complete:answered,{status}"
    else:
        stored = any(server.data_dir.joinpath("documents").rglob(f"{rnd.sha256}.pdf"))
        rnd.landed = f"complete:{status}{',file stored' if stored else ''}"


async def kill_in_state_save(server: ServerProcess, rnd: Round, rng: random.Random, control: Path) -> None:
    """The server kills itself inside the K-th state save from now; the client just goes
    on until the server is gone. The saves: initiate, one per chunk (sent one at a time),
    then PROCESSING and COMPLETED in /complete."""
    cs = 2 * MIB
    total = -(-rnd.size // cs)
    k = rng.randint(1, total + 3)
    phase = rnd.point.removeprefix("state_")
    arm(control, f"round{rnd.number}", k, phase)
    async with ApiClient(server.base_url) as api:
        try:
            note_children(server, rnd)
            session = await api.initiate(rnd.source.name, rnd.size)
            rnd.session = session
            assert session["chunk_size"] == cs, session
            for chunk_id in range(total):
                note_children(server, rnd)
                rnd.started.add(chunk_id)
                reply = await api.send_chunk(session["session_id"], chunk_id, read_chunk(rnd.source, chunk_id, cs),
                                             cs, total)
                assert reply.status == 200, reply
                rnd.acked.add(chunk_id)
            note_children(server, rnd)
            await api.complete(session["session_id"])
        except CONNECTION_ERRORS:
            pass
    assert server.proc is not None
    code = await asyncio.to_thread(server.proc.wait, 10)
    control.unlink()  # disarmed: the next life must not die
    assert code == -signal.SIGKILL, f"the server did not die in state save {k}: exit code {code}"
    assert f"SIGKILL in state save {k}" in server.log_text()
    which = ("initiate" if k == 1 else "chunk" if k <= total + 1 else
             "complete:processing" if k == total + 2 else "complete:completed")
    rnd.landed = f"state {phase} in {which} save"


# -- the second life: resume and finish ------------------------------------------------------


async def resume_and_finish(server: ServerProcess, rnd: Round, tally: Tally) -> None:
    async with ApiClient(server.base_url) as api:
        if rnd.session is None:  # the server died before /initiate answered: start over
            rnd.session = await api.initiate(rnd.source.name, rnd.size)
            missing = set(range(rnd.session["total_chunks"]))
        else:
            reply = await api.resume(rnd.session["session_id"])
            assert reply.status == 200, (rnd, reply)
            uploaded, missing = check_resume(reply.body, rnd.session, rnd.size, None)
            lost = rnd.acked - uploaded
            assert not lost, f"round {rnd.number} ({rnd.landed}): acknowledged chunks {sorted(lost)} lost: {reply}"
            assert uploaded <= rnd.started, f"round {rnd.number}: chunks never sent reported uploaded: {reply}"
        tally.chunks_resent += len(missing)
        run = await upload_chunks(api, rnd.session, rnd.source, sorted(missing), in_flight=2)
        assert not run.refused and not run.broken and run.acked == missing, (rnd.landed, run)
        done = await api.complete(rnd.session["session_id"])
        assert done.status == 200, (rnd.landed, done)
        doc = done.body["document"]
        assert doc["sha256"] == rnd.sha256 and doc["file_size"] == rnd.size, (rnd.landed, doc)
        if rnd.document_id is not None:
            assert doc["id"] == rnd.document_id, f"/complete again gave another document: {doc}"
        rnd.document_id = doc["id"]
        sha, nbytes, _ = await api.download_sha256(doc["id"])
        assert (sha, nbytes) == (rnd.sha256, rnd.size), f"round {rnd.number} ({rnd.landed}): not byte-exact"


def alive(pid: int) -> bool:
    """Running; an exited child that nobody reaped yet (a zombie) is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def assert_children_gone(rnd: Round, wait: float = 5.0) -> None:
    """The killed server's children (the digest child, the inspection's sandbox) notice
    and exit."""
    deadline = time.monotonic() + wait
    while orphans := [pid for pid in rnd.children if alive(pid)]:
        if time.monotonic() > deadline:
            for pid in orphans:  # the test's own leftovers: not left running after it fails
                psutil.Process(pid).kill()
            raise AssertionError(f"round {rnd.number} ({rnd.landed}): children live on: {orphans}")
        await asyncio.sleep(0.05)


def assert_no_corrupt_state(server: ServerProcess, rnd: Round) -> None:
    corrupt = sorted(p.name for p in server.state_dir.glob("*.corrupt"))
    assert not corrupt, f"round {rnd.number} ({rnd.landed}): state files found corrupt: {corrupt}"
    log = server.log_text()
    for sign in ("is unreadable", "does not hold its session", "is not a session"):
        assert sign not in log, f"round {rnd.number} ({rnd.landed}): the server met a corrupt state ({sign!r})"


async def wait_imports(api: ApiClient, count: int) -> list[dict[str, Any]]:
    """Every document's import finished (interrupted ones run again after a restart)."""
    deadline = time.monotonic() + IMPORT_WAIT
    while True:
        listing = await api.get("/api/documents?limit=1000")
        assert listing.status == 200, listing
        docs = listing.body
        pending = [d for d in docs if d["index_status"] in ("pending", "importing")]
        if len(docs) == count and not pending:
            return list(docs)
        assert time.monotonic() < deadline, f"imports not finished after {IMPORT_WAIT}s: {pending}"
        await asyncio.sleep(0.2)


def assert_nothing_left_over(server: ServerProcess, rounds: list[Round]) -> None:
    parts = sorted(p.name for p in server.upload_dir.glob("*"))
    assert not parts, f"partial files left after the sweep: {parts}"
    leftovers = sorted(p.name for p in server.state_dir.iterdir() if p.suffix != ".json")
    assert not leftovers, f"temporary or corrupt state files left: {leftovers}"
    states = {p.stem: p.read_text() for p in server.state_dir.glob("*.json")}
    sids = {r.session["session_id"] for r in rounds if r.session is not None}
    assert set(states) == sids, f"state files of unknown sessions: {sorted(set(states) - sids)}"
    unfinished = [sid for sid, text in states.items() if '"status":"completed"' not in text]
    assert not unfinished, f"sessions not completed: {unfinished}"
    blobs = sorted(p.name for p in server.data_dir.joinpath("documents").rglob("*") if p.is_file())
    assert blobs == sorted(f"{r.sha256}.pdf" for r in rounds), f"stored files != documents: {blobs}"


async def sessions_expire(server: ServerProcess, rounds: list[Round]) -> None:
    """A day later: the completed sessions' records expire and the sweep takes them;
    the documents stay. (The records are kept until then so /complete can be answered
    again; the test moves their expiry into the past while the server is down.)"""
    server.stop()
    for path in server.state_dir.glob("*.json"):
        record = json.loads(path.read_bytes())
        record["expires_at"] = time.time() - 1
        path.write_text(json.dumps(record))
    server.start()
    left = sorted(p.name for d in (server.state_dir, server.upload_dir) for p in d.iterdir())
    assert not left, f"expired sessions not swept: {left}"
    async with ApiClient(server.base_url) as api:
        for rnd in rounds:
            assert rnd.document_id is not None
            sha, size, _ = await api.download_sha256(rnd.document_id)
            assert (sha, size) == (rnd.sha256, rnd.size)


async def test_crash_loop(make_server: Any, tmp_path: Path, seed: int, report: Callable[[str], None]) -> None:
    n = env_int("FAULTS_N", 10)
    rng = random.Random(seed)
    control = tmp_path / "state-hook"
    server: ServerProcess = make_server(start=False, **{STATE_HOOK: str(control)})
    server.module = HOOKED_BACKEND
    server.start()
    tally = Tally()
    rounds: list[Round] = []
    started = time.monotonic()
    for number in range(n):
        point = POINTS[number % len(POINTS)]
        source = tmp_path / f"crash{number:03d}.pdf"
        sha = make_pdf(source, rng.randint(3 * MIB, 7 * MIB), text=f"Crash loop {number}", seed=seed % 10_000 + number)
        rnd = Round(number, point, source, sha)
        rounds.append(rnd)
        tally.points[point] += 1
        if point.startswith("state_"):
            await kill_in_state_save(server, rnd, rng, control)
        else:
            async with ApiClient(server.base_url) as api:
                if point == "chunks":
                    await kill_during_chunks(server, api, rnd, rng)
                else:
                    await kill_during_complete(server, api, rnd, rng)
            assert not server.running
        if point == "chunks":
            cut = rnd.started - rnd.acked
            tally.landed["chunks, with chunks in flight" if cut else "chunks, none in flight"] += 1
        else:
            tally.landed[rnd.landed] += 1
        await assert_children_gone(rnd)
        tally.children += len(rnd.children)
        await server.arestart()
        tally.restarts += 1
        assert_no_corrupt_state(server, rnd)
        await resume_and_finish(server, rnd, tally)

    await server.arestart()  # the start-up sweep, as after any restart
    tally.restarts += 1
    async with ApiClient(server.base_url) as api:
        docs = await wait_imports(api, n)
        assert sorted(d["sha256"] for d in docs) == sorted(r.sha256 for r in rounds)
        assert {d["id"] for d in docs} == {r.document_id for r in rounds}
        resumable = await api.get(f"{PREFIX}/resumable")
        assert resumable.status == 200 and resumable.body == [], resumable
    # The loop's servers were killed mid-upload, with their digest child up; those children
    # are gone (checked each round). A server at rest starts none (the importer is a
    # process of its own, and idle helpers leave): whatever this one holds goes with it.
    assert tally.children, "no killed server had a child process: the loop checked nothing"
    last = Round(n, "after imports", rounds[-1].source, rounds[-1].sha256, landed="after the imports")
    kill(server, last)
    await assert_children_gone(last)
    tally.children += len(last.children)
    await server.arestart()
    tally.restarts += 1
    assert_nothing_left_over(server, rounds)
    assert_no_corrupt_state(server, rounds[-1])
    await sessions_expire(server, rounds)
    tally.restarts += 1
    server.assert_no_tracebacks()
    report(f"{tally.line(n, time.monotonic() - started)} (FAULTS_SEED={seed})")
