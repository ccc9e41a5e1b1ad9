"""Stream bodies for the streaming scanner: where each ends, and who reads it.

At a ``stream`` keyword, :class:`StreamBodies` reads the stream dictionary and then
consumes the body: names in it are counted like pdfid does (never judged: stream data is
not syntax), object streams are inflated and scanned as object syntax
(:mod:`backend.services.pdf.inflate`), and embedded files have their first bytes checked
for executable signatures.

Where a body ends: a direct ``/Length`` is trusted when ``endstream`` follows it (for
big bodies: within 64 bytes of it); a small body with a wrong ``/Length`` ends at its
first ``endstream``, as qpdf recovers it; otherwise the scan searches for ``endstream``
(``ScanLimits.trust_stream_length=False``: always). Every decision depends only on the
data, never on how it was cut into pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from backend.services.pdf.data_names import stream_name_matches
from backend.services.pdf.findings import (
    looks_executable_content, looks_executable_mime, printable,
)
from backend.services.pdf.inflate import BoundedInflater, ObjStmScanner
from backend.services.pdf.judge import Judge
from backend.services.pdf.structure import StreamDict, enclosing_object, parse_stream_dict
from backend.services.pdf.syntax import (
    CONTEXT, ENDSTREAM, KEYWORD_NAMES, Buf, count_keyword, read_name,
)

_MIB: Final = 1 << 20
_ENDSTREAM_AT_RE: Final = re.compile(rb"[\x00\t\n\x0c\r ]*endstream")
_SMALL: Final = CONTEXT - 256  # a /Length this small is checked as soon as the body starts
_SLACK: Final = 64  # how far from the /Length end a big stream's endstream may be
_MAGIC: Final = 64  # bytes of an embedded file checked for executable signatures


@dataclass(frozen=True)
class ScanLimits:
    """Bounds on the streaming scanner's work and output (all per file)."""

    max_inflate_per_stream: int = 16 * _MIB  # inflated bytes per object stream
    max_inflate_total: int = 128 * _MIB  # inflated bytes per file
    max_findings_per_kind: int = 20  # kept in ``findings``; ``finding_counts`` counts all
    trailing_whitespace: int = 64  # whitespace allowed after the last %%EOF
    inflate_object_streams: bool = True
    trust_stream_length: bool = True  # False: always search for endstream (slower)
    count_names_in_stream_data: bool = True  # pdfid-like counts; False: skip known-length data


class _Stream:
    """The stream body being read: where it started and ends, who consumes it."""

    __slots__ = ("body", "expected", "end", "after", "fed", "inflater", "objstm", "magic")

    def __init__(self, body: int, expected: int | None) -> None:
        self.body = body
        self.expected = expected  # body + /Length, while not yet verified
        self.end: int | None = None  # where endstream starts, once known
        self.after = 0  # just after endstream
        self.fed = body  # body bytes handed to the consumers so far
        self.inflater: BoundedInflater | None = None
        self.objstm: ObjStmScanner | None = None
        self.magic: bytearray | None = None  # first bytes of an embedded file


