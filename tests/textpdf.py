"""Text PDFs for import and search tests: several lines per page, words unique to a page.

``make_text_pdf`` writes raw PDF syntax (Helvetica, one Flate-compressed content stream
per page) so that text extractors see real lines. ``page_word(seed, page, i)`` is the
``i``-th word unique to ``page`` of the file made with ``seed``: tests search for it and
expect that page back. ``make_blank_pdf`` writes pages with no text at all.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

_SYLLABLES = [
    "ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "vu", "ze", "bo", "da", "fi", "gu", "ho",
    "ju", "ke", "ly", "mo", "nu", "pe", "qui", "ro", "sa", "ti", "ve", "wo", "xa", "yo", "zu",
]
_COMMON = ("the report shows that each section of this document covers a topic in some detail "
           "and the reader can find more about it in later pages").split()


def page_word(seed: int, page: int, i: int) -> str:
    """A pronounceable word unique to (seed, page, i): four syllables from a hash, plus a tag."""
    h = hashlib.sha256(f"{seed}/{page}/{i}".encode()).digest()
    return "".join(_SYLLABLES[b % len(_SYLLABLES)] for b in h[:4]) + f"x{page}w{i}"


def page_lines(seed: int, page: int, lines: int = 12, words_per_line: int = 10) -> list[str]:
    """The lines of ``page`` (0-based): common words mixed with words unique to the page."""
    out: list[str] = []
    n = 0
    for line in range(lines):
        words: list[str] = []
        for j in range(words_per_line):
            if j % 3 == 1:
                words.append(page_word(seed, page, n))
                n += 1
            else:
                words.append(_COMMON[(line * words_per_line + j + page) % len(_COMMON)])
        out.append(" ".join(words).capitalize() + ".")
    return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def _write(path: Path, contents: list[bytes | None], title: str) -> None:
    pages = len(contents)
    objs: list[bytes] = []
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objs.append(f"<< /Title ({_escape(title)}) /Producer (tests.textpdf) >>".encode("latin-1"))
    for i, content in enumerate(contents):
        resources = "/Resources << /Font << /F1 3 0 R >> >>" if content is not None else "/Resources << >>"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {6 + 2 * i} 0 R "
                    f"{resources} >>".encode())
        data = zlib.compress(content if content is not None else b"0 0 m 100 100 l S")
        objs.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream")
    body = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for num, obj in enumerate(objs, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % num + obj + b"\nendobj\n"
    xref_off = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        body += b"%010d 00000 n \n" % off
    body += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref_off)
    path.write_bytes(bytes(body))


def make_text_pdf(path: Path | str, pages: int = 3, *, seed: int = 0, lines: int = 12,
                  words_per_line: int = 10, title: str = "Text PDF") -> bytes:
    """Write a PDF of ``pages`` text pages (see ``page_lines``) and return its bytes."""
    path = Path(path)
    _write(path, [_content(page_lines(seed, p, lines, words_per_line)) for p in range(pages)], title)
    return path.read_bytes()


def make_blank_pdf(path: Path | str, pages: int = 2) -> bytes:
    """Write a PDF whose pages draw a line and carry no text, and return its bytes."""
    path = Path(path)
    _write(path, [None] * pages, "Blank")
    return path.read_bytes()


def make_line_pdf(path: Path | str, text: str, piece: int = 30_000) -> bytes:
    """Write a one-page PDF whose text is ``text`` on one line (however long), and return
    its bytes: hostile page text for the splitter, in a file of a few hundred bytes.
    PDFium reads at most 32,767 characters of one string, so the line is shown in
    strings of ``piece`` characters, one after the other."""
    path = Path(path)
    shows = [f"({_escape(text[i:i + piece])}) Tj" for i in range(0, len(text), piece)]
    _write(path, ["\n".join(["BT", "/F1 11 Tf", "72 740 Td", *shows, "ET"]).encode("latin-1")], "Line")
    return path.read_bytes()


def encrypt_pdf(source: Path | str, path: Path | str, *, owner: str, user: str) -> bytes:
    """Write ``source`` encrypted (AES-256, R6) with these passwords to ``path``, and
    return its bytes. An empty ``user`` opens everywhere; an empty ``owner`` (and a
    ``user``) opens in qpdf, which tries the empty password as the owner's, not in PDFium."""
    import pikepdf

    with pikepdf.open(source) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner=owner, user=user, R=6))
    return Path(path).read_bytes()
