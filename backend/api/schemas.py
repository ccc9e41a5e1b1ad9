"""Request and response bodies of the wire contract (``API.md``), for validation and /docs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

SQLITE_INT_MAX = 2**63 - 1
# A document id in a path: past SQLite's integer range, sqlite3 raised OverflowError (a 500).
DocId = Annotated[int, Path(ge=1, le=SQLITE_INT_MAX, description="A document's id")]
# What the services accept (sessions.py), stated in the schema so clients and fuzzers see it.
CLIENT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
SHA256_HEX = r"^[0-9a-fA-F]{64}$"
# A file name or a path ending in one whose last part has something visible: the server
# keeps that last part, without control characters (backend/services/filenames.py).
FILENAME = r"^(?:[\s\S]*[/\\])?[^/\\]*[^\x00-\x1f\s/\\][^/\\]*$"


class ErrorBody(BaseModel):
    success: bool = False
    error: str = Field(description="Stable machine code, e.g. checksum_mismatch")
    message: str
    model_config = ConfigDict(extra="allow")


class InitiateIn(BaseModel):
    filename: str = Field(min_length=1, max_length=1024, pattern=FILENAME)
    file_size: int = Field(gt=0)
    chunk_size: int | None = Field(None, gt=0, description="A wish; the server clamps it to 2-8 MiB")
    client_id: str | None = Field(None, max_length=128, pattern=CLIENT_ID)
    title: str | None = Field(None, max_length=500)
    check_duplicates: bool = True
    auto_build_index: bool = False
    expected_hash: str | None = Field(None, pattern=SHA256_HEX, description="SHA-256 of the whole file, hex")


class SessionOut(BaseModel):
    session_id: str
    upload_url: str
    chunk_size: int
    total_chunks: int
    expires_at: str
    websocket_room: str
    client_id: str
    filename: str
    file_size: int
    status: str
    original_filename: str | None = Field(
        None, description="The name as the client sent it, when `filename` had to be sanitized")


class ResumeIn(BaseModel):
    session_id: str = Field(max_length=64)
    client_id: str | None = Field(None, max_length=128, pattern=CLIENT_ID)
    last_chunk_id: int | None = Field(None, ge=-1)


class ResumeOut(SessionOut):
    uploaded_chunks: list[int]
    missing_chunks: list[int]
    next_chunk_id: int | None
    progress_percentage: float


class ChunkOut(BaseModel):
    success: bool = True
    chunk_id: int
    next_chunk_id: int | None
    upload_complete: bool
    message: str


class CancelIn(BaseModel):
    reason: str | None = Field(None, max_length=500)


class CancelOut(BaseModel):
    success: bool = True
    session_id: str
    status: str = "cancelled"


class ResumableOut(BaseModel):
    session_id: str
    filename: str
    total_size: int
    uploaded_chunks: int
    total_chunks: int
    progress_percentage: float
    created_at: str
    age_hours: float


class DocumentOut(BaseModel):
    id: int
    title: str
    filename: str
    file_size: int
    is_file_available: bool
    created_at: str
    sha256: str
    page_count: int | None = None
    pdf_version: str | None = None
    status: str
    security: dict[str, Any] = {}
    index_status: str = Field(description="pending, importing, indexed, no_text or failed")
    index_error: str | None = Field(
        None, description="Why the import failed (index_status failed), or why there is no text (no_text)")
    original_filename: str | None = Field(
        None, description="The name as the client sent it, when `filename` had to be sanitized (metadata only)")


class CompleteOut(BaseModel):
    document: DocumentOut
    duplicate: bool


class MemoryStatsOut(BaseModel):
    active_sessions: int
    memory_usage_mb: float
    peak_memory_mb: float
    temp_files_count: int
    temp_files_size_mb: float
    concurrent_uploads: int
    memory_limit_mb: float
    disk_space_available_mb: float
    model_config = ConfigDict(extra="allow")
