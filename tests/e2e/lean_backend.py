"""``python -m tests.e2e.lean_backend``: the real server, watched for heavy imports.

Test-only. Before the server's code loads, a finder on ``sys.meta_path`` notes every
import of a package the upload server must never load (LlamaIndex, PDFium, torch) in
the file ``LEAN_REPORT`` names (one name a line, at once); it finds nothing itself, so
the import goes on as it would have. At exit, the loaded modules of those packages are
written there too, then ``exit``. The server code runs unchanged.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

FORBIDDEN = ("llama_index", "pypdfium2", "torch", "tiktoken")
REPORT = os.environ.get("LEAN_REPORT", "lean_report.txt")


def _note(line: str) -> None:
    with open(REPORT, "a") as out:
        out.write(line + "\n")


class Watch:
    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name.split(".")[0] in FORBIDDEN:
            _note(f"import {name}")
        return None


_reported = False


def _loaded() -> None:
    global _reported
    if _reported:
        return
    _reported = True
    for name in sorted(sys.modules):
        if name.split(".")[0] in FORBIDDEN:
            _note(f"loaded {name}")
    _note("exit")


def _report_then_raise(sig: int) -> None:
    """uvicorn ends a server stopped by SIGTERM or SIGINT by raising that signal again once
    it has shut down (so the exit status tells how it ended), and then no ``atexit``
    handler runs: report first."""
    _loaded()
    _raise_signal(sig)


sys.meta_path.insert(0, Watch())
atexit.register(_loaded)
_raise_signal = signal.raise_signal
signal.raise_signal = _report_then_raise

from backend.__main__ import main  # noqa: E402  (after the watch)

if __name__ == "__main__":
    main()
