#!/usr/bin/env python
"""Side-by-side upload benchmark: the machine's floor, our server through its chunk API
and through its tus ``/files/`` (``ours-tus``), and two tus peers (tuspyserver under
uvicorn, @tus/server + @tus/file-store on node), all on this machine, over loopback,
in one go. Everything over tus goes through one client (tus_client.py).

    make bench-compare                                  # or:
    .venv/bin/python bench/bench_compare.py             # 256 MiB x 3 runs, extras; ~7-9 min
    .venv/bin/python bench/bench_compare.py --quick     # end to end on small files, 1 run

The peers are installed on first use into bench/.peers/ (network; cached afterwards).

Speed: every (server, chunk size, shape) case gets its own fresh, warmed-up server; the
runs are interleaved round-robin (case order rotated each round) and a floor pass
(write the file + two SHA-256, 1 MiB blocks, one thread) runs right before every timed
upload, dirty pages synced before each, so all cases see the same machine. "N in
parallel" puts N requests in flight everywhere: ours' chunk API sends N chunks of one
upload at once; over tus, a server whose OPTIONS offers concatenation (ours-tus,
tuspyserver) gets N partial uploads of the file's consecutive parts and then the final
``Upload-Concat`` creation (timed), one without it (@tus/file-store) N concurrent
uploads. ``Upload-Checksum: sha256`` goes on every PATCH to a server that offers the
checksum extension (ours-tus; neither peer does). The table says what each server got.
Every server's stored bytes are checked after each run (untimed).

Extras: RSS growth for a small vs a large upload (fresh server each), the /complete
latency of ours on the large one, and N concurrent uploads of distinct files with our
server's memory budget cut (STREAMING_MEMORY_LIMIT_MB=64): aggregate speed, every file
byte-exact, peak RSS, and the backpressure counters of /memory-stats.

Issue 17: ``--pin-client CPU`` pins the client to one CPU (servers run on all); the floor
pass before each timed upload also feeds our streaming scanner and records its thread
CPU (cpu_floor.py), and a table gives every server's process-tree CPU per GiB as a ratio
to that pass's, paired per round; ``--peers-concurrent`` gives the peers N concurrent
uploads for N in flight. The README's "Near the floor (issue 17)" has the command.

Prints Markdown tables; every raw figure goes to JSON (bench/results/compare.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_report as report  # noqa: E402
import peers  # noqa: E402
from bench_upload import KEEPALIVE, MIB, REPO, Source, machine_info, make_source, run_main  # noqa: E402
from cpu_floor import GIB, floor_pass, pin_client, pinned  # noqa: E402
from proctree import PeakSampler  # noqa: E402
from targets import OURS_TUS, Ours, OursTus, PeerTarget, Target  # noqa: E402
from tests.pdfgen import make_pdf  # noqa: E402  (bench_upload put the repo on the path)

SERVERS = ("ours", OURS_TUS, "tuspy", "tusnode")
OURS_ANY = ("ours", OURS_TUS, report.NOSCAN)
#: Ours' cap on active uploads, by default; over tus, N partials and their final are N + 1.
OURS_MAX_ACTIVE = 5
NOSCAN = report.NOSCAN  # opt-in (--servers ours,ours-noscan,...): prices the streaming scan
#: In the speed rounds ours' helper processes (the digest child, the inspection sandbox)
#: stay up between rounds, as they do on a busy server: with the default 30 s they exit
#: while the other cases run, and every timed upload would pay their start (~0.2-0.5 s).
SPEED_ENV = {"STREAMING_CHILD_IDLE_SECONDS": "3600"}


def write_floor_mib_s(src: Source, out: Path) -> float:
    """The same copy as the floor without the hashing: what a server that checks
    nothing (the peers) must do per byte at least."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    start = time.perf_counter()
    with open(src.path, "rb", buffering=0) as fin, open(out, "wb", buffering=0) as fout:
        while n := fin.readinto(buf):
            fout.write(view[:n])
    elapsed = time.perf_counter() - start
    out.unlink()
    return src.size / MIB / elapsed


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path, http: aiohttp.ClientSession) -> None:
        self.args, self.root, self.http = args, root, http
        self.serial = 0

    def target(self, server: str, tag: str, max_mib: int, ours_env: dict[str, str] | None = None,
               parallel: int = 1) -> Target:
        """A fresh server. Peers get N concurrent uploads instead of N partials and a
        final concatenation with ``--peers-concurrent`` (issue 17's in-flight case)."""
        self.serial += 1
        where = self.root / f"{self.serial:02d}-{server}-{tag}"
        if server == "ours":
            return Ours(where, max_mib, ours_env)
        if server == OURS_TUS:
            env = dict(ours_env or {})
            if parallel + 1 > OURS_MAX_ACTIVE and "STREAMING_MAX_CONCURRENT_UPLOADS" not in env:
                env["STREAMING_MAX_CONCURRENT_UPLOADS"] = str(parallel + 1)  # else the final waits forever
            return OursTus(where, max_mib, env)
        if server == NOSCAN:  # ours with the streaming scan off: what the scan costs, side by side
            return Ours(where, max_mib, {**(ours_env or {}), "STREAMING_STREAM_SCAN": "false"}, name=NOSCAN)
        peer = next(p for p in peers.PEERS if p.name == server)
        return PeerTarget(peer, self.args.scratch, where, max(max_mib, 1024) * MIB,
                          concatenate=not self.args.peers_concurrent)

    async def timed(self, t: Target, run: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
        """Time ``run`` against ``t``'s process tree: CPU, peak RSS, the client's CPU."""
        base_root, base_tree = t.tree.rss()
        cpu0, client0 = t.tree.cpu_total(), time.process_time()
        sampler = PeakSampler(t.tree)
        sampler.start()
        try:
            res, handle = await run()
        finally:
            peak_root, peak_tree = sampler.stop()
        res.update(server_cpu_s=t.tree.cpu_total() - cpu0, client_cpu_s=time.process_time() - client0,
                   baseline_rss_mib=base_tree / MIB, peak_rss_mib=peak_tree / MIB,
                   baseline_rss_root_mib=base_root / MIB, peak_rss_root_mib=peak_root / MIB,
                   rss_samples=sampler.samples)
        return res, handle

    async def speed(self, src: Source, warm: Source, floor_runs: list[float],
                    write_runs: list[float], floor_passes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        a = self.args
        keys = [(s, c, p) for c in a.chunks for p in a.parallel for s in a.servers]
        targets: dict[tuple[str, int, int], Target] = {}
        runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {k: [] for k in keys}
        try:
            for s, c, p in keys:
                t = targets[(s, c, p)] = self.target(s, f"{c}mib-x{p}", src.size // MIB + 1, SPEED_ENV, parallel=p)
                await t.start(self.http, warm)
                t.prepare(src, c * MIB, p)
            print(f"{len(targets)} servers up; {a.runs} rounds of {len(keys)} timed uploads", flush=True)
            for rnd in range(a.runs):
                os.sync()
                write_runs.append(write_floor_mib_s(src, self.root / "floor.out"))
                order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
                for key in order:
                    s, c, p = key
                    t = targets[key]
                    os.sync()  # no earlier run's writeback competing for the 2 cores
                    fp = floor_pass(src.path, self.root / "floor.out")
                    floor = fp["mib_s"]
                    floor_runs.append(floor)
                    floor_passes.append(fp)
                    os.sync()
                    res, handle = await self.timed(t, lambda: t.timed(self.http, src, c * MIB, p))
                    await t.check(self.http, src, handle)
                    res.update(floor_mib_s=floor, floor=fp, cpu_s_per_gib=res["server_cpu_s"] * GIB / src.size,
                               cpu_floor_ratio=res["server_cpu_s"] / fp["cpu_s"])
                    runs[key].append(res)
                    print(f"  round {rnd + 1}: {report.shape_label(c, p)}, {s}: {res['mib_s']:.0f} MiB/s "
                          f"(floor {floor:.0f}), CPU {res['cpu_s_per_gib']:.2f} s/GiB = "
                          f"{res['cpu_floor_ratio']:.2f}x the floor's {fp['cpu_s_per_gib']:.2f}"
                          f"{report.where_time_went(res)}", flush=True)
        finally:
            for t in targets.values():
                t.stop()
        return [report.summarize(s, c, p, runs[(s, c, p)], targets[(s, c, p)].sent_as(p)) for s, c, p in keys]

    async def rss_growth(self, warm: Source) -> list[dict[str, Any]]:
        """One upload per size on a fresh, warmed-up server, 8 MiB chunks, sequential."""
        out = []
        for size_mib in self.args.rss_mib:
            src = make_source(self.root, size_mib * MIB)
            for s in self.args.servers:
                t = self.target(s, f"rss-{size_mib}", size_mib + 1)
                try:
                    await t.start(self.http, warm)
                    chunk = 8 * MIB if src.size >= 10 * MIB else 2 * MIB
                    t.prepare(src, chunk, 1)
                    res, handle = await self.timed(t, lambda: t.timed(self.http, src, chunk, 1))
                    await t.check(self.http, src, handle)
                finally:
                    t.stop()
                res.update(server=s, file_mib=size_mib)
                out.append(res)
                print(f"  RSS, {size_mib} MiB, {s}: {res['baseline_rss_mib']:.0f} → {res['peak_rss_mib']:.0f} MiB, "
                      f"{res['mib_s']:.0f} MiB/s" + (f", /complete {res['complete_s']:.2f} s" if s == "ours" else ""),
                      flush=True)
            src.path.unlink()
        return out

    async def concurrency(self, warm: Source) -> list[dict[str, Any]]:
        """N distinct files uploaded at once (each one chunk in flight); ours with its
        memory budget cut and N sessions allowed, polling /memory-stats meanwhile."""
        a = self.args
        size = a.concurrent_mib * MIB
        chunk = 8 * MIB if size >= 10 * MIB else 2 * MIB
        srcs = []
        for i in range(a.concurrent):
            path = self.root / f"conc-{i}.pdf"
            srcs.append(Source(path, size, make_pdf(path, size, seed=i + 1, text=f"file {i}")))
        # The active-upload cap is raised to the concurrency and the session-creation rate
        # limits (10 at once per owner and per IP by default) are off: the case measures
        # uploads in flight, not the limiter (tests/api/test_limits.py covers that).
        env = {"STREAMING_MEMORY_LIMIT_MB": str(a.memory_limit_mb), "STREAMING_MAX_CONCURRENT_UPLOADS": str(a.concurrent),
               "STREAMING_RATE_LIMIT_PER_MINUTE": "0", "STREAMING_IP_RATE_LIMIT_PER_MINUTE": "0"}
        out = []
        for s in [s for s in a.servers if s != NOSCAN]:
            t = self.target(s, f"x{a.concurrent}", a.concurrent_mib + 1, env)
            polls: list[dict[str, Any]] = []
            try:
                await t.start(self.http, warm)
                for src in srcs:
                    t.prepare(src, chunk, 1)
                before = await t.memory_stats(self.http) if isinstance(t, Ours) else {}
                done = asyncio.Event()

                async def poll(t: Target = t) -> None:
                    while isinstance(t, Ours) and not done.is_set():
                        polls.append(await t.memory_stats(self.http))
                        await asyncio.sleep(0.2)

                async def all_at_once(t: Target = t) -> tuple[dict[str, Any], Any]:
                    start = time.perf_counter()
                    each = await asyncio.gather(*(t.timed(self.http, src, chunk, 1) for src in srcs))
                    elapsed = time.perf_counter() - start
                    return ({"seconds": elapsed, "mib_s": len(srcs) * size / MIB / elapsed,
                             "retries": sum(r["retries"] for r, _ in each),
                             "per_upload_mib_s": [r["mib_s"] for r, _ in each]}, [h for _, h in each])

                poller = asyncio.create_task(poll())
                try:
                    res, handles = await self.timed(t, all_at_once)
                finally:
                    done.set()
                    await poller
                after = await t.memory_stats(self.http) if isinstance(t, Ours) else {}
                verified = 0
                for src, handle in zip(srcs, handles, strict=True):
                    await t.check(self.http, src, handle)
                    verified += 1
            finally:
                t.stop()
            res.update(server=s, uploads=len(srcs), file_mib=a.concurrent_mib, chunk_mib=chunk // MIB,
                       verified=verified, memory_stats=after, memory_stats_before=before,
                       polls=len(polls), backpressure_seen=any(p.get("backpressure_active") for p in polls),
                       max_polled_inflight_bytes=max((p.get("inflight_bytes", 0) for p in polls), default=0),
                       max_polled_rss_mb=max((p.get("memory_usage_mb", 0) for p in polls), default=0))
            if isinstance(t, Ours):
                res["env"] = env
            out.append(res)
            print(f"  {len(srcs)} at once, {s}: {res['mib_s']:.0f} MiB/s aggregate, {verified}/{len(srcs)} "
                  f"byte-exact, peak RSS {res['peak_rss_mib']:.0f} MiB, retries {res['retries']}", flush=True)
        for src in srcs:
            src.path.unlink()
        return out


async def main_async(args: argparse.Namespace) -> int:
    versions = peers.install(args.scratch) if set(args.servers) - set(OURS_ANY) else {}
    root = Path(tempfile.mkdtemp(prefix="bench-compare-", dir=args.tmpdir))
    floor_runs: list[float] = []
    write_runs: list[float] = []
    floor_passes: list[dict[str, Any]] = []
    result: dict[str, Any] = {"command": sys.argv, "peer_versions": versions, "client_cpu": pinned(),
                              "peers_concurrent": args.peers_concurrent}
    try:
        info = machine_info(root)
        result["machine"] = info
        print(f"$ {' '.join(sys.argv)}\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()), flush=True)
        print("- peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
        print(f"- client pinned to CPU {pinned()}, servers on every CPU" if pinned() is not None
              else "- client not pinned", flush=True)
        warm = make_source(root, 3 * MIB)
        conn = aiohttp.TCPConnector(limit=max(64, 4 * args.concurrent), keepalive_timeout=KEEPALIVE)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(sock_read=600)) as http:
            bench = Bench(args, root, http)
            src = make_source(root, args.size_mib * MIB)
            result["speed"] = await bench.speed(src, warm, floor_runs, write_runs, floor_passes)
            src.path.unlink()
            result["floor"] = {**report.spread(floor_runs), "runs": floor_runs,
                               "write_only": {**report.spread(write_runs), "runs": write_runs},
                               "cpu": report.floor_cpu(floor_passes), "passes": floor_passes}
            result["rss_growth"] = await bench.rss_growth(warm) if args.rss_mib else []
            result["concurrency"] = await bench.concurrency(warm) if args.concurrent > 0 else []
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["loadavg_at_end"] = os.getloadavg()

    print("\n" + report.speed_table(result["floor"], result["speed"]) + "\n")
    print(report.cpu_table(result["floor"], result["speed"]) + "\n")
    if result["rss_growth"]:
        print(report.rss_table(result["rss_growth"]) + "\n")
        big = max((r for r in result["rss_growth"] if r["server"] == "ours"), key=lambda r: r["file_mib"], default=None)
        if big:
            result["complete_latency"] = {"file_mib": big["file_mib"], "complete_s": big["complete_s"],
                                          "chunks_s": big["seconds"] - big["complete_s"]}
            print(f"/complete latency, ours, {big['file_mib']} MiB: {big['complete_s']:.2f} s "
                  f"(the chunks before it: {big['seconds'] - big['complete_s']:.2f} s)\n")
    if result["concurrency"]:
        print(f"{args.concurrent} concurrent uploads of {args.concurrent_mib} MiB, ours with "
              f"STREAMING_MEMORY_LIMIT_MB={args.memory_limit_mb}:\n")
        print(report.concurrency_table(result["concurrency"]) + "\n")
    checks = report.targets(result["floor"], result["speed"]) + report.issue17_targets(result["floor"], result["speed"])
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    result["targets"] = dict(checks)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"raw figures: {out}")
    return 1 if args.check and not all(ok for _, ok in checks) else 0


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=256, help="file size for the speed runs")
    p.add_argument("--runs", type=int, default=3, help="rounds of the speed cases (median reported)")
    p.add_argument("--chunks", type=ints, default=[8, 2], help="chunk sizes in MiB (ours accepts 2-8)")
    p.add_argument("--parallel", type=ints, default=[1, 4], help="requests in flight per shape")
    p.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS),
                   help=f"which of {','.join(SERVERS)} to run")
    p.add_argument("--rss-mib", type=ints, default=[100, 1024], help="upload sizes of the RSS-growth runs; '' skips")
    p.add_argument("--concurrent", type=int, default=20, help="uploads at once in the concurrency run; 0 skips")
    p.add_argument("--concurrent-mib", type=int, default=32, help="size of each of those uploads")
    p.add_argument("--memory-limit-mb", type=int, default=64, help="ours' STREAMING_MEMORY_LIMIT_MB in that run")
    p.add_argument("--scratch", type=Path, default=REPO / "bench" / ".peers", help="where the peers are installed")
    p.add_argument("--json", default=str(REPO / "bench" / "results" / "compare.json"))
    p.add_argument("--tmpdir", default=None, help="where the files go (default: the system temp dir)")
    p.add_argument("--quick", action="store_true", help="end to end on small files, 1 run (~1-2 min)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--pin-client", type=int, default=None, metavar="CPU",
                   help="pin the client (this process: its requests, floor passes, samplers) to one CPU, as "
                        "taskset -c CPU would; every server is started on all CPUs")
    p.add_argument("--peers-concurrent", action="store_true",
                   help="peers get N concurrent uploads for N in flight, even where they offer concatenation "
                        "(issue 17); ours-tus still sends N partials and a final concatenation")
    args = p.parse_args()
    if args.pin_client is not None:
        pin_client(args.pin_client)
    if unknown := set(args.servers) - set(SERVERS) - {NOSCAN}:
        p.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if args.quick:
        args.size_mib, args.runs, args.rss_mib, args.concurrent_mib = 32, 1, [16, 64], 4
    run_main(lambda: main_async(args))


if __name__ == "__main__":
    main()
