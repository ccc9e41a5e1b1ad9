"""The prefix states of every upload, and the ``child`` digest's own process.

:class:`PrefixWorker` holds the states (:mod:`backend.services.digest` has the contract)
and carries out each operation; both digest implementations use it: the ``inline`` one in
the server (:mod:`backend.services.digest_inline`), the ``child`` one in a process of its
own, described here.

Every byte of an upload is hashed twice (the chunk's checksum and the whole file's) and
scanned once. In the server process those three passes and the event loop that reads the
socket take turns on one GIL, and on a two-core machine most of the lost time was threads
waiting to get it back. Here the whole-file hash and the scan run in a process of their own
that reads the bytes back from the partial file (just written: the page cache) and owns
every session's prefix state. The server tells it what happened, in order, over a pipe:

- ``open``: a new, empty prefix state (a new session, or one rebuilt after a restart).
- ``fork`` / ``fork_feed`` / ``commit``: a chunk that starts where the prefix ends is fed
  to a fork of the state as the server's writer thread puts its blocks on disk, so the
  fork is ready moments after the chunk's last byte; once the chunk's checksum holds,
  ``commit`` makes the fork the state (if the state still ends where the fork began)
  and answers what the chunk's bytes carry. ``discard`` drops a fork.
- ``catch_up``: a recorded chunk that now extends the prefix (it arrived ahead of a gap)
  is read back and checked against its recorded SHA-256 before it is fed.
- ``rebuild``: verify every recorded byte range (chunks, and an append's partial tail)
  and rebuild the state over the verified prefix.
- ``finish``: the whole-file digest, every finding and the scan's summary.

``commit``, ``catch_up`` and ``rebuild`` are told where the file ends: the operation that
brings the state there also finishes the scan, so what the scanner held back for its
look-ahead (the file's last 16 KiB), and what only the end reveals (trailing data, no
``%%EOF``), is answered with the chunk that completed the file, not at ``finish``.
- ``drop``: the state (or fork) is no longer needed.

:class:`PrefixWorker` is plain, synchronous and single-threaded; :mod:`.prefix_lane` runs
it in a child process (``main``; or, for in-process tests, in one thread) and carries the
messages.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from backend.services.children import die_with_parent
from backend.services.digest import Progress
from backend.services.prefix_state import HasherFactory, PrefixState, ScannerFactory
from backend.storage.base import RangeReader

READ_BLOCK = 1 << 20


@dataclass
class _Fork:
    state: PrefixState
    start: int
    upload_id: str = ""
    written: int = 0  # the server has told that bytes up to here are on disk
    good: bool = True
    findings: list[Any] = field(default_factory=list)


class PrefixWorker:
    """Holds each session's prefix state by id; one caller at a time, except
    :meth:`feed_bytes`, which only touches its own fork."""

    def __init__(self, chunks: RangeReader, scanner_factory: ScannerFactory,
                 hasher_factory: HasherFactory | None = None) -> None:
        """``hasher_factory``: the whole-file hasher (hashlib's SHA-256 by default; a
        serializable one where states travel between replicas)."""
        self.chunks = chunks
        self.scanner_factory = scanner_factory
        self.hasher_factory = hasher_factory
        self.states: dict[int, PrefixState] = {}
        self.forks: dict[int, _Fork] = {}
        self._buf = bytearray(READ_BLOCK)  # every full block is read into this one

    def _progress(self, state: PrefixState) -> Progress:
        return state.offset, state.scan_summary()

    @staticmethod
    def _at_end(state: PrefixState, end: int) -> list[Any]:
        """The scan's last findings if the state has reached ``end`` (the file's size);
        the scanner's ``finish`` is idempotent, so a later ``finish`` adds none."""
        return state.finish() if state.offset == end else []

    def _new_state(self) -> PrefixState:
        return PrefixState(self.scanner_factory(), self.hasher_factory() if self.hasher_factory else None)

    def open(self, state_id: int) -> None:
        self.states[state_id] = self._new_state()

    def drop(self, state_id: int) -> None:
        self.states.pop(state_id, None)

    # -- a chunk streaming in at the prefix --------------------------------------------

    def fork(self, fork_id: int, state_id: int) -> None:
        state = self.states[state_id]
        self.forks[fork_id] = _Fork(state.copy(), state.offset, written=state.offset)

    def fork_feed(self, fork_id: int, upload_id: str, offset: int, length: int) -> None:
        """Bytes the server has just written: fed in whole blocks as they add up (the
        rest by ``commit``). A gap or a short read spoils the fork."""
        fork = self.forks[fork_id]
        if not fork.good:
            return
        if offset != fork.written:
            fork.good = False
            return
        fork.upload_id, fork.written = upload_id, offset + length
        whole = (fork.written - fork.state.offset) // READ_BLOCK * READ_BLOCK
        if whole:
            self._feed_fork(fork, whole)

    def feed_bytes(self, fork_id: int, offset: int, pieces: Sequence[memoryview]) -> None:
        """Bytes in hand (the inline digest, from the writer thread): fed at once, nothing
        read back. A gap spoils the fork."""
        fork = self.forks.get(fork_id)
        if fork is None or not fork.good:
            return
        if offset != fork.written or fork.state.offset != fork.written:
            fork.good = False
            return
        for piece in pieces:
            fork.findings += fork.state.feed(piece)
            fork.written += len(piece)

    def spoil(self, fork_id: int) -> None:
        """The fork missed bytes: it will not be adopted."""
        fork = self.forks.get(fork_id)
        if fork is not None:
            fork.good = False

    def _feed_fork(self, fork: _Fork, length: int) -> None:
        if self._feed(fork.upload_id, fork.state, fork.state.offset, length, fork.findings) != length:
            fork.good = False

    def commit(self, state_id: int, fork_id: int, end: int) -> tuple[bool, list[Any], Progress | None]:
        """The chunk checked out: its fork, fed to the end, becomes the state if it saw
        every byte and the state still ends where it began (then, if the state now ends at
        ``end``, the scan is finished). Returns (adopted, the fork's findings if so, the
        state's progress)."""
        fork = self.forks.pop(fork_id)
        if fork.good and fork.written > fork.state.offset:
            self._feed_fork(fork, fork.written - fork.state.offset)
        state = self.states.get(state_id)
        if state is None:
            return False, [], None
        if not fork.good or state.offset != fork.start:
            return False, [], self._progress(state)
        state.adopt(fork.state)
        return True, fork.findings + self._at_end(state, end), self._progress(state)

    def discard(self, fork_id: int) -> None:
        self.forks.pop(fork_id, None)

    # -- read back from the store ------------------------------------------------------

    def catch_up(self, state_id: int, upload_id: str, offset: int, length: int,
                 expected: str, end: int) -> tuple[bool, list[Any], Progress | None]:
        """Feed one recorded chunk into the state; commit only if it hashes right (and
        finish the scan if the state then ends at ``end``)."""
        state = self.states.get(state_id)
        if state is None:
            return False, [], None
        if state.offset != offset:
            return True, [], self._progress(state)  # fed already (a fork was adopted)
        ok, findings = self._feed_checked(upload_id, state, offset, length, expected)
        if ok:
            findings += self._at_end(state, end)
        return ok, findings, self._progress(state)

    def rebuild(self, state_id: int, upload_id: str, ranges: list[tuple[int, int, str]],
                file_size: int) -> tuple[list[int], list[Any], Progress]:
        """A new state over the verified prefix. ``ranges`` are the recorded byte ranges
        (offset, length, SHA-256), in order; returns the offsets of those whose bytes do
        not hash to what was recorded (they must be sent again)."""
        state = self.states[state_id] = self._new_state()
        bad: list[int] = []
        findings: list[Any] = []
        for offset, length, expected in sorted(ranges):
            if offset == state.offset:
                ok, found = self._feed_checked(upload_id, state, offset, length, expected)
                findings += found
            else:
                ok = self._hash_range(upload_id, offset, length) == expected
            if not ok:
                bad.append(offset)
        findings += self._at_end(state, file_size)
        return bad, findings, self._progress(state)

    def finish(self, state_id: int) -> tuple[str, list[Any], dict[str, Any], int]:
        """(whole-file SHA-256 so far, every finding, scan summary, offset) at the end;
        the scan may have been finished already (by the operation that reached the end)."""
        state = self.states[state_id]
        state.finish()
        scanner: Any = state.scanner
        findings = list(scanner.findings) if scanner is not None else []
        return state.hexdigest(), findings, state.scan_summary(), state.offset

    def _blocks(self, upload_id: str, offset: int, length: int) -> Iterator[bytes | bytearray]:
        """The range in blocks, read without an allocation each (a full block is always
        the same buffer: use it before asking for the next); stops short if the store does."""
        end = offset + length
        while offset < end:
            n = min(READ_BLOCK, end - offset)
            buf = self._buf if n == READ_BLOCK else bytearray(n)
            got = self.chunks.read_into(upload_id, offset, buf)
            if got < n:
                if got:
                    yield bytes(buf[:got])
                return
            yield buf
            offset += n

    def _feed(self, upload_id: str, state: PrefixState, offset: int, length: int, findings: list[Any],
              digest: Any = None) -> int:
        got = 0
        for block in self._blocks(upload_id, offset, length):
            if digest is not None:
                digest.update(block)
            findings += state.feed(block)
            got += len(block)
        return got

    def _feed_checked(self, upload_id: str, state: PrefixState, offset: int, length: int,
                      expected: str) -> tuple[bool, list[Any]]:
        fork = state.copy()
        digest = hashlib.sha256()
        findings: list[Any] = []
        if self._feed(upload_id, fork, offset, length, findings, digest) != length or digest.hexdigest() != expected:
            return False, []
        state.adopt(fork)
        return True, findings

    def _hash_range(self, upload_id: str, offset: int, length: int) -> str | None:
        digest = hashlib.sha256()
        got = 0
        for block in self._blocks(upload_id, offset, length):
            digest.update(block)
            got += len(block)
        return digest.hexdigest() if got == length else None


