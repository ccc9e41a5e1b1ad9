"""Python client and CLI (``pdf-upload``) for the resumable chunked PDF upload server.

``AsyncUploader`` uploads one file at a time (chunks in parallel, checksummed, retried,
resumable from a small local state file); ``Api`` is the thin typed HTTP wrapper under it.
"""

from pdf_upload_client.api import Api, ClientError, RetryPolicy, ServerError, Unavailable
from pdf_upload_client.state import Fingerprint, StateStore, UploadState
from pdf_upload_client.uploader import AsyncUploader, ResumeImpossible, UploadCancelled, UploadResult

__all__ = [
    "Api", "AsyncUploader", "ClientError", "Fingerprint", "ResumeImpossible", "RetryPolicy", "ServerError",
    "StateStore", "Unavailable", "UploadCancelled", "UploadResult", "UploadState",
]
