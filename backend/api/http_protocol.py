"""uvicorn's httptools protocol with a bound on the request head, JSON refusals, and
request bodies handed on without uvicorn's two copies of every byte.

httptools puts no limit on the request line and headers: uvicorn accepted a 64 MiB
header (and spent 16 s of CPU gluing its pieces together, quadratically) before the
app saw anything. Here the bytes of a request's head are counted as they arrive; past
``MAX_HEAD`` (without the blank line that ends the head) the connection gets a 431 and
is closed. The count is coarse on purpose (whole reads, a few bytes kept to find the
blank line across reads): the head can exceed the limit by at most one socket read,
and the body path costs one attribute test per read.

The 400 that uvicorn sends itself for a request it cannot parse is sent in the error
envelope of ``API.md`` too, so every refusal is JSON.

Bodies: uvicorn collects body pieces with ``cycle.body += piece`` into a ``bytearray``
and hands them to the app as ``bytes(cycle.body)``: two copies of every byte of every
chunk, on the event loop thread, holding the GIL (measured: ~0.1 s of a 256 MiB upload's
0.45 s on the loop thread). :class:`BodyPieces` takes their place: ``+=`` keeps a
reference to the piece httptools made, and ``bytes()`` returns that very object when it
is alone (the usual case: uvicorn pauses reading after each socket read of more than
64 KiB), joining only when several wait. It relies on two lines of uvicorn's
``RequestResponseCycle`` (``body += piece`` in ``on_body`` and ``bytes(self.body)`` in
``receive``); ``tests/api/test_http_protocol.py`` checks both, so an uvicorn upgrade that
changes them fails a test instead of slowing down or breaking uploads.

A body of known length (``Content-Length``, the only kind our clients send) is not fed
to httptools past the read that holds the end of the head: httptools hands each body
piece on as a new ``bytes``, a copy of the socket read's (measured: memmove and the page
faults of fresh buffers, ~0.2-0.3 CPU-s per GiB). The protocol counts the body's bytes
itself and passes each read on as it came; when the body is whole it starts a fresh
parser for the next request on the connection (the old one still waits for the body it
never saw) and ends the message as httptools would. Bytes after the body in the same
read (a pipelined request) go to the fresh parser. A chunked body, an upgrade and the
head itself still go through httptools.
"""

from __future__ import annotations

import json
from typing import Any, SupportsIndex

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD = 64 << 10
_END = b"\r\n\r\n"


def _refusal(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"success": False, "error": code, "message": message}).encode()
    head = (b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return STATUS_LINE[status] + head + body


class BodyPieces:
    """What ``cycle.body`` holds between two ``receive()`` calls: the pieces themselves."""

    __slots__ = ("_pieces", "_size")

    def __init__(self, start: bytes | bytearray = b"") -> None:
        self._pieces: list[bytes] = [bytes(start)] if start else []
        self._size = len(start)

    def __iadd__(self, piece: bytes) -> BodyPieces:
        if piece:
            self._pieces.append(piece)
            self._size += len(piece)
        return self

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __bytes__(self) -> bytes:
        if len(self._pieces) == 1:
            return self._pieces[0]
        return b"".join(self._pieces)

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        return bytes(self)[index]

    def __eq__(self, other: object) -> bool:
        return bytes(self) == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like the bytearray it stands for


class UploadHttpProtocol(HttpToolsProtocol):
    """Pass to ``uvicorn.run(http=...)``; behaves as ``http=\"httptools\"`` otherwise."""

    _in_head = True
    _head_bytes = 0
    _tail = b""
    _refused = False
    _body_left = 0  # bytes of a Content-Length body still to come, not shown to httptools

    def data_received(self, data: bytes) -> None:
        if self._body_left:
            self._body_received(data)
            return
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

    def _body_received(self, data: bytes) -> None:
        """A read inside a Content-Length body: handed on whole, as httptools would have."""
        self._unset_keepalive_if_required()
        rest = b""
        if len(data) > self._body_left:  # the next request starts in this read
            data, rest = data[:self._body_left], data[self._body_left:]
        self.on_body(data)
        if self._body_left:
            return
        self.parser = self._fresh_parser()
        self.on_message_complete()
        if rest:
            self.data_received(rest)

    def _fresh_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        try:  # as uvicorn sets up its own
            parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # pragma: no cover  (httptools < 0.6.3)
            pass
        return parser

    def on_message_begin(self) -> None:
        if not self._in_head:  # a later request on a kept-alive connection
            self._in_head, self._head_bytes, self._tail = True, 0, b""
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        self._body_left = self._content_length()

    def _content_length(self) -> int:
        """The body's length when the protocol may count it itself, else 0 (httptools has
        checked the headers already: one Content-Length of digits, not with chunked)."""
        if self.parser.should_upgrade():
            return 0
        length = 0
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return 0
            if name == b"content-length":
                length = int(value)
        return length

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_refusal(400, "bad_request", msg))
        self.transport.close()

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        cycle = self.cycle
        current: object = cycle.body
        if type(current) is not BodyPieces:
            cycle.body = BodyPieces(cycle.body)  # type: ignore[assignment]
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_left = 0
        super().on_message_complete()
