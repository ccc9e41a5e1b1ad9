"""What is wrong with a damaged PDF, in words a person can act on.

qpdf is the judge of whether a file can be read; its messages are written for PDF
developers ("unable to find trailer dictionary while recovering damaged file") and name
the file's path on the server. :func:`plain` turns one into a sentence for the person
who uploaded the file; :func:`envelope_notes` adds what the file's first and last bytes
show (data after the end-of-file marker, a missing marker, bytes before the header),
which is usually why qpdf had to repair it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Final

_TAIL_SCAN: Final = 4 << 20  # how far back from the end the last %%EOF is looked for
_BLOCK: Final = 1 << 16
_SLACK: Final = 64  # whitespace and line ends a writer may leave after %%EOF

#: qpdf's words (a regex over its message) -> ours. First match wins.
_PLAIN: Final = [
    (r"unable to find /Root dictionary|catalog", "its document catalog (/Root) cannot be found"),
    (r"unable to find trailer dictionary", "its trailer (the index at the end of the file) cannot be found"),
    (r"pages tree has no /Kids|page tree|/Pages|/Kids", "its page tree is broken"),
    (r"xref|cross-reference|startxref|reconstructing", "its cross-reference table (where each object "
                                                       "starts) is damaged"),
    (r"stream length|/Length|stream keyword|endstream", "a stream's declared length is wrong"),
    (r"expected .* obj|object has offset|invalid object|unknown token", "some objects are not where "
                                                                        "the file says they are"),
    (r"file is damaged", "its structure is damaged"),
    (r"Resources is missing", "a page has no resources dictionary"),
    (r"EOF|end of file|premature", "the file ends in the middle of an object (it may be cut short)"),
    (r"not a PDF|header", "it does not start like a PDF"),
]


def plain(message: str) -> str:
    """One qpdf message in plain words (its own words, without the path, when none fit)."""
    for pattern, words in _PLAIN:
        if re.search(pattern, message, re.IGNORECASE):
            return words
    text = message.split(": ", 1)[-1].strip()
    return f"qpdf reports: {text}" if text else "qpdf cannot read it"


def summary(messages: list[str], notes: list[str] | None = None) -> str:
    """Distinct plain readings of ``messages``, after ``notes``, joined for one sentence."""
    out: list[str] = []
    for reading in [*(notes or []), *(plain(m) for m in messages)]:
        if reading not in out:
            out.append(reading)
    return "; ".join(out[:4]) or "qpdf cannot read it"


def envelope_notes(path: Path) -> list[str]:
    """What the file's ends show: bytes before ``%PDF-``, the end-of-file marker missing,
    or data after it (how much)."""
    notes: list[str] = []
    with path.open("rb") as f:
        head = f.read(1024)
        at = head.find(b"%PDF-")
        if at > 0:
            notes.append(f"{at} bytes come before the PDF header")
        size = f.seek(0, 2)
        end = _last_eof(f, size)
    if end is None:
        notes.append("the end-of-file marker (%%EOF) is missing, so the file may be cut short")
    elif size - end > _SLACK:
        notes.append(f"there are {size - end} bytes of data after the end-of-file marker (%%EOF)")
    return notes


def _last_eof(f: BinaryIO, size: int) -> int | None:
    """Where the last ``%%EOF`` ends, looking back at most :data:`_TAIL_SCAN` bytes."""
    pos = size
    carry = b""
    while pos > 0 and size - pos < _TAIL_SCAN:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        block = f.read(pos - start) + carry
        at = block.rfind(b"%%EOF")
        if at >= 0:
            return start + at + 5
        carry = block[:4]
        pos = start
    return None
