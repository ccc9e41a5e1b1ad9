"""Is this server able to take uploads right now? (``/ready``; ``/health`` only says it runs.)

Each check does the real thing rather than ask for permission: a probe file is created,
written and removed in the state directory, the data directory and the partial-file
directory (``os.access`` would say yes to root on a read-only mount), the free space of
each is compared with ``STREAMING_READY_MIN_FREE_MB``, the document index must be
loaded, and the start-up steps that need the stores (loading sessions, the first sweep)
done: a store out of reach at start leaves them pending, retried in the background. Blocking (file system calls): run it in a worker thread.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.settings import MIB, Settings


def _writable(directory: Path) -> str | None:
    """None when a file can be created, written and removed in ``directory``; else why not."""
    probe = directory / f".ready-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def check(settings: Settings, index_state: Callable[[], str],
          storage_state: Callable[[], str] = lambda: "ready") -> tuple[bool, dict[str, Any]]:
    """(ready, one entry per check: ``{"ok": bool, ...details}``)."""
    checks: dict[str, Any] = {}
    min_free = settings.ready_min_free_mb
    directories = [("data_dir", settings.data_dir)]
    if not settings.redis_url:  # with Redis, session state lives there
        directories.insert(0, ("state_dir", settings.state_dir))
    if settings.storage_backend == "local":  # in S3 mode the bytes never touch this disk
        directories.append(("upload_dir", settings.partial_dir))
    for name, directory in directories:
        problem = _writable(directory)
        entry: dict[str, Any] = {"ok": problem is None}  # no paths: /ready is open to probes
        if problem is not None:
            entry["error"] = f"not writable ({problem})"
        else:
            free_mb = shutil.disk_usage(directory).free / MIB
            entry["free_mb"] = round(free_mb, 1)
            if free_mb < min_free:
                entry.update(ok=False, error=f"{free_mb:.0f} MB free, below the {min_free:.0f} MB threshold")
        checks[name] = entry
    state = index_state()
    checks["index"] = {"ok": state == "loaded", "state": state}
    storage = storage_state()  # "starting" while a store was out of reach at start
    checks["storage"] = {"ok": storage == "ready", "state": storage}
    return all(c["ok"] for c in checks.values()), checks
