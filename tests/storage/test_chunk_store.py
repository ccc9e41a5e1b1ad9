"""The ChunkStore contract (``backend/storage/base.py``), against every store in ``stores.py``."""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from pathlib import Path

import pytest

from backend.errors import InsufficientStorage
from backend.storage.base import ChunkStore
from backend.storage.local_chunks import LocalChunkStore, LocalChunkWriter


async def _write(chunks: ChunkStore, uid: str, offset: int, data: bytes) -> None:
    writer = await chunks.open(uid, offset, len(data))
    half = len(data) // 2

    def work() -> None:  # the writer is a worker thread's
        writer.write(data[:half])
        writer.write_pieces([memoryview(data)[half:half + 10], memoryview(data)[half + 10:]])
        writer.close()

    await asyncio.to_thread(work)


async def _read(chunks: ChunkStore, uid: str, offset: int, n: int) -> bytes:
    buf = bytearray(n)
    got = await chunks.read_into(uid, offset, buf)
    return bytes(buf[:got])


async def test_ranges_written_out_of_order_read_back(chunks: ChunkStore) -> None:
    uid = str(uuid.uuid4())
    data = os.urandom(10_000)
    await chunks.create(uid, len(data))
    await chunks.create(uid, len(data))  # idempotent
    for offset, end in ((6000, 10_000), (0, 3000), (3000, 6000)):
        await _write(chunks, uid, offset, data[offset:end])
    assert await _read(chunks, uid, 0, len(data)) == data
    assert await _read(chunks, uid, 3000, 3000) == data[3000:6000]
    assert await _read(chunks, uid, 9000, 2000) == data[9000:]  # short at the end
    assert await chunks.exists(uid) and uid in await chunks.list_uploads()
    count, _ = await chunks.stats()
    assert count == 1
    async with chunks.materialize(uid) as path:
        assert path.read_bytes() == data
    await chunks.delete(uid)
    await chunks.delete(uid)
    assert not await chunks.exists(uid) and await _read(chunks, uid, 0, 10) == b""
    assert uid not in await chunks.list_uploads()


async def test_a_blocking_reader_reads_what_was_written(chunks: ChunkStore) -> None:
    reader = chunks.blocking_reader()
    if reader is None:
        pytest.skip("this store cannot be read before the upload is finished")
    uid = str(uuid.uuid4())
    await chunks.create(uid, 100)
    await _write(chunks, uid, 0, b"x" * 100)
    buf = bytearray(40)
    assert await asyncio.to_thread(reader.read_into, uid, 80, buf) == 20 and buf[:20] == b"x" * 20


async def test_a_writer_refuses_to_overrun_its_range(chunks: ChunkStore) -> None:
    uid = str(uuid.uuid4())
    await chunks.create(uid, 100)
    writer = await chunks.open(uid, 0, 10)
    with pytest.raises(ValueError):
        await asyncio.to_thread(writer.write, b"x" * 11)
    await asyncio.to_thread(writer.close)


async def test_opening_a_range_of_a_gone_upload_is_file_not_found(chunks: ChunkStore) -> None:
    with pytest.raises(FileNotFoundError):
        await chunks.open(str(uuid.uuid4()), 0, 10)


async def test_resize_keeps_the_bytes_below(chunks: ChunkStore) -> None:
    uid = str(uuid.uuid4())
    await chunks.create(uid, 1000)
    await _write(chunks, uid, 0, b"a" * 300)
    await chunks.resize(uid, 500)
    await _write(chunks, uid, 300, b"b" * 200)
    assert await _read(chunks, uid, 0, 1000) == b"a" * 300 + b"b" * 200


async def test_copy_from_concatenates_inside_the_store(chunks: ChunkStore) -> None:
    first, second, final = (str(uuid.uuid4()) for _ in range(3))
    for uid, data in ((first, b"1" * 700), (second, b"2" * 300)):
        await chunks.create(uid, len(data))
        await _write(chunks, uid, 0, data)
    await chunks.create(final, 1000)
    await chunks.copy_from(final, 0, first, 700)
    await chunks.copy_from(final, 700, second, 300)
    assert await _read(chunks, final, 0, 1000) == b"1" * 700 + b"2" * 300


async def test_materializing_a_gone_upload_is_file_not_found(chunks: ChunkStore) -> None:
    with pytest.raises(FileNotFoundError):
        async with chunks.materialize(str(uuid.uuid4())):
            pass


async def test_disk_full_is_insufficient_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = LocalChunkStore(tmp_path)
    await store.create("u", 10)
    writer = await store.open("u", 0, 10)
    assert isinstance(writer, LocalChunkWriter)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(InsufficientStorage):
        writer.write(b"0123456789")
    writer.close()
