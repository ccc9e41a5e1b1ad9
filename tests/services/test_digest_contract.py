"""The digest contract (``backend/services/digest.py``), run against every implementation:
the child (in its own process, and in a thread as in-process tests run it) and the inline
one. Each gets a real local chunk store; bytes are written before they are fed, as the
writer threads do."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from backend.services.digest import DigestLost, Digests, PrefixHandle
from backend.services.digest_inline import InlineDigests
from backend.services.pdf.scan import PdfStreamScanner
from backend.services.prefix_lane import PrefixLane
from backend.storage.local_chunks import LocalChunkStore
from tests.pdfgen import make_pdf
from tests.services.test_prefix_worker import tail_javascript

BLOCK = 256 << 10
scanner = functools.partial(PdfStreamScanner, None)

# name -> the implementation over a chunk store (one line per implementation)
DIGESTS: dict[str, Callable[[LocalChunkStore], Digests]] = {
    "child-process": lambda store: PrefixLane(store.blocking_reader(), scanner, "process"),
    "child-thread": lambda store: PrefixLane(store.blocking_reader(), scanner, "thread"),
    "inline": lambda store: InlineDigests(store, scanner),
}


@pytest.fixture
def store(tmp_path: Path) -> LocalChunkStore:
    return LocalChunkStore(tmp_path / "chunks")


@pytest.fixture(params=sorted(DIGESTS))
async def digests(request: pytest.FixtureRequest, store: LocalChunkStore) -> AsyncIterator[Digests]:
    impl = DIGESTS[request.param](store)
    impl.start()
    yield impl
    impl.close()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("pdf") / "a.pdf"
    make_pdf(path, 3 << 20)
    return path.read_bytes()


async def _upload(store: LocalChunkStore, size: int) -> str:
    uid = str(uuid.uuid4())
    await store.create(uid, size)
    return uid


async def _write(store: LocalChunkStore, digests: Digests, uid: str, offset: int, data: bytes,
                 fork: int | None, piece: int = 64 << 10) -> None:
    """Store ``data`` at ``offset`` block by block in a worker thread, feeding ``fork``."""
    writer = await store.open(uid, offset, len(data))

    def work() -> None:
        view = memoryview(data)
        for start in range(0, len(data), BLOCK):
            block = view[start:start + BLOCK]
            pieces = [block[i:i + piece] for i in range(0, len(block), piece)]
            writer.write_pieces(pieces)
            if fork is not None:
                digests.feed(fork, uid, offset + start, pieces)
        writer.close()

    await asyncio.to_thread(work)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _in_order(digests: Digests, store: LocalChunkStore, data: bytes, chunk: int,
                    piece: int = 64 << 10) -> tuple[str, PrefixHandle, list[Any]]:
    uid = await _upload(store, len(data))
    prefix = digests.new_state()
    found: list[Any] = []
    for offset in range(0, len(data), chunk):
        fork = await digests.fork(prefix)
        assert fork is not None
        await _write(store, digests, uid, offset, data[offset:offset + chunk], fork, piece)
        adopted, findings, progress = await digests.commit(prefix, fork, len(data))
        prefix.update(progress)
        assert adopted
        found += findings
    return uid, prefix, found


async def test_an_in_order_upload_is_hashed_and_scanned(digests: Digests, store: LocalChunkStore,
                                                       pdf: bytes) -> None:
    _, prefix, findings = await _in_order(digests, store, pdf, 1 << 20)
    assert prefix.offset == len(pdf) and findings == []
    digest, _, summary, offset = await digests.finish(prefix)
    assert digest == _sha(pdf) and offset == len(pdf)
    assert summary["bytes_scanned"] == len(pdf) and summary["header_version"] == "1.7"


async def test_what_the_end_reveals_comes_with_the_range_that_reaches_it(digests: Digests,
                                                                         store: LocalChunkStore) -> None:
    data = tail_javascript(200_000)
    _, prefix, findings = await _in_order(digests, store, data, 64 << 10, piece=7)  # names split across pieces
    assert "javascript" in {f.kind for f in findings}
    digest, every, _, _ = await digests.finish(prefix)
    assert digest == _sha(data) and "javascript" in {f.kind for f in every}


async def test_a_range_ahead_of_a_gap_is_read_back_when_the_gap_fills(digests: Digests, store: LocalChunkStore,
                                                                      pdf: bytes) -> None:
    chunk = 1 << 20
    uid = await _upload(store, len(pdf))
    prefix = digests.new_state()
    await _write(store, digests, uid, chunk, pdf[chunk:2 * chunk], None)  # ahead of the gap: no fork
    fork = await digests.fork(prefix)
    assert fork is not None
    await _write(store, digests, uid, 0, pdf[:chunk], fork)
    adopted, _, progress = await digests.commit(prefix, fork, len(pdf))
    prefix.update(progress)
    assert adopted and prefix.offset == chunk
    ok, _, progress = await digests.catch_up(prefix, uid, chunk, chunk, _sha(pdf[chunk:2 * chunk]), len(pdf))
    prefix.update(progress)
    assert ok and prefix.offset == 2 * chunk
    ok, _, progress = await digests.catch_up(prefix, uid, chunk, chunk, "0" * 64, len(pdf))  # fed already
    assert ok and progress is not None and progress[0] == 2 * chunk
    await _write(store, digests, uid, 2 * chunk, pdf[2 * chunk:], None)
    ok, _, progress = await digests.catch_up(prefix, uid, 2 * chunk, len(pdf) - 2 * chunk, "0" * 64, len(pdf))
    assert not ok and progress is not None and progress[0] == 2 * chunk  # bytes that do not check out: unchanged
    ok, _, progress = await digests.catch_up(prefix, uid, 2 * chunk, len(pdf) - 2 * chunk, _sha(pdf[2 * chunk:]),
                                             len(pdf))
    assert ok
    assert (await digests.finish(prefix))[0] == _sha(pdf)


async def test_a_fork_with_a_gap_is_not_adopted(digests: Digests, store: LocalChunkStore) -> None:
    data = b"%PDF-1.7\n" + os.urandom(600_000)
    uid = await _upload(store, len(data))
    prefix = digests.new_state()
    fork = await digests.fork(prefix)
    assert fork is not None
    await _write(store, digests, uid, 0, data[:BLOCK], None)
    await _write(store, digests, uid, BLOCK, data[BLOCK:], fork)  # the first block never fed
    adopted, findings, progress = await digests.commit(prefix, fork, len(data))
    assert not adopted and findings == [] and progress is not None and progress[0] == 0


async def test_only_the_first_of_two_forks_from_one_place_is_adopted(digests: Digests, store: LocalChunkStore) -> None:
    data = b"%PDF-1.7\n" + os.urandom(100_000)
    uid = await _upload(store, len(data))
    prefix = digests.new_state()
    first, second = await digests.fork(prefix), await digests.fork(prefix)
    assert first is not None and second is not None
    await _write(store, digests, uid, 0, data, first)
    await _write(store, digests, uid, 0, data, second)
    assert (await digests.commit(prefix, first, len(data)))[0]
    assert not (await digests.commit(prefix, second, len(data)))[0]


async def test_rebuild_verifies_every_range(digests: Digests, store: LocalChunkStore, pdf: bytes) -> None:
    chunk = 1 << 20
    uid = await _upload(store, len(pdf))
    await _write(store, digests, uid, 0, pdf, None)
    ranges = [(i, min(chunk, len(pdf) - i), _sha(pdf[i:i + chunk])) for i in range(0, len(pdf), chunk)]
    ranges[2] = (ranges[2][0], ranges[2][1], "f" * 64)  # recorded, but the bytes say otherwise
    prefix, bad, findings = await digests.rebuild(uid, ranges, len(pdf))
    assert bad == [2 * chunk] and findings == [] and prefix.offset == 2 * chunk
    prefix, bad, _ = await digests.rebuild(uid, [(0, len(pdf), _sha(pdf))], len(pdf))
    assert bad == [] and prefix.offset == len(pdf)
    assert (await digests.finish(prefix))[0] == _sha(pdf)


async def test_a_forgotten_state_is_lost(digests: Digests) -> None:
    prefix = digests.new_state()
    assert (await digests.finish(prefix))[0] == _sha(b"")
    digests.forget(prefix.id)
    with pytest.raises(DigestLost):
        await digests.finish(prefix)


async def test_a_discarded_fork_cannot_be_committed(digests: Digests) -> None:
    prefix = digests.new_state()
    fork = await digests.fork(prefix)
    assert fork is not None
    digests.discard(fork)
    with pytest.raises(DigestLost):
        await digests.commit(prefix, fork, 10)


class _CountingStore(LocalChunkStore):
    """A local store whose blocking reader counts the bytes read back, or that has none
    (as an object store before completion): the inline digest then reads through the
    store's async ``read_into``."""

    def __init__(self, root: Path, blocking: bool) -> None:
        super().__init__(root)
        self.blocking = blocking
        self.read_back = 0

    def blocking_reader(self) -> Any:
        if not self.blocking:
            return None
        store, inner = self, self.reader

        class Reader:
            def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
                got = inner.read_into(upload_id, offset, buf)
                store.read_back += got
                return got

        return Reader()

    async def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        got = await super().read_into(upload_id, offset, buf)
        self.read_back += got
        return got


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking-reader", "async-store"])
async def test_inline_reads_back_only_what_came_ahead_of_a_gap(tmp_path: Path, pdf: bytes, blocking: bool) -> None:
    store = _CountingStore(tmp_path, blocking)
    digests = InlineDigests(store, scanner)
    try:
        await _in_order(digests, store, pdf, 1 << 20)
        assert store.read_back == 0  # in order: the bytes in hand were enough
        uid = await _upload(store, len(pdf))
        await _write(store, digests, uid, 0, pdf, None)
        prefix = digests.new_state()
        ok, _, _ = await digests.catch_up(prefix, uid, 0, len(pdf), _sha(pdf), len(pdf))
        assert ok and store.read_back == len(pdf)
    finally:
        digests.close()


async def test_inline_a_feed_that_fails_spoils_the_fork_not_the_chunk(tmp_path: Path) -> None:
    """A scanner that raises in the writer thread must not fail the chunk (it is stored):
    the fork is not adopted, and the error comes back from the read-back as DigestLost."""

    class Exploding:
        offset = 0

        def feed(self, data: Any) -> list[Any]:
            raise RuntimeError("scanner bug")

        def copy(self) -> Exploding:
            return self

        def finish(self) -> list[Any]:
            return []

        def summary(self) -> dict[str, Any]:
            return {}

    store = LocalChunkStore(tmp_path)
    digests = InlineDigests(store, Exploding)
    try:
        uid = await _upload(store, 1000)
        prefix = digests.new_state()
        fork = await digests.fork(prefix)
        assert fork is not None
        await _write(store, digests, uid, 0, b"x" * 1000, fork)  # does not raise
        assert not (await digests.commit(prefix, fork, 1000))[0]
        with pytest.raises(DigestLost):
            await digests.catch_up(prefix, uid, 0, 1000, _sha(b"x" * 1000), 1000)
    finally:
        digests.close()
