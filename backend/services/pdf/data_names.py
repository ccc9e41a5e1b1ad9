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
for the part that touches every byte.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Final

import numpy as np

from backend.services.pdf.syntax import KEYWORD_NAMES, STREAM_NAMES_RE

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
    return pairs


_PAIRS: Final = _pairs(KEYWORD_NAMES)


_local = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A reused boolean array of ``n`` items: a fresh one per call costs page faults
    (a big allocation is a new mapping), more than the compare that fills it."""
    buf: np.ndarray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < n:
        buf = _local.buf = np.empty(max(n, 1 << 20), dtype=bool)
    return buf[:n]


def stream_name_matches(buf: bytes, start: int, end: int) -> Iterator[re.Match[bytes]]:
    """``STREAM_NAMES_RE.finditer(buf, start, end)``, found faster in large spans."""
    if end - start < VECTOR_MIN:
        yield from STREAM_NAMES_RE.finditer(buf, start, end)
        return
    data = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
    slashes = np.flatnonzero(np.equal(data[:-1], _SLASH, out=_scratch(len(data) - 1)))
    slashes = slashes[_FOLLOWS[data[slashes + 1]]]
    inner = slashes[slashes + 2 < len(data)]  # the last one or two may be cut off: kept
    candidates = np.concatenate((inner[_PAIRS[data[inner + 1], data[inner + 2]]], slashes[len(inner):])) + start
    match = STREAM_NAMES_RE.match
    after = start
    for at in candidates.tolist():
        if at < after:
            continue  # inside the previous match
        m = match(buf, at, end)
        if m is not None:
            after = m.end()
            yield m
