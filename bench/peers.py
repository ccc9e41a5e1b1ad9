"""The two peers the upload benchmark compares against, installed into a scratch
directory (never the project's venv) and run as real servers on loopback.

- ``tuspy``: tuspyserver (PyPI, a FastAPI tus router) in its own venv, under uvicorn
  with the same HTTP stack as ours (uvicorn's httptools parser and uvloop, same
  FastAPI and Starlette versions, access log off).
- ``tusnode``: @tus/server with @tus/file-store (npm) on node:http.

Versions are pinned to the ones the benchmark was run with. Installing needs the
network once; a marker file per pin set makes later runs skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bench_upload import stop_process, wait_healthy
from cpu_floor import unpinned
from proctree import ProcTree

APPS = Path(__file__).resolve().parent / "peer_apps"
PY_PINS = ["tuspyserver==4.4.3", "uvicorn[standard]==0.54.0", "fastapi==0.165.0", "starlette==1.10.0"]
NODE_PINS = {"@tus/server": "2.4.5", "@tus/file-store": "2.1.1"}
NODE_MIN = (20, 19)  # what @tus/server 2.x declares in "engines"


@dataclass(frozen=True)
class Peer:
    name: str  # short name in tables and JSON
    label: str  # what it is, for the table
    sidecars: tuple[str, ...]  # files next to the data that hold each upload's metadata


TUSPY = Peer("tuspy", "tuspyserver 4.4.3 (uvicorn)", (".info",))
TUSNODE = Peer("tusnode", "@tus/server 2.4.5 + file-store 2.1.1 (node)", (".json",))
PEERS = (TUSPY, TUSNODE)


def _marker(scratch: Path, what: str, pins: object) -> Path:
    digest = hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()[:12]
    return scratch / f".installed-{what}-{digest}"


def install(scratch: Path) -> dict[str, str]:
    """Install both peers under ``scratch`` unless this pin set already is; returns the
    versions actually installed (for the JSON)."""
    scratch.mkdir(parents=True, exist_ok=True)
    venv = scratch / "py"
    mark = _marker(scratch, "py", PY_PINS)
    if not mark.exists():
        print(f"installing the Python peer into {venv} (network)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PY_PINS], check=True)
        mark.touch()
    node_dir = scratch / "node"
    mark = _marker(scratch, "node", NODE_PINS)
    if not mark.exists():
        _check_node()
        print(f"installing the Node peer into {node_dir} (network)", flush=True)
        shutil.rmtree(node_dir, ignore_errors=True)
        node_dir.mkdir()
        (node_dir / "package.json").write_text(json.dumps(
            {"name": "bench-tus-node-peer", "private": True, "type": "module", "dependencies": NODE_PINS}, indent=2))
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=node_dir, check=True)
        mark.touch()
    return versions(scratch)


def _check_node() -> None:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major, minor = (int(x) for x in out.lstrip("v").split(".")[:2])
    if (major, minor) < NODE_MIN:
        raise SystemExit(f"node {out} is too old for @tus/server 2.x (needs >= {NODE_MIN[0]}.{NODE_MIN[1]})")


def versions(scratch: Path) -> dict[str, str]:
    freeze = subprocess.run([str(scratch / "py" / "bin" / "python"), "-m", "pip", "freeze"],
                            capture_output=True, text=True, check=True).stdout.split()
    wanted = ("tuspyserver", "uvicorn", "fastapi", "starlette", "uvloop", "httptools")
    out = {line.split("==")[0].lower(): line.split("==")[1] for line in freeze
           if "==" in line and line.split("==")[0].lower() in wanted}
    for pkg in (*NODE_PINS, "@tus/utils"):
        meta = scratch / "node" / "node_modules" / pkg / "package.json"
        if meta.exists():
            out[pkg] = json.loads(meta.read_text())["version"]
    out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PeerServer:
    """One peer server with its own store directory under ``root``."""

    def __init__(self, peer: Peer, scratch: Path, root: Path, max_size: int) -> None:
        self.peer = peer
        root.mkdir(parents=True)
        self.store = root / "files"
        self.store.mkdir()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = root / "server.log"
        if peer is TUSPY:
            cmd = [str(scratch / "py" / "bin" / "python"), "-m", "uvicorn", "tuspy_app:app", "--app-dir", str(APPS),
                   "--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop",
                   "--no-access-log", "--log-level", "warning"]
            env = dict(os.environ, TUS_FILES_DIR=str(self.store), TUS_MAX_SIZE=str(max_size))
            cwd = root
        else:
            script = scratch / "node" / "tus_node_server.mjs"  # beside node_modules: ESM resolves from there
            shutil.copyfile(APPS / "tus_node_server.mjs", script)
            cmd = ["node", str(script), str(self.store), str(port), str(max_size)]
            env, cwd = dict(os.environ), scratch / "node"
        env.pop("PYTHONPATH", None)
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=unpinned)  # a pinned client's pinning is not the peer's
        self.tree = ProcTree(self.popen.pid)

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 30) -> None:
        await wait_healthy(http, self.url, self.popen, self.log, self.peer.name, timeout)

    def stored(self, upload_url: str) -> Path:
        """Where the peer keeps an upload's bytes: ``<store>/<id>``, the id being the
        last segment of the upload URL (both stores lay files out this way)."""
        upload_id = urlsplit(upload_url).path.rstrip("/").rsplit("/", 1)[1]
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise RuntimeError(f"unexpected upload URL {upload_url!r}")
        return self.store / upload_id

    def remove(self, upload_url: str) -> None:
        """Delete an upload's files once checked, so that runs do not fill the disk."""
        data = self.stored(upload_url)
        for path in (data, *(data.with_name(data.name + s) for s in self.peer.sidecars)):
            path.unlink(missing_ok=True)

    def stop(self) -> None:
        stop_process(self.popen)
