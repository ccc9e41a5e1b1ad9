"""How big a PDF stream is once decoded, found without ever holding it in memory.

The decompression-bomb guard of :mod:`backend.services.pdf.inspect`. Flate chains (with
ASCII-hex/85 before them) are inflated incrementally, output discarded, stopping as
soon as a cap is passed. Image codecs are sized from ``/Width``, ``/Height``,
``/BitsPerComponent`` and the colour components. Filters that can expand a lot but are
not streamed here (LZW, RunLength) are decoded by qpdf only when their worst-case
expansion fits the cap, and refused otherwise.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable, Iterable
from typing import Final

import pikepdf

FLATE: Final = frozenset({"/FlateDecode", "/Fl"})
_ASCII: Final = frozenset({"/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85"})
_IMAGE_CODECS: Final = frozenset({"/DCTDecode", "/DCT", "/JPXDecode", "/JBIG2Decode",
                                  "/CCITTFaxDecode", "/CCF"})
#: Worst-case expansion of filters decoded in memory by qpdf (LZW: a 12-bit code table
#: restarting every 3839 codes emits at most ~7.4 MB per 5.8 KB).
_EXPANSION: Final = {"/LZWDecode": 1300, "/LZW": 1300, "/RunLengthDecode": 64, "/RL": 64}
_COMPONENTS: Final = {"/DeviceGray": 1, "/CalGray": 1, "/G": 1, "/DeviceRGB": 3, "/CalRGB": 3,
                      "/RGB": 3, "/Lab": 3, "/DeviceCMYK": 4, "/CMYK": 4}
_IN: Final = 1 << 16  # compressed bytes per zlib call
_OUT: Final = 1 << 20  # decompressed bytes per zlib call
_MAX_LAYERS: Final = 8  # nested Flate filters; real files use one, rarely two


class TooBig(Exception):
    """The stream decodes to more than the cap, or its size cannot be bounded."""


def filter_names(stream: pikepdf.Stream) -> list[str]:
    """The stream's ``/Filter`` as a list of names (``[]`` if none)."""
    f = stream.stream_dict.get("/Filter")
    if isinstance(f, pikepdf.Name):
        return [str(f)]
    if isinstance(f, pikepdf.Array):
        return [str(x) for x in f if isinstance(x, pikepdf.Name)]
    return []


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _image_size(d: pikepdf.Dictionary) -> int | None:
    w, h = _int(d.get("/Width")), _int(d.get("/Height"))
    if w is None or h is None or w < 0 or h < 0:
        return None
    mask: object = d.get("/ImageMask")
    if mask is True:  # a stencil mask: one bit per pixel
        return (w + 7) // 8 * h
    bpc = _int(d.get("/BitsPerComponent")) or 8
    cs = d.get("/ColorSpace")
    comps = 3
    if isinstance(cs, pikepdf.Name):
        comps = _COMPONENTS.get(str(cs), 3)
    elif isinstance(cs, pikepdf.Array) and len(cs) and str(cs[0]) == "/ICCBased":
        comps = _int(cs[1].get("/N")) or 3 if isinstance(cs[1], pikepdf.Stream) else 3
    elif isinstance(cs, pikepdf.Array) and len(cs) and str(cs[0]) == "/Indexed":
        comps = 1
    return (w * h * comps * bpc + 7) // 8


RawPieces = Callable[[pikepdf.Stream], Iterable[bytes]]
#: Encoded streams up to this size are read through qpdf in one piece; larger ones come
#: from ``raw_pieces`` (the file, a block at a time) so that RSS stays flat.
IN_MEMORY_MAX: Final = 16 << 20


def inflated_size(data: bytes | Iterable[bytes], layers: int, cap: int) -> int:
    """Size of ``data`` (bytes, or pieces of it) after ``layers`` rounds of zlib
    inflation; raises :class:`TooBig` past ``cap``. Corrupt data counts what inflated
    before the error."""
    decoders = [zlib.decompressobj() for _ in range(layers)]
    total = 0

    def push(level: int, chunk: bytes) -> None:
        nonlocal total
        if level == layers:
            total += len(chunk)
            if total > cap:
                raise TooBig(f"decodes to more than {cap} bytes")
            return
        d = decoders[level]
        while chunk and not d.eof:
            push(level + 1, d.decompress(chunk, _OUT))
            chunk = d.unconsumed_tail

    pieces = [data] if isinstance(data, bytes) else data
    try:
        for piece in pieces:
            view = memoryview(piece)
            for i in range(0, len(view), _IN):
                if decoders[0].eof:
                    return total
                push(0, bytes(view[i:i + _IN]))
    except zlib.error:
        pass
    return total


