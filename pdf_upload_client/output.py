"""What ``pdf-upload`` shows: exit codes, error lines, progress bars, result lines.

Results go to stdout (one line per file, or one JSON object per line with ``--json``);
bars and notes go to stderr, errors as ``error: <what>: <code>: <message>``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.progress import (
    BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
)

from pdf_upload_client.api import ServerError, Unavailable
from pdf_upload_client.uploader import ResumeImpossible, UploadResult

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_RESUME, EXIT_NO_SEARCH = 0, 1, 2, 3, 4, 5


class Ui:
    """Progress bars and notes on stderr, results on stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(args.json)
        self.quiet = bool(args.quiet)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(), console=self.err,
                             disable=self.quiet, redirect_stdout=False, redirect_stderr=False)

    def note(self, what: str, message: str) -> None:
        if not self.quiet:
            self.err.print(f"pdf-upload: {what}: {message}", markup=False)

    def error(self, what: str, exc: BaseException) -> int:
        status, code, message = classify(exc)
        self.err.print(f"error: {what}: {code}: {message}", markup=False)
        return status

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        """A rich table on a terminal; tab-separated lines (header first) otherwise."""
        if not self.out.is_terminal:
            for row in [headers, *rows]:
                print("\t".join(cell.replace("\t", " ") for cell in row))
            return
        table = Table(*headers)
        table.columns[0].no_wrap = True
        for row in rows:
            table.add_row(*row)
        self.out.print(table)

    def bar(self, name: str, total: int) -> TaskID:
        return self.bars.add_task(name, total=total)

    def progress_for(self, task: TaskID) -> Any:
        def update(done: int, total: int, _chunks: int, _of: int) -> None:
            self.bars.update(task, completed=done, total=total)
        return update

    def result(self, res: UploadResult, shown: str) -> None:
        doc = res.document
        if self.json:
            print(json.dumps({"file": shown, "document_id": doc.get("id"), "duplicate": res.duplicate,
                              "resumed": res.resumed, "chunks_sent": res.chunks_sent,
                              "total_chunks": res.total_chunks, "session_id": res.session_id,
                              "document": doc}), flush=True)
            return
        extra = "".join(s for s, on in ((", resumed", res.resumed), (", duplicate", res.duplicate)) if on)
        print(f"{shown}: document {doc.get('id')} ({res.chunks_sent}/{res.total_chunks} chunks sent{extra})",
              flush=True)


def classify(exc: BaseException) -> tuple[int, str, str]:
    """(exit code, error code, message) for anything an operation may raise."""
    if isinstance(exc, ResumeImpossible):
        return EXIT_RESUME, exc.code, exc.message
    if isinstance(exc, Unavailable):
        return EXIT_UNAVAILABLE, "unavailable", str(exc)
    if isinstance(exc, ServerError):
        status = EXIT_UNAVAILABLE if exc.retryable or exc.status >= 500 else EXIT_REFUSED
        return status, exc.code, exc.message
    if isinstance(exc, OSError):
        return EXIT_USAGE, "file_error", exc.strerror or str(exc)
    return EXIT_REFUSED, type(exc).__name__, str(exc)
