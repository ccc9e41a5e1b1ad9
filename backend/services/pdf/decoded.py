"""How big a PDF stream is once decoded, found without ever holding it in memory.

The decompression-bomb guard of :mod:`backend.services.pdf.inspect`. A stream's filter
chain is decoded, a piece at a time and output discarded, by the decoders of
:mod:`backend.services.pdf.filters` (Flate, ASCII-hex/85, LZW, RunLength), stopping at
the first byte past the limit: what is refused really decodes past it.

Image codecs (DCT, JPX, JBIG2, CCITT) and filters we do not know end the chain: we
never decode them, so their output is not a size we produce. An image's declared
``/Width`` x ``/Height`` x components is reported as :attr:`Decoded.declared`, for a
``huge_image`` flag, never as a refusal here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import pikepdf

from backend.services.pdf.filters import DECODERS, Decoder, lzw

FLATE: Final = frozenset({"/FlateDecode", "/Fl"})
IMAGE_CODECS: Final = frozenset({"/DCTDecode", "/DCT", "/JPXDecode", "/JBIG2Decode",
                                 "/CCITTFaxDecode", "/CCF"})
_COMPONENTS: Final = {"/DeviceGray": 1, "/CalGray": 1, "/G": 1, "/DeviceRGB": 3, "/CalRGB": 3,
                      "/RGB": 3, "/Lab": 3, "/DeviceCMYK": 4, "/CMYK": 4}
_MAX_LAYERS: Final = 8  # decoded filters in one chain; real files use one, rarely two


class TooBig(Exception):
    """The stream decodes past a limit (``reached`` bytes, ``limit`` bytes, ``why``:
    ``"cap"`` or ``"ratio"``), or it cannot be measured at all (``limit`` 0)."""

    def __init__(self, message: str, *, filters: tuple[str, ...] = (), reached: int = 0, limit: int = 0,
                 why: str = "") -> None:
        super().__init__(message)
        self.filters = filters
        self.reached = reached
        self.limit = limit
        self.why = why


@dataclass(frozen=True)
class Decoded:
    """``size``: bytes the filters we decode produce (the encoded length when there are
    none); ``declared``: an image codec's declared decoded size, when the chain ends in one."""

    size: int
    declared: int | None = None


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


def declared_image_size(d: pikepdf.Dictionary) -> int | None:
    """What an image's ``/Width``, ``/Height``, components and bits per component add up
    to, unpacked (``None`` when the dictionary does not say)."""
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
    return _measure([data] if isinstance(data, bytes) else data, [DECODERS["/FlateDecode"]] * layers, cap)


def _measure(pieces: Iterable[bytes], decoders: list[Decoder], limit: int) -> int:
    for decode in decoders:
        pieces = decode(pieces)
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > limit:
            raise TooBig(f"decodes to more than {limit} bytes", reached=total, limit=limit)
    return total


def _decoder(name: str, parms: object) -> Decoder:
    if name in ("/LZWDecode", "/LZW") and isinstance(parms, pikepdf.Dictionary) \
            and _int(parms.get("/EarlyChange")) == 0:
        return functools.partial(lzw, early_change=0)
    return DECODERS[name]


def _parms(stream: pikepdf.Stream, count: int) -> list[object]:
    p = stream.stream_dict.get("/DecodeParms", stream.stream_dict.get("/DP"))
    if isinstance(p, pikepdf.Array):
        return [p[i] if i < len(p) else None for i in range(count)]
    parms: list[object] = [p]
    return parms + [None] * (count - 1)


def decoded_size(stream: pikepdf.Stream, cap: int, max_ratio: int = 0, ratio_floor: int = 0,
                 raw_pieces: RawPieces | None = None) -> Decoded:
    """What ``stream`` decodes to, through the filters we decode (see the module doc).

    Raises :class:`TooBig` once the output passes ``cap``, or, with ``max_ratio``, once
    it passes both ``ratio_floor`` bytes and ``max_ratio`` times the encoded size (a
    bomb). Unfiltered streams and chains that start with an image codec are never read;
    encoded data over :data:`IN_MEMORY_MAX` comes from ``raw_pieces`` when given."""
    filters = filter_names(stream)
    chain: list[str] = []
    for name in filters:
        if name not in DECODERS:
            break
        chain.append(name)
    declared = None
    if len(chain) < len(filters) and filters[len(chain)] in IMAGE_CODECS:
        declared = declared_image_size(stream.stream_dict)
    length = _int(stream.stream_dict.get("/Length"))
    if not chain:
        return Decoded(length if length is not None else len(stream.read_raw_bytes()), declared)
    if len(chain) > _MAX_LAYERS:
        raise TooBig(f"is encoded {len(chain)} times over", filters=tuple(chain))
    pieces: Iterable[bytes]
    if length is not None and length > IN_MEMORY_MAX and raw_pieces is not None:
        pieces = raw_pieces(stream)
    else:
        raw = stream.read_raw_bytes()
        length, pieces = len(raw), [raw]
    limit = cap if not max_ratio else min(cap, max(ratio_floor, length * max_ratio))
    decoders = [_decoder(name, parms) for name, parms in zip(chain, _parms(stream, len(chain)))]
    try:
        return Decoded(_measure(pieces, decoders, limit), declared)
    except TooBig as exc:
        raise TooBig(f"decodes to more than {limit} bytes from {length}", filters=tuple(chain),
                     reached=exc.reached, limit=limit, why="cap" if limit == cap else "ratio") from None


def head_bytes(stream: pikepdf.Stream, n: int, raw_pieces: RawPieces | None = None) -> bytes:
    """The first ``n`` decoded bytes of a stream whose filters we all decode, else b"".
    Only as much is read and decoded as those bytes need."""
    filters = filter_names(stream)
    if any(f not in DECODERS for f in filters):
        return b""
    length = _int(stream.stream_dict.get("/Length"))
    pieces: Iterable[bytes]
    if raw_pieces is not None and length is not None and length > IN_MEMORY_MAX:
        pieces = raw_pieces(stream)
    else:
        pieces = [stream.read_raw_bytes()]
    for decode in [_decoder(f, p) for f, p in zip(filters, _parms(stream, len(filters)))]:
        pieces = decode(pieces)
    out = bytearray()
    for piece in pieces:
        out += piece[:n - len(out)]
        if len(out) >= n:
            break
    return bytes(out)
