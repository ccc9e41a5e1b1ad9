"""The whole-file SHA-256 and the streaming scan continue on whichever replica holds the
next contiguous bytes (issue 15).

Each replica keeps the prefix states of the sessions it served (the ``inline`` digest,
:class:`~backend.services.digest_inline.InlineDigests`, built ``portable``: its SHA-256
serializes). After an operation moved a state forward (a chunk's fork committed, a
catch-up, a rebuild), :meth:`Handover.publish` saves it to the shared store, where the
offset is the version (:class:`DigestStates`: a save never goes backwards). Before a
replica forks, catches up or finishes, :meth:`Handover.adopt` takes the saved state if
it is further than its own: an in-order upload whose chunks go round-robin is hashed and
scanned as they stream in, wherever they land, and never read back.

A saved state is trusted only as far as the session's recorded contiguous bytes go (a
state past them would be of bytes the session does not hold). Lost or unreadable saved
state (a Redis restart, another rehashes version): the replica goes on from its own
state, or rebuilds it from the stored bytes (:meth:`PrefixService.rebuild`), as after a
restart. A snapshot that does not travel now (inside a long object stream) is skipped;
the next one will.
"""

from __future__ import annotations

import logging
from typing import Protocol

from backend.errors import StorageUnavailable
from backend.services.digest_inline import InlineDigests
from backend.services.live import LiveSession

log = logging.getLogger(__name__)


class DigestStates(Protocol):
    async def save(self, session_id: str, offset: int, state: bytes) -> bool:
        """Keep ``state`` unless a state as far or further is kept; whether it was kept."""
        ...

    async def load(self, session_id: str) -> tuple[int, bytes] | None:
        """(offset, state) of the furthest kept, or None."""
        ...

    async def delete(self, session_id: str) -> None: ...


class Handover:
    def __init__(self, digests: InlineDigests, states: DigestStates) -> None:
        if not digests.portable:
            raise ValueError("the digest hand-over needs the inline digest built portable=True")
        self.digests = digests
        self.states = states

    async def publish(self, live: LiveSession) -> None:
        """Save the session's state if it went further than what this replica saved.
        Not fatal when the store is away: the next replica reads the bytes back."""
        prefix = live.prefix
        if prefix is None or prefix.offset <= prefix.published:
            return
        snapshot = await self.digests.snapshot(prefix)
        if snapshot is None:
            return
        offset, blob = snapshot
        try:
            await self.states.save(live.id, offset, blob)
        except StorageUnavailable:
            log.warning("session %s: its digest state at %d could not be saved", live.id, offset,
                        extra={"session_id": live.id})
            return
        prefix.published = offset

    async def adopt(self, live: LiveSession) -> bool:
        """With the session's prefix lock held: take the saved state if it is further than
        this replica's and within the recorded contiguous bytes. Whether it was taken."""
        saved = await self.states.load(live.id)
        local = live.prefix.offset if live.prefix is not None else -1
        if saved is not None and local < saved[0] <= live.session.offset:
            prefix = await self.digests.restore(saved[1])
            if prefix is not None and prefix.offset == saved[0]:
                prefix.published = prefix.offset
                live.prefix = prefix
                return True
        if live.prefix is None:
            # Nothing (usable) saved: start from the first byte. The catch-up reads back
            # and verifies what is recorded, as a rebuild would (a new upload: nothing).
            live.prefix = self.digests.new_state()
            return True
        return False
