"""The ``child`` digest (:class:`~backend.services.digest.Digests`): the prefix states live
in a :class:`~backend.services.prefix_worker.PrefixWorker` of their own, and this lane
carries the messages to it. The worker reads every block back from the chunk store (a
:class:`~backend.storage.base.RangeReader`, picklable: the local files, from the page
cache); ``feed`` only tells it where the bytes are.

``tell`` sends and never waits (thread-safe: the writer threads tell the worker about each
block they put on disk); ``ask`` sends and awaits the answer. Messages are handled in the
order they were sent, so an ``ask`` also waits for everything told before it.

In ``process`` mode (the server's) the worker is a child process
(``python -m backend.services.prefix_worker``: it imports only what it needs), started at
first use and started again after it died or left (it exits once it has held no state
for a while, so a server at rest has no worker); states held by a dead worker are gone, which
the caller learns from :class:`LaneError` (and rebuilds from the bytes). In ``thread``
mode (in-process tests) the same worker runs in one thread of this process.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from backend.services.digest import DigestLost, PrefixHandle as PrefixHandle, Progress, Range
from backend.services.prefix_state import ScannerFactory
from backend.services.prefix_worker import ANSWERED, IDLE_EXIT_SECONDS, PrefixWorker, handle
from backend.storage.base import RangeReader

Mode = Literal["process", "thread"]
_ROOT = str(Path(__file__).resolve().parents[2])  # where the ``backend`` package is


class LaneError(DigestLost):
    """The worker could not do what was asked (it died, or the state is unknown to it)."""


class PrefixLane:
    def __init__(self, chunks: RangeReader, scanner_factory: ScannerFactory, mode: Mode = "process",
                 idle_exit: float = IDLE_EXIT_SECONDS) -> None:
        self.chunks = chunks
        self.idle_exit = idle_exit
        self.scanner_factory = scanner_factory
        self.mode = mode
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._forgotten: collections.deque[int] = collections.deque()  # appended by finalizers
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._conn: Connection | None = None
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._worker: PrefixWorker | None = None

    def new_id(self) -> int:
        return next(self._ids)

    def new_state(self) -> PrefixHandle:
        """An empty state in the worker."""
        prefix = PrefixHandle(self)
        self.tell("open", prefix.id)
        return prefix

    def forget(self, state_id: int) -> None:
        """A handle went away: drop its state now if the lane is free, else with the next
        message (a finalizer may run on any thread, even one that is sending, so it never
        waits for the send lock). A worker left holding no state exits when idle."""
        self._forgotten.append(state_id)
        if not self._send_lock.acquire(blocking=False):
            return
        try:
            if self._conn is not None or self._thread is not None:  # never start a worker to drop
                self._send_drops()
        except LaneError:
            pass
        finally:
            self._send_lock.release()

    # -- the digest contract ---------------------------------------------------------

    async def fork(self, prefix: PrefixHandle) -> int | None:
        fork_id = self.new_id()
        try:
            self.tell("fork", fork_id, prefix.id)
        except LaneError:
            return None
        return fork_id

    def feed(self, fork_id: int, upload_id: str, offset: int, pieces: Sequence[memoryview]) -> None:
        self.tell("fork_feed", fork_id, upload_id, offset, sum(len(p) for p in pieces))

    def discard(self, fork_id: int) -> None:
        try:
            self.tell("discard", fork_id)
        except LaneError:
            pass

    async def commit(self, prefix: PrefixHandle, fork_id: int, end: int) -> tuple[bool, list[Any], Progress | None]:
        result: tuple[bool, list[Any], Progress | None] = await self.ask("commit", prefix.id, fork_id, end)
        return result

    async def catch_up(self, prefix: PrefixHandle, upload_id: str, offset: int, length: int, expected: str,
                       end: int) -> tuple[bool, list[Any], Progress | None]:
        result: tuple[bool, list[Any], Progress | None] = await self.ask(
            "catch_up", prefix.id, upload_id, offset, length, expected, end)
        return result

    async def rebuild(self, upload_id: str, ranges: Sequence[Range], file_size: int
                      ) -> tuple[PrefixHandle, list[int], list[Any]]:
        prefix = PrefixHandle(self)
        bad, findings, progress = await self.ask("rebuild", prefix.id, upload_id, list(ranges), file_size)
        prefix.update(progress)
        return prefix, bad, findings

    async def finish(self, prefix: PrefixHandle) -> tuple[str, list[Any], dict[str, Any], int]:
        result: tuple[str, list[Any], dict[str, Any], int] = await self.ask("finish", prefix.id)
        return result

    # -- messages ---------------------------------------------------------------------

    def tell(self, op: str, *args: Any) -> None:
        with self._send_lock:
            self._send(0, op, args)

    async def ask(self, op: str, *args: Any) -> Any:
        assert op in ANSWERED
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call_id = self.new_id()
        with self._send_lock:
            self._pending[call_id] = (loop, future)
            try:
                self._send(call_id, op, args)
            except BaseException:
                self._pending.pop(call_id, None)
                raise
        return await future

    def _send(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        """With the send lock held: the forgotten states' drops first, then the message."""
        self._ensure_started()
        self._send_drops()
        self._send_one((call_id, op, args))

    def _send_drops(self) -> None:
        for _ in range(len(self._forgotten)):
            self._send_one((0, "drop", (self._forgotten.popleft(),)))

    def _send_one(self, message: tuple[int, str, tuple[Any, ...]]) -> None:
        if self.mode == "thread":
            assert self._thread is not None
            self._thread.submit(self._run_here, *message)
            return
        assert self._conn is not None
        try:
            self._conn.send(message)
        except (OSError, ValueError) as exc:
            self._broken(f"the prefix worker is gone ({exc})")
            raise LaneError("the prefix worker is gone") from exc

    def _run_here(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        assert self._worker is not None
        try:
            result, error = handle(self._worker, op, args), None
        except Exception as exc:
            result, error = None, f"{type(exc).__name__}: {exc}"
        if op in ANSWERED:
            self._settle(call_id, result, error)

    def _settle(self, call_id: int, result: Any, error: str | None) -> None:
        entry = self._pending.pop(call_id, None)
        if entry is None:
            return
        loop, future = entry

        def resolve() -> None:
            if future.done():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(LaneError(error))

        loop.call_soon_threadsafe(resolve)

    # -- the worker's life --------------------------------------------------------------

    def start(self) -> None:
        """Start the worker now rather than at the first message (it takes ~0.2 s)."""
        with self._send_lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self.mode == "thread":
            if self._thread is None:
                self._worker = PrefixWorker(self.chunks, self.scanner_factory)
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefix")
            return
        if self._conn is not None:
            return
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
        process = subprocess.Popen(
            [sys.executable, "-m", "backend.services.prefix_worker", str(theirs.fileno()), str(os.getpid()),
             str(self.idle_exit)],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        conn = Connection(os.dup(ours.fileno()))
        conn.send((self.chunks, self.scanner_factory))
        self._conn, self._sock, self._process = conn, ours, process
        self._forgotten.clear()  # a new worker holds no states
        threading.Thread(target=self._read, args=(conn, process), name="prefix answers", daemon=True).start()

    def _read(self, conn: Connection, process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                call_id, result, error = conn.recv()
            except (EOFError, OSError):
                with self._send_lock:
                    if self._conn is conn:
                        self._broken("the prefix worker stopped")
                process.wait()  # no zombie
                return
            self._settle(call_id, result, error)

    def _broken(self, why: str) -> None:
        """With the send lock held: fail every waiting ask; the next message starts a new worker."""
        self._hang_up()
        for call_id in list(self._pending):
            self._settle(call_id, None, why)

    def _hang_up(self) -> None:
        """Shut the socket down (which also wakes the answer reader, blocked in a read on
        it: closing its descriptor would not) and close it."""
        conn, sock, self._conn, self._sock = self._conn, self._sock, None, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._send_lock:
            process, self._process = self._process, None
            pool, self._thread = self._thread, None
            self._hang_up()  # the worker sees EOF and returns
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if pool is not None:
            pool.shutdown(wait=True)

