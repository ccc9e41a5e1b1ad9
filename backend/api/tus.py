"""tus 1.0.0 at ``/files/``: core (OPTIONS, HEAD, PATCH) and the creation,
creation-with-upload, creation-defer-length, expiration, checksum, termination and
concatenation extensions, on the upload core
(:class:`~backend.services.uploads.UploadService`).

A tus upload is a session like any other: API keys, rate limits and caps, the memory
budget, the PDF header check, the streaming scan, the whole-file SHA-256, dedup, deep
inspection, import, WebSocket events in room ``upload_{id}`` and a line in
``/resumable``. Metadata: ``filename`` (required), ``filetype``, ``title``,
``client_id`` (the WebSocket room's client) and ``expected_hash`` (hex SHA-256).

Concatenation: partial uploads skip the PDF header check (they are pieces) and are never
stored on their own; a final upload is created from finished partials only, is hashed,
scanned and stored before its creation is answered, and the partials are then removed.

When the last byte arrives, the file is verified and stored before the PATCH is answered:
``Upload-Document-Id`` names the document (``Upload-Duplicate: true`` when the content was
already stored). Refusals carry the JSON envelope of ``API.md``; their statuses are
tus's (:data:`TUS_STATUS`): 460 checksum mismatch, 409 offset mismatch, 404/410 gone,
413 too large, 415 not a PDF, 422 security refusal. :class:`TusMiddleware` does what
applies to every ``/files/`` request: ``Tus-Resumable`` on every answer, 412 for other
versions, ``X-HTTP-Method-Override``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.body_timeout import idle_bounded
from backend.api.deps import client_ip, owner, services
from backend.errors import InvalidRequest, UploadError
from backend.logs import bind_session
from backend.services.appends import BodyCut, Stopped
from backend.services.cells import CHECKSUMS, Checksum
from backend.composition import Services
from backend.services.models import FAILED
from backend.services.sessions import InitiateRequest

VERSION = "1.0.0"
EXTENSIONS = ("creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,"
              "concatenation")
OFFSET_STREAM = "application/offset+octet-stream"
PREFIX = "/files"
#: Domain code -> tus status (anything else: 400 for a client's mistake, 500 otherwise).
TUS_STATUS = {
    "checksum_mismatch": 460, "offset_mismatch": 409, "not_found": 404, "session_expired": 410,
    "session_not_active": 409, "upload_incomplete": 409, "duplicate_document": 409, "chunk_conflict": 409,
    "file_too_large": 413, "request_too_large": 413, "not_a_pdf": 415, "security_rejected": 422,
    "invalid_pdf": 422, "integrity_failed": 422, "inspection_limit_exceeded": 422, "unauthorized": 401,
    "request_timeout": 408, "too_many_uploads": 429, "rate_limited": 429, "server_busy": 503,
    "insufficient_storage": 507, "upload_quota_exceeded": 507, "invalid_request": 400, "invalid_chunk": 400,
    "storage_unavailable": 503,
}
#: What a browser may send and read across origins (with STREAMING_CORS_ORIGINS).
CORS_ALLOW = ["Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Checksum",
              "Upload-Defer-Length", "Upload-Concat", "X-HTTP-Method-Override"]
CORS_EXPOSE = ["Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata",
               "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
               "Upload-Document-Id", "Upload-Duplicate"]

router = APIRouter(prefix=PREFIX, tags=["tus 1.0.0"])


def _is_tus(path: str) -> bool:
    return (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(PREFIX + "/security/")


class TusMiddleware:
    """Pure ASGI, for ``/files/`` requests: the method override, the version check, and
    ``Tus-Resumable`` on every response (errors and 404s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_tus(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        override = headers.get(b"x-http-method-override")
        if override and scope["method"] == "POST":
            scope = {**scope, "method": override.decode("latin-1").strip().upper()}
        if scope["method"] != "OPTIONS" and headers.get(b"tus-resumable") != VERSION.encode():
            response = Response(status_code=412, headers={"Tus-Version": VERSION, "Tus-Resumable": VERSION})
            await response(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"tus-resumable", VERSION.encode())]}
            await send(message)

        await self.app(scope, receive, stamped)


def refusal(exc: UploadError, *, head: bool = False) -> Response:
    """A domain refusal as tus answers it: its status, the envelope (none for HEAD)."""
    status = TUS_STATUS.get(exc.code, 400 if not exc.transient else 500)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    if head:
        return Response(status_code=status, headers=headers)
    return JSONResponse(exc.body(), status_code=status, headers=headers)


