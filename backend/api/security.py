"""The active validation policy and limits, readable by anyone who may upload (no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from backend.api.body_limit import CHUNK_BODY_LIMIT
from backend.api.deps import owner, services
from backend.services.auth import KeyRing
from backend.composition import Services
from backend.services.filenames import MAX_BYTES

router = APIRouter(tags=["security"], dependencies=[Depends(owner)])


@router.get("/files/security/config")
@router.get("/api/documents/security/config")
async def security_config(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """Which finding kinds reject a file and which only flag it; scan and size limits;
    the perimeter: authentication mode, rate limits, per-owner caps, body caps, the
    file-name policy and CORS origins. Never a key or an owner's name."""
    config = svc.validation.config(svc.settings)
    s = svc.settings
    ring: KeyRing = request.app.state.keys
    config["limits"].update(
        max_open_sessions_per_owner=s.max_open_sessions_per_owner,
        max_pending_bytes_per_owner=s.max_pending_bytes_per_owner,
        max_request_body=s.max_request_body,
        max_chunk_request_body=CHUNK_BODY_LIMIT,
    )
    config["rate_limits"] = {"session_creation": svc.rate_limits.config()}
    config["authentication"] = {"required": ring.enabled, "scheme": "Bearer" if ring.enabled else None,
                                "websocket": "Authorization header or ?token=" if ring.enabled else None}
    config["filenames"] = {"sanitized": True, "max_bytes": MAX_BYTES,
                           "removed": "path components, control and format characters",
                           "replaced": '<>:"|?* with _', "reserved_names": "CON, PRN, AUX, NUL, COM1-9, LPT1-9 "
                           "get a leading _", "original_kept_as": "original_filename"}
    config["cors"] = {"origins": s.cors_origin_list}
    return config
