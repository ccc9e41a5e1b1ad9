"""Sandbox: runs one function call at a time on untrusted input in a child process,
under a memory limit and a time limit.

What a hostile file can make a parser allocate or compute must not land in the server:
memory a C++ library allocates is rarely given back to the system, and CPU work in a
thread of the server holds its GIL, so every request would wait behind it.

Contract:

- ``call(fn, *args)`` (blocking: call it from a worker thread) runs ``fn(*args)`` in a
  child and returns its result, or raises what ``fn`` raised (exceptions must pickle).
  ``fn`` and its arguments must pickle too: module-level functions and plain data.
- Memory: the child's address space may grow by at most ``memory_bytes`` past what it
  holds after importing ``preload`` (``RLIMIT_AS``). Past it, allocations fail,
  ``MemoryError`` reaches the child's loop, and ``call`` raises
  :class:`LimitExceeded` (``limit="memory"``); the child then exits, since a library
  that ran out of memory half-way may be left in any state. A child killed by the
  kernel (SIGKILL we did not send) is reported the same way.
- Time: a call that has not answered after ``timeout`` seconds of wall-clock time gets
  its child killed and raises :class:`LimitExceeded` (``limit="time"``).
- A child that dies any other way (a crash in native code) raises :class:`ChildCrashed`.
- Up to ``workers`` calls run at once, each in its own child; more wait for one (the
  wait does not count against the time limit). Thread-safe.
- Children are spawned on first use (a clean interpreter that imports only what
  ``fn`` needs), retire after ``max_tasks`` calls or once their RSS grew by
  ``retire_growth`` bytes (what the parser kept is given back by exiting), and exit
  after ``idle_seconds`` without work, so that a server at rest holds none.
- ``close()`` ends every child.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, TypeVar

from backend.services.children import die_with_parent

log = logging.getLogger(__name__)

T = TypeVar("T")
Limit = Literal["memory", "time"]


class LimitExceeded(Exception):
    """The call needed more memory or time than the sandbox allows."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit)
        self.limit: Limit = limit


class ChildCrashed(Exception):
    """The child died while running the call (not from a limit)."""


_ROOT = str(Path(__file__).resolve().parents[2])  # where the ``backend`` package is


@dataclass(eq=False)
class _Child:
    process: subprocess.Popen[bytes]
    conn: Connection
    tasks: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _vm_size() -> int:
    """This process's virtual memory size in bytes (what ``RLIMIT_AS`` counts)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child_main(conn: Connection, parent: int, preload: tuple[str, ...], memory_bytes: int,
                retire_growth: int, max_tasks: int, idle_seconds: float) -> None:
    """The child's loop: one ``(fn, args)`` in, one ``(status, value, retiring)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's to handle
    die_with_parent(parent)
    for name in preload:
        import_module(name)
    soft = _vm_size() + memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    baseline = _rss()
    for done in range(1, max_tasks + 1):
        if not conn.poll(idle_seconds):
            return
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = ("memory", None)
        except BaseException as exc:  # the call's own refusal, handed to the caller
            reply = ("raised", exc)
        retiring = reply[0] == "memory" or done == max_tasks or _rss() - baseline > retire_growth
        try:
            conn.send((*reply, retiring))
        except MemoryError:
            conn.send(("memory", None, True))
            return
        if retiring:
            return