def _expires(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _int_header(request: Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not (raw.strip().isascii() and raw.strip().isdigit()):  # "²" is a digit to isdigit, not to int
        raise InvalidRequest(f"{name} must be a non-negative whole number, not {raw[:40]!r}")
    return int(raw)


def parse_metadata(raw: str) -> dict[str, str]:
    """``Upload-Metadata``: ``key base64value`` pairs, comma-separated (a key alone: "")."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        if not key or " " in value.strip() or key in out:
            raise InvalidRequest(f"Upload-Metadata has a malformed pair: {pair[:60]!r}")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"Upload-Metadata value of {key!r} is not base64") from None
    return out


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items())


def parse_checksum(raw: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``."""
    if raw is None:
        return None
    algorithm, _, digest = raw.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise InvalidRequest(f"Upload-Checksum algorithm {algorithm[:20]!r} is not supported; "
                             f"use one of {', '.join(CHECKSUMS)}")
    try:
        value = base64.b64decode(digest.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("Upload-Checksum digest is not base64") from None
    if len(value) != CHECKSUMS[algorithm]().digest_size:  # a malformed header, not a mismatch (460)
        raise InvalidRequest(f"Upload-Checksum digest is not a {algorithm} digest")
    return Checksum(algorithm, value)


async def _body(request: Request, svc: Services) -> AsyncIterator[bytes]:
    """The request body; a client that goes away ends it with ``BodyCut``."""
    try:
        async for piece in idle_bounded(request.stream(), svc.settings.body_idle_timeout_seconds):
            if piece:
                yield piece
    except ClientDisconnect:
        raise BodyCut() from None


def _options_headers(svc: Services) -> dict[str, str]:
    return {"Tus-Version": VERSION, "Tus-Extension": EXTENSIONS, "Tus-Max-Size": str(svc.settings.max_file_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}


@router.options("", status_code=204, include_in_schema=False)  # "/files" too: a redirect would stop
@router.options("/", status_code=204, include_in_schema=False)  # clients that do not follow one (Node's)
@router.options("/{upload_id}", status_code=204, include_in_schema=False)
async def options(svc: Services = Depends(services)) -> Response:
    """The server's tus version, extensions, size limit and checksum algorithms."""
    return Response(status_code=204, headers=_options_headers(svc))


@router.post("", status_code=201, include_in_schema=False)
@router.post("/", status_code=201, include_in_schema=False)
async def create(request: Request, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """creation (with upload, with a deferred length) and concatenation."""
    try:
        length = _int_header(request, "upload-length")
        deferred = request.headers.get("upload-defer-length")
        concat = request.headers.get("upload-concat", "").strip()
        metadata = parse_metadata(request.headers.get("upload-metadata", ""))
        if deferred is not None and (deferred.strip() != "1" or length is not None):
            raise InvalidRequest("Upload-Defer-Length must be 1, and comes instead of Upload-Length")
        if concat.startswith("final;"):
            return await _create_final(request, svc, who, concat, length, metadata)
        if concat not in ("", "partial"):
            raise InvalidRequest("Upload-Concat must be 'partial' or 'final;<upload URLs>'")
        if length is None and deferred is None:
            raise InvalidRequest("Upload-Length (or Upload-Defer-Length: 1) is required")
        if not metadata.get("filename") and concat != "partial":
            raise InvalidRequest("Upload-Metadata must carry a filename")
        await svc.rate_limits.check(who, client_ip(request))
        live = await svc.uploads.create(who, _request(metadata, length or 0, length_deferred=deferred is not None,
                                                      concat=concat or None))
        bind_session(live.id)
        headers = {"Location": f"{PREFIX}/{live.id}", "Upload-Expires": _expires(live.session.expires_at)}
        if request.headers.get("content-type", "").split(";")[0].strip() == OFFSET_STREAM:
            try:
                headers.update(await _append(request, svc, who, live.id, 0))
            except BaseException:
                # The client never learns this upload's URL (it will POST again): an
                # upload left unfinished would hold the owner's slot until it expires.
                if live.session.unfinished:
                    with contextlib.suppress(UploadError):
                        await svc.uploads.terminate(who, live.id, "its creation request failed")
                raise
        return Response(status_code=201, headers=headers)
    except (BodyCut, Stopped):  # the client went away, or a newer request took over: nobody listens
        return Response(status_code=400)
    except UploadError as exc:
        return refusal(exc)


def _request(metadata: dict[str, str], length: int, **extra: Any) -> InitiateRequest:
    return InitiateRequest(
        filename=metadata.get("filename") or "partial", file_size=length, client_id=metadata.get("client_id"),
        title=metadata.get("title"), expected_hash=metadata.get("expected_hash"), protocol="tus",
        metadata=metadata, **extra)


async def _create_final(request: Request, svc: Services, who: str, concat: str, length: int | None,
                        metadata: dict[str, str]) -> Response:
    """concatenation: the final upload, from finished partial uploads, stored at once."""
    if length is not None:
        raise InvalidRequest("a final upload takes no Upload-Length: it is the sum of its parts")
    if not metadata.get("filename"):
        raise InvalidRequest("Upload-Metadata must carry a filename")
    parts = [url.rstrip("/").rsplit("/", 1)[-1] for url in concat[len("final;"):].split()]
    await svc.rate_limits.check(who, client_ip(request))
    live = await svc.uploads.concatenate(who, _request(metadata, 0), parts)
    bind_session(live.id)
    done = await svc.uploads.finish(who, live.id)
    headers = {"Location": f"{PREFIX}/{live.id}", "Upload-Expires": _expires(live.session.expires_at),
               "Upload-Document-Id": str(done.document.id)}
    if done.duplicate:
        headers["Upload-Duplicate"] = "true"
    return Response(status_code=201, headers=headers)


async def _append(request: Request, svc: Services, who: str, upload_id: str, offset: int) -> dict[str, str]:
    """Append the body; at the end of the file, finish it. The headers to answer with."""
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    length = _int_header(request, "upload-length")
    if length is not None:
        await svc.uploads.declare_length(who, upload_id, length)
    new_offset = await svc.uploads.append(who, upload_id, offset, _body(request, svc), checksum)
    info = await svc.uploads.info(who, upload_id)
    headers = {"Upload-Offset": str(new_offset), "Upload-Expires": _expires(info.expires_at)}
    if new_offset == info.length and info.concat != "partial":
        done = await svc.uploads.finish(who, upload_id)
        headers["Upload-Document-Id"] = str(done.document.id)
        if done.duplicate:
            headers["Upload-Duplicate"] = "true"
    return headers


@router.head("/{upload_id}", include_in_schema=False)
async def head(upload_id: str, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """The offset the stored bytes reach (verified from the bytes after a restart)."""
    bind_session(upload_id)
    try:
        info = await svc.uploads.info(who, upload_id)
    except UploadError as exc:
        return refusal(exc, head=True)
    if info.status == FAILED:
        error = svc.sessions.get(who, upload_id).session.error or {}
        return Response(status_code=TUS_STATUS.get(str(error.get("error")), 410))
    headers: dict[str, Any] = {"Upload-Offset": str(info.offset), "Cache-Control": "no-store",
                               "Upload-Expires": _expires(info.expires_at)}
    if info.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(info.length)
    if info.concat == "partial":
        headers["Upload-Concat"] = "partial"
    elif info.concat == "final":
        headers["Upload-Concat"] = "final;" + " ".join(f"{PREFIX}/{part}" for part in info.parts)
    if info.metadata:
        headers["Upload-Metadata"] = encode_metadata(info.metadata)
    if info.document_id is not None:
        headers["Upload-Document-Id"] = str(info.document_id)
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", include_in_schema=False)
async def patch(upload_id: str, request: Request, svc: Services = Depends(services),
                who: str = Depends(owner)) -> Response:
    """Append at ``Upload-Offset``; the answer's ``Upload-Offset`` is where the bytes end."""
    bind_session(upload_id)
    if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_STREAM:
        return Response(status_code=415)
    try:
        offset = _int_header(request, "upload-offset")
        if offset is None:
            raise InvalidRequest("Upload-Offset is required")
        if (await svc.uploads.info(who, upload_id)).concat == "final":
            return Response(status_code=403)  # a final upload is made of its parts, not appended to
        return Response(status_code=204, headers=await _append(request, svc, who, upload_id, offset))
    except (BodyCut, Stopped):  # the client went away, or a newer request took over: nobody listens
        return Response(status_code=400)
    except UploadError as exc:
        return refusal(exc)


@router.delete("/{upload_id}", status_code=204, include_in_schema=False)
async def terminate(upload_id: str, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """termination: the upload's bytes and state are removed; later requests get 404."""
    bind_session(upload_id)
    try:
        await svc.uploads.terminate(who, upload_id, "terminated by the tus client")
    except UploadError as exc:
        return refusal(exc)
    return Response(status_code=204)
