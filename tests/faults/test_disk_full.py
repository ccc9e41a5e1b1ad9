"""A full disk, for real: the server's directories on a small tmpfs, filled with ballast.

- A chunk that does not fit: 507 ``insufficient_storage``; the chunk is not counted
  (its partial bytes neither), and once space returns the upload goes on and completes.
- A chunk that fits but whose state write does not: 507; the state file on disk is
  the previous one, whole (no temporary file left), and the retried chunk is recorded.
- ``/complete`` on a full disk (the state write fails, or SQLite's): 507, and again
  once space returns, the same session completes byte-exact.
- ``/initiate`` and ``/resume`` on a full disk: 507, nothing left behind.

Needs root (``mount -t tmpfs``); skipped with the reason where mounting is refused.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import PREFIX, ApiClient
from tests.e2e.conftest import MIB, ServerProcess
from tests.faults.victim import CS, SIZE, TOTAL, chunk_of, expect
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

DISK = 24 * MIB
PAGE = 4096


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mnt = tmp_path_factory.mktemp("small_disk")
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class Ballast:
    """Fills the disk to leave exactly ``leave`` bytes free."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk
        self.path = disk / "ballast"

    def free(self) -> int:
        st = os.statvfs(self.disk)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        with open(self.path, "ab") as f:
            while (left := self.free() - leave) > 0:
                try:
                    f.write(b"\0" * min(left, MIB))
                    f.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        assert self.free() == leave, (self.free(), leave)

    def empty(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def disk_server(small_disk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose state, partial files and documents are on the small disk (its log
    is not: a full disk must not silence it)."""
    dirs = {"STREAMING_STATE_DIR": small_disk / "upload_states", "STREAMING_DATA_DIR": small_disk / "data",
            "STREAMING_UPLOAD_DIR": small_disk / "partial"}
    env = {k: str(v) for k, v in dirs.items()}
    env.update(STREAMING_RATE_LIMIT_PER_MINUTE="0", STREAMING_IP_RATE_LIMIT_PER_MINUTE="0",
               STREAMING_READY_MIN_FREE_MB="0")
    server = ServerProcess(tmp_path_factory.mktemp("disk_server"), env)
    server.state_dir, server.data_dir, server.upload_dir = (dirs["STREAMING_STATE_DIR"], dirs["STREAMING_DATA_DIR"],
                                                            dirs["STREAMING_UPLOAD_DIR"])
    server.start()
    try:
        yield server
    finally:
        Ballast(small_disk).empty()
        server.stop(timeout=5)
        print(f"----- server log -----\n{server.log_tail()}")


@pytest.fixture
def full_disk_server(disk_server: ServerProcess, small_disk: Path) -> Iterator[tuple[ServerProcess, Ballast]]:
    """The server and the disk's ballast, emptied after each test whatever happened."""
    ballast = Ballast(small_disk)
    try:
        yield disk_server, ballast
    finally:
        ballast.empty()


def saved_chunks(server: ServerProcess, sid: str) -> list[int]:
    """The chunks the state file on disk records (it must parse: never half-written)."""
    leftovers = [p.name for p in server.state_dir.iterdir() if p.suffix != ".json"]
    assert not leftovers, f"temporary or corrupt state files: {leftovers}"
    record = json.loads((server.state_dir / f"{sid}.json").read_bytes())
    return sorted(int(k) for k in record["chunks"])


async def finish(api: ApiClient, source: bytes, sid: str, have: list[int]) -> int:
    for i in sorted(set(range(TOTAL)) - set(have)):
        reply = await api.send_chunk(sid, i, chunk_of(source, i), CS, TOTAL)
        assert reply.status == 200, reply
    done = await api.complete(sid)
    assert done.status == 200, done
    sha, size, _ = await api.download_sha256(done.body["document"]["id"])
    assert (sha, size) == (hashlib.sha256(source).hexdigest(), len(source)), "not byte-exact"
    await wait_imported(api, done.body["document"]["id"])  # its index write must not race the next ballast
    return int(done.body["document"]["id"])


async def wait_imported(api: ApiClient, doc_id: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (doc := (await api.get(f"/api/documents/{doc_id}")).body)["index_status"] in ("pending", "importing"):
        assert asyncio.get_running_loop().time() < deadline, doc
        await asyncio.sleep(0.1)


async def test_chunk_that_does_not_fit(full_disk_server: tuple[ServerProcess, Ballast], source: bytes) -> None:
    server, ballast = full_disk_server
    async with ApiClient(server.base_url) as api:
        sid = (await api.initiate("full.pdf", SIZE))["session_id"]
        ballast.fill(leave=CS // 4)
        reply = await api.send_chunk(sid, 0, chunk_of(source, 0), CS, TOTAL)
        expect(reply, 507, "insufficient_storage")
        expect(await api.send_chunk(sid, 1, chunk_of(source, 1), CS, TOTAL), 507, "insufficient_storage")
        expect(await api.resume(sid), 507, "insufficient_storage")  # its state write does not fit either
        assert saved_chunks(server, sid) == []
        ballast.empty()
        resumed = await api.resume(sid)
        assert resumed.status == 200 and resumed.body["uploaded_chunks"] == [], resumed
        assert resumed.body["progress_percentage"] == 0, "bytes of the refused chunks were counted"
        await finish(api, source, sid, [])
    server.assert_no_tracebacks()


async def test_chunk_whose_state_write_does_not_fit(full_disk_server: tuple[ServerProcess, Ballast],
                                                    source: bytes) -> None:
    server, ballast = full_disk_server
    async with ApiClient(server.base_url) as api:
        sid = (await api.initiate("state.pdf", SIZE))["session_id"]
        ballast.fill(leave=CS)  # room for chunk 0's bytes, not one page more
        reply = await api.send_chunk(sid, 0, chunk_of(source, 0), CS, TOTAL)
        expect(reply, 507, "insufficient_storage")
        assert ballast.free() == 0, "the chunk's bytes did not land: the state write was not what failed"
        assert saved_chunks(server, sid) == [], "the state file changed though its write failed"
        ballast.empty()
        again = await api.send_chunk(sid, 0, chunk_of(source, 0), CS, TOTAL)  # the client retries the 507
        assert again.status == 200, again
        assert saved_chunks(server, sid) == [0], "the retried chunk's 200 came before its state was saved"
        await finish(api, source, sid, [0])
    server.assert_no_tracebacks()


@pytest.mark.parametrize("leave", [0, PAGE], ids=["state write fails", "database write fails"])
async def test_complete_on_a_full_disk(full_disk_server: tuple[ServerProcess, Ballast], tmp_path: Path,
                                       leave: int) -> None:
    server, ballast = full_disk_server
    make_pdf(tmp_path / "new.pdf", SIZE, text="Full disk", seed=1000 + leave)  # new bytes: no duplicate
    source = (tmp_path / "new.pdf").read_bytes()
    async with ApiClient(server.base_url) as api:
        sid = (await api.initiate("complete.pdf", SIZE))["session_id"]
        for i in range(TOTAL):
            assert (await api.send_chunk(sid, i, chunk_of(source, i), CS, TOTAL)).status == 200
        ballast.fill(leave=leave)
        expect(await api.complete(sid), 507, "insufficient_storage")
        ballast.empty()
        await finish(api, source, sid, list(range(TOTAL)))
    server.assert_no_tracebacks()


async def test_state_write_cut_short_is_not_published(full_disk_server: tuple[ServerProcess, Ballast]) -> None:
    """A record longer than the space left: the disk takes a part of the write without an
    error (a short write); the part must not be renamed over the previous record."""
    server, ballast = full_disk_server
    async with ApiClient(server.base_url) as api:
        sid = (await api.initiate("short.pdf", SIZE))["session_id"]
        for i in range(80):  # every client id is kept: the record grows past two pages
            assert (await api.resume(sid, f"client{i:03d}_" + "x" * 110)).status == 200
        before = (server.state_dir / f"{sid}.json").read_bytes()
        assert len(before) > 2 * PAGE, len(before)
        ballast.fill(leave=PAGE)
        expect(await api.resume(sid, "one_client_too_many"), 507, "insufficient_storage")
        assert (server.state_dir / f"{sid}.json").read_bytes() == before
        saved_chunks(server, sid)
        ballast.empty()
        assert (await api.resume(sid, "one_client_too_many")).status == 200
        assert "one_client_too_many" in json.loads((server.state_dir / f"{sid}.json").read_bytes())["client_ids"]
    server.assert_no_tracebacks()


async def test_initiate_on_a_full_disk(full_disk_server: tuple[ServerProcess, Ballast], source: bytes) -> None:
    server, ballast = full_disk_server
    async with ApiClient(server.base_url) as api:
        states, parts = set(server.state_dir.iterdir()), set(server.upload_dir.iterdir())
        ballast.fill(leave=0)
        reply = await api.post_json(f"{PREFIX}/initiate", {"filename": "none.pdf", "file_size": SIZE})
        expect(reply, 507, "insufficient_storage")
        assert set(server.state_dir.iterdir()) == states and set(server.upload_dir.iterdir()) == parts
        ballast.empty()
        sid = (await api.initiate("after.pdf", SIZE))["session_id"]
        await finish(api, source, sid, [])
    server.assert_no_tracebacks()
