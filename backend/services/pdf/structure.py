"""PDF file structure for the streaming scanner: objects, structural words, stream
dictionaries, and :class:`Windowed`, which cuts the input into windows with context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from backend.services.pdf.syntax import (
    CONTEXT, DELIMITER_CLASS, NAME_TOKEN_RE, Buf, decode_name, is_word_at,
)

_D: Final = DELIMITER_CLASS
_W: Final = rb"[\x00\t\n\x0c\r ]"
_OBJ_HEADER_RE: Final = re.compile(rb"(\d{1,10})" + _W + rb"+\d{1,5}" + _W + rb"+\Z")


def object_number_before(buf: Buf, start: int) -> int | None:
    """The object number of an ``N G obj`` header whose ``obj`` starts at ``start``."""
    m = _OBJ_HEADER_RE.search(buf, max(0, start - 24), start)
    return int(m.group(1)) if m else None


def enclosing_object(buf: Buf, pos: int, lookback: int,
                     number: bool = True) -> tuple[int | None, int, bool]:
    """The object around ``buf[pos]``: its number (``None`` if unknown, or if ``pos``
    follows an ``endobj``), the index where its text starts (at most ``lookback`` bytes
    back), and whether that start is known (an ``obj`` or ``endobj`` was found)."""
    floor = max(0, pos - lookback)
    i = pos
    while True:
        i = buf.rfind(b"obj", floor, i)
        if i < 0:
            return None, floor, False
        if is_word_at(buf, i, i + 3):
            return (object_number_before(buf, i) if number else None), i, True
        if i >= 3 and buf[i - 3:i] == b"end" and is_word_at(buf, i - 3, i + 3):
            return None, i + 3, True


#: Structural words counted in object syntax, and for each the index of the longer word
#: it also occurs in (``obj`` in ``endobj``), counted just before it. No word's suffix is
#: another's prefix, so substring counts equal a left-to-right tokenization.
_WORD_COUNTS: Final = ((b"endobj", "endobj", -1), (b"obj", "obj", 0),
                       (b"endstream", "endstream", -1), (b"stream", "stream", 2),
                       (b"startxref", "startxref", -1), (b"xref", "xref", 4),
                       (b"trailer", "trailer", -1), (b"%%EOF", "%%EOF", -1))
_WORDS_RE: Final = re.compile(rb"endobj|obj|endstream|stream|startxref|xref|trailer|%%EOF")
_SMALL_REGION: Final = 384  # below this one regex call beats eight bytes.count calls


def count_words(buf: Buf, lo: int, hi: int) -> tuple[dict[str, int], int]:
    """The structural words (and ``%%EOF``) that *end* in ``buf(lo, hi]`` (so that
    consecutive ranges count each occurrence once), and the index just after the last
    ``%%EOF`` among them (-1 if none). Substring counts: pdfid's word counts in object
    syntax, where these words are not glued to letters."""
    counts: dict[str, int] = {}
    if hi <= lo:
        return counts, -1
    eof = -1
    if hi - lo < _SMALL_REGION:
        for m in _WORDS_RE.finditer(buf, max(0, lo - 8), hi):
            if m.end() > lo:
                word = m.group().decode()
                counts[word] = counts.get(word, 0) + 1
                if word == "%%EOF":
                    eof = m.end()
        return counts, eof
    found = [buf.count(w, max(0, lo - len(w) + 1), hi) for w, _, _ in _WORD_COUNTS]
    for i, (_, word, inside) in enumerate(_WORD_COUNTS):
        n = found[i] - (found[inside] if inside >= 0 else 0)
        if n:
            counts[word] = n
    if "%%EOF" in counts:
        eof = buf.rfind(b"%%EOF", max(0, lo - 4), hi) + 5
    return counts, eof


_DICT_ENTRY_RE: Final = re.compile(
    rb"/(Length|Filter|Type|Subtype|N|First|Predictor)" + _W
    + rb"*(?:(\d{1,19})(?!" + _W + rb"+\d+" + _W + rb"+R)|/([^" + _D
    + rb"]+)|\[([^\]]{0,512})\])")
_ARRAY_NAMES_RE: Final = re.compile(rb"/([^" + _D + rb"]+)")


@dataclass(slots=True)
class StreamDict:
    """What the streaming scanner needs from a stream's dictionary (names without ``/``)."""

    length: int | None = None
    filters: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    subtypes: tuple[str, ...] = ()
    n: int | None = None
    first: int | None = None
    predictor: int | None = None

    @property
    def is_object_stream(self) -> bool:
        """``/Type /ObjStm``, or the ``/N`` and ``/First`` only object streams carry."""
        return "ObjStm" in self.types or (self.n is not None and self.first is not None)

    @property
    def flate_only(self) -> bool:
        return self.filters in (("FlateDecode",), ("Fl",))