#: Operations that answer; the others (``open``, ``drop``, ``fork``, ``fork_feed``,
#: ``discard``) are told and never answer, so the writer thread never waits on them.
ANSWERED = frozenset({"commit", "catch_up", "rebuild", "finish", "ping"})


#: By default, a worker that holds no state exits after this long without a message, so a
#: server at rest has no worker (its ~40 MiB); the next upload starts one (~0.2 s).
IDLE_EXIT_SECONDS = 30.0


def handle(worker: PrefixWorker, op: str, args: tuple[Any, ...]) -> Any:
    if op == "ping":
        return os.getpid()
    method: Callable[..., Any] = getattr(worker, op)
    return method(*args)


def serve(conn: Connection, chunks: RangeReader, scanner_factory: ScannerFactory, parent: int,
          idle_exit: float = IDLE_EXIT_SECONDS) -> None:
    """The child's main loop: messages in order until the server goes away, or until it
    has held no state and heard nothing for ``idle_exit`` seconds."""
    die_with_parent(parent)
    worker = PrefixWorker(chunks, scanner_factory)
    while True:
        try:
            if not worker.states and not worker.forks and not conn.poll(idle_exit):
                return  # nothing held, nothing asked: the next message starts a new worker
            call_id, op, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result: Any = handle(worker, op, args)
            error = None
        except Exception as exc:  # answered to the caller; the worker goes on
            result, error = None, f"{type(exc).__name__}: {exc}"
        if op in ANSWERED:
            try:
                conn.send((call_id, result, error))
            except OSError:  # the server is gone (killed mid-answer): nothing to tell
                return


def main() -> None:
    """``python -m backend.services.prefix_worker FD PARENT_PID [IDLE_EXIT]``: the server
    starts it with one end of a socket pair; the first message is (range reader, scanner
    factory)."""
    conn = Connection(int(sys.argv[1]))
    parent = int(sys.argv[2])
    idle_exit = float(sys.argv[3]) if len(sys.argv) > 3 else IDLE_EXIT_SECONDS
    try:
        chunks, scanner_factory = conn.recv()
    except (EOFError, OSError):
        return
    serve(conn, chunks, scanner_factory, parent, idle_exit)


if __name__ == "__main__":
    main()
