"""Scale-out benchmark: the same uploads through one replica and through three.

Two clusters run side by side (``deploy/cluster.py``: SeaweedFS, Redis, PostgreSQL and
nginx each, no importer, so that only the upload path is measured), one with one
replica, one with three. Each round sends ``--uploads`` different PDFs of ``--size-mib``
at once (the chunk API, 2 chunks in flight each, chunk size the server's choice: 8 MiB
in S3 mode) through nginx, to one cluster and then the other, alternating which goes
first. Reported per cluster, medians over ``--runs`` rounds:

- aggregate throughput: bytes of every upload over the time from the first /initiate
  to the last /complete answer;
- bytes the replicas sent to S3 per uploaded byte, and bytes S3 copied inside itself,
  read from each replica's ``/metrics`` (``pdfupload_object_store_bytes``) before and
  after the round;
- with ``--big-mib`` (e.g. 1024), once, on the one-replica cluster: the /complete
  latency of one upload of that size (the time S3 mode spends completing the multipart
  upload, reading the file for pikepdf and copying it to its content address).

On a 2-core machine the client, nginx, SeaweedFS and the replicas share the cores, so
three replicas are not expected to be faster: the point is that nothing is lost and
nothing is copied more (``--quick``: 4 uploads of 8 MiB, 1 round).

    .venv/bin/python bench/bench_cluster.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deploy.cluster import Cluster  # noqa: E402
from tests.e2e.client import ApiClient, upload_chunks  # noqa: E402
from tests.pdfgen import make_pdf  # noqa: E402
from tests.realservers.procs import free_ports  # noqa: E402

MIB = 1 << 20
_TRAFFIC = re.compile(r'^pdfupload_object_store_bytes_total\{kind="(\w+)"\} (\S+)$', re.M)


def traffic(cluster: Cluster) -> dict[str, float]:
    """Bytes written to and copied inside S3 so far, summed over the replicas."""
    total = {"written": 0.0, "copied": 0.0}
    for port in cluster.replica_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        for kind, value in _TRAFFIC.findall(text):
            total[kind] += float(value)
    return total


async def upload(api: ApiClient, path: Path) -> float:
    """One upload; the seconds /complete took."""
    session = await api.initiate(path.name, path.stat().st_size)
    run = await upload_chunks(api, session, path, range(session["total_chunks"]), in_flight=2)
    assert run.acked == set(range(session["total_chunks"])), (run.refused, run.broken)
    started = time.perf_counter()
    done = await api.complete(session["session_id"])
    assert done.status == 200, done
    return time.perf_counter() - started


async def round_on(cluster: Cluster, files: list[Path]) -> dict[str, float]:
    before = traffic(cluster)
    size = sum(p.stat().st_size for p in files)
    async with ApiClient(cluster.url) as api:
        started = time.perf_counter()
        await asyncio.gather(*(upload(api, p) for p in files))
        took = time.perf_counter() - started
    after = traffic(cluster)
    return {"mib_s": size / MIB / took, "seconds": took,
            "written_per_byte": (after["written"] - before["written"]) / size,
            "copied_per_byte": (after["copied"] - before["copied"]) / size}


def start(replicas: int, root: Path) -> Cluster:
    (port,) = free_ports(1)
    cluster = Cluster(root / f"r{replicas}", port, replicas=replicas, importers=0)
    cluster.root.mkdir(parents=True)
    cluster.start()
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=0, help="also time /complete of one upload this big")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cluster.json")
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.size_mib, args.runs = 4, 8, 1
    # room for every upload at once; no rate limit in the way of a benchmark
    os.environ.update(STREAMING_MAX_CONCURRENT_UPLOADS="1000", STREAMING_MAX_OPEN_SESSIONS_PER_OWNER="1000",
                      STREAMING_RATE_LIMIT_PER_MINUTE="0", STREAMING_IP_RATE_LIMIT_PER_MINUTE="0",
                      STREAMING_MAX_PENDING_MB_PER_OWNER=str(1 << 30))
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    clusters: dict[int, Cluster] = {}
    results: dict[str, Any] = {"uploads": args.uploads, "size_mib": args.size_mib, "runs": args.runs, "rounds": []}
    try:
        for n in (1, 3):
            clusters[n] = start(n, root)
            print(f"cluster of {n}: {clusters[n].url}", flush=True)
        seed = 0
        for r in range(args.runs):
            order = (1, 3) if r % 2 == 0 else (3, 1)
            for n in order:
                files = []
                for i in range(args.uploads):  # different bytes every upload: no dedup
                    seed += 1
                    path = root / f"u{seed}.pdf"
                    make_pdf(path, args.size_mib * MIB, seed=seed)
                    files.append(path)
                row = asyncio.run(round_on(clusters[n], files))
                for path in files:
                    path.unlink()
                row.update(replicas=n, round=r)
                results["rounds"].append(row)
                print(json.dumps(row), flush=True)
        if args.big_mib:
            path = root / "big.pdf"
            make_pdf(path, args.big_mib * MIB, seed=10_000)

            async def big() -> float:
                async with ApiClient(clusters[1].url, timeout=3600) as api:
                    return await upload(api, path)

            results["complete_seconds"] = {"size_mib": args.big_mib, "seconds": asyncio.run(big())}
            print(json.dumps(results["complete_seconds"]), flush=True)
    except BaseException:
        print(f"failed: the clusters' logs are left under {root}", flush=True)
        raise
    finally:
        for cluster in clusters.values():
            cluster.stop()
    shutil.rmtree(root, ignore_errors=True)
    summary = {}
    for n in (1, 3):
        rows = [row for row in results["rounds"] if row["replicas"] == n]
        summary[n] = {key: statistics.median(row[key] for row in rows)
                      for key in ("mib_s", "written_per_byte", "copied_per_byte")}
    results["summary"] = summary
    print(f"\n{args.uploads} uploads of {args.size_mib} MiB at once, median of {args.runs} rounds:\n")
    print("| replicas | aggregate MiB/s | bytes sent to S3 per uploaded byte | bytes copied inside S3 per byte |")
    print("|---|---|---|---|")
    for n, s in summary.items():
        print(f"| {n} | {s['mib_s']:.0f} | {s['written_per_byte']:.3f} | {s['copied_per_byte']:.3f} |")
    if "complete_seconds" in results:
        c = results["complete_seconds"]
        print(f"\n/complete of one {c['size_mib']} MiB upload in S3 mode: {c['seconds']:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"raw figures: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
