#!/usr/bin/env python
"""Upload benchmark: a PDF through the streaming API at several chunk sizes, against the
machine's floor (write the file + two SHA-256 over it in 1 MiB blocks, one thread).

    .venv/bin/python bench/bench_upload.py          # 256 MiB, 3 runs at 8 and 2 MiB chunks, 1 GiB RSS test
    .venv/bin/python bench/bench_upload.py --quick  # smoke test: 64 MiB, 1 run, no RSS test

Each configuration gets a fresh server (``python -m backend``) whose state, data and
partial files live in a temporary directory, the same filesystem as the floor's output.
A floor pass runs just before every timed upload, so both see the same machine load;
dirty pages are synced before each timed pass (neither pays for another's writeback).
Prints a Markdown table; every raw figure goes to JSON (bench/results/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from cpu_floor import unpinned  # noqa: E402
from tests.pdfgen import make_pdf  # noqa: E402

MIB = 1 << 20
#: The client lets an idle connection go after this long, before uvicorn's keep-alive timeout
#: (5 s) closes it: reusing one the server is closing fails the request (seen once, when a
#: server sat idle while the other servers started).
KEEPALIVE = 2.0
API = "/api/documents/streaming"
FLOOR_TARGET, RSS_TARGET_MIB = 0.8, 48.0


@dataclass(frozen=True)
class Source:
    path: Path
    size: int
    sha256: str


def make_source(root: Path, size: int) -> Source:
    path = root / f"src-{size}.pdf"
    return Source(path, size, make_pdf(path, size))


def chunk_checksums(src: Source, chunk_size: int) -> list[str]:
    """Computed before timing: the client's own hashing is not what is measured."""
    with open(src.path, "rb") as f:
        return [hashlib.sha256(f.read(chunk_size)).hexdigest() for _ in range(-(-src.size // chunk_size))]


def floor_mib_s(src: Source, out: Path) -> float:
    """What the server must do per byte, in one thread: read, write, two SHA-256 (the
    chunk's and the whole file's). No fsync: the server does not fsync data either."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    chunk_hash, file_hash = hashlib.sha256(), hashlib.sha256()
    start = time.perf_counter()
    with open(src.path, "rb", buffering=0) as fin, open(out, "wb", buffering=0) as fout:
        while n := fin.readinto(buf):
            fout.write(view[:n])
            chunk_hash.update(view[:n])
            file_hash.update(view[:n])
    elapsed = time.perf_counter() - start
    out.unlink()
    return src.size / MIB / elapsed


def machine_info(root: Path) -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mounts = [p for p in psutil.disk_partitions(all=True) if str(root).startswith(p.mountpoint)]
    mount = max(mounts, key=lambda p: len(p.mountpoint)) if mounts else None
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release(), "mem_total_mib": psutil.virtual_memory().total // MIB,
            "filesystem": f"{mount.fstype} on {mount.device}" if mount else "?", "work_dir": str(root),
            "loadavg_at_start": os.getloadavg()}  # other work on the machine skews every figure


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds until stopped; keeps the peak."""

    def __init__(self, proc: psutil.Process, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.proc, self.interval = proc, interval
        self.peak, self.samples = proc.memory_info().rss, 1
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.samples += 1

    def stop(self) -> int:
        self._done.set()
        self.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return self.peak


async def wait_healthy(http: aiohttp.ClientSession, url: str, popen: subprocess.Popen[bytes], log: Path,
                       name: str, timeout: float = 30) -> None:
    """Poll ``url/health`` until it answers 200; fail with the log's tail if the process
    ends or the time runs out (every server in the benchmarks has ``/health``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and popen.poll() is None:
        try:
            async with http.get(url + "/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not start; log:\n{log.read_text()[-3000:]}")


def stop_process(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s: a benchmarked server always goes away."""
    popen.terminate()
    try:
        popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def run_main(main: Callable[[], Any]) -> None:
    """Run ``main()`` (a coroutine) on uvloop when it is there, which keeps the client's
    own share of the 2 cores small, and exit with its result."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        sys.exit(runner.run(main()))


class Server:
    """A fresh ``python -m backend`` with its own directories under ``root``."""

    def __init__(self, root: Path, max_file_mib: int, env: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(REPO), STREAMING_STATE_DIR=str(root / "states"),
                   STREAMING_DATA_DIR=str(root / "data"), STREAMING_UPLOAD_DIR=str(root / "partial"),
                   STREAMING_MAX_FILE_SIZE_MB=str(max(1024, max_file_mib)), **(env or {}))
        self.log = root / "server.log"
        with open(self.log, "wb") as log:  # cwd=root: a developer's .env must not change the figures
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=unpinned)  # a pinned client's pinning is not the server's
        # the importer beside it, as `make run` starts it: a sibling, so its CPU and memory
        # are not the upload server's (the benchmark waits for each import to end)
        with open(root / "importer.log", "wb") as log:
            self.importer = subprocess.Popen([sys.executable, "-m", "backend.importer"], cwd=root, env=env,
                                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=unpinned)
        self.proc = psutil.Process(self.popen.pid)

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 30) -> None:
        await wait_healthy(http, self.url, self.popen, self.log, "server", timeout)

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()  # every thread of the process
        return t.user + t.system

    def counters(self) -> tuple[int, int]:
        """(minor page faults, context switches of every live thread): where the kernel time goes."""
        minflt = int(Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
        switches = 0
        for task in Path(f"/proc/{self.popen.pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                        switches += int(line.split()[1])
            except OSError:
                continue  # a thread that just ended
        return minflt, switches

    def stop(self) -> None:
        stop_process(self.popen)
        stop_process(self.importer)


def chunk_form(fields: dict[str, str], fd: int, offset: int, length: int) -> aiohttp.FormData:
    """The chunk as multipart/form-data, fields before the file, as the API asks.

    Measured: aiohttp.FormData over ``bytes`` costs the client as little as a hand-built
    body in a reused buffer (~0.15 s CPU per 256 MiB with uvloop). A ``bytearray`` body
    costs 3-4x that: aiohttp slices it to Content-Length, a copy of every chunk."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"short read at {offset}")
    form.add_field("file", data, filename="chunk.bin", content_type="application/octet-stream")
    return form


async def post_json(http: aiohttp.ClientSession, url: str, expect: int,
                    request: Callable[[], dict[str, Any]] = dict) -> tuple[dict[str, Any], int]:
    """POST ``request()``'s keywords; on 429/503 wait Retry-After and retry as a real
    client would (a FormData is consumed by its first send: built again each try)."""
    for retries in range(100):
        async with http.post(url, **request()) as r:
            body = await r.json()
            if r.status in (429, 503):
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status != expect:
                raise RuntimeError(f"POST {url} -> {r.status}: {body}")
            return body, retries
    raise RuntimeError(f"POST {url}: still refused after 100 retries")


async def upload(http: aiohttp.ClientSession, base: str, src: Source, chunk_size: int,
                 checksums: list[str], parallel: int,
                 cpu: Callable[[], float] = lambda: 0.0) -> dict[str, Any]:
    """Initiate, send every chunk (``parallel`` in flight), complete: timed inclusive.
    Also reports the chunk phase alone (initiate to the last chunk's answer; ``cpu``:
    the server's CPU seconds so far), which /complete's inspection does not dilute."""
    fd = os.open(src.path, os.O_RDONLY)
    retries = 0
    try:
        start = time.perf_counter()
        sess, retries = await post_json(http, base + API + "/initiate", 201, lambda: {"json": {
            "filename": src.path.name, "file_size": src.size, "chunk_size": chunk_size,
            "expected_hash": src.sha256, "check_duplicates": False}})  # store again on every run
        if sess["chunk_size"] != chunk_size or sess["total_chunks"] != len(checksums):
            raise RuntimeError(f"server chose {sess['chunk_size']}-byte chunks, not {chunk_size}")
        url = base + sess["upload_url"]
        todo = iter(range(len(checksums)))

        async def worker() -> None:
            nonlocal retries
            for i in todo:  # shared by the workers: each chunk is sent by one of them
                offset, length = i * chunk_size, min(chunk_size, src.size - i * chunk_size)
                fields = {"chunk_id": str(i), "chunk_offset": str(offset),
                          "is_final": str(i == len(checksums) - 1).lower(), "checksum": checksums[i]}
                _, n = await post_json(http, url, 200, lambda: {"data": chunk_form(fields, fd, offset, length)})
                retries += n

        cpu0 = cpu()
        await asyncio.gather(*(worker() for _ in range(parallel)))
        chunks_s, chunks_cpu = time.perf_counter() - start, cpu() - cpu0
        done, _ = await post_json(http, f"{base}{API}/complete/{sess['session_id']}", 200)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    doc = done["document"]
    if doc["sha256"] != src.sha256 or doc["file_size"] != src.size:
        raise RuntimeError(f"stored document differs from the source: {doc}")
    return {"seconds": elapsed, "mib_s": src.size / MIB / elapsed, "retries": retries,
            "chunks_mib_s": src.size / MIB / chunks_s, "chunks_server_cpu_s": chunks_cpu,
            "complete_s": elapsed - chunks_s, "document_id": doc["id"]}


async def imported(http: aiohttp.ClientSession, base: str, doc_id: int, timeout: float = 60) -> None:
    """Wait until the document's background import has ended (whatever its outcome)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{base}/api/documents/{doc_id}") as r:
            if (await r.json()).get("index_status") not in ("pending", "importing"):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"document {doc_id} was not imported within {timeout} s")


async def run_case(root: Path, name: str, src: Source, warm: Source, chunk_mib: int, runs: int,
                   parallel: int, floors: list[float] | None) -> dict[str, Any]:
    """``runs`` timed uploads on one fresh server; a floor pass before each when ``floors``."""
    chunk_size = chunk_mib * MIB
    checksums = chunk_checksums(src, chunk_size)
    server = Server(root / f"server-{chunk_mib}-{src.size}", src.size // MIB + 1)
    conn = aiohttp.TCPConnector(limit=parallel + 1, keepalive_timeout=KEEPALIVE)
    try:
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(sock_read=300)) as http:
            await server.wait_ready(http)
            # Warm-up: one upload and its import, so that one-time loading (modules,
            # thread pools, the LlamaIndex index and tokenizer) is not counted as growth.
            warmed = await upload(http, server.url, warm, 2 * MIB, chunk_checksums(warm, 2 * MIB), 1)
            await imported(http, server.url, warmed["document_id"])
            await asyncio.sleep(0.3)
            baseline = server.proc.memory_info().rss
            results = []
            for _ in range(runs):
                if floors is not None:
                    os.sync()  # no earlier run's writeback competing for the 2 cores
                    floors.append(floor_mib_s(src, root / "floor.out"))
                os.sync()
                cpu0, client0, (flt0, sw0) = server.cpu_seconds(), time.process_time(), server.counters()
                sampler = RssSampler(server.proc)
                sampler.start()
                try:
                    res = await upload(http, server.url, src, chunk_size, checksums, parallel, server.cpu_seconds)
                finally:
                    peak = sampler.stop()
                flt1, sw1 = server.counters()
                res.update(server_cpu_s=server.cpu_seconds() - cpu0, client_cpu_s=time.process_time() - client0,
                           minor_faults=flt1 - flt0, ctx_switches=sw1 - sw0,
                           peak_rss_mib=peak / MIB, rss_samples=sampler.samples)
                results.append(res)
            async with http.get(server.url + API + "/memory-stats") as r:
                stats = await r.json()
    finally:
        server.stop()
        shutil.rmtree(server.log.parent, ignore_errors=True)
    speeds = [r["mib_s"] for r in results]
    peak = max(r["peak_rss_mib"] for r in results)
    return {"case": name, "file_mib": src.size / MIB, "chunk_mib": chunk_mib, "parallel": parallel,
            "runs": results, "mib_s_median": statistics.median(speeds), "mib_s_min": min(speeds),
            "mib_s_max": max(speeds), "server_cpu_s": statistics.median(r["server_cpu_s"] for r in results),
            "client_cpu_s": statistics.median(r["client_cpu_s"] for r in results),
            "baseline_rss_mib": baseline / MIB, "peak_rss_mib": peak, "rss_growth_mib": peak - baseline / MIB,
            "memory_stats": stats}


def table(floor: float, floors: list[float], cases: list[dict[str, Any]]) -> str:
    rows = ["| case | MiB/s median (min-max) | × floor | server CPU s | client CPU s | server RSS MiB: "
            "baseline → peak (getrusage peak) | RSS growth MiB |", "|---|---|---|---|---|---|---|",
            f"| floor: write + 2× SHA-256, 1 thread | {floor:.0f} ({min(floors):.0f}-{max(floors):.0f}) "
            "| 1.00 | | | | |"]
    for c in cases:
        rows.append(f"| {c['case']} | {c['mib_s_median']:.0f} ({c['mib_s_min']:.0f}-{c['mib_s_max']:.0f}) "
                    f"| {c['mib_s_median'] / floor:.2f} | {c['server_cpu_s']:.2f} | {c['client_cpu_s']:.2f} "
                    f"| {c['baseline_rss_mib']:.1f} → {c['peak_rss_mib']:.1f} ({c['memory_stats']['peak_memory_mb']}) "
                    f"| {c['rss_growth_mib']:.1f} |")
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=args.tmpdir))
    floors: list[float] = []
    cases: list[dict[str, Any]] = []
    try:
        info = machine_info(root)
        print(f"$ {' '.join(sys.argv)}\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()), flush=True)
        src, warm = make_source(root, args.size_mib * MIB), make_source(root, 3 * MIB)
        for chunk_mib in args.chunks:
            name = f"{args.size_mib} MiB, {chunk_mib} MiB chunks, {args.parallel} in flight"
            cases.append(await run_case(root, name, src, warm, chunk_mib, args.runs, args.parallel, floors))
            print(f"{name}: {cases[-1]['mib_s_median']:.0f} MiB/s (floor so far {statistics.median(floors):.0f})",
                  flush=True)
        src.path.unlink()
        if args.rss_gib > 0:
            big = make_source(root, int(args.rss_gib * 1024) * MIB)
            name = f"RSS test: {args.rss_gib:g} GiB, 8 MiB chunks, {args.parallel} in flight"
            cases.append(await run_case(root, name, big, warm, 8, 1, args.parallel, None))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    floor = statistics.median(floors)
    print("\n" + table(floor, floors, cases) + "\n")
    speed = [c for c in cases if c["chunk_mib"] == 8 and c["parallel"] == 1 and not c["case"].startswith("RSS")]
    checks = [(f"{c['case']}: >= {FLOOR_TARGET}x floor", c["mib_s_median"] / floor >= FLOOR_TARGET) for c in speed]
    checks += [(f"{c['case']}: RSS growth <= {RSS_TARGET_MIB:g} MiB", c["rss_growth_mib"] <= RSS_TARGET_MIB)
               for c in cases if c["case"].startswith("RSS")]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": sys.argv, "machine": info, "loadavg_at_end": os.getloadavg(),
                               "floor_mib_s": floor, "floor_runs": floors, "cases": cases,
                               "targets": dict(checks)}, indent=2))
    print(f"raw figures: {out}")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=256, help="file size for the speed runs")
    p.add_argument("--runs", type=int, default=3, help="uploads per chunk size (median reported)")
    p.add_argument("--chunks", type=lambda s: [int(x) for x in s.split(",")], default=[8, 2],
                   help="chunk sizes in MiB, comma-separated (the server accepts 2-8)")
    p.add_argument("--parallel", type=int, default=1, help="chunks in flight (1: one sequential client)")
    p.add_argument("--rss-gib", type=float, default=1, help="size of the RSS-growth upload; 0 skips it")
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "latest.json"))
    p.add_argument("--tmpdir", default=None, help="where the files go (default: the system temp dir)")
    p.add_argument("--quick", action="store_true", help="smoke test: 64 MiB, 1 run, no RSS test")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args()
    if args.quick:
        args.size_mib, args.runs, args.rss_gib = 64, 1, 0
    run_main(lambda: main_async(args))


if __name__ == "__main__":
    main()