class Sandbox:
    """Child processes that run calls under limits (see the module doc)."""

    def __init__(self, *, memory_bytes: int, timeout: float, workers: int = 1,
                 preload: tuple[str, ...] = (), max_tasks: int = 64, retire_growth: int = 32 << 20,
                 idle_seconds: float = 120.0) -> None:
        self.memory_bytes = memory_bytes
        self.timeout = timeout
        self.preload = preload
        self.max_tasks = max_tasks
        self.retire_growth = retire_growth
        self.idle_seconds = idle_seconds
        # the parent retires an idle child this long before the child would exit by itself
        self._idle_margin = min(5.0, idle_seconds / 4)
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._closed = False

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a child. Raises LimitExceeded, ChildCrashed, or what fn raised."""
        with self._slots:
            child = self._take()
            try:
                return self._run(child, fn, args)  # type: ignore[no-any-return]
            finally:
                self._give_back(child)

    def _take(self) -> _Child:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            stale = [c for c in self._idle if now - c.last_used > self.idle_seconds - self._idle_margin]
            self._idle = [c for c in self._idle if c not in stale]
            child = self._idle.pop() if self._idle else None
        for old in stale:
            self._end(old)
        if child is None:
            child = self._spawn()
        with self._lock:
            closed = self._closed  # closed while the child started: it must not outlive the close
            if not closed:
                self._busy.add(child)
        if closed:
            self._kill(child)
            raise RuntimeError("the sandbox is closed")
        return child

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
            if child.process.poll() is None and not self._closed and child.tasks < self.max_tasks:
                child.last_used = time.monotonic()
                self._idle.append(child)
                reaper = threading.Timer(self.idle_seconds + 1, self._reap)
                reaper.daemon = True
                reaper.start()
                return
        self._end(child)

    def _reap(self) -> None:
        """Forget the idle children that have exited by themselves (``poll`` collects
        their exit status, so no zombie waits for the next call)."""
        with self._lock:
            gone = [c for c in self._idle if c.process.poll() is not None]
            self._idle = [c for c in self._idle if c not in gone]
        for child in gone:
            child.conn.close()

    def _spawn(self) -> _Child:
        """``python -m backend.services.sandbox FD PARENT_PID``: a clean interpreter, as
        multiprocessing's spawn would start, without the resource tracker process that
        spawn keeps alive for good beside the server (~13 MiB at rest)."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "backend.services.sandbox", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.preload, self.memory_bytes, self.retire_growth, self.max_tasks, self.idle_seconds))
        return _Child(process, conn)

    def _run(self, child: _Child, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        child.tasks += 1
        try:
            child.conn.send((fn, args))
            answered = child.conn.poll(self.timeout)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            answered = True  # the child is gone: recv below tells how
        if not answered:
            self._kill(child)
            raise LimitExceeded("time")
        try:
            status, value, retiring = child.conn.recv()
        except (EOFError, OSError):
            code = _wait(child.process, 5)
            self._kill(child)
            if code == -signal.SIGKILL:  # not ours: the kernel's OOM killer
                raise LimitExceeded("memory") from None
            raise ChildCrashed(f"the child process stopped (exit code {code})") from None
        if retiring:
            child.tasks = self.max_tasks  # ended on return
        if status == "memory":
            raise LimitExceeded("memory")
        if status == "raised":
            raise value
        return value

    @staticmethod
    def _kill(child: _Child) -> None:
        if child.process.poll() is None:
            child.process.kill()
        _wait(child.process, 5)

    def _end(self, child: _Child) -> None:
        try:
            child.conn.close()
        except OSError:
            pass
        if _wait(child.process, 1) is None:
            self._kill(child)

    @property
    def children(self) -> int:
        """Child processes alive now (idle or busy)."""
        with self._lock:
            return sum(1 for c in [*self._idle, *self._busy] if c.process.poll() is None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for child in idle:
            self._end(child)
        for child in busy:
            self._kill(child)


def _wait(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The child's exit code (negative: the signal that ended it), None if it still runs."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def main() -> None:
    """The child: the first message is its configuration, then :func:`_child_main`."""
    conn = Connection(int(sys.argv[1]))
    parent = int(sys.argv[2])
    try:
        preload, memory_bytes, retire_growth, max_tasks, idle_seconds = conn.recv()
    except (EOFError, OSError):
        return
    _child_main(conn, parent, preload, memory_bytes, retire_growth, max_tasks, idle_seconds)


if __name__ == "__main__":
    main()
