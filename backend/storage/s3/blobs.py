"""Finished documents in S3, content-addressed: ``<prefix>documents/ab/cd/<sha256>.pdf``.

The contract is :class:`~backend.storage.base.BlobStore`'s. An upload of an
:class:`~backend.storage.s3.chunks.S3ChunkStore` on the same bucket is adopted inside S3:
its multipart upload is completed (already, if it was materialized) and the object is
copied to its content address (CopyObject; a multipart copy above 5 GiB), then the upload
is removed. S3 has no rename, so this copy is the one server-side copy of a finished
document; no byte passes through the server. An upload of any other chunk store is
materialized and sent. Downloads are ranged GETs, streamed in pieces.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from backend.storage.base import ChunkStore
from backend.storage.s3.bucket import S3Bucket
from backend.storage.s3.chunks import S3ChunkStore

_SHA = re.compile(r"^[0-9a-f]{64}$")
READ_PIECE = 512 << 10
GET_SPAN = 8 << 20  # one ranged GET per this many bytes of a download
COPY_LIMIT = 5 << 30  # CopyObject's largest source; above it, a multipart copy
COPY_PART = 1 << 30
T = TypeVar("T")


class S3BlobStore:
    def __init__(self, bucket: S3Bucket, pool: Executor | None = None, tmp_dir: Path | None = None) -> None:
        self.s3 = bucket
        self.pool = pool
        self.tmp_dir = tmp_dir

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def key(self, sha256: str) -> str:
        """The content's key. ValueError if not a SHA-256."""
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.s3.key("documents", sha256[:2], sha256[2:4], f"{sha256}.pdf")

    def _size(self, sha256: str) -> int | None:
        try:
            return int(self.s3.call("head_object", Key=self.key(sha256))["ContentLength"])
        except FileNotFoundError:
            return None

    async def has(self, sha256: str) -> bool:
        return await self._run(self._size, sha256) is not None

    async def size(self, sha256: str) -> int | None:
        return await self._run(self._size, sha256)

    async def adopt(self, chunks: ChunkStore, upload_id: str, sha256: str) -> bool:
        dest = self.key(sha256)
        if await self.has(sha256):
            await chunks.delete(upload_id)
            return False
        if isinstance(chunks, S3ChunkStore) and chunks.s3.bucket == self.s3.bucket:
            key = await chunks.complete(upload_id)
            await self._run(self._copy, key, dest)
        else:
            async with chunks.materialize(upload_id) as source:
                await self._run(self._send, source, dest)
        await chunks.delete(upload_id)
        return True

    def _copy(self, source: str, dest: str) -> None:
        size = int(self.s3.call("head_object", Key=source)["ContentLength"])
        src = {"Bucket": self.s3.bucket, "Key": source}
        if size <= COPY_LIMIT:
            self.s3.call("copy_object", Key=dest, CopySource=src, ContentType="application/pdf")
        else:
            upload = self.s3.call("create_multipart_upload", Key=dest, ContentType="application/pdf")["UploadId"]
            parts = []
            for number, start in enumerate(range(0, size, COPY_PART), 1):
                end = min(size, start + COPY_PART) - 1
                result = self.s3.call("upload_part_copy", Key=dest, UploadId=upload, PartNumber=number,
                                      CopySource=src, CopySourceRange=f"bytes={start}-{end}")
                parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            self.s3.call("complete_multipart_upload", Key=dest, UploadId=upload, MultipartUpload={"Parts": parts})
        self.s3.count(copied=size)

    def _send(self, source: Path, dest: str) -> None:
        """A local file into S3 (boto3's managed transfer: multipart above its threshold)."""
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from boto3.exceptions import S3UploadFailedError

        from backend.errors import StorageUnavailable
        from backend.storage.s3.bucket import RETRY_AFTER

        try:
            self.s3.client.upload_file(str(source), self.s3.bucket, dest, ExtraArgs={"ContentType": "application/pdf"})
        except (ClientError, BotoConnectionError, HTTPClientError, S3UploadFailedError) as exc:
            raise StorageUnavailable("the object store cannot store the document; retry later",
                                     retry_after=RETRY_AFTER) from exc
        self.s3.count(written=source.stat().st_size)

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        key = self.key(sha256)
        size = await self._run(self._size, sha256)
        if size is None:
            raise FileNotFoundError(f"content {sha256} is not stored")
        end = size if end is None else min(end, size)
        pos = start
        while pos < end:
            span = min(GET_SPAN, end - pos)
            body = (await self._run(self._get, key, pos, pos + span))["Body"]
            got = 0
            try:
                while got < span:
                    piece: bytes = await self._run(body.read, min(READ_PIECE, span - got))
                    if not piece:
                        break
                    got += len(piece)
                    yield piece
            finally:
                body.close()
            pos += got
            if got < span:
                return  # the object is shorter than it was

    def _get(self, key: str, start: int, end: int) -> Any:
        return self.s3.call("get_object", Key=key, Range=f"bytes={start}-{end - 1}")

    @asynccontextmanager
    async def materialize(self, sha256: str) -> AsyncIterator[Path]:
        """A temporary copy of the content (downloaded), removed when the context ends."""
        key = self.key(sha256)
        if await self._run(self._size, sha256) is None:
            raise FileNotFoundError(f"content {sha256} is not stored")
        async with self.s3.downloaded(self.pool, key, self.tmp_dir) as path:
            yield path

    async def delete(self, sha256: str) -> None:
        await self._run(lambda: self.s3.call("delete_object", Key=self.key(sha256)))
