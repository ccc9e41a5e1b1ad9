#!/usr/bin/env python
"""Where our server's CPU goes during uploads at 8 MiB chunks (issue 17), over the chunk
API and over tus, sampled with perf and py-spy.

    .venv/bin/pip install py-spy                       # once (bench only; not a dependency)
    .venv/bin/python bench/profile_upload.py            # 3 x 256 MiB per path and tool, ~2 min
    .venv/bin/python bench/profile_upload.py --paths tus --tools perf --uploads 5 --pin-client 1

For each path and tool: a fresh, warmed-up server (helpers kept up, as in bench_compare's
speed rounds), then ``--uploads`` sequential uploads of one file, each after a floor
pass, with the sampler running around the upload only:

- ``perf record -e cpu-clock -a -g`` (no hardware counters in this VM; cpu-clock samples
  only what is on a CPU): the tree's samples by process, thread (the main thread is
  the event loop), category (SHA-256, the scan's numpy, the interpreter, copies, and
  kernel time by the system call it came in by), library and symbol. Kernel symbols resolve; Python functions are
  ``_PyEval_EvalFrameDefault`` and the like (3.11 has no perf trampoline).
- ``py-spy record --subprocesses --function --format raw`` (no native frames): Python
  frames. Its idle detection does not work here (threads blocked in a queue get were a
  quarter of the samples), so leaves that are blocking waits (``IDLE_LEAVES``) are
  dropped and counted apart.

The tree's CPU seconds are also read per process (psutil): exact, where samples are
shares. Raw samples go to bench/results/profile-<path>-<tool>.*, figures to
bench/results/profile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upload import KEEPALIVE, MIB, REPO, make_source, run_main  # noqa: E402
from cpu_floor import GIB, floor_pass, pin_client, pinned  # noqa: E402
from targets import Ours, OursTus  # noqa: E402

#: As in bench_compare's speed rounds: the helpers stay up between uploads.
ENV = {"STREAMING_CHILD_IDLE_SECONDS": "3600"}
PY_SPY = Path(sys.executable).with_name("py-spy")


#: Leaves where py-spy's samples are a thread blocked, not on a CPU: here (2 vCPU KVM)
#: py-spy counts a thread waiting in these as busy whatever its flags (a ThreadPoolExecutor
#: thread idle in ``_worker``'s queue get was a quarter of the samples), so they are
#: dropped. ``Runner.run`` (uvloop's loop, native: socket reads and ``epoll_wait``) is
#: kept, and is an upper bound.
IDLE_LEAVES = ("_worker (thread.py", "Condition.wait (", "Connection._recv (", "Event.wait (",
               "_PollLikeSelector.select (", "EpollSelector.select (", "Thread.join (", "Queue.get (",
               "BaseEventLoop._run_once (", "socket.accept (", "sleep (")


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: ``frame;frame;...;leaf count`` per line; with
    --subprocesses each process's frame (``process <pid>:"<cmdline>"``) comes first, a
    child's after its parent's."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def short(frame: str) -> str:
    """``name (path/to/module.py:12)`` -> ``name (module.py:12)``; a process frame
    -> ``process <pid> <program>``."""
    if frame.startswith("process "):
        pid, _, cmd = frame[len("process "):].partition(":")
        words = cmd.strip('"').split()
        prog = next((w for w in words if w.startswith("backend")), words[-1] if words else "")
        return f"process {pid} {prog}"
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def _share(c: collections.Counter[str], total: int, top: int) -> list[tuple[str, int, float]]:
    return [(k, v, v / total) for k, v in c.most_common(top)]


def summarize_py_spy(stacks: list[tuple[list[str], int]], top: int) -> dict[str, Any]:
    by_process: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    idle = 0
    for raw_frames, n in stacks:
        ours = {short(f) for f in raw_frames if "backend/" in f and "__main__.py" not in f}
        frames = [short(f) for f in raw_frames]
        procs = [f for f in frames if f.startswith("process ")]  # a child's frame follows its parent's
        proc = procs[-1].split()[-1] if procs else "?"
        calls = [f for f in frames if not f.startswith("process ")]
        if calls and calls[-1].startswith(IDLE_LEAVES):
            idle += n
            continue
        by_process[proc] += n
        if calls:
            self_[f"{calls[-1]} [{proc}]"] += n
        for f in set(calls) & ours:  # the server's own functions, not the runners above them
            inclusive[f"{f} [{proc}]"] += n
    total = sum(by_process.values()) or 1
    return {"samples": total, "idle_dropped": idle, "by_process": _share(by_process, total, top),
            "self": _share(self_, total, top), "inclusive": _share(inclusive, total, top)}


def _frames(script: str) -> Iterator[tuple[int, int, list[tuple[str, str]]]]:
    """``perf script -F pid,tid,ip,sym,dso`` of a ``-g`` record: (pid, tid, [(symbol,
    library), leaf first]) per sample."""
    pid = tid = -1
    frames: list[tuple[str, str]] = []
    for line in script.splitlines():
        if not line.strip():
            continue
        if not line.startswith("\t") and "/" in line.split()[0]:
            if pid >= 0:
                yield pid, tid, frames
            p, _, t = line.split()[0].partition("/")
            pid, tid, frames = (int(p), int(t), []) if p.isdigit() and t.isdigit() else (-1, -1, [])
            continue
        if pid >= 0:
            parts = line.strip().split(None, 1)
            sym, _, dso = (parts[1] if len(parts) > 1 else "").rpartition(" (")
            frames.append((sym.strip() or "?", dso.rstrip(")").rsplit("/", 1)[-1]))
    if pid >= 0:
        yield pid, tid, frames


def category(frames: list[tuple[str, str]]) -> str:
    """What a sample was doing, from its leaf and, in the kernel, the system call (or
    fault, or softirq) it came in by and whether a socket or a file was under it."""
    if not frames:
        return "?"
    sym, dso = frames[0]
    if dso.startswith("libcrypto"):
        return "SHA-256 (libcrypto)"
    if dso.startswith("_multiarray_umath"):
        return "numpy (the scan's masks)"
    if dso.startswith("libc.so") and "mem" in sym:
        return "libc memmove/memset (copies)"
    if dso != "[kernel.kallsyms]":
        return "Python interpreter (libpython)" if dso.startswith("libpython") else f"other user code ({dso})"
    names = [f for f, d in frames if d == "[kernel.kallsyms]"]
    if any("page_fault" in f for f in names):
        return "kernel: page faults"
    at = names.index("do_syscall_64") if "do_syscall_64" in names else -1
    call = None
    if at > 0:  # the frame that do_syscall_64 called: ksys_read, do_pwritev, __x64_sys_futex...
        call = names[at - 1]
        for prefix in ("__x64_sys_", "__do_sys_", "ksys_", "do_"):
            call = call.removeprefix(prefix)
    if call is None:
        return "kernel: softirq (loopback TCP)" if any("softirq" in f for f in names) else "kernel: other"
    if any(f.startswith(("tcp_", "sock_", "inet_", "unix_", "__sys_recv", "__sys_send")) for f in names):
        return f"kernel: {call} on a socket"
    if any(f.startswith(("ext4_", "filemap_", "generic_perform_write", "iomap_")) for f in names):
        return f"kernel: {call} on a file"
    return f"kernel: {call}"


def summarize_perf(script: str, names: dict[int, str], top: int) -> dict[str, Any]:
    """A system-wide cpu-clock record: the tree's samples by process and thread (the
    main thread: the event loop), by category (:func:`category`), by library and by
    symbol (kernel symbols resolve; a stripped library's do not)."""
    counters: dict[str, collections.Counter[str]] = {
        k: collections.Counter() for k in ("by_process", "by_thread", "by_category", "by_dso", "by_symbol")}
    for pid, tid, frames in _frames(script):
        if pid not in names or not frames:
            continue
        proc = names[pid]
        sym, dso = frames[0]
        counters["by_process"][proc] += 1
        counters["by_thread"][f"{proc}: {'main thread' if tid == pid else 'other threads'}"] += 1
        counters["by_category"][f"{category(frames)} [{proc}]"] += 1
        counters["by_dso"][f"{dso} [{proc}]"] += 1
        counters["by_symbol"][f"{sym} ({dso}) [{proc}]"] += 1
    total = sum(counters["by_process"].values()) or 1
    return {"samples": total, **{k: _share(c, total, top) for k, c in counters.items()}}


def table(rows: list[tuple[str, int, float]], what: str = "frame") -> str:
    return "\n".join([f"| {what} | samples | share |", "|---|---|---|"]
                     + [f"| `{k}` | {v} | {s:.1%} |" for k, v, s in rows])


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")[-2000:]


async def profile(path_name: str, tool: str, args: argparse.Namespace, root: Path, out_dir: Path) -> dict[str, Any]:
    src = make_source(root, args.size_mib * MIB)
    warm = make_source(root, 3 * MIB)
    cls = Ours if path_name == "chunks" else OursTus
    t = cls(root / f"server-{path_name}-{tool}", args.size_mib + 1, dict(ENV))
    raw = out_dir / f"profile-{path_name}-{tool}.{'txt' if tool == 'py-spy' else 'data'}"
    per_pid: dict[int, float] = {}
    floors: list[dict[str, Any]] = []
    uploads: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE),
                                         timeout=aiohttp.ClientTimeout(sock_read=600)) as http:
            await t.start(http, warm)
            t.prepare(src, 8 * MIB, 1)
            names = {p.pid: (p.cmdline()[2] if len(p.cmdline()) > 2 else p.name()) for p in t.tree.members()}
            for _ in range(args.uploads):
                os.sync()
                floors.append(floor_pass(src.path, root / "floor.out"))
                os.sync()
                if tool == "py-spy":
                    sampler = subprocess.Popen(
                        [str(PY_SPY), "record", "--pid", str(t.server.popen.pid), "--subprocesses", "--function",
                         *(["--nonblocking"] if args.nonblocking else []), "--rate", str(args.rate),
                         "--format", "raw", "-o", f"{raw}.{len(uploads)}"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                else:
                    sampler = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(args.perf_rate), "-a", "-g",
                                                "-o", f"{raw}.{len(uploads)}"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                await asyncio.sleep(1.0)  # attached
                before = t.tree.cpu_by_pid()
                total0 = t.tree.cpu_total()
                res, handle = await t.timed(http, src, 8 * MIB, 1)
                total1 = t.tree.cpu_total()
                after = t.tree.cpu_by_pid()
                err = _stop(sampler)
                if not Path(f"{raw}.{len(uploads)}").exists():
                    raise RuntimeError(f"{tool} wrote nothing: {err}")
                for pid, cpu in after.items():
                    per_pid[pid] = per_pid.get(pid, 0.0) + cpu - before.get(pid, 0.0)
                res["server_cpu_s"] = total1 - total0
                uploads.append(res)
                print(f"  {path_name}, {tool}: {res['mib_s']:.0f} MiB/s, tree CPU {res['server_cpu_s']:.2f} s "
                      f"({res['server_cpu_s'] * GIB / src.size:.2f} s/GiB; floor {floors[-1]['cpu_s_per_gib']:.2f})",
                      flush=True)
                await t.check(http, src, handle)  # untimed, unsampled: the import is not the upload's
            names.update({p.pid: (p.cmdline()[2] if len(p.cmdline()) > 2 else p.name()) for p in t.tree.members()})
    finally:
        t.stop()
    if tool == "py-spy":
        stacks = [s for i in range(len(uploads)) for s in parse_raw(Path(f"{raw}.{i}"))]
        summary = summarize_py_spy(stacks, args.top)
    else:
        script = "".join(subprocess.run(["perf", "script", "-i", f"{raw}.{i}", "-F", "pid,tid,ip,sym,dso"],
                                        capture_output=True, text=True).stdout for i in range(len(uploads)))
        summary = summarize_perf(script, names, args.top)
    gib = len(uploads) * src.size / GIB
    summary.update(path=path_name, tool=tool, uploads=uploads, raw=str(raw),
                   cpu_s_per_gib_by_process={f"{pid} {names.get(pid, '?')}": cpu / gib for pid, cpu in per_pid.items()},
                   tree_cpu_s_per_gib=sum(u["server_cpu_s"] for u in uploads) / gib,
                   floor_cpu_s_per_gib=sorted(f["cpu_s_per_gib"] for f in floors)[len(floors) // 2],
                   floor_split_s_per_gib={k: sorted(f[k] * GIB / f["bytes"] for f in floors)[len(floors) // 2]
                                          for k in ("io_cpu_s", "hash_cpu_s", "scan_cpu_s")})
    return summary


async def main_async(args: argparse.Namespace) -> int:
    if "py-spy" in args.tools and not PY_SPY.exists():
        raise SystemExit(f"py-spy is not installed beside {sys.executable}: .venv/bin/pip install py-spy")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-profile-", dir=args.tmpdir))
    results = []
    try:
        print(f"$ {' '.join(sys.argv)}\n- load average {os.getloadavg()}, client CPU {pinned()}", flush=True)
        for path_name in args.paths:
            for tool in args.tools:
                results.append(await profile(path_name, tool, args, root, out_dir))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(f"\n## {r['path']}, {r['tool']}: {r['samples']} samples over {len(r['uploads'])} x {args.size_mib} MiB, "
              f"8 MiB chunks; tree CPU {r['tree_cpu_s_per_gib']:.2f} s/GiB = "
              f"{r['tree_cpu_s_per_gib'] / r['floor_cpu_s_per_gib']:.2f}x the floor's {r['floor_cpu_s_per_gib']:.2f} "
              "(" + ", ".join(f"{k[:-6]} {v:.2f}" for k, v in r["floor_split_s_per_gib"].items()) + ")\n")
        print("CPU s/GiB by process (psutil): " + ", ".join(
            f"{k}: {v:.2f}" for k, v in sorted(r["cpu_s_per_gib_by_process"].items(), key=lambda kv: -kv[1])) + "\n")
        if r["tool"] == "py-spy":
            print(f"({r['idle_dropped']} samples in blocking waits dropped as idle)\n")
            print("Samples by process:\n\n" + table(r["by_process"], "process") + "\n")
            print("Self (where the thread was):\n\n" + table(r["self"]) + "\n")
            print("Inclusive, the server's own functions (the frame or anything under it):\n\n" + table(r["inclusive"]) + "\n")
        else:
            print("By process:\n\n" + table(r["by_process"], "process") + "\n")
            print("By thread:\n\n" + table(r["by_thread"], "thread") + "\n")
            print("By category:\n\n" + table(r["by_category"], "category") + "\n")
            print("By library:\n\n" + table(r["by_dso"], "library") + "\n")
            print("By symbol:\n\n" + table(r["by_symbol"], "symbol") + "\n")
    (out_dir / "profile.json").write_text(json.dumps({"command": sys.argv, "time": time.time(), "results": results},
                                                     indent=2))
    print(f"raw figures: {out_dir / 'profile.json'}")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", type=lambda s: s.split(","), default=["chunks", "tus"], help="chunks, tus or both")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--uploads", type=int, default=3, help="sequential uploads profiled per path")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--perf-rate", type=int, default=999, help="perf samples per second and CPU")
    p.add_argument("--tools", type=lambda s: s.split(","), default=["perf", "py-spy"],
                   help="perf (cpu-clock, system-wide, the tree's samples kept: libraries and kernel symbols), "
                        "py-spy (Python frames), or both; each path gets a fresh server per tool")
    p.add_argument("--nonblocking", action="store_true",
                   help="py-spy does not pause the server to sample (less overhead; it then counts threads "
                        "blocked in a read as busy)")
    p.add_argument("--top", type=int, default=25, help="rows per table")
    p.add_argument("--pin-client", type=int, default=None, metavar="CPU", help="pin the client to one CPU")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--tmpdir", default=None)
    args = p.parse_args()
    if set(args.paths) - {"chunks", "tus"}:
        p.error("--paths: chunks, tus")
    if set(args.tools) - {"perf", "py-spy"}:
        p.error("--tools: perf, py-spy")
    if args.pin_client is not None:
        pin_client(args.pin_client)
    run_main(lambda: main_async(args))


if __name__ == "__main__":
    main()
