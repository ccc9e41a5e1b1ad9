"""The C heap under the upload path: glibc's malloc kept from handing body buffers back
to the kernel while uploads run, and made to hand them back once the server rests.

Every socket read of a request body is a new Python ``bytes`` of up to 256 KiB, freed a
few milliseconds later once the writer thread has stored it. With glibc's defaults such a
buffer is mapped fresh from the kernel, or taken from the top of the heap that ``free``
then trims again: either way each byte of the body costs a page fault, and ``brk`` or
``mmap`` calls come with every read (measured: 0.16-0.38 CPU-s per GiB uploaded, the
largest single item above the floor after the copies httptools made). :func:`tune` keeps
buffers below ``MMAP_THRESHOLD`` on the heap and lets ``TRIM_THRESHOLD`` of free heap
stay mapped, so the same pages serve read after read. What that leaves resident once
the uploads stop is given back by :func:`trim` (``malloc_trim``), which the memory
budget calls when no chunk byte has been held for a moment
(:class:`~backend.services.backpressure.MemoryBudget`, ``on_rest``).

Both are no-ops where the C library is not glibc (musl, macOS): its heap is its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (raises AttributeError elsewhere)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def tune() -> bool:
    """Set the thresholds for this process (the upload server's, at start); False where
    there is no glibc or it refused them."""
    if _LIBC is None:
        return False
    done = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not done:
        log.warning("glibc refused the malloc thresholds; body buffers will be mapped afresh per read")
    return done


def trim() -> None:
    """Give the free heap back to the kernel (a few milliseconds on the server's heap)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
