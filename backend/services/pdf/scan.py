"""Streaming PDF keyword scanner: runs over every byte of an upload as it arrives.

Feed :class:`PdfStreamScanner` the file's bytes in order, in pieces of any size; it
reports as early as possible what the file holds: the ``%PDF-`` header, pdfid-compatible
keyword counts, and :class:`Finding` s judged from object syntax
(:mod:`backend.services.pdf.judge`), including what hides in Flate-compressed object
streams, inflated on the fly within :class:`ScanLimits`
(:mod:`backend.services.pdf.streams`). Results never depend on how the data was cut
into pieces, so a scanner rebuilt by re-feeding a prefix from disk equals the original.

Outside streams it reads object syntax: names (counted and judged) and structural words
(counted). At ``stream`` it switches to the body, where names are only counted, as pdfid
does: data is not syntax. The deep inspection on completion (qpdf) stays the authority;
this scan is the early warning (a lying ``/Length`` on a big stream can hide syntax from
it). If there is no header in the first 1024 bytes the data is not a PDF: nothing more is
scanned and the caller refuses it (``NotAPdf``).

Cost: one regex pass over stream data (``re``'s literal-prefix search for ``/``), a few
over object syntax, some tens of microseconds per stream, and zlib only for object
streams and the first bytes of embedded files.
"""

from __future__ import annotations

import copy
import pickle
import re
from typing import Any, Final

from backend.services.pdf.findings import Finding, printable
from backend.services.pdf.judge import Judge
from backend.services.pdf.streams import ScanLimits, StreamBodies
from backend.services.pdf.structure import Windowed, count_words, enclosing_object
from backend.services.pdf.syntax import (
    JUDGED_NAMES, KEYWORD_NAMES, LOOK, OBJECT_NAMES_RE, PDFID_KEYWORDS, WHITESPACE, Buf,
    is_word_at, count_keyword, read_name,
)
from backend.services.pdf.values import in_string

__all__ = ["Finding", "PdfStreamScanner", "ScanLimits"]

HEADER_WINDOW: Final = 1024
_VERSION_RE: Final = re.compile(rb"\d{1,2}\.\d{1,2}")
_DICT_CLOSE_RE: Final = re.compile(rb">>(?:[\x00\t\n\x0c\r ]|%[^\r\n]*[\r\n])*\Z")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    """``bytes`` methods are needed below; a view of a whole ``bytes`` object costs no copy."""
    if isinstance(data, memoryview):
        if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) and data.contiguous:
            return data.obj
        return data.tobytes()
    return data