def parse_stream_dict(region: bytes) -> StreamDict:
    """Read ``/Length`` (direct only), ``/Filter``, ``/Type``, ``/Subtype``, ``/N``,
    ``/First`` and ``/Predictor`` from the text of a stream dictionary (names decoded)."""
    if b"#" in region:
        region = NAME_TOKEN_RE.sub(lambda m: decode_name(m.group()).encode("latin-1"), region)
    sd = StreamDict()
    for key, num, name, arr in _DICT_ENTRY_RE.findall(region):
        if num:
            value = int(num)
            if key == b"Length":
                sd.length = value
            elif key == b"N":
                sd.n = value
            elif key == b"First":
                sd.first = value
            elif key == b"Predictor":
                sd.predictor = value
            continue
        names = (name.decode("latin-1"),) if name else \
            tuple(n.decode("latin-1") for n in _ARRAY_NAMES_RE.findall(arr))
        if key == b"Filter":
            sd.filters = names
        elif key == b"Type":
            sd.types += names
        elif key == b"Subtype":
            sd.subtypes += names
    return sd


class Windowed:
    """Carries the tail of the data between pieces so that ``_run`` always sees
    :data:`CONTEXT` bytes before and after the range it must process.

    Subclasses implement ``_run(buf, base, lo, hi, final)``: process the positions
    ``[lo, hi)`` (absolute offsets; ``buf[i]`` is the byte at ``base + i``) and return
    the absolute position reached (``>= hi``; a token that starts before ``hi`` may end
    after it). Pieces smaller than :data:`CONTEXT` are batched, so tiny feeds cost no
    more than big ones.
    """

    def __init__(self, start: int = 0) -> None:
        self._carry = b""
        self._carry_base = start
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._pos = start
        self._end = start

    def _run(self, buf: Buf, base: int, lo: int, hi: int, final: bool) -> int:
        raise NotImplementedError

    def push(self, data: Buf) -> None:
        """Add the next piece of data (bytes or bytearray)."""
        if len(data) < CONTEXT or self._pending:
            self._pending.append(bytes(data))
            self._pending_len += len(data)
            if self._pending_len < 2 * CONTEXT:
                return
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
        start = self._end
        self._end += len(data)
        k = CONTEXT
        if len(data) >= 4 * k:  # the seam in a small copy, the rest in place
            head = self._carry + data[:2 * k]
            self._pos = self._run(head, self._carry_base, self._pos, start + k, False)
            self._pos = self._run(data, start, self._pos, self._end - k, False)
            self._carry = bytes(data[-2 * k:])
        else:
            window = self._carry + data
            self._pos = self._run(window, self._carry_base, self._pos, self._end - k, False)
            self._carry = window[-2 * k:]
        self._carry_base = self._end - len(self._carry)

    def close(self) -> None:
        """Process everything that is left: the end of the data is the end of the input."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            self._carry += data
            self._end += len(data)
        self._pos = self._run(self._carry, self._carry_base, self._pos, self._end, True)
