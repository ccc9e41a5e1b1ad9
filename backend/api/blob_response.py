"""A stored document's bytes as an HTTP response, streamed from the blob store, with ranges.

What :class:`starlette.responses.FileResponse` does for a local file, over any
:class:`~backend.storage.base.BlobStore` (an object store has no local file): ``Accept-Ranges``,
one byte range per request (``206`` with ``Content-Range``; ``416`` with
``Content-Range: bytes */size`` past the end), ``If-Range`` against the ETag, ``HEAD``
without a body. A request for several ranges gets the whole file (RFC 9110 lets a server
ignore ``Range``), and so does a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

Reader = Callable[[int, int], AsyncIterator[bytes]]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_disposition(filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` (end exclusive) for one satisfiable range; None to send it all;
    False when the range is past the end (416)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(size - n, 0), size) if n > 0 and size > 0 else False
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


def blob_response(request: Request, read: Reader, size: int, media_type: str, headers: dict[str, str]) -> Response:
    """The bytes that ``read(start, end)`` streams, as the request's method and ranges ask."""
    headers = {**headers, "accept-ranges": "bytes"}
    wanted = byte_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range != headers.get("etag"):
        wanted = None
    if wanted is False:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    status, start, end = 200, 0, size
    if isinstance(wanted, tuple):
        status, (start, end) = 206, wanted
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    headers["content-length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(read(start, end), status_code=status, headers=headers, media_type=media_type)
