"""One bucket and key prefix, the boto3 client that reaches it, and what was sent to it.

Every S3 call of the stores goes through :meth:`S3Bucket.call` (blocking: worker threads
only). It turns the store's answers into this project's errors: a missing key or upload
is ``FileNotFoundError``; a store that cannot be reached (refused or timed-out
connections, 5xx answers after botocore's retries) is
:class:`~backend.errors.StorageUnavailable`, which the API answers 503 with Retry-After.

Counters (what the bench's "bytes written to S3 per uploaded byte" reads):
``bytes_written`` is every byte this process sent to S3 in a request body (staged pieces,
parts, composed parts, documents adopted from another store); ``bytes_copied`` is every
byte S3 copied inside itself at our request (UploadPartCopy, CopyObject).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import StorageUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER = 5
DOWNLOAD_PIECE = 4 << 20
_MISSING = frozenset({"NoSuchKey", "NoSuchUpload", "404", "NotFound"})
_UNAVAILABLE = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"})


def make_client(endpoint_url: str | None, access_key: str | None, secret_key: str | None, region: str,
                *, connect_timeout: float = 3, read_timeout: float = 60, attempts: int = 3) -> Any:
    """A boto3 S3 client: path-style addressing (MinIO, SeaweedFS, any endpoint), checksums
    only where S3 requires them (no CRC pass over every part), ``attempts`` tries."""
    import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": attempts, "mode": "standard"},
                    connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=32,
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.client("s3", endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
                        aws_secret_access_key=secret_key or None, region_name=region, config=config)


@dataclass
class S3Bucket:
    client: Any
    bucket: str
    prefix: str = ""
    bytes_written: int = 0
    bytes_copied: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def count(self, written: int = 0, copied: int = 0) -> None:
        with self._lock:
            self.bytes_written += written
            self.bytes_copied += copied

    def call(self, op: str, **kwargs: Any) -> Any:
        """``client.<op>(Bucket=..., **kwargs)`` with this project's errors (see the module doc)."""
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _MISSING or status == 404:
                raise FileNotFoundError(f"s3://{self.bucket}/{kwargs.get('Key', '')}: {code}") from exc
            if code in _UNAVAILABLE or status >= 500:
                log.warning("S3 %s failed: %s", op, exc)
                raise StorageUnavailable("the object store is unavailable; retry later",
                                         retry_after=RETRY_AFTER) from exc
            raise
        except (BotoConnectionError, HTTPClientError) as exc:  # refused, reset, timed out: after botocore's own retries
            log.warning("S3 %s failed: %s", op, exc)
            raise StorageUnavailable("the object store cannot be reached; retry later",
                                     retry_after=RETRY_AFTER) from exc

    def list_keys(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        out: list[tuple[str, int]] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            page = self.call("list_objects_v2", **kw)
            out += [(o["Key"], int(o["Size"])) for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out

    def delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = keys[i:i + 1000]
            if batch:
                self.call("delete_objects", Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (one ranged GET)."""
        if end <= start:
            return b""
        body = self.call("get_object", Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def download(self, key: str, dest: Path) -> None:
        """The whole object into the file ``dest`` (streamed, a few MiB at a time)."""
        body = self.call("get_object", Key=key)["Body"]
        try:
            with open(dest, "wb") as out:
                while piece := body.read(DOWNLOAD_PIECE):
                    out.write(piece)
        finally:
            body.close()

    def put(self, key: str, data: bytes | bytearray | memoryview, **kwargs: Any) -> Any:
        result = self.call("put_object", Key=key, Body=bytes(data), **kwargs)
        self.count(written=len(data))
        return result

    @asynccontextmanager
    async def downloaded(self, pool: Executor | None, key: str, tmp_dir: Path | None) -> AsyncIterator[Path]:
        """The object ``key`` in a temporary file (under ``tmp_dir``), removed afterwards."""
        loop = asyncio.get_running_loop()

        def make() -> Path:
            if tmp_dir is not None:
                tmp_dir.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix="s3-", dir=tmp_dir))

        folder = await loop.run_in_executor(pool, make)
        path = folder / "object"
        try:
            await loop.run_in_executor(pool, self.download, key, path)
            yield path
        finally:
            await loop.run_in_executor(pool, shutil.rmtree, folder, True)
