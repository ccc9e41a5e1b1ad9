"""Dependencies shared by the routers: the services, and who is calling.

Every router of the API (streaming, documents, search, security config) depends on
:func:`owner` as a whole, so a route added to them later is authenticated too; OpenAPI
shows the Bearer scheme on each. Open without a key: ``/health``, ``/ready``,
``/metrics``, the page (``/``, ``/static``) and ``/docs``.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from backend.errors import Unauthorized
from backend.logs import bind_owner
from backend.services.auth import SINGLE_OWNER, KeyRing
from backend.composition import Services

__all__ = ["SINGLE_OWNER", "authenticate", "client_ip", "owner", "services"]

bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey",
    description="An API key from STREAMING_API_KEYS (not needed when the server runs without keys).",
)


async def services(request: HTTPConnection) -> Services:
    """Async on purpose: a sync dependency costs a thread hop on every request."""
    svc: Services = request.app.state.services
    return svc


def authenticate(conn: HTTPConnection, key: str | None) -> str:
    """The owner of ``key`` (a counted 401 ``Unauthorized`` when keys are on and it is wrong)."""
    ring: KeyRing = conn.app.state.keys
    try:
        who = ring.owner_of(key)
    except Unauthorized:
        svc: Services | None = getattr(conn.app.state, "services", None)
        if svc is not None:
            svc.metrics.auth_failures.inc()
        raise
    bind_owner(who)
    return who


async def owner(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
    """Who is calling: the owner of the Bearer key, or the single owner when no keys are set."""
    return authenticate(request, credentials.credentials if credentials is not None else None)


def client_ip(conn: HTTPConnection) -> str | None:
    """The peer's address (uvicorn puts X-Forwarded-For's there only for trusted proxies)."""
    return conn.client.host if conn.client is not None else None
