"""The application factory: ``create_app(settings)`` wires services, routers and handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse

from backend.api import documents, security, streaming, websocket
from backend.api.errors import install_error_handlers
from backend.services.container import build_services
from backend.settings import Settings, get_settings

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings)
        app.state.services = svc
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = FastAPI(
        title="Resumable PDF upload server",
        version="0.1.0",
        description="Chunked, resumable, verified PDF uploads with live progress. Contract: API.md.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(streaming.router)
    app.include_router(security.router)
    app.include_router(documents.router)
    app.include_router(websocket.router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html", media_type="text/html")

    @app.get("/upload.js", include_in_schema=False)
    async def upload_js() -> FileResponse:
        return FileResponse(FRONTEND / "upload.js", media_type="text/javascript")

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
