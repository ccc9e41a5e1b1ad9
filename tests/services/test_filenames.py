"""File names from clients: nothing but a plain, portable name reaches storage or a header."""

from __future__ import annotations

import pytest

from backend.services.filenames import MAX_BYTES, sanitize_filename


@pytest.mark.parametrize(("sent", "clean"), [
    ("report.pdf", "report.pdf"),
    ("My Report (final).pdf", "My Report (final).pdf"),
    ("../../etc/passwd", "passwd"),
    ("/absolute/path/doc.pdf", "doc.pdf"),
    ("..\\..\\Windows\\System32\\doc.pdf", "doc.pdf"),
    ("C:\\Users\\me\\doc.pdf", "doc.pdf"),
    ("dir/..", "document.pdf"),
    ("a\x00b.pdf", "ab.pdf"),
    ("line\r\nbreak.pdf", "linebreak.pdf"),
    ("tab\there.pdf", "tabhere.pdf"),
    ("\x1b[31mred.pdf", "[31mred.pdf"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override: a format character
    ("zero\u200bwidth.pdf", "zerowidth.pdf"),
    ("CON", "_CON"),
    ("con.pdf", "_con.pdf"),
    ("LPT9.tar.gz", "_LPT9.tar.gz"),
    ("COM1 .pdf", "_COM1 .pdf"),
    ("CONSOLE.pdf", "CONSOLE.pdf"),
    ('a<b>c:d"e|f?g*.pdf', "a_b_c_d_e_f_g_.pdf"),
    ("  spaced   out  .pdf  ", "spaced out .pdf"),
    ("...hidden.pdf", "hidden.pdf"),
    ("trailing.pdf...", "trailing.pdf"),
    ("", "document.pdf"),
    ("\x00\x01\x02", "document.pdf"),
    ("e\u0301.pdf", "\u00e9.pdf"),  # NFC
])
def test_sanitize(sent: str, clean: str) -> None:
    assert sanitize_filename(sent) == clean


def test_long_names_fit_255_bytes_and_keep_the_extension() -> None:
    for name in ("x" * 400 + ".pdf", "é" * 300 + ".pdf", "日本語" * 100 + ".pdf", "y" * 400):
        out = sanitize_filename(name)
        assert len(out.encode("utf-8")) <= MAX_BYTES, name[:10]
        out.encode("utf-8").decode("utf-8")  # never cut inside a character
        assert out.endswith(".pdf") == name.endswith(".pdf")


def test_the_fallback_is_the_callers() -> None:
    assert sanitize_filename("/", fallback="") == ""


@pytest.mark.parametrize("name", ["../x.pdf", "a/b\\c\x00.pdf", "NUL", "\u202e.pdf", "a" * 300])
def test_sanitizing_is_idempotent(name: str) -> None:
    once = sanitize_filename(name)
    assert sanitize_filename(once) == once
    assert "/" not in once and "\\" not in once and all(ord(c) >= 32 for c in once)
