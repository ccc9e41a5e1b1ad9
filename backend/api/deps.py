"""Dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import HTTPConnection

from backend.services.container import Services

SINGLE_OWNER = "local"


async def services(request: HTTPConnection) -> Services:
    """Async on purpose: a sync dependency costs a thread hop on every request."""
    svc: Services = request.app.state.services
    return svc


async def owner(request: Request) -> str:
    """Who is calling. One owner until API keys arrive; every service is owner-scoped already."""
    return SINGLE_OWNER
