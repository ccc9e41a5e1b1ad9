"""One contract per storage seam, run against every implementation (today: the embedded ones)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.errors import InsufficientStorage
from backend.storage.base import BlobStore, ChunkStore, StateStore
from backend.storage.file_state import FileStateStore
from backend.storage.local_blobs import LocalBlobStore
from backend.storage.local_chunks import LocalChunkStore, LocalChunkWriter
from backend.storage.sqlite_docs import DocumentRecord, SqliteDocumentRepository

CHUNK_STORES: dict[str, Callable[[Path], ChunkStore]] = {"local": LocalChunkStore}
STATE_STORES: dict[str, Callable[[Path], StateStore]] = {"file": FileStateStore}
BLOB_STORES: dict[str, Callable[[Path], BlobStore]] = {"local": LocalBlobStore}


@pytest.fixture(params=list(CHUNK_STORES))
def chunks(request: pytest.FixtureRequest, tmp_path: Path) -> ChunkStore:
    return CHUNK_STORES[request.param](tmp_path / "chunks")


@pytest.fixture(params=list(STATE_STORES))
def states(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return STATE_STORES[request.param](tmp_path / "states")


@pytest.fixture(params=list(BLOB_STORES))
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return BLOB_STORES[request.param](tmp_path / "blobs")


def test_chunks_written_out_of_order_read_back(chunks: ChunkStore) -> None:
    uid = str(uuid.uuid4())
    data = os.urandom(10_000)
    chunks.create(uid, len(data))
    chunks.create(uid, len(data))  # idempotent
    for offset in (6000, 0, 3000):
        length = min(3000, len(data) - offset) if offset < 6000 else len(data) - offset
        writer = chunks.open_chunk(uid, offset, length)
        writer.write(data[offset:offset + length // 2])
        writer.write(data[offset + length // 2:offset + length])
        writer.close()
    whole, middle, tail = bytearray(len(data)), bytearray(3000), bytearray(2000)
    assert chunks.read_into(uid, 0, whole) == len(data) and whole == data
    assert chunks.read_into(uid, 3000, middle) == 3000 and middle == data[3000:6000]
    assert chunks.read_into(uid, 9000, tail) == 1000 and tail[:1000] == data[9000:]  # short at the end
    assert chunks.exists(uid) and uid in chunks.list_uploads()
    count, _ = chunks.stats()
    assert count == 1
    chunks.delete(uid)
    chunks.delete(uid)
    assert not chunks.exists(uid) and chunks.read_into(uid, 0, bytearray(10)) == 0


def test_chunk_writer_refuses_to_overrun(chunks: ChunkStore) -> None:
    uid = str(uuid.uuid4())
    chunks.create(uid, 100)
    writer = chunks.open_chunk(uid, 0, 10)
    with pytest.raises(ValueError):
        writer.write(b"x" * 11)
    writer.close()


def test_disk_full_is_insufficient_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = LocalChunkStore(tmp_path)
    store.create("u", 10)
    writer = store.open_chunk("u", 0, 10)
    assert isinstance(writer, LocalChunkWriter)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(InsufficientStorage):
        writer.write(b"0123456789")
    writer.close()


def test_state_round_trip_and_atomic_replace(states: StateStore) -> None:
    sid = str(uuid.uuid4())
    states.save(sid, {"session_id": sid, "n": 1})
    states.save(sid, {"session_id": sid, "n": 2})
    assert states.load(sid) == {"session_id": sid, "n": 2}
    assert [r["n"] for r in states.load_all()] == [2]
    states.delete(sid)
    assert states.load(sid) is None and states.load_all() == []
    assert states.load("../../etc/passwd") is None


def test_state_store_never_loads_a_torn_record(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    good, torn = str(uuid.uuid4()), str(uuid.uuid4())
    store.save(good, {"session_id": good})
    (tmp_path / f"{torn}.json").write_text('{"session_id": "' + torn[:5])
    (tmp_path / f".{good}.123.tmp").write_text("half")
    assert [r["session_id"] for r in FileStateStore(tmp_path).load_all()] == [good]
    assert (tmp_path / f"{torn}.corrupt").exists() and not (tmp_path / f".{good}.123.tmp").exists()


def test_blobs_adopt_once(blobs: BlobStore, tmp_path: Path) -> None:
    data = b"%PDF-1.7 blob"
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "a.part"
    src.write_bytes(data)
    assert blobs.adopt(src, sha) is True and not src.exists()
    src.write_bytes(data)
    assert blobs.adopt(src, sha) is False and not src.exists()
    assert blobs.has(sha) and blobs.path(sha).read_bytes() == data
    blobs.delete(sha)
    assert not blobs.has(sha)
    with pytest.raises(ValueError):
        blobs.path("../x")


def test_document_repository(tmp_path: Path) -> None:
    repo = SqliteDocumentRepository(tmp_path / "db.sqlite3")
    rec = DocumentRecord(id=0, owner="alice", title="t", filename="t.pdf", file_size=5, sha256="a" * 64,
                         created_at="2026-01-01T00:00:00Z", session_id="s1", security={"verdict": "clean"})
    first = repo.insert(rec)
    again = repo.insert(DocumentRecord(**{**rec.__dict__, "id": 0}))
    assert first.id == again.id  # one document per session, however often completion runs
    assert repo.get("alice", first.id) == first
    assert repo.get("bob", first.id) is None
    assert repo.find_by_sha("alice", "a" * 64) == first and repo.find_by_sha("bob", "a" * 64) is None
    assert repo.count("alice") == 1 and [d.id for d in repo.list("alice")] == [first.id]
    assert repo.delete("bob", first.id) is None
    assert repo.delete("alice", first.id) == first and not repo.sha_in_use("a" * 64)
    repo.close()