class StreamBodies:
    """The stream bodies of one file. ``current`` is the open one (``None`` between
    streams); the counters feed the scanner's summary."""

    def __init__(self, limits: ScanLimits, judge: Judge, keywords: dict[str, int],
                 inflated_keywords: dict[str, int]) -> None:
        self.limits = limits
        self.judge = judge
        self.keywords = keywords
        self.inflated_keywords = inflated_keywords
        self.current: _Stream | None = None
        self.streams = 0
        self.object_streams = 0
        self.object_streams_inspected = 0
        self.length_mismatches = 0
        self.inflate_left = limits.max_inflate_total

    def open(self, buf: Buf, base: int, s: int, e: int) -> int:
        """``buf[s:e]`` is a ``stream`` keyword after a dictionary: set up the body and
        return its absolute start."""
        body = e + (2 if buf[e:e + 2] == b"\r\n" else 1 if buf[e:e + 1] in (b"\n", b"\r") else 0)
        sd = parse_stream_dict(bytes(buf[enclosing_object(buf, s, CONTEXT // 2, number=False)[1]:s]))
        expected = None
        if sd.length is not None and self.limits.trust_stream_length:
            expected = base + body + sd.length
        st = _Stream(base + body, expected)
        self.streams += 1
        at = base + s
        if sd.is_object_stream:
            self._object_stream(st, sd, at)
        if "EmbeddedFile" in sd.types:
            for mime in sd.subtypes:
                if looks_executable_mime(mime):
                    self.judge.add("embedded_executable",
                                   f"embedded file of type {printable(mime, 80)}", at, "stream")
            if sd.flate_only or not sd.filters:
                st.magic = bytearray()
                if sd.filters:
                    st.inflater = BoundedInflater(_MAGIC)
        self.current = st
        return st.body

    def _object_stream(self, st: _Stream, sd: StreamDict, at: int) -> None:
        self.object_streams += 1
        if not self.limits.inflate_object_streams:
            return
        if sd.flate_only or not sd.filters:
            st.objstm = ObjStmScanner(self.judge, self.inflated_keywords, st.body, sd.first)
            if sd.filters:
                st.inflater = BoundedInflater(self.limits.max_inflate_per_stream)
        else:
            self.judge.add("object_stream", "object stream with filters "
                           f"{'/'.join(sd.filters)} not inspected while streaming", at, "stream")

    def read(self, buf: Buf, base: int, pos: int, hi: int, final: bool) -> int:
        """Consume body bytes from ``pos`` up to ``hi`` or the body's end; return the
        position reached (just after ``endstream`` if the body ended: ``current`` is then
        ``None``)."""
        st = self.current
        assert st is not None
        if st.end is None and st.expected is not None:
            if st.expected + _SLACK + 16 <= base + len(buf) or final:
                self._settle_length(st, buf, base)
        if st.end is None and st.expected is None:
            idx = buf.find(ENDSTREAM, pos - base, min(len(buf), hi - base + len(ENDSTREAM)))
            if idx >= 0 and idx + base < hi:
                st.end, st.after = base + idx, base + idx + len(ENDSTREAM)
        if st.end is not None:
            stop = min(hi, st.end)
        elif st.expected is not None:
            stop = min(hi, st.expected - _SLACK)
        else:
            stop = hi
        reached = pos
        if self.limits.count_names_in_stream_data:
            reached = self._count_names(buf, base, pos, stop, final)
        self._consume(st, buf, base, stop)
        if st.end is not None and stop >= st.end:
            self.keywords["endstream"] += 1
            self.close()
            return st.after
        if final and stop >= hi:
            return hi  # truncated inside a stream; the scanner closes it
        return max(reached, stop)

    def _settle_length(self, st: _Stream, buf: Buf, base: int) -> None:
        """Decide where a stream with a direct ``/Length`` really ends."""
        assert st.expected is not None
        at = st.expected - base
        m = _ENDSTREAM_AT_RE.match(buf, at) if 0 <= at <= len(buf) else None
        if m is not None:
            st.end, st.after = base + m.end() - len(ENDSTREAM), base + m.end()
            st.expected = None
            return
        self.length_mismatches += 1
        small = st.expected - st.body <= _SMALL
        lo = st.body if small else max(st.body, st.expected - _SLACK)
        hi = len(buf) if small else min(len(buf), at + _SLACK + len(ENDSTREAM))
        idx = buf.find(ENDSTREAM, lo - base, hi)
        st.expected = None  # from here on: search for endstream
        if idx >= 0:
            st.end, st.after = base + idx, base + idx + len(ENDSTREAM)

    def _count_names(self, buf: Buf, base: int, pos: int, stop: int, final: bool) -> int:
        """Count (never judge) vocabulary names in stream data ``[pos, stop)``."""
        reached = pos
        endpos = len(buf) if final else min(len(buf), stop - base + 256)
        for m in stream_name_matches(buf, pos - base, endpos):
            s = m.start()
            if s + base >= stop:
                break
            hit = read_name(buf, s, m.end(), final)
            if hit.word in KEYWORD_NAMES:
                count_keyword(self.keywords, hit.word, hit.hexed)
            reached = base + hit.end
        return reached

    def _consume(self, st: _Stream, buf: Buf, base: int, stop: int) -> None:
        """Hand body bytes ``[st.fed, stop)`` to the inflater / object stream / magic check."""
        if stop <= st.fed or (st.objstm is None and st.magic is None):
            st.fed = max(st.fed, stop)
            return
        data: bytes | memoryview = memoryview(buf)[st.fed - base:stop - base]
        st.fed = stop
        if st.inflater is not None:
            allowance = self.inflate_left if st.objstm is not None else _MAGIC
            data = st.inflater.feed(data, allowance)
            if st.objstm is not None:
                self.inflate_left -= len(data)
        if st.objstm is not None:
            st.objstm.feed(bytes(data))
        elif st.magic is not None and len(st.magic) < _MAGIC:
            st.magic += data[: _MAGIC - len(st.magic)]

    def close(self) -> None:
        """The open stream ended (or the file did): settle what its readers saw."""
        st, self.current = self.current, None
        if st is None:
            return
        if st.objstm is not None:
            st.objstm.close()
            state = st.inflater.state if st.inflater is not None else "done"
            if state in ("done", "ok"):
                self.object_streams_inspected += 1
            else:
                why = {"capped": "inflation limit reached", "error": "could not be inflated"}[state]
                self.judge.add("object_stream", f"object stream not fully inspected: {why}",
                               st.body, "stream")
        if st.magic is not None and looks_executable_content(bytes(st.magic)):
            self.judge.add("embedded_executable", "embedded file content is an executable "
                           f"({printable(bytes(st.magic[:4]))}...)", st.body, "stream")
