"""A real PostgreSQL for tests: Debian's ``postgresql`` (``initdb`` into a temp dir),
listening on 127.0.0.1 on a free port, its unix socket inside that dir.

Fixtures:
- ``postgres_server`` (session): the running server; stopped (fast shutdown, then
  SIGKILL) and its directory removed at the end of the session.
- ``postgres_url`` (function): a fresh, empty database for one test, dropped after it.

Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): a test
server's data need not survive a crash of the machine, and this keeps it fast on a
loaded 2-core box. As root, the server runs as the ``postgres`` user (PostgreSQL
refuses root), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.realservers.procs import for_the_session, free_ports, stop, wait_until

PG_USER = "postgres"  # the OS user the server runs as when the tests run as root
_FAST = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "shared_buffers=64MB"]


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin dir (Debian keeps it off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    startup_seconds: float

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        stop(self.proc, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to ``PG_USER`` (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_postgres(bindir: Path, attempts: int = 3, durable: bool = False) -> PostgresServer:
    """initdb into a fresh temp dir and start the server; retried on another port if it
    loses its port to a race. ``durable``: PostgreSQL's own defaults (fsync, synchronous
    commits: what a benchmark should pay) instead of the tests' fast settings."""
    root = Path(tempfile.mkdtemp(prefix="test-pg-"))  # under /tmp: the postgres user can reach it
    as_user = _as_user()
    if as_user:
        os.chown(root, as_user["user"], as_user["group"])
    data, sock, log = root / "data", root / "sock", root / "server.log"
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, env=env, cwd=root, timeout=120, **as_user)
        subprocess.run(["mkdir", "-p", str(sock)], check=True, **as_user)
        last: Exception | None = None
        for _ in range(attempts):
            (port,) = free_ports(1)
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                     "-k", str(sock), *([] if durable else _FAST), "-c", "max_connections=200"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
                    start_new_session=True, **as_user)
            server = PostgresServer(root, port, proc, 0.0)
            try:
                server.startup_seconds = wait_until(lambda: _answers(server), proc, 60, log, "postgres")
                return server
            except RuntimeError as exc:
                server.stop()
                last = exc
        raise RuntimeError(f"postgres did not start in {attempts} attempts") from last
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _answers(server: PostgresServer) -> bool:
    import psycopg

    with psycopg.connect(server.url(), connect_timeout=2) as db:
        return db.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from for_the_session(pg_bin(), "PostgreSQL (Debian's postgresql)", "make postgres", start_postgres,
                               lambda s: f"postgres on 127.0.0.1:{s.port} (initdb included; "
                                         f"{s.startup_seconds:.2f} s after the server started)")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
