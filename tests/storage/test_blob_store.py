"""The BlobStore contract (``backend/storage/base.py``), against every blob store in
``stores.py`` paired with every chunk store (adopt takes an upload from any of them)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid

import pytest

from backend.storage.base import BlobStore, ChunkStore


async def _upload(chunks: ChunkStore, data: bytes) -> str:
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    writer = await chunks.open(uid, 0, len(data))

    def work() -> None:
        writer.write(data)
        writer.close()

    await asyncio.to_thread(work)
    return uid


async def _read(blobs: BlobStore, sha: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in blobs.read(sha, start, end)])


async def test_adopt_once_then_dedup(blobs: BlobStore, chunks: ChunkStore) -> None:
    data = b"%PDF-1.7 blob" + os.urandom(2_000_000)
    sha = hashlib.sha256(data).hexdigest()
    uid = await _upload(chunks, data)
    assert await blobs.adopt(chunks, uid, sha) is True
    assert not await chunks.exists(uid)
    again = await _upload(chunks, data)
    assert await blobs.adopt(chunks, again, sha) is False and not await chunks.exists(again)
    assert await blobs.has(sha) and await blobs.size(sha) == len(data)
    assert await _read(blobs, sha) == data
    await blobs.delete(sha)
    await blobs.delete(sha)
    assert not await blobs.has(sha) and await blobs.size(sha) is None


async def test_ranges_stream(blobs: BlobStore, chunks: ChunkStore) -> None:
    data = os.urandom(1_500_000)
    sha = hashlib.sha256(data).hexdigest()
    await blobs.adopt(chunks, await _upload(chunks, data), sha)
    assert await _read(blobs, sha, 100, 200) == data[100:200]
    assert await _read(blobs, sha, 700_000) == data[700_000:]
    assert await _read(blobs, sha, 0, 1_200_000) == data[:1_200_000]
    pieces = [len(p) async for p in blobs.read(sha)]
    assert sum(pieces) == len(data) and max(pieces) <= 1 << 20


async def test_materialize_gives_a_local_file(blobs: BlobStore, chunks: ChunkStore) -> None:
    data = b"%PDF-1.4 materialized"
    sha = hashlib.sha256(data).hexdigest()
    await blobs.adopt(chunks, await _upload(chunks, data), sha)
    async with blobs.materialize(sha) as path:
        assert path.read_bytes() == data
    with pytest.raises(FileNotFoundError):
        async with blobs.materialize("0" * 64):
            pass


async def test_reading_what_is_not_stored_is_file_not_found(blobs: BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        await _read(blobs, "1" * 64)


async def test_not_a_sha256_is_refused(blobs: BlobStore) -> None:
    with pytest.raises(ValueError):
        await blobs.has("../x")
