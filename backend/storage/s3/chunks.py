"""Unfinished uploads in S3: each upload is one multipart upload.

The contract is :class:`~backend.storage.base.ChunkStore`'s. Keys under the prefix:

- ``uploads/<id>/<generation>``: the multipart upload's key (its object appears once it
  is completed; see :mod:`backend.storage.s3.folding` for generations);
- ``meta/<id>.json``: its S3 upload id, size, part grid and generation (the upload exists
  while this does);
- ``pieces/<id>/...``: what has been written, as staged pieces, part markers and views
  (:mod:`backend.storage.s3.layout`). The offset truth stays in the state store; this is
  the store's own bookkeeping, never derived from ListParts.

How a range is written (:meth:`S3ChunkStore.open`, :class:`~backend.storage.s3.writer.S3ChunkWriter`):
S3 parts are at least 5 MiB (all but the last) and cannot be read before the upload is
completed, so

- a range the caller will not read back (``read_back=False``: a whole chunk on the chunk
  grid whose bytes the digest hashes in hand) of at least a part's size goes straight
  into parts: each byte is sent to S3 once;
- anything else (smaller chunks, tus PATCH bodies whose tail a later PATCH re-reads,
  chunks that arrived ahead of a gap and are read back by the digest's catch-up) is
  staged as objects of up to 8 MiB, readable at once.

:meth:`S3ChunkStore.read_into` reads staged bytes; bytes in parts are made readable first
(a snapshot: the rare read-back of a rebuild). :meth:`S3ChunkStore.materialize` completes
the multipart upload (staged runs folded into parts) and downloads the object to a
temporary file: completing is the only way to read the whole, and pikepdf needs it anyway;
:meth:`~backend.storage.s3.blobs.S3BlobStore.adopt` then copies the object inside S3 to its
content address. Blocking calls run in the executor given; writers are the worker
thread's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from backend.storage.s3.bucket import S3Bucket
from backend.storage.s3.folding import complete, settle, snapshot
from backend.storage.s3.layout import Piece, part_grid, part_number, piece_name, readable_end, resolve
from backend.storage.s3.writer import Meta, S3ChunkWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


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

    def upload_key(self, upload_id: str, generation: int) -> str:
        """The key of the upload's multipart upload of ``generation`` (and of its object once completed)."""
        return self.s3.key("uploads", self._check(upload_id), str(generation))

    def _uploads_prefix(self, upload_id: str) -> str:
        return self.s3.key("uploads", self._check(upload_id)) + "/"

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
        """``data`` as the part at ``start``; staged instead if a snapshot completed the
        multipart upload meanwhile (then ``meta`` is brought up to date)."""
        number = part_number(start, meta.grid)
        try:
            etag = self.s3.call("upload_part", Key=self.upload_key(upload_id, meta.generation),
                                UploadId=meta.upload_id, PartNumber=number, Body=data)["ETag"]
        except FileNotFoundError:
            etag = None
        else:
            self.s3.count(written=len(data))
            name = piece_name(start, start + len(data), number, etag, meta.generation)
            self.s3.call("put_object", Key=self._pieces_prefix(upload_id) + name, Body=b"")
        current = self.meta(upload_id)
        if current is None or current.done:
            raise FileNotFoundError(f"upload {upload_id} is not in the store")
        if etag is None or (current.generation, current.upload_id) != (meta.generation, meta.upload_id):
            meta.upload_id, meta.generation = current.upload_id, current.generation
            self.send_staged(upload_id, start, data)

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
        created = self.s3.call("create_multipart_upload", Key=self.upload_key(upload_id, 1))
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

    def _source(self, upload_id: str, piece: Piece) -> tuple[str, int]:
        """(object, where the upload's byte 0 would be in it) of a staged piece or a view."""
        if piece.view:
            assert piece.generation is not None and piece.offset is not None
            return self.upload_key(upload_id, piece.generation), piece.start - piece.offset
        return self._pieces_prefix(upload_id) + piece.name, piece.start

    def _read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        try:
            return self._read_what_is_there(upload_id, offset, buf)
        except FileNotFoundError:  # deleted meanwhile (a snapshot finds the upload gone)
            return 0

    def _read_done(self, upload_id: str, meta: Meta, offset: int, buf: bytearray, at: int) -> int:
        """Bytes of the completed object from ``offset`` into ``buf[at:]``."""
        size = min(len(buf) - at, max(0, meta.size - offset))
        data = self.s3.get_range(self.upload_key(upload_id, meta.generation), offset, offset + size)
        buf[at:at + len(data)] = data
        return len(data)

    def _read_what_is_there(self, upload_id: str, offset: int, buf: bytearray) -> int:
        meta = self.meta(upload_id)
        if meta is None:
            return 0
        if meta.unfinished and not meta.done:  # a snapshot stopped half-way: finish it first
            meta = settle(self, upload_id, meta)
        if meta.done:  # completed: the object is readable
            return self._read_done(upload_id, meta, offset, buf, 0)
        got, snapped = 0, False
        while got < len(buf):
            segments = resolve(self.pieces(upload_id), meta.generation)
            for seg in readable_end(segments, offset + got):
                key, base = self._source(upload_id, seg.piece)
                want = min(seg.end, offset + len(buf)) - (offset + got)
                data = self.s3.get_range(key, offset + got - base, offset + got + want - base)
                buf[got:got + len(data)] = data
                got += len(data)
                if len(data) < want:
                    return got  # the piece is shorter than its name says: stop there
                if got == len(buf):
                    return got
            at = next((s for s in segments if s.start <= offset + got < s.end), None)
            if at is None or at.piece.staged or snapped:
                break
            meta, snapped = snapshot(self, upload_id), True  # a part: make it readable
            if meta.done:  # a complete had stopped after completing: the object holds it all
                return got + self._read_done(upload_id, meta, offset + got, buf, got)
        return got

    async def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        """Staged bytes at once; bytes in parts after a :meth:`_snapshot` (server-side work,
        for the rare read-back of a whole chunk: a rebuild, a catch-up whose fork failed)."""
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
        if source.unfinished and not source.done:
            source = settle(self, source_id, source)
        if not source.done and any(not p.staged for p in self.pieces(source_id)):
            complete(self, source_id)
            source = self.meta(source_id)
            assert source is not None
        dest = self._pieces_prefix(upload_id)
        copies: list[tuple[str, int, int, int, bool]] = []  # (source key, from, to, at, whole object)
        if source.done:
            end = min(length, source.size)
            copies.append((self.upload_key(source_id, source.generation), 0, end, offset, end == source.size))
        else:
            for seg in resolve(self.pieces(source_id), source.generation):
                if seg.start >= length:
                    break
                key, base = self._source(source_id, seg.piece)
                a, b = seg.start - base, min(seg.end, length) - base
                whole = not seg.piece.view and a == 0 and b == seg.piece.end - seg.piece.start
                copies.append((key, a, b, offset + seg.start, whole))
        for key, a, b, at, whole in copies:
            name = dest + piece_name(at, at + b - a)
            if whole:
                self.s3.call("copy_object", Key=name, CopySource={"Bucket": self.s3.bucket, "Key": key})
                self.s3.count(copied=b - a)
            else:
                self.s3.put(name, self.s3.get_range(key, a, b))

    async def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        await self._run(self._copy_from, upload_id, offset, source_id, length)

    async def complete(self, upload_id: str) -> str:
        """Complete the multipart upload; the key of the object that holds the upload then."""
        meta = await self._run(complete, self, upload_id)
        return self.upload_key(upload_id, meta.generation)

    @asynccontextmanager
    async def materialize(self, upload_id: str) -> AsyncIterator[Path]:
        """Completes the upload (the only way to read its parts) and downloads the object to
        a temporary file, removed when the context ends."""
        key = await self.complete(upload_id)
        async with self.s3.downloaded(self.pool, key, self.tmp_dir) as path:
            yield path

    def _delete(self, upload_id: str) -> None:
        uploads = self._uploads_prefix(upload_id)
        listed = self.s3.call("list_multipart_uploads", Prefix=uploads[:-1]).get("Uploads", [])
        for upload in (u for u in listed if u["Key"] == uploads[:-1] or u["Key"].startswith(uploads)):
            try:
                self.s3.call("abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"])
            except FileNotFoundError:
                pass  # completed or aborted already
        keys = [k for prefix in (self._pieces_prefix(upload_id), uploads) for k, _ in self.s3.list_keys(prefix)]
        self.s3.delete_keys(keys + [self._meta_key(upload_id)])

    async def delete(self, upload_id: str) -> None:
        """Abort the multipart upload and remove every piece, the object and the record."""
        await self._run(self._delete, upload_id)

    def _list(self) -> list[str]:
        found: set[str] = set()
        uploads = self.s3.key("uploads") + "/"
        marker: dict[str, str] = {}
        while True:
            page = self.s3.call("list_multipart_uploads", Prefix=uploads, **marker)
            found |= {u["Key"][len(uploads):].split("/", 1)[0] for u in page.get("Uploads", [])}
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
            if piece is not None and piece.view:
                continue  # its bytes are in an object under uploads/
            used += size if piece is None or piece.staged else piece.end - piece.start
        used += sum(size for _, size in self.s3.list_keys(self.s3.key("uploads") + "/"))
        return count, used

    async def stats(self) -> tuple[int, int]:
        return await self._run(self._stats)
