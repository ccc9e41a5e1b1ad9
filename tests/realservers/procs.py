"""What every real-server fixture needs: free loopback ports, a bounded readiness wait,
a stop that leaves no process behind, and the skip-or-fail rule for a missing server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

REQUIRE = os.environ.get("STREAMING_TEST_REQUIRE_SERVERS") == "1"


def missing(what: str, how: str) -> None:
    """Skip (a developer's run) or fail (``make test``, CI): ``what`` is not installed."""
    message = f"{what} is not installed: run `{how}`"
    if REQUIRE:
        pytest.fail(message)
    pytest.skip(message)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held together while chosen, so
    they differ; a server may still lose one to a race: callers retry the start)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, log: Path,
               what: str) -> float:
    """Poll ``ready`` until it holds; the seconds it took. Fails at once if ``proc`` exits,
    and after ``timeout``, with the tail of the server's ``log``."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{tail(log)}")
        try:
            if ready():
                return time.monotonic() - start
        except Exception:  # not ready yet: refused, reset, starting up
            pass
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Send ``sig`` to the server's process group, SIGKILL it after ``grace``, reap it.
    The server runs in its own session (``start_new_session=True``), so its children go too."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, even if the leader exited
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Server(Protocol):
    root: Path

    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)
B = TypeVar("B")


def for_the_session(found: B | None, what: str, how: str, start: Callable[[B], S], describe: Callable[[S], str]
                    ) -> Iterator[S]:
    """The body of a session fixture: skip or fail when ``found`` (the binary) is missing,
    ``start`` the server, say how long it took, and at the end stop it and remove its dir."""
    if found is None:
        missing(what, how)
    assert found is not None
    begun = time.monotonic()
    server = start(found)
    print(f"\n{describe(server)}, ready in {time.monotonic() - begun:.2f} s")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
