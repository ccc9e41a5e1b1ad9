"""Unfinished uploads in S3: each upload is one multipart upload.

The contract is :class:`~backend.storage.base.ChunkStore`'s. Keys under the prefix:

- ``uploads/<id>``: the multipart upload's key (the object appears once it is completed);
- ``meta/<id>.json``: its S3 upload id, size and part grid (the upload exists while this does);
- ``pieces/<id>/...``: what has been written, as staged pieces and part markers
  (:mod:`backend.storage.s3.layout`).

How a range is written (:meth:`S3ChunkStore.open`): S3 parts are at least 5 MiB (all but
the last) and cannot be read before the upload is completed, so

- a range the caller will not read back (``read_back=False``: a whole chunk on the chunk
  grid whose bytes the digest hashes in hand) of at least a part's size goes straight
  into parts: each byte is sent to S3 once;
- anything else (smaller chunks, tus PATCH bodies, chunks that arrived ahead of a gap and
  are read back by the digest's catch-up, the tail a later PATCH re-reads) is staged as
  objects of up to 8 MiB, readable at once.

:meth:`materialize` completes the multipart upload: the written parts as they are, each
staged run folded into parts of at least 5 MiB (a staged piece of that size is copied
inside S3 with UploadPartCopy; smaller ones are read and sent again, grouped). Completing
is the only way to read parts back, and pikepdf needs the whole file anyway; the object
at ``uploads/<id>`` is then downloaded to a temporary file, and
:meth:`~backend.storage.s3.blobs.S3BlobStore.adopt` copies it inside S3 to its content
address. What the services recorded (offsets, chunk digests) lives in the state store;
nothing here is derived from ListParts.

A writer keeps what it was given when it is cut off: a direct range's bytes not yet in a
part are staged at :meth:`S3ChunkWriter.close`. Blocking calls run in the executor given;
writers are the worker thread's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from backend.storage.s3.bucket import S3Bucket
from backend.storage.s3.layout import (MIB, Piece, PlannedPart, Segment, part_grid, part_number, piece_name, plan,
                                       readable_end, resolve)

log = logging.getLogger(__name__)
T = TypeVar("T")
TARGET = 8 * MIB  # staged pieces and direct parts are cut at this size


@dataclass
class Meta:
    upload_id: str
    size: int
    grid: int
    done: bool = False

    def dump(self) -> bytes:
        return json.dumps(self.__dict__).encode()


class S3ChunkWriter:
    """Buffers a range's bytes and sends them as parts (``direct``) or staged pieces."""

    def __init__(self, store: S3ChunkStore, upload_id: str, meta: Meta, offset: int, length: int,
                 direct: bool) -> None:
        self.store, self.upload_id, self.meta = store, upload_id, meta
        self.direct = direct
        self._pos = offset  # where the buffer's first byte goes
        self._end = offset + length
        self._buf = bytearray()
        self._closed = False

    @property
    def _written(self) -> int:
        return self._pos + len(self._buf)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.write_pieces([memoryview(data)])

    def write_pieces(self, pieces: Sequence[memoryview]) -> None:
        total = sum(len(p) for p in pieces)
        if self._written + total > self._end:
            raise ValueError("write past the end of the range")
        for piece in pieces:
            self._buf += piece
        self._send(final=False)

    def _send(self, *, final: bool) -> None:
        grid = self.meta.grid
        while len(self._buf) >= TARGET:
            after = self._end - (self._pos + TARGET)
            if self.direct and 0 < after < grid:
                break  # the range's last part takes the rest, so that none is short
            self._flush(TARGET)
        if final and self._buf:
            whole = self._written == self._end
            self._flush(len(self._buf), as_part=whole)

    def _flush(self, n: int, *, as_part: bool | None = None) -> None:
        data = bytes(self._buf[:n])
        if (self.direct if as_part is None else self.direct and as_part):
            self.store.send_part(self.upload_id, self.meta, self._pos, data)
        else:
            self.store.send_staged(self.upload_id, self._pos, data)
        del self._buf[:n]
        self._pos += n

    def close(self) -> None:
        """Send what is buffered: the rest of a whole direct range as its last part, else
        (a cut-off range, or a staged one) as a staged piece, so that it is kept."""
        if self._closed:
            return
        self._closed = True
        self._send(final=True)


