"""Dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import HTTPConnection

from backend.services.container import Services

SINGLE_OWNER = "local"


def services(request: HTTPConnection) -> Services:
    svc: Services = request.app.state.services
    return svc


def owner(request: Request) -> str:
    """Who is calling. One owner until API keys arrive; every service is owner-scoped already."""
    return SINGLE_OWNER
