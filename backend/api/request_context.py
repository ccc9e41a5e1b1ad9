"""Pure ASGI middleware: a request id for every request, and one access-log line.

The id is the client's ``X-Request-ID`` when it sends a sane one (so a proxy's or a
client's id follows the request through our logs), else a new one; it is echoed in the
response's ``X-Request-ID``. Pure ASGI on purpose: the chunk bodies stream through
untouched (Starlette's ``BaseHTTPMiddleware`` would add a task and a queue per message).
The access line carries method, path (never the query string: the WebSocket may carry
its key there), status, duration, client address, owner and session.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.logs import RequestContext, request_context

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
access = logging.getLogger("backend.access")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.match(value):
                return str(value.decode("ascii"))
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        header = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif message["type"] == "websocket.accept":
                status = 101
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        started = time.perf_counter()
        with request_context(RequestContext(rid)) as ctx:
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException:
                status = status or 500
                raise
            finally:
                client = scope.get("client")
                access.info(
                    "%s %s %s", scope.get("method", "WS"), scope["path"], status,
                    extra={"method": scope.get("method", "WS"), "path": scope["path"], "status": status,
                           "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                           "client": client[0] if client else None, "owner": ctx.owner,
                           "session_id": ctx.session_id},
                )
