"""What ``pdf-upload`` shows: exit codes, error lines, progress bars, result lines.

Results go to stdout (one line per file, or one JSON object per line with ``--json``),
each followed by the document's security findings when it was flagged; bars and notes
go to stderr, errors as ``error: <what>: <code>: <message>``. Sizes, rates and times are
written as the upload page writes them (``frontend/src/page.ts``: binary units, KiB,
MiB, GiB), and a progress line fits in 80 columns.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from pdf_upload_client.api import ServerError, Unavailable
from pdf_upload_client.uploader import ResumeImpossible, UploadResult

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_RESUME, EXIT_NO_SEARCH = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it
MAX_FINDINGS_SHOWN = 20
# Column widths of a progress line: name, bar, "1023 MiB of 1023 MiB", "1023 KiB/s",
# "59 min 59 s left", and the four single spaces between them: 78 columns.
NAME_WIDTH, BAR_WIDTH, BYTES_WIDTH, SPEED_WIDTH, LEFT_WIDTH = 16, 12, 20, 10, 16
LINE_WIDTH = NAME_WIDTH + BAR_WIDTH + BYTES_WIDTH + SPEED_WIDTH + LEFT_WIDTH + 4


def format_bytes(n: float) -> str:
    """``formatBytes`` of the page: ``512 B``, ``1.5 KiB``, ``20 MiB``, ``1.0 GiB``."""
    if n < 1024:
        return f"{max(0, math.floor(n + 0.5))} B"
    v = n / 1024
    units = ("KiB", "MiB", "GiB", "TiB")
    i = 0
    while v >= 1024 and i < len(units) - 1:
        v /= 1024
        i += 1
    return f"{v:.1f} {units[i]}" if v < 10 else f"{math.floor(v + 0.5)} {units[i]}"


def format_duration(seconds: float) -> str:
    """``formatDuration`` of the page: ``45 s``, ``2 min 5 s``, ``1 h 3 min``."""
    s = max(0, math.floor(seconds + 0.5))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def printable(text: str) -> str:
    """``text`` on one line with no control characters (details come from the PDF)."""
    return "".join(c if c.isprintable() else " " for c in text)


class BytesColumn(ProgressColumn):
    """``12 MiB of 40 MiB``."""

    def render(self, task: Task) -> Text:
        total = f" of {format_bytes(task.total)}" if task.total is not None else ""
        return Text(f"{format_bytes(task.completed)}{total}", style="progress.download")


class SpeedColumn(ProgressColumn):
    """``3.2 MiB/s``, averaged over the progress's ``speed_estimate_period``."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{format_bytes(speed)}/s" if speed else "", style="progress.data.speed")


class TimeLeftColumn(ProgressColumn):
    """``2 min 5 s left`` at the current speed; ``done`` when finished."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done", style="progress.elapsed")
        speed = task.speed
        if not speed or task.total is None:
            return Text("")
        return Text(f"{format_duration(task.remaining / speed if task.remaining else 0)} left",
                    style="progress.remaining")


def progress_bars(console: Console, *, disable: bool = False) -> Progress:
    """The bars: one line per file, ``LINE_WIDTH`` columns whatever the terminal's width
    (narrower on a narrower terminal: the name and the figures are cut with an ellipsis)."""
    def fixed(width: int, justify: JustifyMethod = "left") -> Column:
        return Column(width=width, min_width=width, max_width=width, no_wrap=True, overflow="ellipsis",
                      justify=justify)
    return Progress(TextColumn("{task.description}", table_column=fixed(NAME_WIDTH)),
                    BarColumn(bar_width=BAR_WIDTH, table_column=fixed(BAR_WIDTH)),
                    BytesColumn(table_column=fixed(BYTES_WIDTH, "right")),
                    SpeedColumn(table_column=fixed(SPEED_WIDTH, "right")),
                    TimeLeftColumn(table_column=fixed(LEFT_WIDTH)),
                    console=console, disable=disable, redirect_stdout=False, redirect_stderr=False,
                    speed_estimate_period=10.0)


class Ui:
    """Progress bars and notes on stderr, results on stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(args.json)
        self.quiet = bool(args.quiet)
        self.verbose = bool(getattr(args, "verbose", False))
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        self.bars = progress_bars(self.err, disable=self.quiet)

    def note(self, what: str, message: str) -> None:
        if not self.quiet:
            self.err.print(f"pdf-upload: {what}: {message}", markup=False)

    def detail(self, what: str, message: str) -> None:
        """A note shown with ``-v`` only (even with ``-q``: it was asked for)."""
        if self.verbose:
            self.err.print(f"pdf-upload: {what}: {message}", markup=False)

    def error(self, what: str, exc: BaseException) -> int:
        status, code, message = classify(exc)
        self.err.print(f"error: {what}: {code}: {message}", markup=False)
        findings = exc.body.get("findings") if isinstance(exc, ServerError) else None
        for line in finding_lines(findings if isinstance(findings, list) else []):
            self.err.print(line, markup=False)
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
        """One line per file; a flagged document's findings follow it, indented."""
        doc = res.document
        if self.json:
            print(json.dumps({"file": shown, "document_id": doc.get("id"), "duplicate": res.duplicate,
                              "resumed": res.resumed, "chunks_sent": res.chunks_sent,
                              "total_chunks": res.total_chunks, "session_id": res.session_id,
                              "document": doc}), flush=True)
            return
        extra = "".join(s for s, on in ((", resumed", res.resumed), (", duplicate", res.duplicate)) if on)
        findings = flagged_findings(doc)
        flag = "" if findings is None else f", flagged: {len(findings)} finding{'' if len(findings) == 1 else 's'}"
        lines = [f"{shown}: document {doc.get('id')}{flag} ({res.chunks_sent}/{res.total_chunks} chunks sent{extra})"]
        print("\n".join(lines + finding_lines(findings or [])), flush=True)


def flagged_findings(doc: dict[str, Any]) -> list[Any] | None:
    """The findings of a document whose ``security.verdict`` is ``flagged``; else None."""
    security = doc.get("security")
    if not isinstance(security, dict) or security.get("verdict") != "flagged":
        return None
    findings = security.get("findings")
    return findings if isinstance(findings, list) else []


def finding_lines(findings: list[Any]) -> list[str]:
    """``  kind: detail`` per finding, the first ``MAX_FINDINGS_SHOWN`` of them."""
    lines = [f"  {printable(str(f.get('kind', '?')))}: {printable(str(f.get('detail', '')))}"
             for f in findings[:MAX_FINDINGS_SHOWN] if isinstance(f, dict)]
    if len(findings) > MAX_FINDINGS_SHOWN:
        lines.append(f"  ... and {len(findings) - MAX_FINDINGS_SHOWN} more (--json shows every finding)")
    return lines


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
