"""The StateStore contract (``backend/storage/base.py``), against every store in ``stores.py``."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from backend.storage.base import StateStore
from backend.storage.file_state import FileStateStore


async def test_round_trip_and_replace(states: StateStore) -> None:
    sid = str(uuid.uuid4())
    await states.save(sid, {"session_id": sid, "n": 1, "chunks": {"0": "a"}})
    await states.save(sid, {"session_id": sid, "n": 2, "chunks": {}})
    assert await states.load(sid) == {"session_id": sid, "n": 2, "chunks": {}}
    assert [r["n"] for r in await states.load_all()] == [2]
    await states.delete(sid)
    await states.delete(sid)
    assert await states.load(sid) is None and await states.load_all() == []
    assert await states.load("../../etc/passwd") is None


async def test_update_changes_fields_and_single_chunks(states: StateStore) -> None:
    sid = str(uuid.uuid4())
    await states.save(sid, {"session_id": sid, "status": "uploading", "n": 1, "chunks": {"0": "a", "1": "b"}})
    await states.update(sid, {"status": "processing"}, {2: "c", 0: None})
    assert await states.load(sid) == {"session_id": sid, "status": "processing", "n": 1,
                                      "chunks": {"1": "b", "2": "c"}}


async def test_update_creates_a_missing_record(states: StateStore) -> None:
    sid = str(uuid.uuid4())
    await states.update(sid, {"session_id": sid, "n": 1}, {3: "d"})
    assert await states.load(sid) == {"session_id": sid, "n": 1, "chunks": {"3": "d"}}


async def test_concurrent_chunk_updates_lose_none(states: StateStore) -> None:
    """Writers recording different chunks of one session at once (the per-chunk atomicity
    several servers on one Redis rely on)."""
    sid = str(uuid.uuid4())
    await states.save(sid, {"session_id": sid, "chunks": {}})
    await asyncio.gather(*(states.update(sid, {"session_id": sid}, {i: f"sha{i}"}) for i in range(40)))
    record = await states.load(sid)
    assert record is not None and record["chunks"] == {str(i): f"sha{i}" for i in range(40)}


async def test_a_torn_record_is_never_loaded(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    good, torn = str(uuid.uuid4()), str(uuid.uuid4())
    await store.save(good, {"session_id": good})
    (tmp_path / f"{torn}.json").write_text('{"session_id": "' + torn[:5])
    (tmp_path / f".{good}.123.tmp").write_text("half")
    assert [r["session_id"] for r in await FileStateStore(tmp_path).load_all()] == [good]
    assert (tmp_path / f"{torn}.corrupt").exists() and not (tmp_path / f".{good}.123.tmp").exists()
