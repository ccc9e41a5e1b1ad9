"""The one place where errors become REST responses (the ``API.md`` envelope): each
domain code's HTTP status, and the headers that go with it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.body_timeout import drain, idle_bounded
from backend.api.wording import describe_all
from backend.errors import Unauthorized, UploadError

log = logging.getLogger(__name__)

#: How long a refused body may go quiet while it is read on (see :func:`drain`).
DRAIN_IDLE_SECONDS = 5.0

#: Domain code -> HTTP status, for the REST API (the tus router has its own table).
REST_STATUS: dict[str, int] = {
    "invalid_request": 422, "invalid_chunk": 422, "checksum_mismatch": 422, "integrity_failed": 422,
    "invalid_pdf": 422, "security_rejected": 422, "inspection_limit_exceeded": 422, "not_a_pdf": 415,
    "file_too_large": 413, "request_too_large": 413, "not_found": 404, "session_expired": 410,
    "session_not_active": 409, "chunk_conflict": 409, "offset_mismatch": 409, "upload_incomplete": 409,
    "duplicate_document": 409, "unauthorized": 401, "request_timeout": 408, "too_many_uploads": 429,
    "rate_limited": 429, "server_busy": 503, "insufficient_storage": 507, "upload_quota_exceeded": 507,
    "storage_unavailable": 503,
}


def rest_status(exc: UploadError) -> int:
    return REST_STATUS.get(exc.code, 500)


def rest_headers(exc: UploadError) -> dict[str, str] | None:
    """``Retry-After`` when the refusal has a hint; the auth challenge on a 401."""
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="pdf-upload"'
    return headers or None


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "file_too_large", 415: "unsupported_media_type", 416: "range_not_satisfiable"}


def _body_unread(request: Request, status: int) -> bool:
    """A refusal by the router itself (no route for the path, or not for the method): no
    endpoint ran, so a request body, if any, is still unread."""
    if status == 405:
        return True
    return status == 404 and "endpoint" not in request.scope


def envelope(status: int, code: str, message: str, headers: dict[str, str] | None = None,
             **extra: object) -> JSONResponse:
    body: dict[str, object] = {"success": False, "error": code, "message": message}
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        status = rest_status(exc)
        if status >= 500:
            log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.code, exc.message)
        return JSONResponse(exc.body(), status_code=status, headers=rest_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(422, "invalid_request", describe_all(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _body_unread(request, exc.status_code):
            await drain(idle_bounded(request.stream(), DRAIN_IDLE_SECONDS))
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return envelope(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal_error", "the server failed to handle this request; it has been logged")
