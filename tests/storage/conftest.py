"""Fixtures: one store of each seam per implementation in :mod:`tests.storage.stores`."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.storage.base import BlobStore, ChunkStore, StateStore
from tests.storage.stores import BLOB_STORES, CHUNK_STORES, STATE_STORES


@pytest.fixture(params=sorted(CHUNK_STORES))
def chunks(request: pytest.FixtureRequest, tmp_path: Path) -> ChunkStore:
    return CHUNK_STORES[request.param](tmp_path, request)


@pytest.fixture(params=sorted(STATE_STORES))
def states(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return STATE_STORES[request.param](tmp_path, request)


@pytest.fixture(params=sorted(BLOB_STORES))
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return BLOB_STORES[request.param](tmp_path, request)
