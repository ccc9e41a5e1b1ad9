"""ChildReader: the CPU work an import does on untrusted content, in a child process.

Reading a page's text (PDFium) and cutting it into nodes (the sentence splitter, the
tokenizer) cost time and memory that the file decides. In a thread of the importer they
would hold its GIL, so its lease renewals and other imports would wait behind a hostile
file; and memory PDFium takes for a page's images would stay with it. So both run in a
:class:`~backend.services.sandbox.Sandbox` child; the importer only adds the nodes it
gets back to the index.

Contract (blocking calls: run them from an import thread):

- ``extract(path, max_pages)``: :func:`extract.extract_pages` in the child.
- ``split(sha256, pages, meta, chunk_tokens, chunk_overlap)``: :func:`split.split_pages`
  in the child; the nodes are the ones the in-process split gives (same ids, text and
  metadata).
- Each call has ``timeout`` seconds and ``memory_mb`` MiB (beyond the child's own
  imports). Past either, or when the child dies, the child is killed and the call
  raises :class:`~extract.ExtractionError` naming the cause; the next call gets a fresh
  child. What the extraction raises (``ExtractionError``, ``PasswordRequired``) crosses
  as is.
- Up to ``workers`` calls run at once; children are recycled every ``max_tasks`` calls
  and exit when idle (the sandbox's rules).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.importer.extract import ExtractionError, extract_pages
from backend.services.sandbox import ChildCrashed, LimitExceeded, Sandbox
from backend.settings import MIB

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode

# 10,000 text pages (the page limit) take ~25 s to read and ~12 s to split: ample room
TIMEOUT_SECONDS = 300.0
MEMORY_MB = 2048.0
_PRELOAD = ("backend.importer.child_preload",)


class ChildReader:
    """Extraction and splitting in sandboxed children (see the module doc)."""

    def __init__(self, *, workers: int = 1, timeout: float = TIMEOUT_SECONDS, memory_mb: float = MEMORY_MB,
                 max_tasks: int = 16) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.sandbox = Sandbox(memory_bytes=int(memory_mb * MIB), timeout=timeout, workers=workers,
                               preload=_PRELOAD, max_tasks=max_tasks)

    def extract(self, path: Path, max_pages: int | None = None) -> list[str]:
        """The pages' text (see the module doc). Raises ExtractionError."""
        pages: list[str] = self._call("reading the PDF's text", extract_pages, path, max_pages)
        return pages

    def split(self, sha256: str, pages: list[str], meta: dict[str, Any], chunk_tokens: int,
              chunk_overlap: int) -> list[BaseNode]:
        """The pages' nodes (see the module doc). Raises ExtractionError."""
        from backend.importer.split import split_pages  # llama_index: not at server start

        nodes: list[BaseNode] = self._call("splitting the PDF's text", split_pages, sha256, pages, meta,
                                           chunk_tokens, chunk_overlap)
        return nodes

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return self.sandbox.call(fn, *args)
        except LimitExceeded as exc:
            if exc.limit == "time":
                raise ExtractionError(f"{what} took longer than {self.timeout:g} s (the import time limit, "
                                      f"STREAMING_IMPORT_TIMEOUT_SECONDS); the reader was stopped") from None
            raise ExtractionError(f"{what} needed more than {self.memory_mb:g} MiB of memory "
                                  f"(the import memory limit)") from None
        except ChildCrashed as exc:
            raise ExtractionError(f"the text reader stopped while {what} ({exc})") from None

    def close(self) -> None:
        self.sandbox.close()
