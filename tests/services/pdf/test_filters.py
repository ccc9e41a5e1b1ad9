"""The streaming decoders agree with qpdf's, whatever the pieces, and stop early."""

from __future__ import annotations

import base64
import binascii
import random
import zlib
from collections.abc import Iterable

import pikepdf
import pytest

from backend.services.pdf import filters

DATA = random.Random(7).randbytes(3000) + b"abcabcabcabc" * 4000 + bytes(50_000)


def lzw_encode(data: bytes, early_change: int = 1) -> bytes:
    """A plain LZW encoder (PDF flavour: 9-12 bit codes, clear at 4096 entries)."""
    table = {bytes([i]): i for i in range(256)}
    width, nxt, acc, bits = 9, 258, 0, 0
    out = bytearray()

    def emit(code: int) -> None:
        nonlocal acc, bits
        acc, bits = (acc << width) | code, bits + width
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1

    emit(256)
    word = b""
    for byte in data:
        grown = word + bytes([byte])
        if grown in table:
            word = grown
            continue
        emit(table[word])
        table[grown] = nxt
        nxt += 1
        if nxt + early_change > 1 << width and width < 12:
            width += 1
        if nxt >= 4094:
            emit(256)
            table = {bytes([i]): i for i in range(256)}
            width, nxt = 9, 258
        word = bytes([byte])
    if word:
        emit(table[word])
    emit(257)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def lzw_zero_bomb(cycles: int) -> bytes:
    """LZW codes for runs of zeros: each code one byte longer than the last (~7 MB of
    output per ~5.5 KB cycle), written directly rather than by encoding the output."""
    acc, bits, width = 0, 0, 9
    out = bytearray()

    def emit(code: int) -> None:
        nonlocal acc, bits
        acc, bits = (acc << width) | code, bits + width
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1

    for _ in range(cycles):
        emit(256)  # at the width in force; the clear brings it back to 9
        width = 9
        emit(0)
        for code in range(258, 4094):
            emit(code)
            if code + 1 + 1 >= 1 << width and width < 12:  # the table has grown to code + 1
                width += 1
    emit(257)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def run_length_encode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and j - i < 128 and data[j] == data[i]:
            j += 1
        if j - i > 1:
            out += bytes([257 - (j - i), data[i]])
            i = j
        else:
            k = i
            while k < len(data) and k - i < 128 and (k + 1 >= len(data) or data[k + 1] != data[k]):
                k += 1
            k = max(k, i + 1)
            out += bytes([k - i - 1]) + data[i:k]
            i = k
    return bytes(out + b"\x80")


def qpdf_decode(encoded: bytes, name: str) -> bytes:
    pdf = pikepdf.new()
    stream = pdf.make_stream(encoded, Filter=pikepdf.Name(name))
    return stream.read_bytes(pikepdf.StreamDecodeLevel.specialized)  # RunLength is "specialized"


def pieces(data: bytes, size: int) -> Iterable[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


ENCODED = {
    "/FlateDecode": zlib.compress(DATA),
    "/ASCIIHexDecode": binascii.hexlify(DATA) + b">",
    "/ASCII85Decode": base64.a85encode(DATA, wrapcol=76, adobe=True)[2:],
    "/LZWDecode": lzw_encode(DATA),
    "/RunLengthDecode": run_length_encode(DATA),
}


@pytest.mark.parametrize("name", sorted(ENCODED))
@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_each_decoder_matches_qpdf_whatever_the_pieces(name: str, piece: int) -> None:
    encoded = ENCODED[name]
    if piece == 1 and len(encoded) > 200_000:
        encoded_pieces = pieces(encoded, 3)
    else:
        encoded_pieces = pieces(encoded, piece)
    assert qpdf_decode(encoded, name) == DATA
    assert b"".join(filters.DECODERS[name](encoded_pieces)) == DATA


def test_lzw_without_early_change() -> None:
    encoded = lzw_encode(DATA, early_change=0)
    assert b"".join(filters.lzw([encoded], early_change=0)) == DATA


def test_a85_z_and_short_groups() -> None:
    for data in (b"\0\0\0\0abc", b"x", b"xy", b"hello world\0\0\0\0\0\0\0\0!"):
        encoded = base64.a85encode(data, adobe=True, foldspaces=False)
        assert b"".join(filters.ascii85([encoded])) == data


def test_corrupt_data_ends_the_output_without_raising() -> None:
    cut = b"".join(filters.flate([zlib.compress(DATA)[:5000] + b"garbage"]))
    assert cut and DATA.startswith(cut)
    assert b"".join(filters.lzw([b"\xff\xff\xff\xff"])) == b""
    assert b"".join(filters.ascii85([b"abc\x7f"])) == b""


def test_output_comes_in_bounded_pieces_and_stops_when_the_reader_stops() -> None:
    bomb = zlib.compress(bytes(64 << 20), 9)
    sizes = []
    for out in filters.flate([bomb]):
        sizes.append(len(out))
        if len(sizes) == 3:
            break
    assert max(sizes) <= 1 << 20
    lzw_bomb = lzw_zero_bomb(cycles=2)
    assert len(lzw_bomb) < 12_000
    out = list(filters.lzw([lzw_bomb]))
    assert sum(map(len, out)) > 14_000_000 and max(map(len, out)) < (1 << 20) + 4096
