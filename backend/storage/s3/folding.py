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

Both survive a process killed between any two S3 calls: the next call that reads the
record (a read, a snapshot, a completion, on any replica) finishes or redoes the work.
A snapshot names the multipart upload it goes on from in the record (``unfinished``)
before it completes it, and saves the part list it completes it with
(``pieces/<id>/snapshot.g<n>.json``, first writer wins, kept until the upload is
completed) before that, so that the views noted later match the object whatever was
written since; the entry is cleared once the views are noted and the stale part markers
gone (:func:`settle`). A completion that stopped after
CompleteMultipartUpload is recognised by the object being there while the record still
names that multipart upload (:func:`_completed`); before it, the parts are made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from backend.errors import StorageUnavailable
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
    in :func:`_finish`, and its part is in the completed object; seeing a new one, it
    stages its bytes.

    Crash-safe: the record names the previous multipart upload (``unfinished``) from the
    switch on, until its views are noted; whoever reads the record next finishes that
    first (:func:`settle`)."""
    meta = store.meta(upload_id)
    if meta is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    if meta.unfinished:
        meta = settle(store, upload_id, meta)
    if meta.done or all(seg.piece.staged for seg in resolve(store.pieces(upload_id), meta.generation)):
        return meta
    if _completed(store, upload_id, meta):  # a complete stopped after CompleteMultipartUpload
        return _mark_done(store, upload_id, meta)
    generation, previous = meta.generation, meta.upload_id
    created = store.s3.call("create_multipart_upload", Key=store.upload_key(upload_id, generation + 1))
    meta.upload_id, meta.generation = created["UploadId"], generation + 1
    meta.unfinished[str(generation)] = previous
    store._save_meta(upload_id, meta)
    _finish(store, upload_id, generation, previous)
    current = store.meta(upload_id)
    if current is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    log.info("upload %s: parts made readable (generation %d)", upload_id, generation)
    return current


def settle(store: S3ChunkStore, upload_id: str, meta: Meta) -> Meta:
    """Finish each snapshot the record says was started and not finished (a process
    stopped half-way, or one still at it on another replica: every step is idempotent);
    the record then."""
    for generation in sorted(int(g) for g in meta.unfinished):
        _finish(store, upload_id, generation, meta.unfinished[str(generation)])
    current = store.meta(upload_id)
    if current is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    return current


def _plan_key(store: S3ChunkStore, upload_id: str, generation: int) -> str:
    """Where a snapshot keeps the parts it completes the multipart upload with (a name
    :meth:`~backend.storage.s3.layout.Piece.parse` does not take for a piece)."""
    return store._pieces_prefix(upload_id) + f"snapshot.g{generation}.json"


def _snapshot_parts(store: S3ChunkStore, upload_id: str, generation: int) -> list[dict[str, Any]]:
    """The parts ``generation``'s object is (or will be) completed with, in order: the
    list saved by the first try, else made from a listing (taken after the switch, see
    :func:`snapshot`) and saved before the completion, so that a later try notes the
    views of the object as it was completed, whatever was written since. The first list
    saved wins (a conditional PUT) and stays, so that replicas finishing the same
    snapshot at once, or one after the other, complete and note the same parts."""
    from botocore.exceptions import ClientError  # boto3 is imported by the S3 stores only

    key = _plan_key(store, upload_id, generation)
    saved = _saved_parts(store, key)
    if saved is not None:
        return saved
    parts = [{"part": seg.piece.part, "etag": seg.piece.etag, "start": seg.start, "end": seg.end,
              "stamp": seg.piece.stamp}
             for seg in resolve(store.pieces(upload_id), generation) if not seg.piece.staged]
    body = json.dumps(parts).encode()
    try:
        store.s3.call("put_object", Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
    except StorageUnavailable as exc:  # a store without conditional writes: the last list wins
        if not _code_is(exc.__cause__, "NotImplemented"):
            raise
        store.s3.call("put_object", Key=key, Body=body, ContentType="application/json")
    except ClientError as exc:  # another try saved its list first: that one is used
        if not _code_is(exc, "PreconditionFailed", "ConditionalRequestConflict"):
            raise
        saved = _saved_parts(store, key)
        if saved is None:
            raise
        return saved
    return parts


def _saved_parts(store: S3ChunkStore, key: str) -> list[dict[str, Any]] | None:
    try:
        body = store.s3.call("get_object", Key=key)["Body"]
    except FileNotFoundError:
        return None
    try:
        saved: list[dict[str, Any]] = json.loads(body.read())
        return saved
    finally:
        body.close()


def _code_is(exc: BaseException | None, *codes: str) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")) in codes


def _finish(store: S3ChunkStore, upload_id: str, generation: int, previous: str) -> None:
    """Complete ``generation``'s multipart upload ``previous`` with its parts (unless its
    object is there already), note the views, drop the stale part markers, then the
    record's ``unfinished`` entry. Each step may be done again. The saved part list stays
    until the upload is completed or deleted: a replica that finishes the same snapshot
    late reads it rather than saving its own, whose views would not match the object."""
    current = store.meta(upload_id)
    if current is None or current.unfinished.get(str(generation)) != previous:
        return  # finished meanwhile (another replica), or the upload was deleted
    parts = _snapshot_parts(store, upload_id, generation)
    key = store.upload_key(upload_id, generation)
    if _object_size(store, key) is None:
        try:
            if parts:
                store.s3.call("complete_multipart_upload", Key=key, UploadId=previous, MultipartUpload={
                    "Parts": [{"PartNumber": p["part"], "ETag": f'"{p["etag"]}"'} for p in parts]})
            else:  # every part was written over since: nothing to keep
                store.s3.call("abort_multipart_upload", Key=key, UploadId=previous)
        except FileNotFoundError:  # completed (another replica), or aborted: the upload was deleted
            if parts and _object_size(store, key) is None:
                raise FileNotFoundError(f"upload {upload_id} is not in the store") from None
    prefix, at = store._pieces_prefix(upload_id), 0
    for p in parts:
        tag = hashlib.sha256(f"{generation}:{at}".encode()).hexdigest()[:8]
        name = piece_name(p["start"], p["end"], generation=generation, offset=at, stamp=p["stamp"], tag=tag)
        store.s3.call("put_object", Key=prefix + name, Body=b"")
        at += p["end"] - p["start"]
    stale = [prefix + p.name for p in store.pieces(upload_id)
             if p.part is not None and (p.generation or 0) <= generation]
    store.s3.delete_keys(stale)
    current = store.meta(upload_id)
    if current is not None and str(generation) in current.unfinished:
        del current.unfinished[str(generation)]
        store._save_meta(upload_id, current)


def _object_size(store: S3ChunkStore, key: str) -> int | None:
    try:
        return int(store.s3.call("head_object", Key=key)["ContentLength"])
    except FileNotFoundError:
        return None


def _completed(store: S3ChunkStore, upload_id: str, meta: Meta) -> bool:
    """Whether the multipart upload in progress per ``meta`` was completed (by a
    :func:`complete` that stopped before noting it, or one on another replica): its
    object is there and the record still names it (a snapshot switches the record
    before it completes a generation, so such an object is a snapshot's otherwise)."""
    if _object_size(store, store.upload_key(upload_id, meta.generation)) is None:
        return False
    current = store.meta(upload_id)
    return current is not None and (current.generation, current.upload_id) == (meta.generation, meta.upload_id)


def _mark_done(store: S3ChunkStore, upload_id: str, meta: Meta) -> Meta:
    """Note the upload completed, then remove its pieces and earlier generations' objects."""
    meta.done = True
    store._save_meta(upload_id, meta)
    key = store.upload_key(upload_id, meta.generation)
    leftovers = [k for prefix in (store._pieces_prefix(upload_id), store._uploads_prefix(upload_id))
                 for k, _ in store.s3.list_keys(prefix) if k != key]
    store.s3.delete_keys(leftovers)
    return meta


def complete(store: S3ChunkStore, upload_id: str) -> Meta:
    """Complete the multipart upload (see the module doc); idempotent, and a try that
    stopped anywhere is finished or done again by the next."""
    meta = store.meta(upload_id)
    if meta is None:
        raise FileNotFoundError(f"upload {upload_id} is not in the store")
    if meta.unfinished:
        meta = settle(store, upload_id, meta)
    if meta.done:
        return meta
    if _completed(store, upload_id, meta):
        return _mark_done(store, upload_id, meta)
    pieces = store.pieces(upload_id)
    try:
        planned = plan(resolve(pieces, meta.generation), meta.size, meta.grid)
    except ValueError as exc:
        raise RuntimeError(f"upload {upload_id} cannot be completed: {exc}") from exc
    key = store.upload_key(upload_id, meta.generation)
    try:
        parts = [_make_part(store, upload_id, meta, p) for p in planned]
        store.s3.call("complete_multipart_upload", Key=key, UploadId=meta.upload_id,
                      MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
    except FileNotFoundError:  # completed meanwhile (another replica), else gone
        if not _completed(store, upload_id, meta):
            raise
    return _mark_done(store, upload_id, meta)


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
