"""The chunk and blob stores that settings choose (``STREAMING_STORAGE_BACKEND``): local
disk, or an S3-compatible object store (imported only then: boto3 stays out of a local
server). The server builds both (:func:`open_chunk_store`, :func:`open_blob_store`); the
importer process only the blob store, the same way, so it reads documents wherever the
server put them."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import TYPE_CHECKING

from backend.settings import Settings
from backend.storage.base import BlobStore, ChunkStore
from backend.storage.local_blobs import LocalBlobStore
from backend.storage.local_chunks import LocalChunkStore

if TYPE_CHECKING:
    from backend.storage.s3.bucket import S3Bucket


def open_bucket(settings: Settings) -> S3Bucket:
    """The bucket of ``STREAMING_S3_*``."""
    from backend.storage.s3.bucket import S3Bucket, make_client

    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    client = make_client(settings.s3_endpoint_url or None, settings.s3_access_key_id or None, secret,
                         settings.s3_region)
    return S3Bucket(client, settings.s3_bucket, settings.s3_prefix)


def open_chunk_store(settings: Settings, pool: Executor | None = None) -> ChunkStore:
    if settings.storage_backend == "s3":
        from backend.storage.s3.chunks import S3ChunkStore

        return S3ChunkStore(open_bucket(settings), pool, tmp_dir=settings.partial_dir)
    return LocalChunkStore(settings.partial_dir, pool)


def open_blob_store(settings: Settings, pool: Executor | None = None, chunks: ChunkStore | None = None) -> BlobStore:
    """The documents' store; with S3, on the bucket (and counters) of ``chunks`` if given."""
    if settings.storage_backend == "s3":
        from backend.storage.s3.blobs import S3BlobStore
        from backend.storage.s3.chunks import S3ChunkStore

        bucket = chunks.s3 if isinstance(chunks, S3ChunkStore) else open_bucket(settings)
        return S3BlobStore(bucket, pool, tmp_dir=settings.data_dir / "tmp")
    return LocalBlobStore(settings.data_dir / "documents", pool)
