"""``python -m tests.faults.hooked_backend``: the real server, with a fault hook installed first.

Test-only. A SIGKILL sent from the test lands inside a state write only by luck (a save
takes well under a millisecond), so the crash loop asks the server to kill itself at an
exact point of the real ``FileStateStore.save`` instead. The hook wraps the ``os`` module
that ``backend.storage.file_state`` uses; the save code itself runs unchanged.

``FAULTS_STATE_HOOK=PATH`` installs the hook; it is armed by writing ``TOKEN K PHASE``
to ``PATH`` (a new ``TOKEN`` each time): K counts the state saves from the first one
after the file changed, so one server life can be armed for round after round.

- ``torn``: half of the K-th record is written to the temporary file, then SIGKILL
  (no fsync, no rename): the temporary file is left half-written on disk.
- ``unrenamed``: the K-th record is written and synced, then SIGKILL just before the
  rename that would publish it.
"""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path
from typing import Any

import backend.storage.file_state as file_state
from backend.__main__ import main

ENV = "FAULTS_STATE_HOOK"
PHASES = ("torn", "unrenamed")


def _die(where: str) -> None:
    sys.stderr.write(f"hooked_backend: SIGKILL {where}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(path: Path, token: str, save: int, phase: str) -> None:
    """Called by the test: die inside the ``save``-th state save from now on."""
    if phase not in PHASES or save < 1:
        raise ValueError(f"save {save} >= 1 and phase in {PHASES}, please")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{token} {save} {phase}")
    os.replace(tmp, path)


class _DyingOs(types.ModuleType):
    """``os`` as ``file_state`` sees it: every name is the real one except ``write`` and
    ``replace``, which die at the armed save."""

    def __init__(self, control: Path) -> None:
        super().__init__("os")
        self._control = control
        self._token = ""
        self._saves = 0
        self._target = 0
        self._phase = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _count(self) -> None:
        try:
            token, save, phase = self._control.read_text().split()
        except (FileNotFoundError, ValueError):
            return
        if token != self._token:
            self._token, self._target, self._phase, self._saves = token, int(save), phase, 0
        self._saves += 1

    def write(self, fd: int, data: bytes) -> int:
        self._count()
        if self._saves == self._target and self._phase == "torn":
            os.write(fd, data[: len(data) // 2])
            _die(f"in state save {self._saves}, temp file half-written")
        return os.write(fd, data)

    def replace(self, src: Any, dst: Any) -> None:
        if self._saves == self._target and self._phase == "unrenamed":
            _die(f"in state save {self._saves}, before the rename")
        os.replace(src, dst)


if __name__ == "__main__":
    if control := os.environ.get(ENV):
        file_state.os = _DyingOs(Path(control))  # type: ignore[attr-defined]
    main()
