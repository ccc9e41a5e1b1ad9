"""The digest seam: the whole-file SHA-256 and the streaming PDF scan over an upload's
contiguous prefix, behind one interface with two implementations.

A *prefix state* is (offset, SHA-256 state, scanner state) over the bytes ``[0, offset)``
of one upload; :class:`PrefixHandle` is the server's handle on one (its offset and scan
summary as last reported). Every byte is fed once, in order, however the chunks arrived:

- ``fork`` / ``feed`` / ``commit``: a range that starts where the prefix ends (a chunk,
  an append) is fed to a fork of the state while it streams in; ``feed`` is called by
  the writer thread with each block *after* the block is in the store, with the block's
  bytes. Once the range checks out, ``commit`` makes the fork the state if it saw every
  byte and the state still ends where the fork began. ``discard`` drops a fork.
- ``catch_up``: a recorded range that now extends the prefix (it arrived ahead of a gap)
  is read back from the chunk store, checked against its recorded SHA-256, and fed.
- ``rebuild``: a new state over the verified prefix, every recorded range read back and
  checked (after a restart, on resume: the bytes decide).
- ``finish``: the whole-file digest, every finding, the scan's summary.

``commit``, ``catch_up`` and ``rebuild`` are told where the file ends: the operation that
brings the state there finishes the scan, so what only the end reveals is answered with
the request that completed the file.

Implementations (``STREAMING_DIGEST``):

- ``child`` (:class:`~backend.services.prefix_lane.PrefixLane`): the states live in a
  child process (off the server's GIL) that reads every block back from the chunk store
  (a :class:`~backend.storage.base.RangeReader`: local disk's page cache). ``feed`` only
  tells it where the bytes are. Needs a store with a blocking reader.
- ``inline`` (:class:`~backend.services.digest_inline.InlineDigests`): the states live in
  the server; ``feed`` hashes and scans the bytes in hand in the writer thread, so an
  in-order upload is never read back. Bytes that arrive ahead of a gap are *not* kept in
  memory (memory is a budget): ``catch_up`` and ``rebuild`` read them back through the
  chunk store. A store whose parts cannot be read before completion (S3 multipart) must
  therefore stage what it cannot read back (issue 15: out-of-order chunks and tails are
  staged anyway to build parts of 5 MiB), and rebuild needs what it staged.

Errors: :class:`DigestLost` when the implementation lost the state (its child died, or
the state was dropped): the caller rebuilds it from the bytes.

The state is plain data (an offset, a SHA-256 state, the scanner's fields), so that it
can be saved and continued elsewhere: with several replicas the inline digest is built
``portable`` (``rehashes``' serializable SHA-256, pinned: the format is its own) and
:mod:`backend.services.digest_handover` moves states through the shared store.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Protocol

#: What the server learns after a state changed: (offset, scan summary).
Progress = tuple[int, dict[str, Any]]
#: A recorded byte range: (offset, length, SHA-256 of its bytes).
Range = tuple[int, int, str]


class DigestLost(Exception):
    """The state (or its holder) is gone: rebuild it from the bytes."""


class _Ids(Protocol):
    def new_id(self) -> int: ...

    def forget(self, state_id: int) -> None: ...


class PrefixHandle:
    """The server's view of one prefix state: its id, and the offset and scan summary it
    last reported. The state is dropped when the handle is."""

    def __init__(self, holder: _Ids) -> None:
        self.id = holder.new_id()
        self.offset = 0
        self.summary: dict[str, Any] = {}
        self.published = 0  # several replicas: the offset this state was last saved at
        weakref.finalize(self, holder.forget, self.id)

    def update(self, progress: Progress | None) -> None:
        if progress is not None:
            self.offset, self.summary = progress

    def scan_summary(self) -> dict[str, Any]:
        return self.summary


class Digests(Protocol):
    """The prefix consumers of every upload (see the module doc). Coroutines run on the
    event loop; ``feed`` is the writer thread's. Calls for one state come one at a time
    (the caller holds the session's prefix lock, or owns the fork)."""

    def start(self) -> None:
        """Get ready now rather than at first use (a child takes ~0.2 s to start)."""

    def close(self) -> None:
        """Release everything (blocking; at shutdown)."""

    def new_id(self) -> int: ...

    def forget(self, state_id: int) -> None:
        """A handle went away (any thread): its state is dropped soon."""

    def new_state(self) -> PrefixHandle:
        """An empty state (a new upload)."""

    async def fork(self, prefix: PrefixHandle) -> int | None:
        """A fork of the state, for a range starting at ``prefix.offset``; None if none
        can be made now (the range is then read back by the catch-up)."""

    def feed(self, fork_id: int, upload_id: str, offset: int, pieces: Sequence[memoryview]) -> None:
        """From the writer thread: ``pieces`` were just written at ``offset``. A gap or
        a short read spoils the fork (it is not adopted)."""

    def discard(self, fork_id: int) -> None: ...

    async def commit(self, prefix: PrefixHandle, fork_id: int, end: int) -> tuple[bool, list[Any], Progress | None]:
        """(adopted, the fork's findings if so, the state's progress)."""

    async def catch_up(self, prefix: PrefixHandle, upload_id: str, offset: int, length: int, expected: str,
                       end: int) -> tuple[bool, list[Any], Progress | None]:
        """Feed the recorded range at ``offset`` if the state ends there; (False, ...) if
        its bytes do not hash to ``expected`` (the state is unchanged then)."""

    async def rebuild(self, upload_id: str, ranges: Sequence[Range], file_size: int
                      ) -> tuple[PrefixHandle, list[int], list[Any]]:
        """A new state over the verified prefix: (its handle, the offsets of ranges whose
        bytes do not check out, the findings)."""

    async def finish(self, prefix: PrefixHandle) -> tuple[str, list[Any], dict[str, Any], int]:
        """(whole-file SHA-256 so far, every finding, scan summary, offset)."""
