"""The per-byte floor of issue 17, in CPU seconds, and pinning the benchmark's client.

The floor is what the server must do per byte, done once, in one thread: read the file,
write it, compute two SHA-256 over it (the chunk's and the whole file's) and feed our
streaming scan (``PdfStreamScanner`` with the server's default limits, the scanner the
prefix worker feeds through ``PrefixState``), in 1 MiB blocks. Its CPU is the thread's
own (``time.thread_time``: user + system), split by step, so that one pass gives the
floor with and without the scan.

``pin_client`` pins this process (the client) to one CPU; ``unpinned`` is the
``preexec_fn`` every server is started with, so a server (and every process and thread
it starts) gets the CPUs the benchmark had before it pinned itself, whatever it is.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from backend.services.pdf.scan import PdfStreamScanner
from backend.services.validation import scan_limits
from backend.settings import Settings

MIB, GIB = 1 << 20, 1 << 30

#: The CPUs this process could use when the module was imported (before any pinning).
ALL_CPUS: frozenset[int] = frozenset(os.sched_getaffinity(0))
_pinned: int | None = None


def pin_client(cpu: int) -> None:
    """Pin this process and the threads it starts from now on to ``cpu`` (taskset -c)."""
    global _pinned
    if cpu not in ALL_CPUS:
        raise ValueError(f"CPU {cpu} is not one of this process's CPUs {sorted(ALL_CPUS)}")
    os.sched_setaffinity(0, {cpu})
    _pinned = cpu


def pinned() -> int | None:
    return _pinned


def unpinned() -> None:
    """``preexec_fn`` for a server: undo the client's pinning in the child before exec."""
    if _pinned is not None:
        os.sched_setaffinity(0, ALL_CPUS)


def server_scanner() -> PdfStreamScanner:
    """The streaming scanner as the server makes it by default (validation.scanner_factory)."""
    return PdfStreamScanner(scan_limits(Settings.model_construct()))


def floor_pass(src: Path, out: Path) -> dict[str, Any]:
    """One floor pass over ``src`` (written to ``out``, removed after): wall and thread
    CPU seconds of each step. ``mib_s``: read + write + 2x SHA-256 (the old floor);
    ``scan_mib_s``: the same plus the scan; ``cpu_s``: every step's CPU (the issue's
    floor); ``cpu_noscan_s``: without the scan."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    chunk_hash, file_hash = hashlib.sha256(), hashlib.sha256()
    scanner = server_scanner()
    io_cpu = hash_cpu = scan_cpu = 0.0
    io_wall = hash_wall = scan_wall = 0.0
    size = 0
    with open(src, "rb", buffering=0) as fin, open(out, "wb", buffering=0) as fout:
        while True:
            c0, w0 = time.thread_time(), time.perf_counter()
            n = fin.readinto(buf)
            if not n:
                break
            fout.write(view[:n])
            c1, w1 = time.thread_time(), time.perf_counter()
            chunk_hash.update(view[:n])
            file_hash.update(view[:n])
            c2, w2 = time.thread_time(), time.perf_counter()
            scanner.feed(buf if n == MIB else bytes(view[:n]))
            c3, w3 = time.thread_time(), time.perf_counter()
            io_cpu, hash_cpu, scan_cpu = io_cpu + c1 - c0, hash_cpu + c2 - c1, scan_cpu + c3 - c2
            io_wall, hash_wall, scan_wall = io_wall + w1 - w0, hash_wall + w2 - w1, scan_wall + w3 - w2
            size += n
        c0, w0 = time.thread_time(), time.perf_counter()
        scanner.finish()
        scan_cpu, scan_wall = scan_cpu + time.thread_time() - c0, scan_wall + time.perf_counter() - w0
    out.unlink()
    mib = size / MIB
    return {"bytes": size, "mib_s": mib / (io_wall + hash_wall), "scan_mib_s": mib / (io_wall + hash_wall + scan_wall),
            "cpu_s": io_cpu + hash_cpu + scan_cpu, "cpu_noscan_s": io_cpu + hash_cpu,
            "io_cpu_s": io_cpu, "hash_cpu_s": hash_cpu, "scan_cpu_s": scan_cpu,
            "cpu_s_per_gib": (io_cpu + hash_cpu + scan_cpu) * GIB / size,
            "cpu_noscan_s_per_gib": (io_cpu + hash_cpu) * GIB / size}
