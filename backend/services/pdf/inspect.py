"""Deep inspection of a completed upload with pikepdf (qpdf): the authoritative scan.

Call :func:`inspect_pdf` from a worker thread (it is plain synchronous code). It opens
the file with qpdf, refuses what cannot be inspected safely, walks every object
(:mod:`backend.services.pdf.deep_walk`) and returns an :class:`Inspection`; turning its
findings into a verdict is :mod:`backend.services.pdf.policy`'s job.

Refusals (exceptions from :mod:`backend.errors`), each message in plain words
(:mod:`backend.services.pdf.damage`):

* ``NotAPdf`` - no ``%PDF-`` in the first 1024 bytes.
* ``InvalidPdf`` - qpdf cannot open it, or it has no readable page tree; or, with
  ``InspectLimits.reject_damaged``, qpdf had to repair it. A file qpdf opens, even with
  warnings, a missing ``%%EOF`` or data after it, is otherwise accepted with a
  ``damaged`` finding: qpdf is the judge of what can be read.
* ``SecurityRejected`` - more pages or objects than the limits (a ``resource_limit``
  finding), or a stream that really decodes beyond ``max_stream_bytes`` or more than
  ``max_ratio`` times past ``ratio_floor`` bytes (a ``decompression_bomb`` finding that
  names the object, the filters, the size reached and the limit). Streams are never
  decoded whole into memory: see :mod:`backend.services.pdf.decoded`. Images are not
  decoded; one that declares more than ``huge_image_bytes`` unpacked gets a
  ``huge_image`` finding, which the policy flags by default.

Encryption: a file that opens with the empty user password is inspected like any other
and carries an ``encrypted`` finding. A file that needs a password cannot be inspected:
it is *not* raised but returned with ``scanned=False`` and a ``password_protected``
finding, which the default :class:`~backend.services.pdf.policy.SecurityPolicy`
rejects (fail closed; configurable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pikepdf

from backend.errors import InvalidPdf, NotAPdf, SecurityRejected
from backend.services.pdf import damage
from backend.services.pdf.decoded import TooBig, decoded_size
from backend.services.pdf.deep_walk import DeepWalk
from backend.services.pdf.findings import Finding

_MIB: Final = 1 << 20
_TAIL: Final = 1024
_WINDOW: Final = 1 << 20  # where a stream object's dictionary must end
_BLOCK: Final = 1 << 20  # raw stream data read per call


@dataclass(frozen=True)
class InspectLimits:
    """What a file may cost to inspect (and to use afterwards)."""

    max_pages: int = 10_000
    max_objects: int = 1_000_000
    max_stream_bytes: int = 256 * _MIB  # largest decoded stream
    max_ratio: int = 500  # decoded/compressed ratio allowed beyond ratio_floor
    ratio_floor: int = 16 * _MIB
    reject_damaged: bool = False  # True: files qpdf had to repair are InvalidPdf
    huge_image_bytes: int = 256 * _MIB  # an image declaring more than this unpacked is flagged
    max_findings_per_kind: int = 20


@dataclass
class Inspection:
    """What the deep inspection saw. ``scanned`` is False when the content could not be
    read (password needed); ``damaged`` when qpdf repaired the file (``warnings``)."""

    page_count: int
    object_count: int
    encrypted: bool
    pdf_version: str
    findings: list[Finding]
    uris: list[str]
    largest_stream: int
    object_streams: int = 0
    damaged: bool = False
    warnings: list[str] = field(default_factory=list)
    scanned: bool = True

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        out = asdict(self)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


def _check_header(path: Path) -> None:
    with path.open("rb") as f:
        if b"%PDF-" not in f.read(_TAIL):
            raise NotAPdf("not a PDF: no %PDF- header in the first 1024 bytes")


def _unreadable(path: Path, problems: list[str]) -> InvalidPdf:
    return InvalidPdf(f"not a readable PDF: {damage.summary(problems, damage.envelope_notes(path))}")


def _bomb(num: int, exc: TooBig, limits: InspectLimits) -> SecurityRejected:
    chain = "/".join(f[1:] for f in exc.filters) or "unfiltered"
    if not exc.limit:  # not measurable at all
        detail = f"object {num} ({chain}) {exc}"
    else:
        which = (f"the {limits.max_stream_bytes}-byte limit per decoded stream (STREAMING_MAX_STREAM_MB)"
                 if exc.why == "cap" else
                 f"{limits.max_ratio} times its encoded size, past {limits.ratio_floor} bytes "
                 f"(STREAMING_MAX_COMPRESSION_RATIO)")
        detail = (f"object {num} ({chain}) decodes past its limit of {exc.limit} bytes: it reached "
                  f"{exc.reached} bytes; the limit is {which}")
    return SecurityRejected(f"decompression bomb: {detail}",
                            findings=[Finding("decompression_bomb", detail, None, "deep").to_dict()])


def _over_limit(detail: str) -> SecurityRejected:
    return SecurityRejected(detail, findings=[Finding("resource_limit", detail, None, "deep").to_dict()])


def _without_path(problem: object, path: Path) -> str:
    """qpdf names the file it read in its messages: the client must not learn server paths."""
    return str(problem).replace(str(path), "the file")


def _locked(path: Path, exc: pikepdf.PasswordError) -> Inspection:
    findings = [Finding("encrypted", "document is encrypted", None, "deep"),
                Finding("password_protected", "needs a password: content cannot be inspected",
                        None, "deep")]
    version = ""
    with path.open("rb") as f:
        head = f.read(_TAIL)
        at = head.find(b"%PDF-")
        version = head[at + 5:at + 8].decode("latin-1") if at >= 0 else ""
    return Inspection(0, 0, True, version, findings, [], 0, scanned=False, warnings=[str(exc)])


def inspect_pdf(path: Path, limits: InspectLimits | None = None) -> Inspection:
    """Open ``path`` with qpdf, enforce ``limits``, report active content (see module doc)."""
    limits = limits or InspectLimits()
    path = Path(path)
    _check_header(path)
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        return _locked(path, exc)
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, [_without_path(exc, path)]) from exc
    with pdf:
        return _inspect_open(pdf, limits, path)


class FileStreams:
    """Raw (still encoded) stream data read from the file a block at a time, found through
    the xref table: how big streams are measured without qpdf loading them whole.
    Not for encrypted files (their bytes on disk are ciphertext)."""

    _START = re.compile(rb">>[\x00\t\n\x0c\r ]*stream(?:\r\n|\n|\r)")

    def __init__(self, path: Path, offsets: dict[tuple[int, int], int]) -> None:
        self.path = path
        self.offsets = offsets

    def __call__(self, stream: pikepdf.Stream) -> Iterator[bytes]:
        offset = self.offsets.get(stream.objgen)
        length = stream.stream_dict.get("/Length")
        if offset is None or not isinstance(length, int):
            raise TooBig("is too big to read whole and cannot be located in the file")
        with self.path.open("rb") as f:
            f.seek(offset)
            window = f.read(_WINDOW)
            start = self._START.search(window)
            if start is None:
                raise TooBig("is too big to read whole and its data cannot be found in the file")
            f.seek(offset + start.end())
            left = length
            while left > 0:
                block = f.read(min(_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block


def _inspect_open(pdf: pikepdf.Pdf, limits: InspectLimits, path: Path) -> Inspection:
    errors: list[str] = []
    huge: list[str] = []
    measured: dict[tuple[int, int], int] = {}
    raw_pieces: FileStreams | None = None
    if not pdf.is_encrypted:
        offsets = {key: e.offset for key, e in pdf.get_xref_table().items()
                   if e.type == 1 and e.offset is not None}
        raw_pieces = FileStreams(path, offsets)

    def size_of(stream: pikepdf.Stream) -> int:
        if stream.objgen in measured:
            return measured[stream.objgen]
        size = 0
        try:
            decoded = decoded_size(stream, limits.max_stream_bytes, limits.max_ratio,
                                   limits.ratio_floor, raw_pieces)
            size = decoded.size
            if decoded.declared is not None and decoded.declared > limits.huge_image_bytes:
                d = stream.stream_dict
                huge.append(f"image of {d.get('/Width')} x {d.get('/Height')} pixels declares "
                            f"{decoded.declared} bytes unpacked (object {stream.objgen[0]}, "
                            f"{size} bytes encoded)")
        except TooBig as exc:
            raise _bomb(stream.objgen[0], exc, limits) from exc
        except pikepdf.PdfError as exc:
            errors.append(f"stream {stream.objgen[0]}: {exc}")
        measured[stream.objgen] = size
        return size

    try:
        xref = pdf.get_xref_table()
        if len(xref) > limits.max_objects:
            raise _over_limit(f"too many objects: {len(xref)} (limit {limits.max_objects}, STREAMING_MAX_OBJECTS)")
        # qpdf decodes object streams whole to read them: measure them first.
        containers = {e.obj_stream_number for e in xref.values() if e.type == 2}
        for num in sorted(n for n in containers if n is not None):
            objstm = pdf.get_object(num, 0)
            if isinstance(objstm, pikepdf.Stream):
                size_of(objstm)
        objects = pdf.objects
        page_count = len(pdf.pages)
    except pikepdf.PdfError as exc:
        raise _unreadable(path, [_without_path(exc, path)]) from exc
    if page_count > limits.max_pages:
        raise _over_limit(f"too many pages: {page_count} (limit {limits.max_pages}, STREAMING_MAX_PAGES)")
    if page_count == 0:
        raise InvalidPdf("not a readable PDF: it has no pages")
    walk = DeepWalk(limits.max_findings_per_kind, size_of, errors.append, raw_pieces)
    walk.walk(objects)
    if pdf.is_encrypted:
        walk.add("encrypted", "document is encrypted (opens without a password)")
    for detail in huge:
        walk.add("huge_image", detail)
    warnings = [_without_path(w, path) for w in [*map(str, pdf.get_warnings()), *errors]]
    if warnings:
        reading = damage.summary(warnings, damage.envelope_notes(path))
        if limits.reject_damaged:
            raise InvalidPdf(f"damaged PDF, refused because STREAMING_REJECT_DAMAGED is on: {reading}")
        walk.add("damaged", f"the file is damaged and was repaired when read: {reading}")
    return Inspection(
        page_count=page_count, object_count=len(objects), encrypted=bool(pdf.is_encrypted),
        pdf_version=str(pdf.pdf_version), findings=list(walk.log.findings),
        uris=list(walk.log.uris), largest_stream=walk.largest_stream,
        object_streams=walk.object_streams, damaged=bool(warnings), warnings=warnings[:20])
