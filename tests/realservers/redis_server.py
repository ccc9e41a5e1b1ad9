"""A real Redis for tests: Debian's ``redis-server`` on 127.0.0.1 on a free port, in a
private temporary directory, with persistence off (``--save '' --appendonly no``).

Fixtures:
- ``redis_server`` (session): the running server; stopped (SIGTERM, then SIGKILL) and
  its directory removed at the end of the session.
- ``redis_url`` (function): the server's URL, flushed (``FLUSHALL``) before the test, so
  nothing of one test is seen by the next; ``redis_client``: an asyncio client of it, as
  the backends connect (:func:`backend.storage.redis.client.connect`), closed after. A test that stops the server (to check how
  the code answers a lost Redis) calls :meth:`RedisServer.restart` before it ends, or
  the next test's fixture starts it again.

Installed by ``make redis`` (``make test`` runs it).
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from backend.storage.redis.client import connect
from tests.realservers.procs import for_the_session, free_ports, stop, wait_until


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL or a
    ``timeout`` that skips the fixture's teardown (Linux ``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def redis_binary() -> Path | None:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                             else None)
    return Path(found) if found else None


def command(sock: socket.socket, *parts: str) -> bytes:
    """One command in RESP, the first line of the reply (enough for PING, FLUSHALL)."""
    payload = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
    sock.sendall(payload.encode())
    reply = b""
    while not reply.endswith(b"\r\n"):
        got = sock.recv(4096)
        if not got:
            raise ConnectionError("redis closed the connection")
        reply += got
    return reply


@dataclass
class RedisServer:
    binary: Path
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> None:
        """Start on ``self.port`` (the same port on a restart) and wait for PING."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                 "--logfile", ""],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root,
                start_new_session=True, preexec_fn=_die_with_parent)
        self.starts += 1
        self.startup_seconds = wait_until(self.ping, self.proc, 30, self.log, "redis-server")

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            return command(s, "PING") == b"+PONG\r\n"

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            assert command(s, "FLUSHALL") == b"+OK\r\n"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def start_redis(binary: Path, attempts: int = 3) -> RedisServer:
    """A server in a fresh temp dir; retried on another port if it loses its port to a race."""
    root = Path(tempfile.mkdtemp(prefix="test-redis-"))
    last: Exception | None = None
    for _ in range(attempts):
        (port,) = free_ports(1)
        server = RedisServer(binary, root, port)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            server.stop()
            last = exc
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"redis-server did not start in {attempts} attempts") from last


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from for_the_session(redis_binary(), "Redis (Debian's redis-server)", "make redis", start_redis,
                               lambda s: f"redis on 127.0.0.1:{s.port}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.running:  # an earlier test stopped it and failed before restarting
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the server (flushed for this test) as the backends connect, closed after it."""
    client = connect(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
