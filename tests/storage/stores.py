"""Every implementation of the byte and state seams, by name: each contract suite runs
against all of them. Adding a backend is one line here (a factory over the test's
directory and request, so that it may ask for a server fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backend.storage.base import BlobStore, ChunkStore, StateStore
from backend.storage.file_state import FileStateStore
from backend.storage.local_blobs import LocalBlobStore
from backend.storage.local_chunks import LocalChunkStore
from backend.storage.redis.state import RedisStateStore
from tests.storage.s3 import s3_blob_store, s3_chunk_store


CHUNK_STORES: dict[str, Callable[[Path, pytest.FixtureRequest], ChunkStore]] = {
    "local": lambda root, _: LocalChunkStore(root / "chunks"),
    "s3": s3_chunk_store,
}
STATE_STORES: dict[str, Callable[[Path, pytest.FixtureRequest], StateStore]] = {
    "file": lambda root, _: FileStateStore(root / "states"),
    "redis": lambda _, request: RedisStateStore(request.getfixturevalue("redis_client"), prefix="test"),
}
BLOB_STORES: dict[str, Callable[[Path, pytest.FixtureRequest], BlobStore]] = {
    "local": lambda root, _: LocalBlobStore(root / "blobs"),
    "s3": s3_blob_store,
}
