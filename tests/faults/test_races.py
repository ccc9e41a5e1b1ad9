"""Chunks that disagree: parallel writers of one chunk, and ``is_final`` that lies.

Several requests carry different bytes for the same chunk at once: exactly one is
taken, every other is 409 ``chunk_conflict``, and the stored file holds the winner's
bytes. The same bytes from several requests at once are all a success. ``is_final`` is
informational (``API.md``): a lie in it changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from tests.e2e.client import ApiClient
from tests.e2e.conftest import ServerProcess
from tests.faults import rawhttp
from tests.faults.victim import CS, TARGET, TOTAL, chunk_of, expect, open_victim

pytestmark = pytest.mark.e2e

WRITERS = 4
ROUNDS = 3


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_parallel_conflicting_writes_one_wins(bad_server: ServerProcess, source: bytes, seed: int,
                                                    round_: int) -> None:
    rng = random.Random(seed + round_)
    payloads = [rng.randbytes(CS) for _ in range(WRITERS)]  # inside the image data: the PDF stays valid
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        replies = await asyncio.gather(*(api.send_chunk(victim.sid, TARGET, p, CS, TOTAL) for p in payloads))
        winners = [i for i, r in enumerate(replies) if r.status == 200]
        assert len(winners) == 1, f"{len(winners)} writers of chunk {TARGET} were told they won: {replies}"
        for i, reply in enumerate(replies):
            if i != winners[0]:
                expect(reply, 409, "chunk_conflict")
        assert await victim.uploaded() == [0, TARGET]
        won = payloads[winners[0]]
        again = await api.send_chunk(victim.sid, TARGET, won, CS, TOTAL)  # the winner's retry: a success
        assert again.status == 200 and again.body["message"] == "Chunk already received", again
        await victim.finish([0, TARGET], source[:TARGET * CS] + won + source[(TARGET + 1) * CS:])
    bad_server.assert_no_tracebacks()


async def test_parallel_identical_writes_all_succeed(bad_server: ServerProcess, source: bytes) -> None:
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        data = chunk_of(source, TARGET)
        replies = await asyncio.gather(*(api.send_chunk(victim.sid, TARGET, data, CS, TOTAL) for _ in range(WRITERS)))
        assert all(r.status == 200 for r in replies), replies
        messages = sorted(r.body["message"] for r in replies)
        assert messages == ["Chunk already received"] * (WRITERS - 1) + ["Chunk uploaded successfully"], messages
        await victim.finish([0, TARGET])
    bad_server.assert_no_tracebacks()


@pytest.mark.parametrize("lie", ["true", "maybe", ""])
async def test_is_final_lies_change_nothing(bad_server: ServerProcess, source: bytes, lie: str) -> None:
    """``is_final`` on a middle chunk ("true", or not a boolean at all), then "false" on the
    real last chunk: the server counts chunks, not claims."""
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)

        async def send(chunk_id: int, is_final: str) -> rawhttp.RawReply | None:
            data = chunk_of(source, chunk_id)
            body, ctype = rawhttp.multipart([
                ("chunk_id", str(chunk_id)), ("chunk_offset", str(chunk_id * CS)), ("is_final", is_final),
                ("checksum", hashlib.sha256(data).hexdigest())], data)
            return await victim.send(body, ctype)

        middle = await send(TARGET, lie)
        assert middle is not None and middle.status == 200, middle
        assert middle.body["upload_complete"] is False and middle.body["next_chunk_id"] == 2, middle
        complete = await api.complete(victim.sid)
        expect(complete, 409, "upload_incomplete")
        last = await send(TOTAL - 1, "false")
        assert last is not None and last.status == 200, last
        assert last.body["upload_complete"] is True and last.body["next_chunk_id"] is None, last
        await victim.finish(list(range(TOTAL)))
    bad_server.assert_no_tracebacks()


@pytest.mark.parametrize("failure", ["checksum", "disconnect"])
async def test_a_failing_writer_hands_the_chunk_on(bad_server: ServerProcess, source: bytes, seed: int,
                                                    failure: str) -> None:
    """The first writer holds the chunk while its bytes trickle in, then fails (its
    checksum does not match, or it hangs up half-way); the two writers waiting behind it
    with other bytes: one wins, one hears 409, and nothing of the failed one is kept."""
    rng = random.Random(seed)
    first, *others = [rng.randbytes(CS) for _ in range(3)]
    async with ApiClient(bad_server.base_url) as api:
        victim = await open_victim(bad_server, api, source)
        checksum = hashlib.sha256(b"not these bytes").hexdigest() if failure == "checksum" else True
        body, ctype = rawhttp.chunk_form(TARGET, first, CS, TOTAL, checksum=checksum)
        pieces = rawhttp.pieces(body)
        if failure == "disconnect":
            pieces = pieces[: len(pieces) // 2]
        held = asyncio.create_task(victim.send(b"", ctype, pieces=pieces, pace=0.005, content_length=len(body),
                                               end="read" if failure == "checksum" else "abort"))
        await asyncio.sleep(0.05)  # the first writer is in, holding the chunk
        replies = await asyncio.gather(*(api.send_chunk(victim.sid, TARGET, p, CS, TOTAL) for p in others))
        failed = await held
        if failure == "checksum":
            expect(failed, 422, "checksum_mismatch")
        winners = [i for i, r in enumerate(replies) if r.status == 200]
        assert len(winners) == 1, replies
        expect(replies[1 - winners[0]], 409, "chunk_conflict")
        won = others[winners[0]]
        await victim.finish([0, TARGET], source[:TARGET * CS] + won + source[(TARGET + 1) * CS:])
    bad_server.assert_no_tracebacks()
