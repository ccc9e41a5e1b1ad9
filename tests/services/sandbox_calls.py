"""Functions the sandbox tests run in a child process (importable there, and light)."""

from __future__ import annotations

import os
import signal
import time

from backend.errors import SecurityRejected

_kept: list[bytearray] = []


def add(a: int, b: int) -> int:
    return a + b


def refuse(detail: str) -> None:
    raise SecurityRejected(f"refused: {detail}", findings=[{"kind": "javascript", "detail": detail}])


def allocate(mib: int) -> int:
    """Touch ``mib`` MiB (a parser that keeps what it allocated)."""
    block = bytearray(mib << 20)
    block[::4096] = b"x" * len(block[::4096])
    _kept.append(block)
    return len(block)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def spin(seconds: float) -> int:
    """CPU work under the child's GIL, not the caller's."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def pid() -> int:
    return os.getpid()
