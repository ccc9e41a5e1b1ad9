"""IETF "Resumable Uploads for HTTP" at ``/uploads/``: draft-ietf-httpbis-resumable-upload-11
(the latest published draft), interop version 8 (``Upload-Draft-Interop-Version: 8``), on
the upload core (:class:`~backend.services.uploads.UploadService`).

- Creation: ``POST /uploads/`` with ``Upload-Complete`` (``?1``: the body is the whole
  file; ``?0``: a first part, possibly empty). The length is ``Upload-Length``, or
  ``Content-Length`` with ``Upload-Complete: ?1``; when neither is sent it is deferred
  and declared by the request that completes the upload. ``?0`` is answered ``201`` with
  ``Location: /uploads/{id}``; a completed upload ``200`` with the document (the JSON of
  ``POST /complete`` in ``API.md``), ``Upload-Complete: ?1`` and ``Upload-Document-Id``.
- Offset retrieval: ``HEAD`` (or ``GET``) ``/uploads/{id}``: ``204`` with ``Upload-Offset``,
  ``Upload-Complete``, ``Upload-Length`` once known, ``Upload-Limit`` and
  ``Cache-Control: no-store``. An append still in flight is stopped and recorded first, so
  the offset given is one the next append is accepted at.
- Append: ``PATCH /uploads/{id}`` with ``Content-Type: application/partial-upload``,
  ``Upload-Offset`` and ``Upload-Complete``. A cut-off body keeps what arrived.
- Cancellation: ``DELETE /uploads/{id}``, ``204``.
- ``Upload-Limit``: ``max-size`` (``STREAMING_MAX_FILE_SIZE_MB``) and, on an upload resource,
  ``max-age`` (its remaining lifetime). No append size limits: one request may carry the
  whole file. ``OPTIONS`` answers ``Upload-Limit`` and ``Accept-Patch``.
- Problems (``application/problem+json``, RFC 9457): ``mismatching-upload-offset`` (409,
  ``expected-offset``/``provided-offset``), ``inconsistent-upload-length`` (400; also a
  body sent to a completed upload, and a body that runs past the length, which ends the
  upload for good) and ``completed-upload`` (410, an empty append to a completed upload).
  Problem documents also carry the ``API.md`` envelope (``success``, ``error``,
  ``message``); every other refusal is the envelope alone, its status from
  :data:`DRAFT_STATUS`. Refusals that are the server's verdict on the file (not a PDF, a
  security refusal, a damaged PDF...) say ``Upload-Complete: ?1``: resuming cannot help.

Metadata (the draft defines none): the file name from ``Content-Disposition`` (``inline``
or ``attachment``, ``filename=`` or ``filename*=``), required; ``X-Client-Id`` (the
WebSocket room's client) and ``X-Expected-Hash`` (hex SHA-256 of the file; or
``Repr-Digest: sha-256=:…:``) are optional. ``Content-Digest: sha-256=:…:`` on a request
is checked against its body; a mismatch keeps none of it (400 ``checksum_mismatch``).

Not sent: ``104 (Upload Resumption Supported)``. uvicorn gives an ASGI application no way
to send a 1xx informational response (ASGI has no such message), so the ``Location`` of an
upload comes only in the final response. Clients that must be able to resume the very
first request use the draft's "careful" creation: ``Upload-Complete: ?0`` with an empty
body, then ``PATCH``. As the draft requires of servers that send no 104, nothing else
depends on the interop version; requests need not send it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.message
import email.utils
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.body_timeout import idle_bounded
from backend.api.deps import client_ip, owner, services
from backend.composition import Services
from backend.errors import (
    FileTooLarge, InvalidRequest, OffsetMismatch, RequestTooLarge, ServerBusy, UploadError,
)
from backend.logs import bind_session
from backend.services.appends import BodyCut, Stopped
from backend.services.cells import Checksum
from backend.services.models import COMPLETED, FAILED
from backend.services.sessions import InitiateRequest
from backend.services.uploads import UploadInfo

DRAFT = "draft-ietf-httpbis-resumable-upload-11"
INTEROP_VERSION = 8
PREFIX = "/uploads"
PARTIAL_UPLOAD = "application/partial-upload"
PROBLEM = "https://iana.org/assignments/http-problem-types#"
#: Domain code -> status (anything else: 400 for a client's mistake, 500 otherwise).
DRAFT_STATUS = {
    "offset_mismatch": 409, "not_found": 404, "session_expired": 410, "session_not_active": 409,
    "upload_incomplete": 409, "duplicate_document": 409, "chunk_conflict": 409, "checksum_mismatch": 400,
    "file_too_large": 413, "request_too_large": 413, "not_a_pdf": 415, "security_rejected": 422,
    "invalid_pdf": 422, "integrity_failed": 422, "inspection_limit_exceeded": 422, "unauthorized": 401,
    "request_timeout": 408, "too_many_uploads": 429, "rate_limited": 429, "server_busy": 503,
    "insufficient_storage": 507, "upload_quota_exceeded": 507, "invalid_request": 400, "invalid_chunk": 400,
}
#: Codes that are the server's verdict on the file itself: answered ``Upload-Complete: ?1``.
VERDICTS = frozenset({"not_a_pdf", "security_rejected", "invalid_pdf", "integrity_failed",
                      "inspection_limit_exceeded", "duplicate_document"})
#: What a browser may send and read across origins (with STREAMING_CORS_ORIGINS).
CORS_ALLOW = ["Upload-Complete", "Upload-Offset", "Upload-Length", "Upload-Draft-Interop-Version",
              "Content-Disposition", "Content-Digest", "Repr-Digest", "X-Client-Id", "X-Expected-Hash"]
CORS_EXPOSE = ["Location", "Upload-Complete", "Upload-Offset", "Upload-Length", "Upload-Limit",
               "Upload-Draft-Interop-Version", "Upload-Document-Id", "Upload-Duplicate", "Accept-Patch"]

router = APIRouter(prefix=PREFIX, tags=[f"IETF resumable uploads ({DRAFT})"])

_SF_INTEGER = re.compile(r"^[0-9]{1,15}$")
_SHA256 = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]*):")


class UploadLimitMiddleware:
    """Pure ASGI: ``Upload-Limit`` on every ``413`` under ``/uploads/``, the body cap's
    included (the draft asks for it on a 413 caused by the upload limits)."""

    def __init__(self, app: ASGIApp, max_size: int) -> None:
        self.app = app
        self.limit = f"max-size={max_size}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"] + "/").startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"upload-limit" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"upload-limit", self.limit)]}
            await send(message)

        await self.app(scope, receive, stamped)


# -- fields ---------------------------------------------------------------------------------

def sf_integer(raw: str | None) -> int | None:
    """A non-negative Structured Field Integer; anything else is ignored (None), as the
    draft requires of ``Upload-Offset`` and ``Upload-Length``."""
    value = (raw or "").strip()
    return int(value) if _SF_INTEGER.match(value) else None


def sf_boolean(raw: str | None) -> bool | None:
    """``?1`` / ``?0``; anything else is ignored (None)."""
    return {"?1": True, "?0": False}.get((raw or "").strip())


def disposition_filename(raw: str | None) -> str | None:
    """The ``filename*`` (RFC 8187) or ``filename`` parameter of ``Content-Disposition``."""
    if not raw:
        return None
    msg = email.message.Message()
    msg["content-disposition"] = raw
    names = [value for key, value in msg.get_params([], header="content-disposition") if key == "filename"]
    names.sort(key=lambda value: not isinstance(value, tuple))  # filename* (RFC 8187) first
    name = email.utils.collapse_rfc2231_value(names[0]).strip() if names else ""
    return name or None


def sha256_member(raw: str | None, field: str) -> bytes | None:
    """The ``sha-256`` member of a ``Content-Digest``/``Repr-Digest`` dictionary (RFC 9530)."""
    if raw is None:
        return None
    match = _SHA256.search(raw)
    if match is None:
        raise InvalidRequest(f"{field} must carry a sha-256 member (sha-256=:<base64>:)")
    try:
        digest = base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field}'s sha-256 value is not base64") from None
    if len(digest) != 32:
        raise InvalidRequest(f"{field}'s sha-256 value is {len(digest)} bytes, not 32")
    return digest


def upload_limit(svc: Services, info: UploadInfo | None = None) -> str:
    limit = f"max-size={svc.settings.max_file_size}"
    if info is not None and info.status != COMPLETED:
        limit += f", max-age={max(0, int(info.expires_at - time.time()))}"
    return limit


def _complete(value: bool) -> str:
    return "?1" if value else "?0"


# -- answers --------------------------------------------------------------------------------

def problem(status: int, kind: str, title: str, exc: UploadError, *, complete: bool = False,
            headers: dict[str, str] | None = None, **members: Any) -> JSONResponse:
    """An RFC 9457 problem of the draft's ``kind``, with the ``API.md`` envelope inside."""
    body = {"type": PROBLEM + kind, "title": title, "status": status, "detail": exc.message, **exc.body(),
            **members}
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers={"Upload-Complete": _complete(complete), **(headers or {})})


