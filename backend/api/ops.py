"""Operations: ``/health`` (liveness), ``/ready`` (readiness), ``/metrics`` (Prometheus).

Open without an API key, for probes and scrapers: none of them tells anything about an
owner (aggregate counts, the ok/not-ok of each check, no paths). Keep them off the
public internet with the network, as usual for these endpoints.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from backend.api.deps import services
from backend.api.errors import envelope
from backend.services import readiness
from backend.composition import Services
from backend.services.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> JSONResponse:
    """Liveness: the process serves requests. Nothing else is checked."""
    return JSONResponse({"status": "ok"})


@router.get("/ready", responses={503: {"description": "not ready: `not_ready` with the failing `checks`"}})
async def ready(svc: Services = Depends(services)) -> JSONResponse:
    """Readiness: state, data and partial-file directories writable with enough free
    space (`STREAMING_READY_MIN_FREE_MB`), the document index loaded, and the start-up
    set-up that needs the stores (S3, Redis, PostgreSQL) done."""
    ok, checks = await asyncio.get_running_loop().run_in_executor(
        svc.pool, readiness.check, svc.settings, lambda: svc.importer.index_state, lambda: svc.storage_state)
    if not ok:
        failing = ", ".join(name for name, c in checks.items() if not c["ok"])
        return envelope(503, "not_ready", f"not ready: {failing}", checks=checks)
    body: dict[str, Any] = {"status": "ready", "checks": checks}
    return JSONResponse(body)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition"}})
async def metrics(svc: Services = Depends(services)) -> Response:
    """Prometheus metrics of this process (`pdfupload_*`)."""
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE)
