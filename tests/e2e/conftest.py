"""End-to-end fixtures: the real server, ``python -m backend``, as a subprocess on loopback,
with its importer, ``python -m backend.importer``, as a sibling process (as ``make run``).

:class:`ServerProcess` owns one server's temporary directories (state, data, partial
files), its port and its logs. It can be killed (SIGKILL), stopped (SIGTERM) and restarted
on the same directories, which is what crash-and-resume tests need; the importer is
started with the server, stopped with it, and killed and started on its own. The ``server``
fixture hands out a started one; ``make_server`` builds more (or with other settings).
Every process is reaped at teardown, and the server log is printed there, so a failing
test shows it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pdfgen import make_pdf

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
STARTUP_TIMEOUT = 20.0
LOG_TAIL = 12_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerError(RuntimeError):
    pass


class ServerProcess:
    """One server: ``start``, ``kill`` (SIGKILL), ``stop`` (SIGTERM), ``restart``."""

    def __init__(self, root: Path, env: dict[str, str] | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT, module: str = "backend", importer: bool = True) -> None:
        """``module`` is what ``python -m`` runs: ``backend``, or a test-only wrapper of it
        (tests/faults/hooked_backend.py) that installs fault hooks first. ``importer``:
        run ``python -m backend.importer`` next to it (uploads get imported)."""
        self.root = root
        self.module = module
        self.state_dir = root / "upload_states"
        self.data_dir = root / "data"
        self.upload_dir = root / "partial"
        self.log_path = root / "server.log"
        self.importer_log_path = root / "importer.log"
        self.with_importer = importer
        self.importer_proc: subprocess.Popen[bytes] | None = None
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        root.mkdir(parents=True, exist_ok=True)

    # -- addresses and files ----------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: str) -> str:
        return f"ws://{self.host}:{self.port}/ws/{client_id}"

    def partial_file(self, session_id: str) -> Path:
        return self.upload_dir / f"{session_id}.part"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, limit: int = LOG_TAIL) -> str:
        text = self.log_text()
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def importer_log_tail(self, limit: int = LOG_TAIL) -> str:
        try:
            text = self.importer_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    @property
    def importer_running(self) -> bool:
        return self.importer_proc is not None and self.importer_proc.poll() is None

    # -- life cycle ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            STREAMING_STATE_DIR=str(self.state_dir),
            STREAMING_DATA_DIR=str(self.data_dir),
            STREAMING_UPLOAD_DIR=str(self.upload_dir),
            PYTHONUNBUFFERED="1",
        )
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        env.update(self.extra_env)
        return env

    def start_importer(self) -> None:
        """Start the importer (if it is not running); it needs no wait: jobs queue meanwhile."""
        if self.importer_running:
            return
        with open(self.importer_log_path, "ab") as log:
            log.write(f"\n===== importer start (server start #{self.starts}) =====\n".encode())
            log.flush()
            self.importer_proc = subprocess.Popen(
                [sys.executable, "-m", "backend.importer"], cwd=self.root, env=self._env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def kill_importer(self) -> int | None:
        """SIGKILL the importer (its running job waits for its lease to run out)."""
        return _end(self.importer_proc, signal.SIGKILL)

    def stop_importer(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the importer (it gives its jobs back), then SIGKILL after ``timeout``."""
        return _end(self.importer_proc, signal.SIGTERM, timeout)

    def start(self) -> None:
        """Start the server (and the importer, if it is not running) and return once
        ``GET /health`` answers."""
        if self.running:
            raise ServerError(f"server already running (pid {self.pid})")
        if self.with_importer:
            self.start_importer()
        for attempt in range(2):
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
                log.flush()
                # The child gets its own copy of the descriptor; ours is closed at once.
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", self.module, "--host", self.host, "--port", str(self.port)],
                    cwd=self.root, env=self._env(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                self._wait_ready()
                return
            except ServerError:
                exited = self.proc.poll() is not None
                if attempt == 0 and exited and "address already in use" in self.log_text().lower():
                    self.port = free_port()  # our old port was taken meanwhile: any port will do
                    continue
                self.kill()
                raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with code {self.proc.returncode} during start-up; "
                                  f"log:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                try:
                    conn.request("GET", "/health")
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                if resp.status == 200 and json.loads(body).get("status") == "ok":
                    return
                last_error = f"/health answered {resp.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        raise ServerError(f"server not healthy after {self.startup_timeout}s ({last_error}); "
                          f"log:\n{self.log_tail()}")

    def kill(self) -> int | None:
        """SIGKILL, like a crash or the OOM killer: no shutdown code runs. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit within ``timeout``;
        the importer too. Returns the server's exit code."""
        self.stop_importer(timeout)
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)

    def restart(self, *, graceful: bool = True) -> None:
        """Same directories and port (a new port only if the old one was taken meanwhile)."""
        if self.running:
            self.stop() if graceful else self.kill()
        self.start()

    async def arestart(self, *, graceful: bool = True) -> None:
        """:meth:`restart` off the event loop (start-up takes a second)."""
        await asyncio.to_thread(self.restart, graceful=graceful)

    def assert_no_tracebacks(self) -> None:
        """A 500 or a crashed task leaves a traceback in the log: that is a bug."""
        text = self.log_text()
        assert "Traceback (most recent call last)" not in text, f"server log has a traceback:\n{self.log_tail()}"
        text = self.importer_log_tail(limit=1 << 30)
        assert "Traceback (most recent call last)" not in text, f"importer log has a traceback:\n{text[-LOG_TAIL:]}"


def _end(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 10.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``make_server(start=True, **env)``: servers on their own temporary directories."""
    servers: list[ServerProcess] = []

    def factory(start: bool = True, **env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(servers)}", env)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in servers:
        server.stop(timeout=5)
        print(f"----- server log {server.log_path} -----\n{server.log_tail()}")
        print(f"----- importer log {server.importer_log_path} -----\n{server.importer_log_tail()}")


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A started server; progress events at most every 50 ms (default 250 ms)."""
    return make_server(STREAMING_PROGRESS_INTERVAL_SECONDS="0.05")


@pytest.fixture(scope="session")
def big_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 64 MiB PDF on disk (never held in memory by the tests) and its SHA-256."""
    path = tmp_path_factory.mktemp("e2e_pdfs") / "big.pdf"
    sha = make_pdf(path, 64 * MIB, pages=3, text="End to end", seed=64)
    return path, sha
