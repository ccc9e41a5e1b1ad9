"""Reading PDF values next to a name: what kind of value follows, and string contents.

Bounded helpers for judging names in context (:mod:`backend.services.pdf.judge`): they
never read past the ``end`` they are given and decode at most 1 KiB of a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from backend.services.pdf.syntax import DELIMITER_CLASS, HEX_DIGITS, WHITESPACE, Buf, decode_name

_D: Final = DELIMITER_CLASS
_W: Final = rb"[\x00\t\n\x0c\r ]"
_VALUE_RE: Final = re.compile(
    rb"(?:" + _W + rb"|%[^\r\n]*)*(?:(\d{1,10})" + _W + rb"+\d{1,5}"
    + _W + rb"+R(?![A-Za-z0-9])|(<<)|(\[)|(\()|(<)|(/[^" + _D + rb"]{0,127}))")


@dataclass(frozen=True)
class Value:
    """What follows a name: ``kind`` is ref, dict, array, string, name; ``pos`` is where
    the value starts in the buffer; ``ref`` the object number; ``text`` a string's
    decoded bytes or a name's decoded text."""

    kind: str
    pos: int
    ref: int | None = None
    text: bytes = b""


def peek_value(buf: Buf, pos: int, end: int) -> Value | None:
    """Classify the PDF value starting at ``pos`` (skipping whitespace and comments)."""
    m = _VALUE_RE.match(buf, pos, end)
    if m is None:
        return None
    if m.group(1) is not None:
        return Value("ref", m.start(1), ref=int(m.group(1)))
    if m.group(2):
        return Value("dict", m.start(2))
    if m.group(3):
        return Value("array", m.start(3))
    if m.group(6):
        return Value("name", m.start(6), text=decode_name(m.group(6)).encode("latin-1"))
    start = m.start(4) if m.group(4) else m.start(5)
    return Value("string", start, text=read_string(buf, start, end) or b"")


_ESCAPES: Final = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
                   ord("f"): b"\f", ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}
_STRING_LIMIT: Final = 1024


def read_string(buf: Buf, pos: int, end: int) -> bytes | None:
    """Decode the literal ``(...)`` or hex ``<...>`` string at ``pos`` (after optional
    whitespace), reading at most up to ``end`` and returning at most 1 KiB."""
    while pos < end and buf[pos] in WHITESPACE:
        pos += 1
    if pos >= end:
        return None
    if buf[pos] == 0x3C:  # <hex>
        close = buf.find(b">", pos + 1, end)
        if close < 0 or buf[pos + 1:pos + 2] == b"<":
            return None
        digits = bytes(c for c in buf[pos + 1:close] if c in HEX_DIGITS)
        return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())[:_STRING_LIMIT]
    if buf[pos] != 0x28:
        return None
    out = bytearray()
    depth, i = 1, pos + 1
    while i < end and len(out) < _STRING_LIMIT:
        c = buf[i]
        if c == 0x5C and i + 1 < end:  # backslash
            nxt = buf[i + 1]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
            elif 0x30 <= nxt <= 0x37:
                j = i + 1
                while j < min(i + 4, end) and 0x30 <= buf[j] <= 0x37:
                    j += 1
                out.append(int(buf[i + 1:j], 8) & 0xFF)
                i = j
            elif nxt in (0x0A, 0x0D):  # line continuation
                i += 3 if buf[i + 1:i + 3] == b"\r\n" else 2
            else:  # unknown escape: the backslash is ignored
                out.append(nxt)
                i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                break
        out.append(c)
        i += 1
    return bytes(out)


def text_of(raw: bytes) -> str:
    """A PDF text string (UTF-16 with a BOM, or PDFDocEncoding approximated as latin-1)."""
    if raw[:2] == b"\xfe\xff":
        return raw[2:].decode("utf-16-be", "replace")
    if raw[:2] == b"\xff\xfe":
        return raw[2:].decode("utf-16-le", "replace")
    return raw.decode("latin-1")


_STRING_TOKENS_RE: Final = re.compile(rb"\\[\s\S]|[()%\r\n]")


def in_string(buf: Buf, start: int, pos: int) -> bool:
    """Whether ``buf[pos]`` lies inside a literal string, reading from ``start``, which
    must be outside strings and comments (an object's start). Errs towards "no": if
    ``start`` were inside a string after all, the depth seen here is never more than
    the real one, so syntax is never mistaken for a string."""
    depth, comment = 0, False
    for m in _STRING_TOKENS_RE.finditer(buf, start, pos):
        token = m.group()
        if comment:
            comment = token not in (b"\r", b"\n")
        elif depth:
            depth += 1 if token == b"(" else -1 if token == b")" else 0
        elif token == b"(":
            depth = 1
        elif token == b"%":
            comment = True
    return depth > 0
