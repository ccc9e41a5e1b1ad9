"""What ``pdf-upload`` shows: the page's units, bars that fit 80 columns, findings."""

from __future__ import annotations

import argparse
import io
from itertools import count

import pytest
from rich.console import Console

from pdf_upload_client.api import ServerError
from pdf_upload_client.output import LINE_WIDTH, Ui, format_bytes, format_duration, progress_bars
from pdf_upload_client.uploader import UploadResult

MIB = 1 << 20


@pytest.mark.parametrize(("n", "shown"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (10 * 1024, "10 KiB"),
    (2 * MIB, "2.0 MiB"), (40 * MIB + 777, "40 MiB"), (1023 * MIB, "1023 MiB"), (1 << 30, "1.0 GiB"),
    (10_239, "10.0 KiB"),  # as the page's toFixed(1) writes 9.999
])
def test_format_bytes_is_the_pages(n: int, shown: str) -> None:
    """The same strings as ``formatBytes`` in frontend/src/text.ts (its node test has these cases)."""
    assert format_bytes(n) == shown


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0 s"), (44.6, "45 s"), (125, "2 min 5 s"), (3600, "1 h 0 min"), (3 * 3600 + 59 * 60 + 59, "3 h 59 min"),
    (-3, "0 s"),
])
def test_format_duration_is_the_pages(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize("terminal_width", [80, 200])
def test_progress_lines_fit_80_columns(terminal_width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=terminal_width, force_terminal=True, color_system=None)
    bars = progress_bars(console)
    clock = count()
    bars.get_time = lambda: float(next(clock))  # type: ignore[method-assign]
    big = bars.add_task("a-rather-long-file-name-for-a-quarterly-report.pdf", total=1023 * MIB + 5)
    small = bars.add_task("x.pdf", total=500)
    bars.update(big, completed=3 * MIB)
    bars.update(big, completed=1000 * MIB)
    bars.update(small, completed=500)
    console.print(bars.make_tasks_table(bars.tasks))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all(len(line) <= LINE_WIDTH <= 80 for line in lines), lines
    assert "1000 MiB of 1023 MiB" in lines[0] and "MiB/s" in lines[0] and "left" in lines[0]
    assert lines[0].startswith("a-rather-long-f…")
    assert "500 B of 500 B" in lines[1] and "done" in lines[1]
    assert "MB" not in buf.getvalue() and "kB" not in buf.getvalue()  # no decimal units


def ui(*flags: str) -> Ui:
    return Ui(argparse.Namespace(json="--json" in flags, quiet="-q" in flags, verbose="-v" in flags))


FINDINGS = [{"kind": "uri", "detail": "https://example.com/landing?id=42", "offset": None, "source": "deep"},
            {"kind": "open_action", "detail": "OpenAction \x1b[31mGoTo", "offset": 12, "source": "stream"}]


def test_flagged_findings_follow_the_result_line(capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"id": 9, "security": {"verdict": "flagged", "findings": FINDINGS}}
    ui().result(UploadResult("r.pdf", doc, False, "s", 3, 3, False), "r.pdf")
    out = capsys.readouterr().out.splitlines()
    assert out == ["r.pdf: document 9, flagged: 2 findings (3/3 chunks sent)",
                   "  uri: https://example.com/landing?id=42",
                   "  open_action: OpenAction  [31mGoTo"]  # no escape reaches the terminal


def test_clean_document_is_one_line_and_many_findings_are_cut(capsys: pytest.CaptureFixture[str]) -> None:
    clean = {"id": 1, "security": {"verdict": "clean", "findings": []}}
    ui().result(UploadResult("a.pdf", clean, True, None, 0, 0, False), "a.pdf")
    assert capsys.readouterr().out == "a.pdf: document 1 (0/0 chunks sent, duplicate)\n"
    many = {"id": 2, "security": {"verdict": "flagged", "findings": [FINDINGS[0]] * 25}}
    ui().result(UploadResult("b.pdf", many, False, "s", 1, 1, True), "b.pdf")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "b.pdf: document 2, flagged: 25 findings (1/1 chunks sent, resumed)"
    assert len(out) == 22 and out[-1] == "  ... and 5 more (--json shows every finding)"


def test_rejection_lists_its_findings_under_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    exc = ServerError("security_rejected", "refused by the security policy: javascript", 422,
                      body={"findings": [{"kind": "javascript", "detail": "app.alert(1)"}]})
    assert ui("-q").error("evil.pdf", exc) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: evil.pdf: security_rejected: refused by the security policy: javascript",
        "  javascript: app.alert(1)"]


def test_a_busy_servers_wait_says_why_and_how_long() -> None:
    from pdf_upload_client.cli import retry_note

    busy = ServerError("too_many_uploads", "5 uploads are already active; retry later", 429, retry_after=30)
    assert retry_note("POST /api/documents/streaming/initiate", 1, 30.0, busy) == (
        "POST /api/documents/streaming/initiate: waiting 30 s, as the server asked: the server is busy "
        "(too_many_uploads: 5 uploads are already active; retry later)")
    assert retry_note("chunk 3", 2, 1.25, ServerError("http_502", "bad gateway", 502)) == \
        "chunk 3: http_502, retry 2 in 1.2s"
    assert retry_note("chunk 3", 1, 0.5, ConnectionResetError()) == "chunk 3: ConnectionResetError, retry 1 in 0.5s"