class PdfStreamScanner(Windowed):
    """Incremental scanner for one PDF file. Not thread-safe: one feeder at a time.

    Public state: ``offset`` (bytes fed); ``header_decided`` (True once ``%PDF-`` and
    its version were seen in the first 1024 bytes, or 1024 bytes came without it, or at
    ``finish()``), ``header_found``, ``header_offset``, ``header_version`` (``"1.7"``;
    ``""`` if the version is unreadable; ``None`` without a header); ``keywords``
    (pdfid's names and words plus /URI, /SubmitForm, /GoToR, /GoToE, /ImportData, with
    ``<kw>_hexcode_count`` entries like pdfid); ``inflated_keywords`` (names seen inside
    inflated object streams); ``eof_count``; ``findings`` (at most
    ``max_findings_per_kind`` per kind, exact duplicates dropped); ``finding_counts``
    (all occurrences); ``uris``.
    """

    def __init__(self, limits: ScanLimits | None = None) -> None:
        super().__init__(0)
        self.limits = limits or ScanLimits()
        self.offset = 0
        self.header_version: str | None = None
        self.header_offset: int | None = None
        self.header_decided = False
        self.keywords: dict[str, int] = {k: 0 for k in PDFID_KEYWORDS}
        self.inflated_keywords: dict[str, int] = {}
        self.eof_count = 0
        self._judge = Judge(self.limits.max_findings_per_kind)
        self._streams = StreamBodies(self.limits, self._judge, self.keywords,
                                     self.inflated_keywords)
        self._head = bytearray()
        self._finished = False
        self._words_from = 0  # structural words are counted up to here
        self._last_eof_end: int | None = None

    # -- public API ---------------------------------------------------------------------

    @property
    def header_found(self) -> bool:
        return self.header_offset is not None

    @property
    def findings(self) -> list[Finding]:
        return list(self._judge.findings)

    @property
    def finding_counts(self) -> dict[str, int]:
        return dict(self._judge.kind_counts)

    @property
    def uris(self) -> list[str]:
        return list(self._judge.uris)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Finding]:
        """Scan the next piece of the file; return the findings that are new.

        A finding is reported once the scanner has seen 16 KiB past it (its context),
        or at :meth:`finish`; small pieces are batched up to 32 KiB. Either way the
        findings, counts and summary after the last piece never depend on the cuts.
        """
        if self._finished:
            raise RuntimeError("feed() after finish()")
        piece = _as_bytes(data)
        if not self.header_decided:
            take = piece[: HEADER_WINDOW + 16 - len(self._head)]
            self._head += take
            self.offset += len(take)
            piece = piece[len(take):]
            if not self._decide_header(final=False):
                return self._judge.drain()
        self.offset += len(piece)
        if self.header_found and piece:
            self.push(piece)  # in place: the scanner keeps no slice of it uncopied
        return self._judge.drain()

    def finish(self) -> list[Finding]:
        """End of file: settle the header, the last stream, trailing data. Idempotent."""
        if self._finished:
            return []
        self._finished = True
        if not self.header_decided:
            self._decide_header(final=True)
        if not self.header_found:
            return self._judge.drain()
        self.close()
        self._streams.close()  # a file that ends inside a stream
        self._check_eof()
        return self._judge.drain()

    def copy(self) -> PdfStreamScanner:
        """An independent deep copy (zlib state included).

        Every chunk that starts at the prefix forks the scanner on the event loop, so
        this is on the upload path: a pickle round trip (one pass in C, shared
        references kept) takes ~0.1 ms where ``copy.deepcopy`` takes ~0.9. zlib's state
        (inside an object stream) does not pickle; ``deepcopy`` copies it then."""
        try:
            twin: PdfStreamScanner = pickle.loads(pickle.dumps(self, pickle.HIGHEST_PROTOCOL))
        except (TypeError, pickle.PicklingError):
            twin = copy.deepcopy(self)
        return twin

    def summary(self) -> dict[str, Any]:
        """JSON-serializable state worth saving with the upload session."""
        return {
            "header_version": self.header_version,
            "header_offset": self.header_offset,
            "bytes_scanned": self.offset,
            "keywords": dict(self.keywords),
            "inflated_keywords": dict(self.inflated_keywords),
            "findings": [f.to_dict() for f in self._judge.findings],
            "finding_counts": self.finding_counts,
            "uris": self.uris,
            "eof_count": self.eof_count,
            "streams": self._streams.streams,
            "object_streams": self._streams.object_streams,
            "object_streams_inspected": self._streams.object_streams_inspected,
            "inflated_bytes": self.limits.max_inflate_total - self._streams.inflate_left,
            "stream_length_mismatches": self._streams.length_mismatches,
        }

    # -- header and end of file -----------------------------------------------------------

    def _decide_header(self, final: bool) -> bool:
        head = bytes(self._head)
        idx = head.find(b"%PDF-", 0, HEADER_WINDOW)
        if idx < 0:
            if len(head) >= HEADER_WINDOW or final:
                self.header_decided = True
            return self.header_decided
        if len(head) < idx + 16 and not final:
            return False
        m = _VERSION_RE.match(head, idx + 5)
        self.header_decided = True
        self.header_offset = idx
        self.header_version = m.group().decode() if m else ""
        self._carry_base = self._pos = self._end = self._words_from = idx
        if idx:
            self._judge.add("header_offset", f"{idx} bytes before the %PDF- header", 0, "stream")
        self.push(head[idx:])
        return True

    def _check_eof(self) -> None:
        """Trailing data: what follows the last ``%%EOF`` (found in the last bytes of the
        file wherever it is, else the last one seen in object syntax)."""
        at = self._carry.rfind(b"%%EOF")
        last = self._carry_base + at + 5 if at >= 0 else self._last_eof_end
        if last is None:
            self._judge.add("missing_eof", "no %%EOF marker", None, "stream")
            return
        extra = self._end - last
        tail = self._carry[len(self._carry) - extra:] if 0 < extra <= len(self._carry) else b""
        if extra > self.limits.trailing_whitespace or tail.strip(WHITESPACE):
            sample = printable(tail.strip(WHITESPACE)[:40]) if tail else ""
            self._judge.add("trailing_data", f"{extra} bytes after the last %%EOF"
                            + (f": {sample}" if sample else ""), last, "stream")

    # -- the machine ----------------------------------------------------------------------

    def _run(self, buf: Buf, base: int, lo: int, hi: int, final: bool) -> int:
        pos = lo
        streams = self._streams
        while True:
            if streams.current is None:
                pos = self._object_syntax(buf, base, pos, hi, final)
                if streams.current is None:
                    return pos
            else:
                pos = streams.read(buf, base, pos, hi, final)
                if streams.current is not None:
                    return pos
                self._words_from = pos  # just after endstream

    def _object_syntax(self, buf: Buf, base: int, pos: int, hi: int, final: bool) -> int:
        """Object syntax from ``pos`` until ``hi`` or a stream body starts (then: its start)."""
        lo, top = pos - base, hi - base
        at, i = -1, lo
        while True:  # the next "stream" keyword that follows a dictionary
            i = buf.find(b"stream", i, min(len(buf), top + 5))
            if i < 0:
                break
            if is_word_at(buf, i, i + 6) and _DICT_CLOSE_RE.search(buf, max(0, i - 256), i):
                at = i
                break
            i += 6
        stop = at if at >= 0 else top
        reached = self._syntax_names(buf, base, lo, stop, final)
        counts, eof = count_words(buf, self._words_from - base, stop)
        for word, n in counts.items():
            if word == "%%EOF":
                self.eof_count += n
                self._last_eof_end = base + eof
            else:
                self.keywords[word] += n
        self._words_from = max(self._words_from, base + stop)  # a stream may have ended past hi
        if at >= 0:
            self.keywords["stream"] += 1
            return self._streams.open(buf, base, at, at + 6)
        return max(hi, reached)

    def _syntax_names(self, buf: Buf, base: int, lo: int, stop: int, final: bool) -> int:
        """Count and judge the names in object syntax ``buf[lo:stop]``."""
        reached = base + lo
        endpos = len(buf) if final else min(len(buf), stop + 256)
        for m in OBJECT_NAMES_RE.finditer(buf, lo, endpos):
            s = m.start()
            if s >= stop:
                break
            hit = read_name(buf, s, m.end(), final)
            reached = base + hit.end
            if hit.word in KEYWORD_NAMES:
                count_keyword(self.keywords, hit.word, hit.hexed)
            if hit.name in JUDGED_NAMES:
                num, start, known = enclosing_object(buf, s, LOOK)
                if known and in_string(buf, start, s):
                    continue  # text such as (How to disable /JavaScript): not a name
                self._judge.on_name(buf, s, hit.end, hit.name, hit.raw, hit.hexed, base + s,
                                    num, start, "stream")
        return reached
