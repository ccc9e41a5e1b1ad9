"""The S3 stores of the contract suites (``stores.py``), on a fresh SeaweedFS bucket per test.

A test's chunk and blob stores share one bucket (and so one :class:`S3Bucket`, whose
counters the S3-specific tests read), so that adopt copies inside S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.storage.s3.blobs import S3BlobStore
from backend.storage.s3.bucket import S3Bucket, make_client
from backend.storage.s3.chunks import S3ChunkStore


def s3_bucket_of(request: pytest.FixtureRequest) -> S3Bucket:
    """The test's :class:`S3Bucket` (one per test, on the ``s3_bucket`` fixture's bucket)."""
    node = request.node
    found: S3Bucket | None = getattr(node, "_s3_store_bucket", None)
    if found is None:
        server = request.getfixturevalue("seaweed_server")
        name = request.getfixturevalue("s3_bucket")
        client = make_client(server.endpoint_url, server.access_key, server.secret_key, server.region)
        found = S3Bucket(client, name, prefix="up/")
        node._s3_store_bucket = found
    return found


def s3_chunk_store(root: Path, request: pytest.FixtureRequest) -> S3ChunkStore:
    return S3ChunkStore(s3_bucket_of(request), tmp_dir=root / "s3tmp")


def s3_blob_store(root: Path, request: pytest.FixtureRequest) -> S3BlobStore:
    return S3BlobStore(s3_bucket_of(request), tmp_dir=root / "s3tmp")
