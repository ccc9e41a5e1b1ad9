"""The bookkeeping of one multipart upload, kept in S3 itself (so that it survives a
restart and every replica sees it), and the plan that completes it.

Each write leaves *pieces* under ``pieces/<upload>/``; a piece's key says everything about
it, so a listing is the whole bookkeeping and no object is ever read-modified-written:

- a **staged** piece ``<start>-<end>-<stamp>-<rand>.s`` is an object holding bytes
  ``[start, end)`` of the upload (readable at once);
- a **part** marker ``<start>-<end>-<stamp>-<rand>.p<number>.g<generation>.<etag>`` is an
  empty object saying that part ``number`` of the multipart upload of that generation
  holds bytes ``[start, end)`` (not readable before completion);
- a **view** marker ``<start>-<end>-<stamp>-<rand>.v<generation>.<offset>`` is an empty
  object saying that bytes ``[start, end)`` are readable in the completed object of an
  earlier generation, from ``offset`` (see :meth:`S3ChunkStore.snapshot`).

Where pieces overlap (a range written again), the newest wins byte by byte; a staged
piece or a view can give any slice of itself, a part only the whole of it (a part
overlapped by a newer piece is left out of the completed object). Parts of an earlier
generation are gone (their multipart upload was completed): they count for nothing.

Part numbers: every part is at least ``grid`` bytes (5 MiB or more) except the last, so
``start // grid + 1`` numbers parts in order and never twice (``grid`` is chosen at
creation so that the largest upload stays within S3's 10,000 parts).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1 << 20
MIN_PART = 5 * MIB  # S3's least part size (all parts but the last)
MAX_PARTS = 10_000
_NAME = re.compile(r"^(\d{15})-(\d{15})-(\d{20})-([0-9a-f]{8})\."
                   r"(?:s|p(\d+)\.g(\d+)\.([0-9a-f]+)|v(\d+)\.(\d{15}))$")


def part_grid(size: int) -> int:
    """The least part size of an upload of ``size`` bytes (whole MiB, at least 5 MiB)."""
    need = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-need // MIB) * MIB)


def part_number(start: int, grid: int) -> int:
    return start // grid + 1


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    stamp: int
    name: str
    part: int | None = None  # a part marker: the part's number
    etag: str | None = None
    generation: int | None = None  # a part's multipart upload, or the object a view reads
    offset: int | None = None  # a view: where ``start`` is in that object

    @property
    def staged(self) -> bool:
        """Readable now (a staged piece or a view), rather than a part."""
        return self.part is None

    @property
    def view(self) -> bool:
        return self.offset is not None

    @staticmethod
    def parse(name: str) -> Piece | None:
        m = _NAME.match(name)
        if m is None:
            return None
        start, end, stamp = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if m.group(5):
            return Piece(start, end, stamp, name, int(m.group(5)), m.group(7), int(m.group(6)))
        if m.group(8):
            return Piece(start, end, stamp, name, generation=int(m.group(8)), offset=int(m.group(9)))
        return Piece(start, end, stamp, name)


def piece_name(start: int, end: int, part: int | None = None, etag: str | None = None,
               generation: int | None = None, *, offset: int | None = None, stamp: int | None = None,
               tag: str | None = None) -> str:
    """A staged piece's name; a part marker's with ``part``, ``etag`` and ``generation``;
    a view's with ``generation`` and ``offset`` (``stamp``: the piece it stands for;
    ``tag``: 8 hex digits instead of random ones, so that a view written again has the
    same key)."""
    base = f"{start:015d}-{end:015d}-{stamp or time.time_ns():020d}-{tag or os.urandom(4).hex()}"
    if offset is not None:
        return f"{base}.v{generation}.{offset:015d}"
    if part is None:
        return base + ".s"
    return f"{base}.p{part}.g{generation}.{(etag or '').strip(chr(34))}"


@dataclass(frozen=True)
class Segment:
    """Bytes ``[start, end)`` of the upload, held by ``piece`` at ``start - piece.start``."""
    start: int
    end: int
    piece: Piece

    @property
    def length(self) -> int:
        return self.end - self.start


def resolve(pieces: Sequence[Piece], generation: int | None = None) -> list[Segment]:
    """Who holds each byte: newest piece first; a part whole or not at all, and only a
    part of ``generation`` (the multipart upload in progress), when it is given."""
    taken: list[tuple[int, int]] = []
    out: list[Segment] = []
    live = [p for p in pieces if p.part is None or generation is None or p.generation == generation]
    for piece in sorted(live, key=lambda p: (p.stamp, p.name), reverse=True):
        free = _uncovered(piece.start, piece.end, taken)
        if piece.part is not None:
            if free != [(piece.start, piece.end)]:
                continue  # partly overwritten since: left out
        for a, b in free:
            out.append(Segment(a, b, piece))
            taken.append((a, b))
        taken.sort()
    return sorted(out, key=lambda s: s.start)


def _uncovered(a: int, b: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], a
    for s, e in taken:  # sorted by start
        if e <= pos or s >= b:
            continue
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
        if pos >= b:
            break
    if pos < b:
        out.append((pos, b))
    return out


def readable_end(segments: Sequence[Segment], offset: int) -> list[Segment]:
    """The staged segments that hold ``[offset, ...)`` contiguously (a part or a hole stops it)."""
    out: list[Segment] = []
    pos = offset
    for seg in segments:
        if seg.end <= pos:
            continue
        if seg.start > pos or not seg.piece.staged:
            break
        out.append(seg)
        pos = seg.end
    return out


def holes(segments: Sequence[Segment], size: int) -> list[tuple[int, int]]:
    out, pos = [], 0
    for seg in segments:
        if seg.start > pos:
            out.append((pos, seg.start))
        pos = max(pos, seg.end)
    if pos < size:
        out.append((pos, size))
    return out


@dataclass
class PlannedPart:
    """One part of the completed object: an existing part (``segments`` is its one part
    segment), one staged slice copied inside S3, or staged slices read and sent again."""
    start: int
    end: int
    segments: list[Segment]
    how: str  # "part", "copy" or "compose"


def plan(segments: Sequence[Segment], size: int, grid: int) -> list[PlannedPart]:
    """Parts that tile ``[0, size)``: the written parts as they are, and each run of staged
    segments between them folded into parts of at least ``grid`` bytes (a staged slice of
    that size on its own is copied inside S3; smaller ones are grouped with their
    neighbours and sent again). ``ValueError`` when the bytes do not tile or a run between
    two parts is shorter than a part may be."""
    gaps = holes(segments, size)
    if gaps:
        raise ValueError(f"bytes {gaps[:3]} of the upload are not stored")
    out: list[PlannedPart] = []
    run: list[Segment] = []
    for seg in [*segments, None]:
        if seg is not None and seg.piece.staged:
            run.append(seg)
            continue
        if run:
            out += _fold(run, at_end=seg is None, grid=grid)
            run = []
        if seg is not None:
            out.append(PlannedPart(seg.start, seg.end, [seg], "part"))
    return out


def _fold(run: list[Segment], *, at_end: bool, grid: int) -> list[PlannedPart]:
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    for seg in run:
        if not current and seg.length >= grid:
            groups.append([seg])
            continue
        current.append(seg)
        if sum(s.length for s in current) >= grid:
            groups.append(current)
            current = []
    if current:
        if at_end or not groups:
            if not at_end:
                raise ValueError(f"a run of {sum(s.length for s in current)} bytes at {current[0].start} "
                                 f"between two parts is shorter than a part may be")
            groups.append(current)
        else:
            groups[-1] = groups[-1] + current
    return [PlannedPart(g[0].start, g[-1].end, g, "copy" if len(g) == 1 else "compose") for g in groups]
