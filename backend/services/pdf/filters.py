"""Streaming decoders for the PDF filters we decode: each turns pieces of encoded data
into pieces of decoded data, holding at most about 1 MiB of output at a time.

They exist so that :mod:`backend.services.pdf.decoded` can measure what a stream really
decodes to, stopping at the first byte past a limit, however large the stream is and
however much it expands. Decoded pieces are produced lazily: a consumer that stops
reading stops the decoding.

Corrupt data ends the output where the corruption starts, as qpdf does when it
recovers what it can; no decoder raises on bad input.
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Final

Pieces = Iterable[bytes]
Decoder = Callable[[Pieces], Iterator[bytes]]

_IN: Final = 1 << 16  # encoded bytes per decoder call
_OUT: Final = 1 << 20  # decoded bytes per piece, at most (about)
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_WHITESPACE: Final = b"\x00\t\n\x0c\r "


def flate(pieces: Pieces) -> Iterator[bytes]:
    """zlib (``/FlateDecode``); predictors do not change the size enough to matter."""
    d = zlib.decompressobj()
    try:
        for piece in pieces:
            view = memoryview(piece)
            for i in range(0, len(view), _IN):
                chunk: bytes = bytes(view[i:i + _IN])
                while chunk and not d.eof:
                    out = d.decompress(chunk, _OUT)
                    if out:
                        yield out
                    chunk = d.unconsumed_tail
                if d.eof:
                    return
        tail = d.flush()
        if tail:
            yield tail
    except zlib.error:
        return


def ascii_hex(pieces: Pieces) -> Iterator[bytes]:
    """``/ASCIIHexDecode``: hex digits up to ``>``, whitespace ignored, an odd last digit
    padded with 0."""
    carry = b""
    for piece in pieces:
        end = piece.find(b">")
        digits = carry + bytes(c for c in (piece if end < 0 else piece[:end]) if c in _HEX)
        cut = len(digits) - len(digits) % 2
        carry = digits[cut:]
        if cut:
            yield binascii.unhexlify(digits[:cut])
        if end >= 0:
            break
    if carry:
        yield binascii.unhexlify(carry + b"0")


def ascii85(pieces: Pieces) -> Iterator[bytes]:
    """``/ASCII85Decode``: groups of five characters (``z`` for four zero bytes) up to
    ``~>``; a short last group decodes to one byte fewer than its characters."""
    group = bytearray()
    first = True
    for piece in pieces:
        if first:
            piece = piece.lstrip(_WHITESPACE)
            piece = piece[2:] if piece.startswith(b"<~") else piece
            first = False
        end = piece.find(b"~")
        out = bytearray()
        for c in piece if end < 0 else piece[:end]:
            if c == 0x7A and not group:  # z
                out += b"\0\0\0\0"
            elif 0x21 <= c <= 0x75:
                group.append(c)
                if len(group) == 5:
                    out += _a85_group(group)
                    group.clear()
            elif c not in _WHITESPACE:
                if out:
                    yield bytes(out)
                return
        if out:
            yield bytes(out)
        if end >= 0:
            break
    if len(group) > 1:
        n = len(group)
        yield _a85_group(group + b"u" * (5 - n))[:n - 1]


def _a85_group(group: bytes | bytearray) -> bytes:
    value = 0
    for c in group:
        value = value * 85 + (c - 33)
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def lzw(pieces: Pieces, early_change: int = 1) -> Iterator[bytes]:
    """``/LZWDecode``: 9-12 bit codes, most significant bit first, 256 clears the table,
    257 ends the data; ``early_change`` as in ``/DecodeParms``."""
    base: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
    table = list(base)
    width, acc, bits = 9, 0, 0
    prev: bytes | None = None
    out: list[bytes] = []
    size = 0
    for piece in pieces:
        for byte in piece:
            acc = (acc << 8) | byte
            bits += 8
            while bits >= width:
                bits -= width
                code = acc >> bits
                acc &= (1 << bits) - 1
                if code == 256:
                    table, width, prev = list(base), 9, None
                    continue
                if code == 257:
                    if out:
                        yield b"".join(out)
                    return
                if code < len(table) and code != 256:
                    entry = table[code]
                    if prev is not None and len(table) < 4096:
                        table.append(prev + entry[:1])
                elif code == len(table) and prev is not None:
                    entry = prev + prev[:1]
                    if len(table) < 4096:
                        table.append(entry)
                else:  # a code not in the table: corrupt data
                    if out:
                        yield b"".join(out)
                    return
                out.append(entry)
                size += len(entry)
                prev = entry
                if width < 12 and len(table) + early_change >= 1 << width:
                    width += 1
                if size >= _OUT:
                    yield b"".join(out)
                    out, size = [], 0
    if out:
        yield b"".join(out)


def run_length(pieces: Pieces) -> Iterator[bytes]:
    """``/RunLengthDecode``: a length byte n, then n+1 literal bytes (n < 128) or one byte
    repeated 257-n times (n > 128); 128 ends the data."""
    pending = b""
    out: list[bytes] = []
    size = 0
    for piece in pieces:
        data = pending + piece
        i = 0
        while i < len(data):
            n = data[i]
            if n == 128:
                if out:
                    yield b"".join(out)
                return
            need = n + 2 if n < 128 else 2
            if i + need > len(data):
                break
            run = data[i + 1:i + need] if n < 128 else data[i + 1:i + 2] * (257 - n)
            out.append(run)
            size += len(run)
            i += need
            if size >= _OUT:
                yield b"".join(out)
                out, size = [], 0
        pending = data[i:]
    if out:
        yield b"".join(out)


#: The filters decoded here, by every name a PDF may give them.
DECODERS: Final[dict[str, Decoder]] = {
    "/FlateDecode": flate, "/Fl": flate,
    "/ASCIIHexDecode": ascii_hex, "/AHx": ascii_hex,
    "/ASCII85Decode": ascii85, "/A85": ascii85,
    "/LZWDecode": lzw, "/LZW": lzw,
    "/RunLengthDecode": run_length, "/RL": run_length,
}
