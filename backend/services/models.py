"""The upload session: its persisted record, and the chunk-size rule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

MIB = 1024 * 1024
MIN_CHUNK = 2 * MIB
MAX_CHUNK = 8 * MIB
SMALL_FILE = 10 * MIB
MEDIUM_FILE = 100 * MIB

UPLOADING, PROCESSING, COMPLETED, FAILED, CANCELLED = "uploading", "processing", "completed", "failed", "cancelled"


def choose_chunk_size(file_size: int, requested: int, minimum: int = MIN_CHUNK) -> int:
    """API.md: under 10 MB 2 MiB; else the request, clamped to ``minimum``-8 MiB (the
    server chooses: ``minimum`` is 5 MiB in S3 mode, S3's least part size)."""
    if file_size < SMALL_FILE:
        return MIN_CHUNK
    size = min(max(requested, minimum, MIN_CHUNK), MAX_CHUNK)
    return size


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: float | datetime) -> str:
    if not isinstance(ts, datetime):
        ts = datetime.fromtimestamp(ts, timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Session:
    """What is persisted per session. ``chunks`` maps chunk id to the SHA-256 of its bytes."""

    session_id: str
    owner: str
    filename: str
    title: str
    file_size: int
    chunk_size: int
    created_at: float
    expires_at: float
    client_ids: list[str] = field(default_factory=list)
    check_duplicates: bool = True
    auto_build_index: bool = False
    expected_hash: str | None = None
    status: str = UPLOADING
    chunks: dict[int, str] = field(default_factory=dict)
    sha256: str | None = None
    document_id: int | None = None
    duplicate: bool = False
    error: dict[str, Any] | None = None
    scan: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0
    original_filename: str | None = None  # as the client sent it, when sanitizing changed it
    protocol: str = "chunks"  # the dialect that opened it: "chunks" (API.md) or "tus"
    metadata: dict[str, str] = field(default_factory=dict)  # tus Upload-Metadata, decoded
    # Appends (tus): the bytes of the first missing chunk already received, {"length", "sha256"}.
    tail: dict[str, Any] | None = None
    # The length is not known yet: ``file_size`` is the largest allowed until it is declared.
    length_deferred: bool = False
    # Concatenation: "partial" (a piece of another upload: no header check, never finished
    # on its own) or "final" (made of ``parts``, upload ids, in order).
    concat: str | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def unfinished(self) -> bool:
        """Still holding (or about to hold) a partial file: counts against the owner's caps."""
        return self.status in (UPLOADING, PROCESSING)

    @property
    def total_chunks(self) -> int:
        return math.ceil(self.file_size / self.chunk_size)

    def chunk_length(self, chunk_id: int) -> int:
        return min(self.chunk_size, self.file_size - chunk_id * self.chunk_size)

    def missing_chunks(self) -> list[int]:
        return [i for i in range(self.total_chunks) if i not in self.chunks]

    def next_chunk_id(self) -> int | None:
        return next((i for i in range(self.total_chunks) if i not in self.chunks), None)

    @property
    def recorded_prefix(self) -> int:
        """Bytes in the recorded chunks that run from the start without a gap."""
        n = 0
        while n in self.chunks:
            n += 1
        return min(n * self.chunk_size, self.file_size)

    @property
    def tail_offset(self) -> int | None:
        """Where the tail starts (the first missing chunk), if there is one."""
        return self.recorded_prefix if self.tail is not None else None

    @property
    def offset(self) -> int:
        """The contiguous bytes from the start: recorded chunks, then the tail."""
        return self.recorded_prefix + (int(self.tail["length"]) if self.tail else 0)

    @property
    def uploaded_bytes(self) -> int:
        return sum(self.chunk_length(i) for i in self.chunks) + (int(self.tail["length"]) if self.tail else 0)

    @property
    def progress_percentage(self) -> float:
        return round(100.0 * self.uploaded_bytes / self.file_size, 2)

    @property
    def complete(self) -> bool:
        return not self.length_deferred and len(self.chunks) == self.total_chunks

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready snapshot, safe to serialize in another thread while the session
        changes: its containers are copied one level deep. (``dataclasses.asdict`` copied
        the scan summary object by object: ~1.5 ms per saved chunk on the event loop.)
        ``scan`` and ``error`` are replaced, never changed in place, so they are shared."""
        record = {name: getattr(self, name) for name in _FIELDS}
        record["client_ids"] = list(self.client_ids)
        record["chunks"] = {str(k): v for k, v in self.chunks.items()}
        record["metadata"] = dict(self.metadata)
        record["parts"] = list(self.parts)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Session:
        values = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        values["chunks"] = {int(k): v for k, v in record.get("chunks", {}).items()}
        return cls(**values)


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Session))
