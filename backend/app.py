"""The application factory: ``create_app(settings)`` wires services, routers and handlers.

Middleware, outermost first, all pure ASGI: the request context (request id, access
log), CORS (when ``STREAMING_CORS_ORIGINS`` is set), the body cap, tus's version check
and headers (``/files/``). Keys are read here,
so a bad key configuration stops the server before it listens. The API docs (``/docs``)
load their scripts from this server (``DOCS_ASSETS``), never from a CDN."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from backend.api import documents, ops, resumable, search, security, streaming, tus, websocket
from backend.api.body_limit import BodyLimitMiddleware
from backend.api.errors import envelope, install_error_handlers
from backend.api.request_context import RequestContextMiddleware
from backend.errors import NotFound
from backend.services.auth import KeyRing
from backend.composition import build_services
from backend.settings import Settings, get_settings

FRONTEND_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"  # written by `make frontend`
UPPY_DIST = FRONTEND_DIST.parent / "uppy" / "dist"  # written by `make uppy`
STATIC_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
STATIC_TYPES = {".js": "text/javascript", ".map": "application/json", ".css": "text/css", ".html": "text/html"}
# What the browser client reads from responses, and sends, across origins.
CORS_EXPOSE = ["Retry-After", "X-Request-ID", "Content-Range", "Accept-Ranges", "Content-Length",
               "Content-Disposition", "ETag"]
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "Range"]
# Swagger UI's script and style and a favicon, shipped by the fastapi-offline package.
DOCS_ASSETS = "/docs/static"


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

    app = FastAPIOffline(
        title="Resumable PDF upload server",
        version="0.1.0",
        description="Chunked, resumable, verified PDF uploads with live progress. Contract: API.md.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        redoc_url=None,  # ReDoc's bundle always loads its logo from cdn.redoc.ly: /docs only
    )
    app.state.settings = settings
    app.state.keys = KeyRing.from_settings(settings)
    install_error_handlers(app)
    app.add_middleware(tus.TusMiddleware)
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_request_body,
                       upload_limit=settings.max_file_size)
    app.add_middleware(resumable.UploadLimitMiddleware, max_size=settings.max_file_size)  # on the cap's 413 too
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
                           allow_headers=CORS_ALLOW_HEADERS + tus.CORS_ALLOW + resumable.CORS_ALLOW,
                           expose_headers=CORS_EXPOSE + tus.CORS_EXPOSE + resumable.CORS_EXPOSE, max_age=600)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(ops.router)
    app.include_router(streaming.router)
    app.include_router(tus.router)
    app.include_router(resumable.router)
    app.include_router(security.router)
    app.include_router(search.router)  # before documents: /search is not a {doc_id}
    app.include_router(documents.router)
    app.include_router(websocket.router)

    @app.get("/", include_in_schema=False, response_model=None)
    async def index() -> FileResponse | JSONResponse:
        page = FRONTEND_DIST / "index.html"
        if not page.is_file():
            return envelope(503, "frontend_not_built", "frontend not built: run make run (or make frontend)")
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/uppy", include_in_schema=False, response_model=None)
    async def uppy_page() -> FileResponse | JSONResponse:
        """Uppy's Dashboard with @uppy/tus against ``/files/``: the tus clients, unchanged."""
        page = UPPY_DIST / "index.html"
        if not page.is_file():
            return envelope(503, "frontend_not_built", "the Uppy page is not built: run make run (or make uppy)")
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/uppy/static/{name}", include_in_schema=False)
    async def uppy_static(name: str) -> FileResponse:
        return _static(UPPY_DIST, name)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        """The built page's files (``frontend/dist``, flat: no sub-directories)."""
        return _static(FRONTEND_DIST, name)

    return app


def _static(folder: Path, name: str) -> FileResponse:
    path = folder / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise NotFound(f"no static file {name!r}")
    media = STATIC_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})
