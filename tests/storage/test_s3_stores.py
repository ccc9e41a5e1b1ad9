"""What the S3 stores promise beyond the contract suites, on a real SeaweedFS: parts of at
least 5 MiB (the last may be smaller), small writes staged and folded, each byte of an
in-order upload of 8 MiB chunks sent once, aborts, the orphan listing, ranged reads,
another replica seeing the same upload, 503-worthy errors when S3 is out of reach, and a
process killed between any two S3 calls of a snapshot or a completion losing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

from backend.errors import StorageUnavailable
from backend.storage.s3.blobs import S3BlobStore
from backend.storage.s3.bucket import S3Bucket, make_client
from backend.storage.s3.chunks import S3ChunkStore
from backend.storage.s3.layout import MIB, MIN_PART, Piece, Segment, part_grid, plan, resolve
from tests.realservers.procs import free_ports
from tests.realservers.seaweed import SeaweedServer


class RecordingBucket(S3Bucket):
    """The real bucket, noting the size of every part sent or copied."""

    parts: list[tuple[str, int, int]]

    def call(self, op: str, **kwargs: Any) -> Any:
        if op == "upload_part":
            self.parts.append((op, kwargs["PartNumber"], len(kwargs["Body"])))
        elif op == "upload_part_copy":
            a, b = kwargs["CopySourceRange"].removeprefix("bytes=").split("-")
            self.parts.append((op, kwargs["PartNumber"], int(b) - int(a) + 1))
        return super().call(op, **kwargs)


@pytest.fixture
def bucket(seaweed_server: SeaweedServer, s3_bucket: str) -> RecordingBucket:
    s = seaweed_server
    rec = RecordingBucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), s3_bucket, prefix="t/")
    rec.parts = []
    return rec


@pytest.fixture
def chunks(bucket: RecordingBucket, tmp_path: Path) -> S3ChunkStore:
    return S3ChunkStore(bucket, tmp_dir=tmp_path)


async def _write(chunks: S3ChunkStore, uid: str, offset: int, data: bytes, *, read_back: bool = True,
                 cut_at: int | None = None) -> None:
    writer = await chunks.open(uid, offset, len(data), read_back=read_back)

    def work() -> None:
        view = memoryview(data)[:cut_at]
        for i in range(0, len(view), 512 << 10):
            writer.write_pieces([view[i:i + (256 << 10)], view[i + (256 << 10):i + (512 << 10)]])
        writer.close()

    await asyncio.to_thread(work)


async def _materialized(chunks: S3ChunkStore, uid: str) -> bytes:
    async with chunks.materialize(uid) as path:
        return path.read_bytes()


def _in_progress(bucket: S3Bucket) -> list[dict[str, Any]]:
    return list(bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []))


async def test_in_order_8_mib_chunks_send_each_byte_once(chunks: S3ChunkStore, bucket: RecordingBucket) -> None:
    data = os.urandom(3 * 8 * MIB + 3 * MIB)
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    for offset in range(0, len(data), 8 * MIB):
        await _write(chunks, uid, offset, data[offset:offset + 8 * MIB], read_back=False)
    assert chunks.bytes_written == len(data)  # each byte sent to S3 once
    assert [p[2] for p in bucket.parts] == [8 * MIB] * 3  # the 3 MiB last chunk is staged
    buf = bytearray(MIB)
    assert await chunks.read_into(uid, 24 * MIB, buf) == MIB and buf == data[24 * MIB:25 * MIB]
    assert await _materialized(chunks, uid) == data
    assert bucket.parts[-1] == ("upload_part_copy", 5, 3 * MIB)  # the staged tail, copied inside S3
    assert chunks.bytes_written == len(data) and chunks.bytes_copied == 3 * MIB
    blobs = S3BlobStore(bucket)
    sha = hashlib.sha256(data).hexdigest()
    assert await blobs.adopt(chunks, uid, sha) is True
    assert chunks.bytes_written == len(data)  # adopt copies inside S3
    assert b"".join([p async for p in blobs.read(sha, 7 * MIB, 17 * MIB + 5)]) == data[7 * MIB:17 * MIB + 5]
    assert not await chunks.exists(uid) and _in_progress(bucket) == []


async def test_small_writes_are_staged_and_folded_into_parts_of_5_mib(chunks: S3ChunkStore,
                                                                     bucket: RecordingBucket) -> None:
    sizes = [3 * MIB, MIB + 17, 7 * MIB, 300_000, 2 * MIB, 9 * MIB + 5, 1234]  # tus PATCH bodies end anywhere
    data = os.urandom(sum(sizes))
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    offset = 0
    for size in sizes:
        await _write(chunks, uid, offset, data[offset:offset + size])
        offset += size
    assert bucket.parts == []  # nothing in parts yet: every byte can be read back
    buf = bytearray(len(data))
    assert await chunks.read_into(uid, 0, buf) == len(data) and buf == data
    assert await _materialized(chunks, uid) == data
    sizes_sent = [p[2] for p in bucket.parts]
    assert sum(sizes_sent) == len(data)
    assert all(s >= MIN_PART for s in sizes_sent[:-1])  # only the last part may be smaller


async def test_reading_bytes_in_parts_makes_them_readable_and_the_upload_goes_on(
        chunks: S3ChunkStore, bucket: RecordingBucket) -> None:
    """A rebuild (after a restart, on resume) reads chunks back that are in parts: the store
    completes the multipart upload so far, reads from that object, and goes on with a new
    one; at completion those bytes are copied back into parts inside S3 (nothing re-sent)."""
    data = os.urandom(4 * 8 * MIB + 2 * MIB)
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    for offset in (0, 16 * MIB, 32 * MIB):
        await _write(chunks, uid, offset, data[offset:offset + 8 * MIB], read_back=False)
    buf = bytearray(len(data))
    assert await chunks.read_into(uid, 0, buf) == 8 * MIB and buf[:8 * MIB] == data[:8 * MIB]  # up to the hole
    assert await chunks.read_into(uid, 16 * MIB + 5, buf) == 8 * MIB - 5 and buf[:8 * MIB - 5] == data[16 * MIB + 5:24 * MIB]
    assert _in_progress(bucket)[0]["Key"] == chunks.upload_key(uid, 2)
    for offset in (8 * MIB, 24 * MIB):  # the rest, into the next multipart upload
        await _write(chunks, uid, offset, data[offset:offset + 8 * MIB], read_back=False)
    assert await _materialized(chunks, uid) == data
    assert chunks.bytes_written == len(data)  # parts made readable are copied back inside S3
    assert await chunks.read_into(uid, 30 * MIB, buf) == len(data) - 30 * MIB  # completed: all readable
    await chunks.delete(uid)
    assert bucket.list_keys("t/") == [] and _in_progress(bucket) == []


async def test_a_part_sent_while_a_snapshot_completes_its_upload_is_staged(chunks: S3ChunkStore) -> None:
    data = os.urandom(24 * MIB)
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    await _write(chunks, uid, 0, data[:8 * MIB], read_back=False)
    writer = await chunks.open(uid, 8 * MIB, 8 * MIB, read_back=False)  # holds generation 1
    await chunks.read_into(uid, 0, bytearray(10))  # a snapshot: generation 2

    def send() -> None:
        writer.write(data[8 * MIB:16 * MIB])
        writer.close()

    await asyncio.to_thread(send)
    await _write(chunks, uid, 16 * MIB, data[16 * MIB:], read_back=False)
    buf = bytearray(8 * MIB)
    assert await chunks.read_into(uid, 8 * MIB, buf) == 8 * MIB and buf == data[8 * MIB:16 * MIB]
    assert await _materialized(chunks, uid) == data


async def test_a_cut_off_range_keeps_what_arrived_and_a_rewrite_wins(chunks: S3ChunkStore) -> None:
    data = os.urandom(16 * MIB)
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    await _write(chunks, uid, 0, data[:8 * MIB], read_back=False, cut_at=6 * MIB)  # the body stopped at 6 MiB
    buf = bytearray(8 * MIB)
    assert await chunks.read_into(uid, 0, buf) == 6 * MIB and buf[:6 * MIB] == data[:6 * MIB]
    await _write(chunks, uid, 0, data[:8 * MIB], read_back=False)  # sent again, whole
    await _write(chunks, uid, 8 * MIB, data[8 * MIB:], read_back=False)
    assert await _materialized(chunks, uid) == data


async def test_delete_aborts_the_multipart_upload_and_removes_every_piece(chunks: S3ChunkStore,
                                                                        bucket: RecordingBucket) -> None:
    uid = str(uuid.uuid4())
    await chunks.create(uid, 20 * MIB)
    await _write(chunks, uid, 0, os.urandom(8 * MIB), read_back=False)
    await _write(chunks, uid, 8 * MIB, os.urandom(MIB))
    assert [u["Key"] for u in _in_progress(bucket)] == [chunks.upload_key(uid, 1)]
    count, used = await chunks.stats()
    assert count == 1 and used == 9 * MIB
    await chunks.delete(uid)
    assert _in_progress(bucket) == [] and bucket.list_keys("t/") == []
    assert await chunks.stats() == (0, 0)


async def test_orphans_are_listed_and_removed(chunks: S3ChunkStore, bucket: RecordingBucket) -> None:
    uid = str(uuid.uuid4())
    await chunks.create(uid, 100)
    stray = bucket.client.create_multipart_upload(Bucket=bucket.bucket, Key="t/uploads/stray")  # no record
    assert await chunks.list_uploads() == sorted([uid, "stray"])
    for upload in await chunks.list_uploads():  # what the sweep does with those it has no session for
        await chunks.delete(upload)
    assert await chunks.list_uploads() == [] and _in_progress(bucket) == []
    assert stray["UploadId"]


async def test_another_replica_sees_and_finishes_the_upload(chunks: S3ChunkStore, bucket: RecordingBucket,
                                                            seaweed_server: SeaweedServer) -> None:
    data = os.urandom(12 * MIB)
    uid = str(uuid.uuid4())
    await chunks.create(uid, len(data))
    await _write(chunks, uid, 0, data[:8 * MIB], read_back=False)
    s = seaweed_server
    other = S3ChunkStore(S3Bucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region),
                                  bucket.bucket, prefix="t/"))
    assert await other.exists(uid)
    await _write(other, uid, 8 * MIB, data[8 * MIB:], read_back=False)
    assert await _materialized(chunks, uid) == data


async def test_copy_from_concatenates_inside_s3(chunks: S3ChunkStore) -> None:
    first, second, final = (os.urandom(6 * MIB), os.urandom(MIB + 3), None)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for uid, data in zip(ids, (first, second)):
        await chunks.create(uid, len(data))
        await _write(chunks, uid, 0, data)
    await chunks.create(ids[2], len(first) + len(second))
    before = chunks.bytes_written
    await chunks.copy_from(ids[2], 0, ids[0], len(first))
    await chunks.copy_from(ids[2], len(first), ids[1], len(second))
    assert chunks.bytes_written == before and final is None  # copied inside S3
    assert await _materialized(chunks, ids[2]) == first + second


async def test_an_unreachable_endpoint_is_storage_unavailable(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    client = make_client(f"http://127.0.0.1:{port}", "k", "s", "us-east-1", connect_timeout=0.5, attempts=1)
    bucket = S3Bucket(client, "nowhere")
    with pytest.raises(StorageUnavailable) as caught:
        await S3ChunkStore(bucket).create(str(uuid.uuid4()), 10)
    assert caught.value.retry_after
    with pytest.raises(StorageUnavailable):
        await S3BlobStore(bucket).has("0" * 64)
    with pytest.raises(StorageUnavailable):
        await S3ChunkStore(bucket).list_uploads()


def test_the_plan_folds_staged_runs_around_parts() -> None:
    def staged(a: int, b: int, stamp: int = 1) -> Piece:
        return Piece(a, b, stamp, f"{a}-{b}-{stamp}.s")

    def part(a: int, b: int, stamp: int = 1) -> Piece:
        return Piece(a, b, stamp, f"{a}-{b}-{stamp}.p", part=a // MIN_PART + 1, etag="e")

    pieces = [part(0, 8 * MIB), staged(8 * MIB, 11 * MIB), staged(11 * MIB, 16 * MIB), part(16 * MIB, 24 * MIB),
              staged(24 * MIB, 25 * MIB), staged(25 * MIB, 26 * MIB)]
    planned = plan(resolve(pieces), 26 * MIB, MIN_PART)
    assert [(p.start // MIB, p.end // MIB, p.how) for p in planned] == [
        (0, 8, "part"), (8, 16, "compose"), (16, 24, "part"), (24, 26, "compose")]
    # a newer piece over part of an older part leaves that part out
    segments = resolve([part(0, 8 * MIB), staged(0, 8 * MIB, stamp=0), staged(2 * MIB, 3 * MIB, stamp=2)])
    assert all(isinstance(s, Segment) and s.piece.staged for s in segments)
    with pytest.raises(ValueError):
        plan(resolve([staged(0, MIB)]), 2 * MIB, MIN_PART)  # a hole
    assert part_grid(1 << 30) == MIN_PART and part_grid(100 << 30) == 11 * MIB



# -- a process killed between two S3 calls of a snapshot or a completion ------------------


class Killed(BaseException):
    """The process stopped here (not an Exception: nothing in the store may catch it)."""


class CrashingBucket(S3Bucket):
    """The real bucket, stopping like a killed process at the ``nth`` call of ``op`` whose
    key contains ``key_has``: before the call is made, or just after it (``after``)."""

    crash: tuple[str, int, bool, str] | None = None
    seen: int = 0

    def arm(self, op: str, nth: int = 1, after: bool = False, key_has: str = "") -> None:
        self.crash, self.seen = (op, nth, after, key_has), 0

    def call(self, op: str, **kwargs: Any) -> Any:
        crash = self.crash
        if crash is None or op != crash[0] or crash[3] not in str(kwargs.get("Key", "")):
            return super().call(op, **kwargs)
        self.seen += 1
        if self.seen != crash[1]:
            return super().call(op, **kwargs)
        self.crash = None
        if crash[2]:
            super().call(op, **kwargs)
        raise Killed(f"{op} #{crash[1]}{' (made)' if crash[2] else ''}")


def _fresh(seaweed_server: SeaweedServer, bucket: str, tmp_path: Path) -> S3ChunkStore:
    """Another process (or replica) over the same bucket."""
    s = seaweed_server
    return S3ChunkStore(S3Bucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), bucket,
                                 prefix="t/"), tmp_dir=tmp_path / "fresh")


async def _adopted_and_clean(store: S3ChunkStore, uid: str, data: bytes) -> None:
    """Byte-exact through materialize, adopted, and nothing left of the upload."""
    assert await _materialized(store, uid) == data
    blobs = S3BlobStore(store.s3)
    sha = hashlib.sha256(data).hexdigest()
    await blobs.adopt(store, uid, sha)
    assert b"".join([p async for p in blobs.read(sha)]) == data
    assert _in_progress(store.s3) == []
    assert [k for k, _ in store.s3.list_keys("t/") if k != blobs.key(sha)] == []


# (op, nth, after, key_has): each window between two S3 calls of a snapshot
SNAPSHOT_WINDOWS = {
    "new upload created, record not switched": ("create_multipart_upload", 1, True, ""),
    "record switched, part list not saved": ("put_object", 1, True, "/meta/"),
    "part list saved, previous upload not completed": ("put_object", 1, True, "snapshot.g"),
    "previous upload completed, no view noted": ("complete_multipart_upload", 1, True, ""),
    "one view of two noted": ("put_object", 2, False, ".v1."),
    "views noted, stale part markers kept": ("delete_objects", 1, False, ""),
    "stale markers dropped, record not cleared": ("put_object", 2, False, "/meta/"),
}


@pytest.mark.parametrize("window", list(SNAPSHOT_WINDOWS))
async def test_a_snapshot_killed_anywhere_is_finished_by_the_next_reader(
        window: str, seaweed_server: SeaweedServer, s3_bucket: str, tmp_path: Path) -> None:
    s = seaweed_server
    crashing = CrashingBucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), s3_bucket,
                              prefix="t/")
    store = S3ChunkStore(crashing, tmp_dir=tmp_path)
    data = os.urandom(34 * MIB)
    uid = str(uuid.uuid4())
    await store.create(uid, len(data))
    await _write(store, uid, 0, data[:16 * MIB], read_back=False)  # two parts of generation 1
    await _write(store, uid, 24 * MIB, data[24 * MIB:])  # staged; a hole at 16 MiB
    crashing.arm(*SNAPSHOT_WINDOWS[window][:3], key_has=SNAPSHOT_WINDOWS[window][3])
    with pytest.raises(Killed):
        await store.read_into(uid, 0, bytearray(10))
    other = _fresh(s, s3_bucket, tmp_path)
    buf = bytearray(16 * MIB)
    assert await other.read_into(uid, 0, buf) == 16 * MIB and buf == data[:16 * MIB]
    await _write(other, uid, 16 * MIB, data[16 * MIB:24 * MIB], read_back=False)
    buf = bytearray(len(data))
    assert await other.read_into(uid, 0, buf) == len(data) and buf == data  # a second snapshot
    await _adopted_and_clean(other, uid, data)


# each window between two S3 calls of a completion (after a snapshot: views are copied back)
COMPLETE_WINDOWS = {
    "no snapshot before; marked done, nothing removed": ("put_object", 1, True, "/meta/"),
    "some parts copied": ("upload_part_copy", 2, True, ""),
    "a part composed": ("upload_part", 1, True, ""),
    "completed, record not marked done": ("complete_multipart_upload", 1, True, ""),
    "marked done, pieces and older objects kept": ("delete_objects", 1, False, ""),
}


@pytest.mark.parametrize("window", list(COMPLETE_WINDOWS))
@pytest.mark.parametrize("then", ["materialize", "read"])
async def test_a_completion_killed_anywhere_is_finished_or_redone(
        window: str, then: str, seaweed_server: SeaweedServer, s3_bucket: str, tmp_path: Path) -> None:
    s = seaweed_server
    crashing = CrashingBucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), s3_bucket,
                              prefix="t/")
    store = S3ChunkStore(crashing, tmp_dir=tmp_path)
    data = os.urandom(30 * MIB + 5)
    uid = str(uuid.uuid4())
    await store.create(uid, len(data))
    await _write(store, uid, 0, data[:8 * MIB], read_back=False)
    if not window.startswith("no snapshot"):
        assert await store.read_into(uid, 0, bytearray(10)) == 10  # a snapshot: generation 2
    await _write(store, uid, 8 * MIB, data[8 * MIB:16 * MIB], read_back=False)  # a part
    await _write(store, uid, 16 * MIB, data[16 * MIB:24 * MIB])  # staged, copied
    for offset in range(24 * MIB, len(data), 2 * MIB):  # staged, composed
        await _write(store, uid, offset, data[offset:offset + 2 * MIB])
    crashing.arm(*COMPLETE_WINDOWS[window][:3], key_has=COMPLETE_WINDOWS[window][3])
    with pytest.raises(Killed):
        await store.complete(uid)
    other = _fresh(s, s3_bucket, tmp_path)
    if then == "read":  # a rebuild's read-back before the retried /complete
        buf = bytearray(len(data))
        assert await other.read_into(uid, 0, buf) == len(data) and buf == data
    await _adopted_and_clean(other, uid, data)


class HookedBucket(S3Bucket):
    """The real bucket, running ``hook`` once, just before the first call of ``op`` whose
    key contains ``key_has`` (what other replicas do meanwhile)."""

    hook: tuple[str, str, Callable[[], None]] | None = None

    def call(self, op: str, **kwargs: Any) -> Any:
        hook = self.hook
        if hook is not None and op == hook[0] and hook[1] in str(kwargs.get("Key", "")):
            self.hook = None
            hook[2]()
        return super().call(op, **kwargs)


async def test_two_replicas_finishing_one_snapshot_note_the_views_of_the_same_parts(
        seaweed_server: SeaweedServer, s3_bucket: str, tmp_path: Path) -> None:
    """A lists the parts, then a rewrite leaves a part out of B's list, and B completes the
    object with its list: A must note the views of B's list, not of its own."""
    s = seaweed_server
    crashing = CrashingBucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), s3_bucket,
                              prefix="t/")
    store = S3ChunkStore(crashing, tmp_dir=tmp_path)
    data = bytearray(os.urandom(30 * MIB))
    uid = str(uuid.uuid4())
    await store.create(uid, len(data))
    await _write(store, uid, 0, bytes(data[:24 * MIB]), read_back=False)  # three parts
    await _write(store, uid, 24 * MIB, bytes(data[24 * MIB:]))
    crashing.arm("put_object", 1, True, "/meta/")  # the record switched, then killed
    with pytest.raises(Killed):
        await store.read_into(uid, 0, bytearray(10))
    data[8 * MIB:16 * MIB] = os.urandom(8 * MIB)
    b = _fresh(s, s3_bucket, tmp_path)

    def meanwhile() -> None:  # a rewrite of the second part, then B finishes the snapshot
        writer = b._open(uid, 8 * MIB, 8 * MIB, True)
        writer.write(data[8 * MIB:16 * MIB])
        writer.close()
        buf = bytearray(len(data))
        assert b._read_into(uid, 0, buf) == len(data) and buf == data

    a_bucket = HookedBucket(make_client(s.endpoint_url, s.access_key, s.secret_key, s.region), s3_bucket,
                            prefix="t/")
    a_bucket.hook = ("put_object", "snapshot.g", meanwhile)
    a = S3ChunkStore(a_bucket, tmp_dir=tmp_path / "a")
    buf = bytearray(len(data))
    assert await a.read_into(uid, 0, buf) == len(data) and buf == data
    size = int(a.s3.call("head_object", Key=a.upload_key(uid, 1))["ContentLength"])
    views = [p for p in a.pieces(uid) if p.view]
    assert size == 16 * MIB and views and all(p.offset is not None and p.offset + p.end - p.start <= size
                                              for p in views)  # none past the object's end
    await _adopted_and_clean(a, uid, bytes(data))
