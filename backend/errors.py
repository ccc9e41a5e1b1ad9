"""The one error hierarchy of the server.

Every refusal the services make is an :class:`UploadError` with a stable machine
``code``, a message for people and extra fields; it knows nothing of HTTP. Each
protocol maps codes to its own answers in one place: the REST envelope of ``API.md``
(:mod:`backend.api.errors`, the status in the tree below), and tus
(:mod:`backend.api.tus`: 460 for a checksum mismatch, 409 for an offset mismatch...).
Storage and services raise these and never import anything from the web framework.
``transient`` errors say "try again later" (the file itself is not at fault).

    UploadError                             (REST status)
    ├── InvalidRequest          invalid_request            422
    ├── InvalidChunk            invalid_chunk              422
    ├── ChecksumMismatch        checksum_mismatch          422
    ├── IntegrityFailed         integrity_failed           422
    ├── InvalidPdf              invalid_pdf                422
    ├── SecurityRejected        security_rejected          422
    ├── InspectionLimit         inspection_limit_exceeded  422 (the file needs more memory or time to inspect)
    ├── NotAPdf                 not_a_pdf                  415
    ├── FileTooLarge            file_too_large             413
    ├── RequestTooLarge         request_too_large          413 (a body over the endpoint's cap)
    ├── NotFound                not_found                  404
    ├── SessionExpired          session_expired            410
    ├── SessionNotActive        session_not_active         409
    ├── ChunkConflict           chunk_conflict             409
    ├── OffsetMismatch          offset_mismatch            409 (an append that does not start at the offset)
    ├── UploadIncomplete        upload_incomplete          409
    ├── DuplicateDocument       duplicate_document         409
    ├── Unauthorized            unauthorized               401
    ├── RequestTimeout          request_timeout            408 (the body stopped arriving; transient)
    ├── TooManyUploads          too_many_uploads           429 (transient)
    ├── RateLimited             rate_limited               429 (transient, retry_after)
    ├── ServerBusy              server_busy                503 (transient, retry_after)
    ├── StorageUnavailable      storage_unavailable        503 (a store cannot be reached; transient, retry_after)
    ├── InsufficientStorage     insufficient_storage       507 (transient)
    └── QuotaExceeded           upload_quota_exceeded      507 (the owner's unfinished uploads are too big)
"""

from __future__ import annotations

from typing import Any, ClassVar


class UploadError(Exception):
    """A refusal with a stable ``code``, a ``message`` and ``extra`` fields."""

    code: ClassVar[str] = "internal_error"
    transient: ClassVar[bool] = True  # an unknown failure is not the file's fault

    def __init__(self, message: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extra: dict[str, Any] = extra

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles whole (the sandbox hands refusals from a child process to the server)."""
        return (_rebuild, (type(self), self.message, self.retry_after, self.extra))

    def body(self) -> dict[str, Any]:
        """The JSON envelope of ``API.md`` (tus answers its security refusals with it too)."""
        body: dict[str, Any] = {"success": False, "error": self.code, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        body.update(self.extra)
        return body


class InvalidRequest(UploadError):
    code, transient = "invalid_request", False


class InvalidChunk(UploadError):
    code, transient = "invalid_chunk", False


class ChecksumMismatch(UploadError):
    code, transient = "checksum_mismatch", False


class IntegrityFailed(UploadError):
    code, transient = "integrity_failed", False


class InvalidPdf(UploadError):
    code, transient = "invalid_pdf", False


class SecurityRejected(UploadError):
    code, transient = "security_rejected", False


class InspectionLimit(UploadError):
    """The deep inspection ran out of its memory or time allowance (``limit``)."""

    code, transient = "inspection_limit_exceeded", False


class NotAPdf(UploadError):
    code, transient = "not_a_pdf", False


class FileTooLarge(UploadError):
    code, transient = "file_too_large", False


class NotFound(UploadError):
    code, transient = "not_found", False


class SessionExpired(UploadError):
    code, transient = "session_expired", False


class SessionNotActive(UploadError):
    code, transient = "session_not_active", False


class ChunkConflict(UploadError):
    code, transient = "chunk_conflict", False


class OffsetMismatch(UploadError):
    """An append that does not start where the upload's bytes end (``offset`` says where)."""

    code, transient = "offset_mismatch", False


class UploadIncomplete(UploadError):
    code, transient = "upload_incomplete", False


class DuplicateDocument(UploadError):
    code, transient = "duplicate_document", False


class RequestTooLarge(UploadError):
    code, transient = "request_too_large", False


class Unauthorized(UploadError):
    code, transient = "unauthorized", False


class RequestTimeout(UploadError):
    code, transient = "request_timeout", True


class TooManyUploads(UploadError):
    code, transient = "too_many_uploads", True


class RateLimited(UploadError):
    code, transient = "rate_limited", True


class ServerBusy(UploadError):
    code, transient = "server_busy", True


class StorageUnavailable(UploadError):
    """A backing store (PostgreSQL, S3, Redis) cannot be reached: nothing was stored."""

    code, transient = "storage_unavailable", True


class InsufficientStorage(UploadError):
    code, transient = "insufficient_storage", True


class QuotaExceeded(UploadError):
    """507 as WebDAV quotas use it (RFC 4331): the server will not store more for this owner."""

    code, transient = "upload_quota_exceeded", False


def _rebuild(cls: type[UploadError], message: str, retry_after: int | None, extra: dict[str, Any]) -> UploadError:
    return cls(message, retry_after=retry_after, **extra)
