"""Bytes in an S3-compatible object store: :class:`~backend.storage.s3.chunks.S3ChunkStore`
(an upload is one multipart upload) and :class:`~backend.storage.s3.blobs.S3BlobStore`
(finished documents, content-addressed). Both share one :class:`~backend.storage.s3.bucket.S3Bucket`
(the boto3 client, the key prefix and the byte counters).

Only imported when ``STREAMING_STORAGE_BACKEND=s3``: boto3 stays out of a local server."""
