"""Pure ASGI middleware: a cap on every request body, without touching the bytes.

A request whose ``Content-Length`` is over its endpoint's cap is refused at once with
413 ``request_too_large`` (in the envelope); its body is never read. A request within
the cap passes untouched: the server already stops a body at its ``Content-Length``, so
the chunk path pays nothing. Only a body without a length (chunked transfer encoding)
has its ``receive`` wrapped, counting message sizes (no copy, no buffer); once the count
passes the cap the 413 is sent from here, :class:`RequestTooLarge` is raised in the
endpoint's read, and whatever the endpoint answers after that is dropped.

Caps: the chunk endpoint takes the largest chunk (8 MiB) plus 64 KiB of multipart
framing and form fields; tus (``/files/``: PATCH, and POST with creation-with-upload)
and the IETF draft (``/uploads/``: POST and PATCH) take the largest file, since a client
may send it whole in one request; every other endpoint takes
``STREAMING_MAX_REQUEST_BODY_KB``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import envelope
from backend.errors import RequestTooLarge
from backend.services.models import MAX_CHUNK

CHUNK_PATH = "/api/documents/streaming/chunk/"
UPLOAD_PATH = "/files/"
DRAFT_PATH = "/uploads/"  # the IETF resumable-upload draft: POST and PATCH, like tus
MULTIPART_ALLOWANCE = 64 << 10
CHUNK_BODY_LIMIT = MAX_CHUNK + MULTIPART_ALLOWANCE


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, default_limit: int, chunk_limit: int = CHUNK_BODY_LIMIT,
                 upload_limit: int | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.chunk_limit = chunk_limit
        self.upload_limit = upload_limit if upload_limit is not None else default_limit

    def limit_for(self, path: str) -> int:
        if path.startswith(CHUNK_PATH):
            return self.chunk_limit
        return self.upload_limit if path.startswith((UPLOAD_PATH, DRAFT_PATH)) else self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
                break
        if length is not None:
            if length > limit:
                refusal = RequestTooLarge(f"the request body is {length} bytes; this endpoint takes at most {limit}",
                                          limit=limit)
                await envelope(413, refusal.code, refusal.message, limit=limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused, started
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exc = RequestTooLarge(f"the request body passed {limit} bytes, the most this endpoint takes",
                                          limit=limit)
                    if not started:  # answer now: a framework may turn a failed read into its own 400
                        refused = started = True
                        await envelope(413, exc.code, exc.message, limit=limit)(scope, receive, send)
                    raise exc
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; whatever the endpoint makes of the failed read does not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not refused:
                raise