def _ascii_decode(data: bytes, name: str) -> bytes:
    try:
        if name in ("/ASCIIHexDecode", "/AHx"):
            hexdigits = bytes(c for c in data.split(b">")[0] if chr(c) in "0123456789abcdefABCDEF")
            return binascii.unhexlify(hexdigits + b"0" * (len(hexdigits) % 2))
        body = data.strip()
        body = body[2:] if body.startswith(b"<~") else body
        return base64.a85decode(body.split(b"~>")[0], adobe=False, ignorechars=b" \t\n\r\x0c\x00")
    except ValueError:
        return b""


def _encoded_length(stream: pikepdf.Stream) -> int | None:
    return _int(stream.stream_dict.get("/Length"))


def decoded_size(stream: pikepdf.Stream, cap: int, max_ratio: int = 0, ratio_floor: int = 0,
                 raw_pieces: RawPieces | None = None) -> int:
    """The decoded size of ``stream`` (image codecs: estimated from the dimensions).

    Raises :class:`TooBig` if it exceeds ``cap``; or, with ``max_ratio``, if it exceeds
    ``ratio_floor`` bytes *and* ``max_ratio`` times the encoded size (a bomb); or, for
    LZW/RunLength data too big to decode safely, if it could exceed the cap. Inflation
    stops at the first byte past the limit. Unfiltered and image streams are never read;
    Flate streams over :data:`IN_MEMORY_MAX` are inflated from ``raw_pieces`` when given.
    """
    d = stream.stream_dict
    dl = _int(d.get("/DL"))
    if dl is not None and dl > cap:
        raise TooBig(f"declares a decoded length (/DL) of {dl} bytes")
    filters = filter_names(stream)
    length = _encoded_length(stream)
    raw: bytes | None = None
    if length is None or (length <= IN_MEMORY_MAX or raw_pieces is None) and filters:
        raw = stream.read_raw_bytes()
        length = len(raw)
    limit = cap if not max_ratio else min(cap, max(ratio_floor, length * max_ratio))

    def checked(size: int) -> int:
        if size > limit:
            raise TooBig(f"decodes to {size} bytes from {length}")
        return size

    if not filters:
        return length
    if any(f in _IMAGE_CODECS for f in filters):
        size = _image_size(d)
        return checked(size) if size is not None else length
    if all(f in FLATE or f in _ASCII for f in filters):
        if raw is None and any(f in _ASCII for f in filters):
            raise TooBig(f"is a {length}-byte ASCII-encoded stream, too big to decode here")
        layers = sum(1 for f in filters if f in FLATE)
        if layers > _MAX_LAYERS:
            raise TooBig(f"is compressed {layers} times over")
        data: bytes | Iterable[bytes]
        if raw is None:
            assert raw_pieces is not None
            data = raw_pieces(stream)
        else:
            data = raw
            while filters and filters[0] in _ASCII:
                data = _ascii_decode(data, filters.pop(0))
        try:
            if not layers:  # ASCII filters only: decoded in memory above
                return len(data) if isinstance(data, bytes) else length
            return inflated_size(data, layers, limit)
        except TooBig:
            raise TooBig(f"decodes to more than {limit} bytes from {length}") from None
    if all(f in FLATE or f in _ASCII or f in _EXPANSION for f in filters):
        bound = length
        for f in filters:
            bound *= _EXPANSION.get(f, 1032 if f in FLATE else 1)
        if bound > cap:
            raise TooBig(f"uses {'/'.join(filters)}, whose output cannot be bounded below the cap")
        return checked(len(stream.read_bytes()))
    return length  # unknown or crypt filters: not decodable here


def head_bytes(stream: pikepdf.Stream, n: int, raw_pieces: RawPieces | None = None) -> bytes:
    """The first ``n`` decoded bytes of a stream (unfiltered or Flate only), else b"".
    A big stream is not read whole when ``raw_pieces`` can give its first block."""
    filters = filter_names(stream)
    length = _encoded_length(stream)
    if raw_pieces is not None and length is not None and length > IN_MEMORY_MAX:
        raw = next(iter(raw_pieces(stream)), b"")[:_IN]
    else:
        raw = stream.read_raw_bytes()
    if not filters:
        return raw[:n]
    if all(f in FLATE for f in filters):
        out = raw
        try:
            for layer in range(len(filters)):
                last = layer == len(filters) - 1
                out = zlib.decompressobj().decompress(out[:_IN], n if last else _OUT)
        except zlib.error:
            return b""
        return out[:n]
    return b""
