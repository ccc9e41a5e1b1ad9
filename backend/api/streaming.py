"""``/api/documents/streaming``: the seven endpoints of the chunked upload contract.

Every route needs the caller's key (:func:`owner`, on the router). Opening a session
is rate-limited per owner and per client address; each request's log lines carry its
session id; chunk latency and refusals feed the metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.requests import ClientDisconnect

from backend.api.body_timeout import drain, idle_bounded
from backend.api.deps import client_ip, owner, services
from backend.api.links import INITIATE_LINKS
from backend.api.multipart import ChunkForm
from backend.api.schemas import (
    CancelIn, CancelOut, ChunkOut, CompleteOut, ErrorBody, InitiateIn, MemoryStatsOut, ResumableOut, ResumeIn,
    ResumeOut, SessionOut,
)
from backend.errors import InvalidChunk, RequestTooLarge, UploadError
from backend.logs import bind_session
from backend.composition import Services
from backend.services.live import LiveSession
from backend.services.models import iso
from backend.services.sessions import InitiateRequest

router = APIRouter(prefix="/api/documents/streaming", tags=["streaming upload"], dependencies=[Depends(owner)])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 408, 409, 410, 413, 415, 422, 429, 503, 507)
}

CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["chunk_id", "file"],
            "properties": {
                "chunk_id": {"type": "integer", "minimum": 0, "description": "0-based; before `file`"},
                "chunk_offset": {"type": "integer", "description": "chunk_id * chunk_size; before `file`"},
                "is_final": {"type": "string", "enum": ["true", "false"], "description": "informational"},
                "checksum": {"type": "string", "description": "SHA-256 of this chunk, hex"},
                "file": {"type": "string", "format": "binary"},
            },
        }}},
    }
}


def session_view(live: LiveSession) -> dict[str, Any]:
    s = live.session
    return {
        "session_id": s.session_id,
        "upload_url": f"/api/documents/streaming/chunk/{s.session_id}",
        "chunk_size": s.chunk_size,
        "total_chunks": s.total_chunks,
        "expires_at": iso(s.expires_at),
        "websocket_room": f"upload_{s.session_id}",
        "client_id": s.client_ids[-1],
        "filename": s.filename,
        "file_size": s.file_size,
        "status": s.status,
        "original_filename": s.original_filename,
    }


@router.post("/initiate", status_code=201, response_model=SessionOut, responses={**ERRORS, 201: INITIATE_LINKS})
async def initiate(body: InitiateIn, request: Request, svc: Services = Depends(services),
                   who: str = Depends(owner)) -> dict[str, Any]:
    """Open an upload session. The server chooses the chunk size (2-8 MiB).

    Rate-limited per owner and per client address (429 `rate_limited` with
    `Retry-After`); capped per owner: unfinished sessions (429 `too_many_uploads`) and
    their total size (507 `upload_quota_exceeded`)."""
    await svc.rate_limits.check(who, client_ip(request))
    live = await svc.uploads.create(who, InitiateRequest(**body.model_dump()))
    bind_session(live.id)
    return session_view(live)


def _int_field(fields: dict[str, str], name: str, required: bool) -> int | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidChunk(f"form field {name!r} is required (and must come before 'file')")
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidChunk(f"form field {name!r} must be an integer, not {raw[:40]!r}") from None


@router.post("/chunk/{session_id}", response_model=ChunkOut, responses=ERRORS, openapi_extra=CHUNK_BODY)
async def upload_chunk(
    session_id: str, request: Request, svc: Services = Depends(services), who: str = Depends(owner)
) -> dict[str, Any]:
    """Send one chunk (multipart form: `chunk_id`, `chunk_offset`, `is_final`, `checksum`, `file`).

    Streamed to its place in the partial file while hashed; in any order, in parallel,
    retried at will (same bytes again: success; other bytes: 409 `chunk_conflict`)."""
    bind_session(session_id)
    started = time.perf_counter()
    stream = idle_bounded(request.stream(), svc.settings.body_idle_timeout_seconds)
    try:
        form = ChunkForm(stream, request.headers.get("content-type", ""))
        await form.read_fields()
        chunk_id = _int_field(form.fields, "chunk_id", required=True)
        offset = _int_field(form.fields, "chunk_offset", required=False)
        assert chunk_id is not None
        result = await svc.uploads.write_chunk(
            who, session_id, chunk_id, offset, lambda: form.fields.get("checksum") or None, form.file_data()
        )
    except ClientDisconnect:
        svc.metrics.chunk_refused("client_disconnected")
        raise InvalidChunk("the client went away before the chunk was complete") from None
    except UploadError as exc:
        svc.metrics.chunk_refused(exc.code)
        if not isinstance(exc, RequestTooLarge):  # an oversized body is not worth reading on
            await drain(stream)
        raise
    svc.metrics.chunk_accepted(time.perf_counter() - started)
    return {
        "success": True, "chunk_id": result.chunk_id, "next_chunk_id": result.next_chunk_id,
        "upload_complete": result.upload_complete,
        "message": "Chunk already received" if result.duplicate else "Chunk uploaded successfully",
    }


@router.post("/complete/{session_id}", response_model=CompleteOut, responses=ERRORS)
async def complete(session_id: str, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    """Verify, validate, store and record the file. Calling it again returns the same document."""
    bind_session(session_id)
    done = await svc.uploads.finish(who, session_id)
    return {"document": await svc.documents.view(done.document), "duplicate": done.duplicate}


@router.post("/resume", response_model=ResumeOut, responses=ERRORS)
async def resume(body: ResumeIn, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    """Which chunks the server really holds (checked against the bytes on disk)."""
    bind_session(body.session_id)
    live = await svc.sessions.resume(who, body.session_id, body.client_id)
    s = live.session
    view = session_view(live)
    if body.client_id is not None:
        view["client_id"] = body.client_id
    view.update(
        uploaded_chunks=sorted(s.chunks), missing_chunks=s.missing_chunks(), next_chunk_id=s.next_chunk_id(),
        progress_percentage=s.progress_percentage,
    )
    return view


@router.post("/cancel/{session_id}", response_model=CancelOut, responses=ERRORS)
async def cancel(
    session_id: str, body: CancelIn | None = Body(None), svc: Services = Depends(services),
    who: str = Depends(owner),
) -> dict[str, Any]:
    """Stop an upload: its partial file and saved state are removed."""
    bind_session(session_id)
    await svc.uploads.terminate(who, session_id, body.reason if body else None)
    return {"success": True, "session_id": session_id, "status": "cancelled"}


@router.get("/resumable", response_model=list[ResumableOut])
async def resumable(svc: Services = Depends(services), who: str = Depends(owner)) -> list[dict[str, Any]]:
    """The caller's unfinished, unexpired sessions."""
    now = time.time()
    return [
        {
            "session_id": lv.id, "filename": lv.session.filename, "total_size": lv.session.file_size,
            "uploaded_chunks": len(lv.session.chunks), "total_chunks": lv.session.total_chunks,
            "progress_percentage": lv.session.progress_percentage, "created_at": iso(lv.session.created_at),
            "age_hours": round((now - lv.session.created_at) / 3600, 2),
        }
        for lv in svc.sessions.resumable(who)
    ]


@router.get("/memory-stats", response_model=MemoryStatsOut)
async def memory_stats(svc: Services = Depends(services)) -> dict[str, Any]:
    """Resident memory (psutil), bytes in flight, backpressure, partial files, disk space."""
    return await svc.stats.snapshot()
