"""The one error hierarchy of the server.

Every refusal the services make is an :class:`UploadError` with a stable machine
``code`` and an HTTP ``status``; the API layer turns it into the error envelope of
``API.md`` in exactly one exception handler. Storage and services raise these and
never import anything from the web framework.

    UploadError
    ├── InvalidRequest          422 invalid_request
    ├── InvalidChunk            422 invalid_chunk
    ├── ChecksumMismatch        422 checksum_mismatch
    ├── IntegrityFailed         422 integrity_failed
    ├── InvalidPdf              422 invalid_pdf
    ├── SecurityRejected        422 security_rejected
    ├── InspectionLimit         422 inspection_limit_exceeded (the file needs more memory or time to inspect)
    ├── NotAPdf                 415 not_a_pdf
    ├── FileTooLarge            413 file_too_large
    ├── RequestTooLarge         413 request_too_large  (a body over the endpoint's cap)
    ├── NotFound                404 not_found
    ├── SessionExpired          410 session_expired
    ├── SessionNotActive        409 session_not_active
    ├── ChunkConflict           409 chunk_conflict
    ├── UploadIncomplete        409 upload_incomplete
    ├── DuplicateDocument       409 duplicate_document
    ├── Unauthorized            401 unauthorized       (WWW-Authenticate: Bearer)
    ├── RequestTimeout          408 request_timeout  (the body stopped arriving)
    ├── TooManyUploads          429 too_many_uploads
    ├── RateLimited             429 rate_limited     (Retry-After)
    ├── ServerBusy              503 server_busy      (Retry-After)
    ├── InsufficientStorage     507 insufficient_storage
    └── QuotaExceeded           507 upload_quota_exceeded (the owner's unfinished uploads are too big)
"""

from __future__ import annotations

from typing import Any, ClassVar


class UploadError(Exception):
    """A refusal with a stable ``code``, an HTTP ``status`` and extra body fields."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extra: dict[str, Any] = extra

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles whole (the sandbox hands refusals from a child process to the server)."""
        return (_rebuild, (type(self), self.message, self.retry_after, self.extra))

    def body(self) -> dict[str, Any]:
        """The JSON envelope of ``API.md``."""
        body: dict[str, Any] = {"success": False, "error": self.code, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str] | None:
        """HTTP headers that go with the refusal (``Retry-After`` when there is a hint)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None


class InvalidRequest(UploadError):
    code, status = "invalid_request", 422


class InvalidChunk(UploadError):
    code, status = "invalid_chunk", 422


class ChecksumMismatch(UploadError):
    code, status = "checksum_mismatch", 422


class IntegrityFailed(UploadError):
    code, status = "integrity_failed", 422


class InvalidPdf(UploadError):
    code, status = "invalid_pdf", 422


class SecurityRejected(UploadError):
    code, status = "security_rejected", 422


class InspectionLimit(UploadError):
    """The deep inspection ran out of its memory or time allowance (``limit``)."""

    code, status = "inspection_limit_exceeded", 422


class NotAPdf(UploadError):
    code, status = "not_a_pdf", 415


class FileTooLarge(UploadError):
    code, status = "file_too_large", 413


class NotFound(UploadError):
    code, status = "not_found", 404


class SessionExpired(UploadError):
    code, status = "session_expired", 410


class SessionNotActive(UploadError):
    code, status = "session_not_active", 409


class ChunkConflict(UploadError):
    code, status = "chunk_conflict", 409


class UploadIncomplete(UploadError):
    code, status = "upload_incomplete", 409


class DuplicateDocument(UploadError):
    code, status = "duplicate_document", 409


class RequestTooLarge(UploadError):
    code, status = "request_too_large", 413


class Unauthorized(UploadError):
    code, status = "unauthorized", 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": 'Bearer realm="pdf-upload"'}


class RequestTimeout(UploadError):
    code, status = "request_timeout", 408


class TooManyUploads(UploadError):
    code, status = "too_many_uploads", 429


class RateLimited(UploadError):
    code, status = "rate_limited", 429


class ServerBusy(UploadError):
    code, status = "server_busy", 503


class InsufficientStorage(UploadError):
    code, status = "insufficient_storage", 507


class QuotaExceeded(UploadError):
    """507 as WebDAV quotas use it (RFC 4331): the server will not store more for this owner."""

    code, status = "upload_quota_exceeded", 507


def _rebuild(cls: type[UploadError], message: str, retry_after: int | None, extra: dict[str, Any]) -> UploadError:
    return cls(message, retry_after=retry_after, **extra)