class S3ChunkStore:
    def __init__(self, bucket: S3Bucket, pool: Executor | None = None, tmp_dir: Path | None = None) -> None:
        self.s3 = bucket
        self.pool = pool
        self.tmp_dir = tmp_dir

    @property
    def bytes_written(self) -> int:
        return self.s3.bytes_written

    @property
    def bytes_copied(self) -> int:
        return self.s3.bytes_copied

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # -- keys and bookkeeping (blocking) ----------------------------------------------------

    @staticmethod
    def _check(upload_id: str) -> str:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return upload_id

    def upload_key(self, upload_id: str) -> str:
        return self.s3.key("uploads", self._check(upload_id))

    def _meta_key(self, upload_id: str) -> str:
        return self.s3.key("meta", self._check(upload_id) + ".json")

    def _pieces_prefix(self, upload_id: str) -> str:
        return self.s3.key("pieces", self._check(upload_id)) + "/"

    def meta(self, upload_id: str) -> Meta | None:
        try:
            body = self.s3.call("get_object", Key=self._meta_key(upload_id))["Body"]
        except FileNotFoundError:
            return None
        try:
            return Meta(**json.loads(body.read()))
        finally:
            body.close()

    def _save_meta(self, upload_id: str, meta: Meta) -> None:
        self.s3.call("put_object", Key=self._meta_key(upload_id), Body=meta.dump(), ContentType="application/json")

    def pieces(self, upload_id: str) -> list[Piece]:
        prefix = self._pieces_prefix(upload_id)
        out = []
        for key, _ in self.s3.list_keys(prefix):
            piece = Piece.parse(key[len(prefix):])
            if piece is not None:
                out.append(piece)
        return out

    def send_part(self, upload_id: str, meta: Meta, start: int, data: bytes) -> None:
        number = part_number(start, meta.grid)
        etag = self.s3.call("upload_part", Key=self.upload_key(upload_id), UploadId=meta.upload_id,
                            PartNumber=number, Body=data)["ETag"]
        self.s3.count(written=len(data))
        name = piece_name(start, start + len(data), number, etag)
        self.s3.call("put_object", Key=self._pieces_prefix(upload_id) + name, Body=b"")

    def send_staged(self, upload_id: str, start: int, data: bytes) -> None:
        self.s3.put(self._pieces_prefix(upload_id) + piece_name(start, start + len(data)), data)

    # -- the contract -------------------------------------------------------------------

    def _create(self, upload_id: str, size: int) -> None:
        meta = self.meta(upload_id)
        if meta is not None:
            if meta.size != size and not meta.done:
                meta.size = size
                self._save_meta(upload_id, meta)
            return
        created = self.s3.call("create_multipart_upload", Key=self.upload_key(upload_id))
        self._save_meta(upload_id, Meta(created["UploadId"], size, part_grid(size)))

    async def create(self, upload_id: str, size: int) -> None:
        await self._run(self._create, upload_id, size)

    async def exists(self, upload_id: str) -> bool:
        return await self._run(self.meta, upload_id) is not None

    def _open(self, upload_id: str, offset: int, length: int, read_back: bool) -> S3ChunkWriter:
        meta = self.meta(upload_id)
        if meta is None or meta.done:
            raise FileNotFoundError(f"upload {upload_id} is not in the store")
        direct = not read_back and length >= meta.grid
        return S3ChunkWriter(self, upload_id, meta, offset, length, direct)

    async def open(self, upload_id: str, offset: int, length: int, *, read_back: bool = True) -> S3ChunkWriter:
        return await self._run(self._open, upload_id, offset, length, read_back)

    def _read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        meta = self.meta(upload_id)
        if meta is None:
            return 0
        if meta.done:  # completed: the object is readable
            size = min(len(buf), max(0, meta.size - offset))
            data = self.s3.get_range(self.upload_key(upload_id), offset, offset + size) if size else b""
            buf[:len(data)] = data
            return len(data)
        got = 0
        prefix = self._pieces_prefix(upload_id)
        for seg in readable_end(resolve(self.pieces(upload_id)), offset):
            start = offset + got
            end = min(seg.end, offset + len(buf))
            data = self.s3.get_range(prefix + seg.piece.name, start - seg.piece.start, end - seg.piece.start)
            buf[got:got + len(data)] = data
            got += len(data)
            if got == len(buf) or len(data) < end - start:
                break
        return got

    async def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        """Staged bytes only: a range in a part reads as absent (0) until completion."""
        return await self._run(self._read_into, upload_id, offset, buf)

    def blocking_reader(self) -> None:
        return None  # parts cannot be read before the upload is completed

    def _resize(self, upload_id: str, size: int) -> None:
        meta = self.meta(upload_id)
        if meta is None:
            raise FileNotFoundError(f"upload {upload_id} is not in the store")
        meta.size = size
        self._save_meta(upload_id, meta)

    async def resize(self, upload_id: str, size: int) -> None:
        await self._run(self._resize, upload_id, size)

    def _copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        """Staged copies of the source's bytes, made inside S3 (CopyObject of each staged
        piece; a source with parts is completed first and its object copied)."""
        source = self.meta(source_id)
        if source is None:
            raise FileNotFoundError(f"upload {source_id} is not in the store")
        if not source.done and any(not p.staged for p in self.pieces(source_id)):
            self._complete(source_id)
            source = self.meta(source_id)
            assert source is not None
        dest = self._pieces_prefix(upload_id)
        copies: list[tuple[str, int, int, int, bool]] = []  # (source key, from, to, at, whole object)
        if source.done:
            end = min(length, source.size)
            copies.append((self.upload_key(source_id), 0, end, offset, end == source.size))
        else:
            prefix = self._pieces_prefix(source_id)
            for seg in resolve(self.pieces(source_id)):
                if seg.start >= length:
                    break
                a, b = seg.start - seg.piece.start, min(seg.end, length) - seg.piece.start
                whole = a == 0 and b == seg.piece.end - seg.piece.start
                copies.append((prefix + seg.piece.name, a, b, offset + seg.start, whole))
        for key, a, b, at, whole in copies:
            name = dest + piece_name(at, at + b - a)
            if whole:
                self.s3.call("copy_object", Key=name, CopySource={"Bucket": self.s3.bucket, "Key": key})
                self.s3.count(copied=b - a)
            else:
                self.s3.put(name, self.s3.get_range(key, a, b))

    async def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        await self._run(self._copy_from, upload_id, offset, source_id, length)

    def _complete(self, upload_id: str) -> Meta:
        """Complete the multipart upload (see the module doc); idempotent."""
        meta = self.meta(upload_id)
        if meta is None:
            raise FileNotFoundError(f"upload {upload_id} is not in the store")
        if meta.done:
            return meta
        pieces = self.pieces(upload_id)
        try:
            planned = plan(resolve(pieces), meta.size, meta.grid)
        except ValueError as exc:
            raise RuntimeError(f"upload {upload_id} cannot be completed: {exc}") from exc
        parts = [self._make_part(upload_id, meta, p) for p in planned]
        self.s3.call("complete_multipart_upload", Key=self.upload_key(upload_id), UploadId=meta.upload_id,
                     MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        meta.done = True
        self._save_meta(upload_id, meta)
        prefix = self._pieces_prefix(upload_id)
        self.s3.delete_keys([prefix + p.name for p in pieces])
        return meta

    def _make_part(self, upload_id: str, meta: Meta, planned: PlannedPart) -> tuple[int, str]:
        number = part_number(planned.start, meta.grid)
        if planned.how == "part":
            piece = planned.segments[0].piece
            assert piece.part is not None and piece.etag is not None
            return piece.part, f'"{piece.etag}"'
        key, prefix = self.upload_key(upload_id), self._pieces_prefix(upload_id)
        if planned.how == "copy":
            seg = planned.segments[0]
            a = seg.start - seg.piece.start
            result = self.s3.call("upload_part_copy", Key=key, UploadId=meta.upload_id, PartNumber=number,
                                  CopySource={"Bucket": self.s3.bucket, "Key": prefix + seg.piece.name},
                                  CopySourceRange=f"bytes={a}-{a + seg.length - 1}")
            self.s3.count(copied=seg.length)
            return number, str(result["CopyPartResult"]["ETag"])
        data = b"".join(self._segment_bytes(prefix, s) for s in planned.segments)
        etag = self.s3.call("upload_part", Key=key, UploadId=meta.upload_id, PartNumber=number, Body=data)["ETag"]
        self.s3.count(written=len(data))
        return number, str(etag)

    def _segment_bytes(self, prefix: str, seg: Segment) -> bytes:
        a = seg.start - seg.piece.start
        return self.s3.get_range(prefix + seg.piece.name, a, a + seg.length)

    async def complete(self, upload_id: str) -> None:
        """Complete the multipart upload: the object is at :meth:`upload_key` afterwards."""
        await self._run(self._complete, upload_id)

    @asynccontextmanager
    async def materialize(self, upload_id: str) -> AsyncIterator[Path]:
        """Completes the upload (the only way to read its parts) and downloads the object to
        a temporary file, removed when the context ends."""
        await self.complete(upload_id)
        async with downloaded(self.s3, self.pool, self.upload_key(upload_id), self.tmp_dir) as path:
            yield path

    def _delete(self, upload_id: str) -> None:
        meta = self.meta(upload_id)
        key = self.upload_key(upload_id)
        ids = {meta.upload_id} if meta is not None else set()
        ids |= {u["UploadId"] for u in self.s3.call("list_multipart_uploads", Prefix=key).get("Uploads", [])
                if u["Key"] == key}
        for uid in ids:
            try:
                self.s3.call("abort_multipart_upload", Key=key, UploadId=uid)
            except FileNotFoundError:
                pass  # completed or aborted already
        prefix = self._pieces_prefix(upload_id)
        self.s3.delete_keys([k for k, _ in self.s3.list_keys(prefix)] + [key, self._meta_key(upload_id)])

    async def delete(self, upload_id: str) -> None:
        """Abort the multipart upload and remove every piece, the object and the record."""
        await self._run(self._delete, upload_id)

    def _list(self) -> list[str]:
        found: set[str] = set()
        uploads = self.s3.key("uploads") + "/"
        marker: dict[str, str] = {}
        while True:
            page = self.s3.call("list_multipart_uploads", Prefix=uploads, **marker)
            found |= {u["Key"][len(uploads):] for u in page.get("Uploads", [])}
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        metas = self.s3.key("meta") + "/"
        found |= {k[len(metas):-len(".json")] for k, _ in self.s3.list_keys(metas) if k.endswith(".json")}
        pieces = self.s3.key("pieces") + "/"
        found |= {k[len(pieces):].split("/", 1)[0] for k, _ in self.s3.list_keys(pieces)}
        return sorted(u for u in found if u and "/" not in u)

    async def list_uploads(self) -> list[str]:
        """Every upload with a multipart upload, a record or pieces under the prefix."""
        return await self._run(self._list)

    def _stats(self) -> tuple[int, int]:
        metas = self.s3.key("meta") + "/"
        count = sum(1 for k, _ in self.s3.list_keys(metas) if k.endswith(".json"))
        used = 0
        pieces = self.s3.key("pieces") + "/"
        for key, size in self.s3.list_keys(pieces):
            piece = Piece.parse(key.rsplit("/", 1)[-1])
            used += size if piece is None or piece.staged else piece.end - piece.start
        used += sum(size for _, size in self.s3.list_keys(self.s3.key("uploads") + "/"))
        return count, used

    async def stats(self) -> tuple[int, int]:
        return await self._run(self._stats)


@asynccontextmanager
async def downloaded(s3: S3Bucket, pool: Executor | None, key: str, tmp_dir: Path | None) -> AsyncIterator[Path]:
    """The object ``key`` in a temporary file (under ``tmp_dir``), removed afterwards."""
    loop = asyncio.get_running_loop()

    def make() -> Path:
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="s3-", dir=tmp_dir))

    folder = await loop.run_in_executor(pool, make)
    path = folder / "object"
    try:
        await loop.run_in_executor(pool, s3.download, key, path)
        yield path
    finally:
        await loop.run_in_executor(pool, shutil.rmtree, folder, True)
