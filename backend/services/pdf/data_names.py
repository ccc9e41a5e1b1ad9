"""Find the vocabulary names in stream data (binary: the bulk of a big PDF) quickly.

pdfid counts names wherever its byte scan meets them, stream data included, so the
streaming scanner does too (counted, never judged). ``re`` walks every byte of the data
in C while holding the GIL: ~0.2 s per 256 MiB on the benchmark's machine, as long as a
SHA-256 of the same bytes, and the event loop waits for the GIL meanwhile.

Every match of :data:`~backend.services.pdf.syntax.STREAM_NAMES_RE` starts with ``/``
and one of a dozen bytes, a pair that random data holds about once every 5 KiB. numpy
finds the slashes (a vectorised compare that releases the GIL) and keeps those followed
by a possible first letter and a possible second (:func:`_pairs`); ``re`` then only
*matches* at those few places (~500 per 256 MiB of random data, not ~50,000). The
matches are the ones ``finditer`` gives, less those no vocabulary name can be read from
(a match never contains a later candidate's slash, and candidates inside a match are
skipped as ``finditer`` would), at several times the speed and with the GIL released
for the part that touches every byte. ``flatnonzero`` over a byte mask is the costly
step, so the slashes are found a word (eight bytes) at a time first (:func:`_slashes`):
~0.1 s per 256 MiB of random data for the whole search, ~0.015 s of it the compare.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Final

import numpy as np

from backend.services.pdf.syntax import KEYWORD_NAMES, STREAM_NAMES_RE, Buf

#: Below this many bytes, numpy's per-call cost is more than ``re`` takes.
VECTOR_MIN: Final = 16 << 10
_SLASH: Final = ord("/")


def _second_bytes(pattern: bytes) -> bytes:
    """The bytes allowed right after the ``/`` of ``STREAM_NAMES_RE`` (``/[AEG...#]``)."""
    m = re.match(rb"/\[([^\]]+)\]", pattern)
    if m is None:
        raise ValueError("STREAM_NAMES_RE must start with / and a character class")
    return m.group(1)


_FOLLOWS: Final = np.zeros(256, dtype=bool)
_FOLLOWS[list(_second_bytes(STREAM_NAMES_RE.pattern))] = True


def _pairs(names: frozenset[str]) -> np.ndarray:
    """``[second, third]`` byte pairs after ``/`` that can begin a counted name: a
    vocabulary name's first two letters, or an escape (``#``) in either place. A match
    of ``STREAM_NAMES_RE`` outside these (``/Jx#41``: a literal letter no vocabulary
    name has there) decodes to no vocabulary name, so it was never counted."""
    pairs = np.zeros((256, 256), dtype=bool)
    pairs[ord("#"), :] = True
    pairs[:, ord("#")] = True
    for name in names:
        pairs[ord(name[1]), ord(name[2])] = True
    return pairs & _FOLLOWS[:, None]  # and the first must be one the pattern allows


_PAIRS: Final = _pairs(KEYWORD_NAMES)


_local = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A reused boolean array of ``n`` items: a fresh one per call costs page faults
    (a big allocation is a new mapping), more than the compare that fills it."""
    buf: np.ndarray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < n:
        buf = _local.buf = np.empty(max(n, 1 << 20) + (1 << 17), dtype=bool)
    return buf[:n]


def _slashes(data: np.ndarray) -> np.ndarray:
    """Where ``data`` holds ``/``, in order. The compare touches every byte (vectorised);
    ``flatnonzero`` then walks an eighth as many items, one per eight bytes, and looks
    inside only those that hold a slash (about one in thirty in random data)."""
    n = len(data)
    scratch = _scratch(n + n // 8)
    is_slash = np.equal(data, _SLASH, out=scratch[:n])
    full = n & ~7
    words = is_slash[:full].view(np.uint64)
    hit = np.flatnonzero(np.not_equal(words, 0, out=scratch[n:n + len(words)]))
    within = np.flatnonzero(words[hit].view(np.bool_))  # memory order: a byte's place
    at: np.ndarray = (hit[within >> 3] << 3) | (within & 7)
    if full < n:
        at = np.concatenate((at, np.flatnonzero(is_slash[full:]) + full))
    return at


def stream_name_matches(buf: Buf, start: int, end: int) -> Iterator[re.Match[bytes]]:
    """``STREAM_NAMES_RE.finditer(buf, start, end)``, found faster in large spans."""
    if end - start < VECTOR_MIN:
        yield from STREAM_NAMES_RE.finditer(buf, start, end)
        return
    data = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
    slashes = _slashes(data[:-2])  # each with the two bytes after it
    candidates = (slashes[_PAIRS[data[slashes + 1], data[slashes + 2]]] + start).tolist()
    if data[-2] == _SLASH and _FOLLOWS[data[-1]]:  # a name cut off by the end: kept
        candidates.append(end - 2)
    match = STREAM_NAMES_RE.match
    after = start
    for at in candidates:
        if at < after:
            continue  # inside the previous match
        m = match(buf, at, end)
        if m is not None:
            after = m.end()
            yield m