def inconsistent(message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return problem(400, "inconsistent-upload-length", "inconsistent length values for upload",
                   InvalidRequest(message), headers=headers)


def refusal(exc: UploadError, *, head: bool = False, headers: dict[str, str] | None = None,
            provided_offset: int | None = None) -> Response:
    """A domain refusal as the draft answers it (see :data:`DRAFT_STATUS`)."""
    status = DRAFT_STATUS.get(exc.code, 400 if not exc.transient else 500)
    out = {"Upload-Complete": _complete(exc.code in VERDICTS), **(headers or {})}
    if exc.retry_after is not None:
        out["Retry-After"] = str(exc.retry_after)
    if exc.code == "offset_mismatch" and "offset" in exc.extra:
        out["Upload-Offset"] = str(exc.extra["offset"])
        if not head:
            return problem(409, "mismatching-upload-offset", "offset from request does not match offset of resource",
                           exc, headers=out, **{"expected-offset": exc.extra["offset"],
                                                "provided-offset": provided_offset})
    if head:
        return Response(status_code=status, headers=out)
    return JSONResponse(exc.body(), status_code=status, headers=out)


def _location(upload_id: str) -> str:
    return f"{PREFIX}/{upload_id}"


async def _body(request: Request, svc: Services) -> AsyncIterator[bytes]:
    """The request body; a client that goes away ends it with ``BodyCut``."""
    try:
        async for piece in idle_bounded(request.stream(), svc.settings.body_idle_timeout_seconds):
            if piece:
                yield piece
    except ClientDisconnect:
        raise BodyCut() from None


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


# -- the routes -----------------------------------------------------------------------------

@router.options("/", status_code=204, include_in_schema=False)
@router.options("/{upload_id}", status_code=204, include_in_schema=False)
async def options(svc: Services = Depends(services)) -> Response:
    """Limits and the append media type, before any upload exists."""
    return Response(status_code=204, headers={"Upload-Limit": upload_limit(svc), "Accept-Patch": PARTIAL_UPLOAD,
                                              "Upload-Draft-Interop-Version": str(INTEROP_VERSION)})


@router.post("/", include_in_schema=False)
async def create(request: Request, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """Upload creation: ``Upload-Complete`` required; the body (if any) is the first part."""
    complete = sf_boolean(request.headers.get("upload-complete"))
    if complete is None:
        return refusal(InvalidRequest("Upload-Complete (?1 or ?0) is required to create a resumable upload"))
    length = sf_integer(request.headers.get("upload-length"))
    content_length = sf_integer(request.headers.get("content-length"))
    if complete and content_length is not None:
        if length is not None and length != content_length:
            return inconsistent(f"Upload-Length says {length} bytes but the complete body is {content_length}")
        length = content_length
    try:
        filename = disposition_filename(request.headers.get("content-disposition"))
        if filename is None:
            raise InvalidRequest('Content-Disposition must name the file: attachment; filename="name.pdf"')
        repr_digest = sha256_member(request.headers.get("repr-digest"), "Repr-Digest")
        expected = request.headers.get("x-expected-hash") or (repr_digest.hex() if repr_digest else None)
        await svc.rate_limits.check(who, client_ip(request))
        live = await svc.uploads.create(who, InitiateRequest(
            filename=filename, file_size=length or 0, client_id=request.headers.get("x-client-id"),
            expected_hash=expected, protocol="ietf-draft", length_deferred=length is None))
    except UploadError as exc:
        return refusal(exc)
    bind_session(live.id)
    return await _transfer(request, svc, who, live.id, 0, complete, created=True)


@router.api_route("/{upload_id}", methods=["HEAD", "GET"], include_in_schema=False)
async def retrieve(upload_id: str, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """Offset retrieval: where the verified bytes end, after any append in flight stopped."""
    bind_session(upload_id)
    try:
        info = await svc.uploads.info(who, upload_id, settle=True)
    except UploadError as exc:
        return refusal(exc, head=True)
    if info.status == FAILED:
        error = svc.sessions.get(who, upload_id).session.error or {}
        code = str(error.get("error"))
        return Response(status_code=DRAFT_STATUS.get(code, 410), headers={"Upload-Complete": _complete(code in VERDICTS)})
    return Response(status_code=204, headers=_state(svc, info))


def _state(svc: Services, info: UploadInfo) -> dict[str, str]:
    headers = {"Upload-Offset": str(info.offset), "Upload-Complete": _complete(info.status == COMPLETED),
               "Upload-Limit": upload_limit(svc, info), "Cache-Control": "no-store"}
    if info.length is not None:
        headers["Upload-Length"] = str(info.length)
    if info.document_id is not None:
        headers["Upload-Document-Id"] = str(info.document_id)
    return headers


@router.patch("/{upload_id}", include_in_schema=False)
async def append(upload_id: str, request: Request, svc: Services = Depends(services),
                 who: str = Depends(owner)) -> Response:
    """Upload append at ``Upload-Offset``; ``Upload-Complete: ?1`` ends the upload."""
    bind_session(upload_id)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != PARTIAL_UPLOAD:
        wrong = InvalidRequest(f"an append is a PATCH with Content-Type: {PARTIAL_UPLOAD}")
        return JSONResponse(wrong.body(), status_code=415,
                            headers={"Accept-Patch": PARTIAL_UPLOAD, "Upload-Complete": "?0"})
    complete = sf_boolean(request.headers.get("upload-complete"))
    offset = sf_integer(request.headers.get("upload-offset"))
    if complete is None or offset is None:
        return refusal(InvalidRequest("an append needs Upload-Offset (a whole number) and Upload-Complete (?1 or ?0)"))
    return await _transfer(request, svc, who, upload_id, offset, complete, created=False)


@router.delete("/{upload_id}", status_code=204, include_in_schema=False)
async def cancel(upload_id: str, svc: Services = Depends(services), who: str = Depends(owner)) -> Response:
    """Upload cancellation: an append in flight is stopped; bytes and state are removed."""
    bind_session(upload_id)
    try:
        await svc.uploads.terminate(who, upload_id, "cancelled by the client (IETF resumable upload)")
    except UploadError as exc:
        return refusal(exc)
    return Response(status_code=204)


# -- creation and append share this ---------------------------------------------------------

async def _transfer(request: Request, svc: Services, who: str, upload_id: str, offset: int, complete: bool,
                    *, created: bool) -> Response:
    """Check the lengths, append the body at ``offset``, finish if ``complete``."""
    where = {"Location": _location(upload_id)} if created else {}
    try:
        info = await svc.uploads.info(who, upload_id)
        if info.status == COMPLETED:
            return _completed_upload(info, _has_body(request))
        if offset != info.offset:
            mismatch = OffsetMismatch(f"the upload's bytes end at {info.offset}, not {offset}", offset=info.offset)
            return refusal(mismatch, provided_offset=offset)
        length = sf_integer(request.headers.get("upload-length"))
        content_length = sf_integer(request.headers.get("content-length"))
        if complete and content_length is not None:
            if length is not None and length != offset + content_length:
                return inconsistent(f"Upload-Length says {length} bytes but the upload ends at "
                                    f"{offset + content_length}", where)
            length = offset + content_length
        if length is not None and info.length is not None and length != info.length:
            return inconsistent(f"the upload's length is {info.length}, not {length}", where)
        if length is not None and (length < offset or (content_length is not None and offset + content_length > length)):
            return inconsistent(f"a length of {length} does not hold {offset} bytes and this "
                                f"{content_length or 0}-byte body", where)
        if length is not None and info.length is None:
            await svc.uploads.declare_length(who, upload_id, length)
        checksum = sha256_member(request.headers.get("content-digest"), "Content-Digest")
    except UploadError as exc:
        return refusal(exc, headers=where)
    try:
        new_offset = offset
        if _has_body(request):
            new_offset = await svc.uploads.append(who, upload_id, offset, _body(request, svc),
                                       Checksum("sha256", checksum) if checksum else None)
    except (BodyCut, Stopped):  # the client went away, or a newer request took over: nobody listens
        return Response(status_code=400, headers={"Upload-Complete": "?0", **where})
    except (FileTooLarge, RequestTooLarge) as exc:  # past the length, or the largest file: the upload ends
        return await _overrun(svc, who, upload_id, exc, where)
    except UploadError as exc:
        return refusal(exc, headers=where, provided_offset=offset)
    if not complete:
        info = await svc.uploads.info(who, upload_id)
        return Response(status_code=201 if created else 204, headers={**where, **_state(svc, info)})
    return await _finish(svc, who, upload_id, new_offset, where)


async def _overrun(svc: Services, who: str, upload_id: str, exc: UploadError, where: dict[str, str]) -> Response:
    try:
        info = await svc.uploads.info(who, upload_id)
        await svc.uploads.terminate(who, upload_id, "the body ran past the upload's length")
    except UploadError as gone:
        return refusal(gone, headers=where)
    if info.length is None:  # deferred: it ran past the largest file
        return refusal(exc, headers={**where, "Upload-Limit": upload_limit(svc)})
    return inconsistent(f"{exc.message}; the upload is cancelled", where)


async def _finish(svc: Services, who: str, upload_id: str, offset: int, where: dict[str, str]) -> Response:
    """Upload-Complete: ?1 with the whole body in: verify, inspect, store, answer the document."""
    try:
        info = await svc.uploads.info(who, upload_id)
        if info.length is None:
            await svc.uploads.declare_length(who, upload_id, offset)
        elif offset != info.length:
            return inconsistent(f"the upload was marked complete at {offset} bytes; its length is {info.length}",
                                {**where, "Upload-Offset": str(offset)})
        done = await svc.uploads.finish(who, upload_id)
    except UploadError as exc:
        return refusal(exc, headers=where)
    headers = {**where, "Upload-Complete": "?1", "Upload-Offset": str(offset),
               "Upload-Document-Id": str(done.document.id)}
    if done.duplicate:
        headers["Upload-Duplicate"] = "true"
    body = {"document": await svc.documents.view(done.document), "duplicate": done.duplicate}
    return JSONResponse(body, status_code=200, headers=headers)


def _completed_upload(info: UploadInfo, has_body: bool) -> Response:
    """draft 11, Upload Append: a completed upload is never modified."""
    headers = {"Upload-Offset": str(info.offset)}
    if info.document_id is not None:
        headers["Upload-Document-Id"] = str(info.document_id)
    if has_body:
        return inconsistent("the upload is already complete: it takes no more bytes", headers)
    return problem(410, "completed-upload", "upload is already completed",
                   InvalidRequest("the upload is already complete"), headers=headers)
