"""uvicorn's httptools protocol with a bound on the request head, and JSON refusals.

httptools puts no limit on the request line and headers: uvicorn accepted a 64 MiB
header (and spent 16 s of CPU gluing its pieces together, quadratically) before the
app saw anything. Here the bytes of a request's head are counted as they arrive; past
``MAX_HEAD`` (without the blank line that ends the head) the connection gets a 431 and
is closed. The count is coarse on purpose (whole reads, a few bytes kept to find the
blank line across reads): the head can exceed the limit by at most one socket read,
and the body path costs one attribute test per read.

The 400 that uvicorn sends itself for a request it cannot parse is sent in the error
envelope of ``API.md`` too, so every refusal is JSON.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD = 64 << 10
_END = b"\r\n\r\n"


def _refusal(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"success": False, "error": code, "message": message}).encode()
    head = (b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return STATUS_LINE[status] + head + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _in_head = True
    _head_bytes = 0
    _tail = b""
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._refused:
                return  # the connection is closing; nothing more is parsed
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD and _END not in self._tail + data:
                self._refused = True
                self.transport.write(_refusal(431, "headers_too_large",
                                              f"the request line and headers exceed {MAX_HEAD} bytes"))
                self.transport.close()
                return
            self._tail = data[-3:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        if not self._in_head:  # a later request on a kept-alive connection
            self._in_head, self._head_bytes, self._tail = True, 0, b""
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_refusal(400, "bad_request", msg))
        self.transport.close()
