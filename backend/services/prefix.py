"""Keeps each session's prefix consumers up to date with the bytes on disk.

The consumers (whole-file SHA-256 and PDF scan) live behind the digest seam
(:class:`~backend.services.digest.Digests`: a child process, or inline in the writer
threads); ``live.prefix`` is the server's handle on them (offset and scan summary as
last reported). This service decides *what* is fed and when; the digest, how.

- ``fork``/``commit``: a chunk that starts at the prefix is fed to a fork while it streams
  in (the writer thread hands each block it stored to ``feed_fork``); the fork
  becomes the prefix once the chunk is recorded, if the prefix still ends there.
- ``catch_up``: after a chunk is recorded, feed every recorded chunk that now extends the
  contiguous prefix (chunks that arrived ahead of a gap) from the store, once each.
- ``rebuild``: the bytes decide. Re-read every recorded chunk, drop those whose bytes no
  longer hash to what the state says, and rebuild the whole-file hash and the scan over
  the verified prefix in the same single pass. Runs after a restart and on ``/resume``.
- ``finish``: the whole-file digest and the scan's findings and summary, at the end.

The commit, catch-up or rebuild that brings the prefix to the end of the file also
finishes the scan there (in the same operation): the findings only the end
reveals come with it, to be judged before that chunk is answered.

Several replicas (``handover``, :mod:`backend.services.digest_handover`): a state that
moved forward is published to the shared store, and before a fork, a catch-up or the
finish a replica adopts the saved state if it is further than its own.

Catch-up and rebuild hold the session's ``prefix_lock``. Findings go to ``on_findings``,
which may fail the session. A digest that lost a state (its child died: ``DigestLost``)
leaves the session's prefix ``None``; it is rebuilt from the bytes when next needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from backend.errors import SecurityRejected
from backend.services.digest import DigestLost, Digests, PrefixHandle, Range
from backend.services.digest_handover import Handover
from backend.services.live import LiveSession
from backend.services.models import UPLOADING

log = logging.getLogger(__name__)

FindingsHandler = Callable[[LiveSession, list[Any]], Awaitable[None]]


class PrefixService:
    def __init__(self, digests: Digests, on_findings: FindingsHandler, handover: Handover | None = None) -> None:
        self.digests = digests
        self.on_findings = on_findings
        self.handover = handover

    async def adopt(self, live: LiveSession) -> None:
        """Several replicas: take the saved state if it is further than this replica's."""
        if self.handover is not None:
            async with live.prefix_lock:
                await self.handover.adopt(live)

    async def _publish(self, live: LiveSession) -> None:
        if self.handover is not None:
            await self.handover.publish(live)

    def new_state(self) -> PrefixHandle:
        return self.digests.new_state()

    # -- a chunk streaming in at the prefix ------------------------------------------

    async def fork(self, live: LiveSession, offset: int) -> int | None:
        """A fork of the prefix for a chunk starting at ``offset``, if the prefix ends there."""
        prefix = live.prefix
        if self.handover is not None and (prefix is None or prefix.offset != offset):
            await self.adopt(live)
            prefix = live.prefix
        if prefix is None or prefix.offset != offset:
            return None
        return await self.digests.fork(prefix)

    def feed_fork(self, fork_id: int, upload_id: str, offset: int, pieces: Sequence[memoryview]) -> None:
        """From the writer thread: ``pieces`` of the forked chunk are stored at ``offset``."""
        self.digests.feed(fork_id, upload_id, offset, pieces)

    def discard(self, fork_id: int) -> None:
        self.digests.discard(fork_id)

    async def commit(self, live: LiveSession, fork_id: int, start: int) -> list[Any]:
        """With the prefix lock held, the chunk recorded: the fork becomes the prefix if it
        saw all of the chunk and the prefix still ends at ``start``. Returns the chunk's
        findings; none if the fork was dropped (the catch-up reads the chunk back then)."""
        prefix = live.prefix
        if prefix is None or prefix.offset != start:
            self.discard(fork_id)
            return []
        try:
            adopted, findings, progress = await self.digests.commit(prefix, fork_id, live.session.file_size)
        except DigestLost:
            self._lost(live, prefix)
            return []
        prefix.update(progress)
        if adopted:
            await self._publish(live)
        return findings if adopted else []

    @staticmethod
    def _lost(live: LiveSession, prefix: PrefixHandle) -> None:
        if live.prefix is prefix:
            log.warning("session %s: the prefix worker lost its state; it is rebuilt from the bytes", live.id,
                        extra={"session_id": live.id})
            live.prefix = None

    # -- catch-up -------------------------------------------------------------------

    def schedule_catch_up(self, live: LiveSession) -> None:
        """Start a catch-up unless one is running; it loops until the prefix stops growing."""
        prefix = live.prefix
        if self.handover is None:
            if prefix is None or prefix.offset >= live.session.file_size:
                return
            if prefix.offset // live.session.chunk_size not in live.session.chunks:
                return
        elif prefix is not None and prefix.offset >= live.session.file_size:
            return  # shared: another replica's saved state may be further; the catch-up looks
        if live.catchup_task is None or live.catchup_task.done():
            live.catchup_task = asyncio.create_task(self._catch_up(live), name=f"catch-up {live.id}")

    async def _catch_up(self, live: LiveSession) -> None:
        s = live.session
        while s.status == UPLOADING:
            async with live.prefix_lock:
                if self.handover is not None:
                    await self.handover.adopt(live)
                prefix = live.prefix
                if prefix is None or prefix.offset >= s.file_size:
                    return
                chunk_id = prefix.offset // s.chunk_size
                expected = s.chunks.get(chunk_id)
                if expected is None:
                    return
                try:
                    ok, findings, progress = await self.digests.catch_up(
                        prefix, live.id, s.chunk_size * chunk_id, s.chunk_length(chunk_id), expected, s.file_size)
                except DigestLost:
                    self._lost(live, prefix)
                    return
                prefix.update(progress)
                if ok:
                    await self._publish(live)
                if not ok:
                    # The store no longer holds what was recorded: forget the chunk so
                    # the client sends it again; rebuild the prefix from scratch later.
                    log.warning("session %s: chunk %d failed its check on read-back", live.id, chunk_id,
                                extra={"session_id": live.id})
                    s.chunks.pop(chunk_id, None)
                    live.prefix = None
                    live.touch()
                    return
            if findings and not await self._judge(live, findings):
                return

    async def _judge(self, live: LiveSession, findings: list[Any]) -> bool:
        """Hand findings to the policy; False when they failed the session."""
        try:
            await self.on_findings(live, findings)
        except SecurityRejected:
            return False
        return True

    async def wait_caught_up(self, live: LiveSession) -> None:
        """Return once no catch-up is running (the prefix is as long as it can get)."""
        while live.catchup_task is not None and not live.catchup_task.done():
            await asyncio.shield(live.catchup_task)
        self.schedule_catch_up(live)
        if live.catchup_task is not None and not live.catchup_task.done():
            await asyncio.shield(live.catchup_task)

    # -- rebuild and finish -------------------------------------------------------------

    async def rebuild(self, live: LiveSession) -> list[int]:
        """Verify every recorded chunk (and an append's partial tail) against the store
        and rebuild the prefix.

        Returns the ids of chunks that were recorded but whose bytes did not check out
        (they are no longer recorded); a tail that does not check out is dropped. Chunks
        recorded while this runs are trusted: they were hashed on their way in."""
        async with live.prefix_lock:
            s = live.session
            recorded = dict(s.chunks)
            tail = s.tail
            ranges: list[Range] = [(i * s.chunk_size, s.chunk_length(i), sha) for i, sha in sorted(recorded.items())]
            tail_at = s.tail_offset if tail is not None else None
            if tail is not None and tail_at is not None:
                ranges.append((tail_at, int(tail["length"]), str(tail["sha256"])))
            for attempt in (1, 2):  # a child that died is started again by the next message
                try:
                    prefix, bad_offsets, findings = await self.digests.rebuild(live.id, ranges, s.file_size)
                    break
                except DigestLost as exc:
                    if attempt == 2:
                        raise RuntimeError(f"the digest could not rebuild session {live.id}: {exc}") from exc
            bad: list[int] = []
            for offset in bad_offsets:
                if offset == tail_at and s.tail is tail:
                    s.tail = None
                    live.touch()
                    continue
                chunk_id = offset // s.chunk_size
                if s.chunks.get(chunk_id) == recorded.get(chunk_id):
                    del s.chunks[chunk_id]
                    bad.append(chunk_id)
            live.prefix = prefix
            if bad:
                live.touch()
            await self._publish(live)
        if findings:
            await self.on_findings(live, findings)  # a rejection propagates to the caller
        self.schedule_catch_up(live)
        return bad

    async def finish(self, live: LiveSession) -> tuple[str, list[Any], dict[str, Any]] | None:
        """(whole-file SHA-256, every streaming finding, scan summary), or None if the
        prefix is not known (then it must be rebuilt first)."""
        prefix = live.prefix
        if prefix is None:
            return None
        try:
            digest, findings, summary, offset = await self.digests.finish(prefix)
        except DigestLost:
            self._lost(live, prefix)
            return None
        prefix.update((offset, summary))
        return digest, findings, summary
