"""Looking into compressed object streams while the file streams in.

A PDF 1.5+ writer may put any dictionary, including ``/OpenAction`` and JavaScript
actions, into an ``/ObjStm`` object stream, where it is Flate-compressed and invisible
to a byte scan. :class:`BoundedInflater` inflates such a stream body incrementally
(``zlib.decompressobj`` with ``max_length``: never more than the caps in memory or CPU)
and :class:`ObjStmScanner` scans the inflated text as object syntax, attributing names
to object numbers through the stream's header so indirect ``/OpenAction`` targets can
be judged.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from typing import Final

from backend.services.pdf.judge import Judge
from backend.services.pdf.structure import Windowed
from backend.services.pdf.syntax import (
    JUDGED_NAMES, KEYWORD_NAMES, OBJECT_NAMES_RE, Buf, count_keyword, read_name,
)
from backend.services.pdf.values import in_string
_PAIR_RE: Final = re.compile(rb"(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,12})")
_MAX_HEADER: Final = 1 << 20
#: Compressed input an inflater keeps to rebuild its zlib state when pickled (zlib's
#: objects do not pickle): past this, it pickles as before (it does not, and the scan's
#: state is not saved until that stream ends).
REPLAY_CAP: Final = 256 << 10
_TRAVEL: contextvars.ContextVar[bool] = contextvars.ContextVar("inflater_travel", default=False)


@contextlib.contextmanager
def travelling() -> Iterator[None]:
    """Pickles made inside this block leave the process: inflaters pickle as their replay
    input. Outside it (the scanner's own ``copy``, on the upload path) they do not pickle,
    and ``copy`` deep-copies the zlib object as it always did (no replay per fork)."""
    token = _TRAVEL.set(True)
    try:
        yield
    finally:
        _TRAVEL.reset(token)


class BoundedInflater:
    """Incremental zlib inflation that stops at a cap.

    ``state`` is ``"ok"`` (more input welcome), ``"done"`` (the zlib stream ended),
    ``"capped"`` (output reached the allowance; the rest is not inflated) or
    ``"error"`` (not valid zlib data, e.g. encrypted or corrupt).
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.produced = 0
        self.state = "ok"
        self._z = zlib.decompressobj()
        self._fed: bytearray | None = bytearray()  # the input so far, while REPLAY_CAP allows

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the zlib object when its input can be replayed (in state
        ``ok`` every byte fed was consumed, so inflating it again rebuilds the same
        state); a finished inflater needs none."""
        state = dict(self.__dict__)
        if not _TRAVEL.get():
            return state
        if self.state != "ok":
            state["_z"], state["_fed"] = None, None
        elif self._fed is not None:
            del state["_z"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        if "_z" not in state:
            self._z = zlib.decompressobj()
            if self._fed:
                self._z.decompress(bytes(self._fed))

    def feed(self, data: bytes | memoryview, allowance: int) -> bytes:
        """Inflate ``data``; return at most ``min(allowance, cap - produced)`` bytes."""
        if self.state != "ok" or not len(data):
            return b""
        if self._fed is not None:
            if len(self._fed) + len(data) <= REPLAY_CAP:
                self._fed += data
            else:
                self._fed = None
        limit = max(0, min(allowance, self.cap - self.produced))
        try:
            out = self._z.decompress(data, limit + 1)
        except zlib.error:
            self.state = "error"
            return b""
        if len(out) > limit:
            out = out[:limit]
            self.state = "capped"
        elif self._z.eof:
            self.state = "done"
        self.produced += len(out)
        return out


class ObjStmScanner(Windowed):
    """Scans the (inflated) content of one object stream as object syntax.

    Names in the vocabulary are counted into ``keywords`` (the scanner's
    ``inflated_keywords``) and judged by ``judge`` with source ``"inflated"``; findings
    carry ``offset`` = the file offset of the object stream's data.
    """

    def __init__(self, judge: Judge, keywords: dict[str, int], offset: int,
                 first: int | None) -> None:
        super().__init__(0)
        self.judge = judge
        self.keywords = keywords
        self.offset = offset
        self.first = first if first is not None and 0 < first <= _MAX_HEADER else None
        self._header = bytearray()
        self._starts: list[int] = []  # absolute offsets of the objects, ascending
        self._numbers: list[int] = []

    def feed(self, data: bytes) -> None:
        """Add the next inflated bytes."""
        if self.first is not None and len(self._header) < self.first:
            self._header += data[: self.first - len(self._header)]
            if len(self._header) >= self.first:
                self._parse_header()
        if data:
            self.push(data)

    def _parse_header(self) -> None:
        assert self.first is not None
        pairs = sorted((int(off), int(num)) for num, off in _PAIR_RE.findall(bytes(self._header)))
        self._starts = [self.first + off for off, _ in pairs]
        self._numbers = [num for _, num in pairs]

    def _object_at(self, pos: int) -> tuple[int | None, int]:
        """The object number at inflated offset ``pos`` and where that object starts."""
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return None, 0
        return self._numbers[i], self._starts[i]

    def _run(self, buf: Buf, base: int, lo: int, hi: int, final: bool) -> int:
        reached = hi
        endpos = len(buf) if final else min(len(buf), hi - base + 256)
        for m in OBJECT_NAMES_RE.finditer(buf, lo - base, endpos):
            s = m.start()
            if s + base >= hi:
                break
            hit = read_name(buf, s, m.end(), final)
            reached = max(reached, base + hit.end)
            if hit.word in KEYWORD_NAMES:
                count_keyword(self.keywords, hit.word, hit.hexed)
            if hit.name in JUDGED_NAMES:
                num, start = self._object_at(base + s)
                if start >= base and in_string(buf, start - base, s):
                    continue  # text inside a string literal, not a name
                self.judge.on_name(buf, s, hit.end, hit.name, hit.raw, hit.hexed, self.offset,
                                   num, max(0, start - base), "inflated")
        return reached
