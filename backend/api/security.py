"""The active validation policy and limits, readable by anyone who may upload (no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from backend.api.deps import services
from backend.services.container import Services

router = APIRouter(tags=["security"])


@router.get("/files/security/config")
@router.get("/api/documents/security/config")
async def security_config(svc: Services = Depends(services)) -> dict[str, Any]:
    """Which finding kinds reject a file and which only flag it; scan and size limits."""
    return svc.validation.config(svc.settings)
