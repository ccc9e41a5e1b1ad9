"""Completing an S3 upload, and making its parts readable before that.

:func:`complete` (at materialize, before adopt) completes the multipart upload with the
parts as written and each staged run folded into parts of at least 5 MiB (the plan of
:func:`~backend.storage.s3.layout.plan`): a staged slice of a part's size is copied inside
S3 (UploadPartCopy), smaller ones are read and sent again, grouped. The object is then at
the upload's key; its pieces and earlier generations' objects are removed.

:func:`snapshot` (a read-back of bytes in parts: a rebuild after a restart or on resume,
a catch-up whose fork failed) completes the multipart upload with the parts written so
far, notes where each part's bytes are in that object (views), and goes on with a new
multipart upload, the next *generation*. Nothing is re-sent: the views are copied back
into parts inside S3 at completion. A writer whose part lands in a completed generation
stages its bytes instead (:meth:`S3ChunkStore.send_part`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backend.storage.s3.layout import PlannedPart, Segment, part_number, piece_name, plan, resolve
from backend.storage.s3.writer import Meta

if TYPE_CHECKING:
    from backend.storage.s3.chunks import S3ChunkStore

log = logging.getLogger(__name__)


def snapshot(store: S3ChunkStore, upload_id: str) -> Meta:
    """Make the parts readable: go on with a new multipart upload (the next generation),
    then complete the previous one with the parts written to it (its object stays) and
    note each part's range in that object as a view. The views are folded back into parts
    at completion (UploadPartCopy, inside S3). For a read-back of bytes already in parts
    (a rebuild after a restart or on resume).

    The order matters for a writer sending a part meanwhile: it checks the record after
    its part's marker is written (:meth:`S3ChunkStore.send_part`). Seeing the previous
    generation means its marker was written before the switch, so before the listing
    below, and its part is in the completed object; seeing a new one, it stages its bytes."""
    meta = store.meta(upload_id)
    if meta is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    if meta.done or all(seg.piece.staged for seg in resolve(store.pieces(upload_id), meta.generation)):
        return meta
    generation, previous = meta.generation, meta.upload_id
    created = store.s3.call("create_multipart_upload", Key=store.upload_key(upload_id, generation + 1))
    meta.upload_id, meta.generation = created["UploadId"], generation + 1
    store._save_meta(upload_id, meta)
    pieces = store.pieces(upload_id)
    parts = [seg for seg in resolve(pieces, generation) if not seg.piece.staged]
    key = store.upload_key(upload_id, generation)
    try:
        store.s3.call("complete_multipart_upload", Key=key, UploadId=previous, MultipartUpload={
            "Parts": [{"PartNumber": seg.piece.part, "ETag": f'"{seg.piece.etag}"'} for seg in parts]})
    except FileNotFoundError:  # another replica's snapshot took that generation: use its record
        return store.meta(upload_id) or meta
    prefix, at = store._pieces_prefix(upload_id), 0
    for seg in parts:
        name = piece_name(seg.start, seg.end, generation=generation, offset=at, stamp=seg.piece.stamp)
        store.s3.call("put_object", Key=prefix + name, Body=b"")
        at += seg.length
    stale = [prefix + p.name for p in pieces if p.part is not None and (p.generation or 0) <= generation]
    store.s3.delete_keys(stale)
    log.info("upload %s: parts made readable (generation %d)", upload_id, generation)
    return meta


def complete(store: S3ChunkStore, upload_id: str) -> Meta:
    """Complete the multipart upload (see the module doc); idempotent."""
    meta = store.meta(upload_id)
    if meta is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    if meta.done:
        return meta
    pieces = store.pieces(upload_id)
    try:
        planned = plan(resolve(pieces, meta.generation), meta.size, meta.grid)
    except ValueError as exc:
        raise RuntimeError(f"upload {upload_id} cannot be completed: {exc}") from exc
    parts = [_make_part(store, upload_id, meta, p) for p in planned]
    key = store.upload_key(upload_id, meta.generation)
    store.s3.call("complete_multipart_upload", Key=key, UploadId=meta.upload_id,
                 MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
    meta.done = True
    store._save_meta(upload_id, meta)
    prefix = store._pieces_prefix(upload_id)
    earlier = [k for k, _ in store.s3.list_keys(store._uploads_prefix(upload_id)) if k != key]
    store.s3.delete_keys([prefix + p.name for p in pieces] + earlier)
    return meta

def _make_part(store: S3ChunkStore, upload_id: str, meta: Meta, planned: PlannedPart) -> tuple[int, str]:
    number = part_number(planned.start, meta.grid)
    if planned.how == "part":
        piece = planned.segments[0].piece
        assert piece.part is not None and piece.etag is not None
        return piece.part, f'"{piece.etag}"'
    key = store.upload_key(upload_id, meta.generation)
    if planned.how == "copy":
        seg = planned.segments[0]
        source, base = store._source(upload_id, seg.piece)
        a = seg.start - base
        result = store.s3.call("upload_part_copy", Key=key, UploadId=meta.upload_id, PartNumber=number,
                              CopySource={"Bucket": store.s3.bucket, "Key": source},
                              CopySourceRange=f"bytes={a}-{a + seg.length - 1}")
        store.s3.count(copied=seg.length)
        return number, str(result["CopyPartResult"]["ETag"])
    data = b"".join(_segment_bytes(store, upload_id, s) for s in planned.segments)
    etag = store.s3.call("upload_part", Key=key, UploadId=meta.upload_id, PartNumber=number, Body=data)["ETag"]
    store.s3.count(written=len(data))
    return number, str(etag)

def _segment_bytes(store: S3ChunkStore, upload_id: str, seg: Segment) -> bytes:
    key, base = store._source(upload_id, seg.piece)
    return store.s3.get_range(key, seg.start - base, seg.end - base)
