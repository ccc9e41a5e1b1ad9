"""What every child process the server spawns does first."""

from __future__ import annotations

import os
import threading
import time


def die_with_parent(parent: int) -> None:
    """In the child, at its start: exit once the server that spawned it is gone.

    A server killed with SIGKILL runs no shutdown, and its child would wait forever for
    the next task (it may hold a write end of its own task queue, so it never sees EOF),
    keeping multiprocessing's resource tracker alive too: two orphans per crash."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()
