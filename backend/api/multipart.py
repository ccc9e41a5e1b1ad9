"""A chunk upload's multipart body, parsed as it streams (python-multipart's push parser).

Nothing is spooled: the small form fields are collected, and the ``file`` part's bytes
are handed on piece by piece as they come off the socket. Fields needed to place the
chunk (``chunk_id``, ``chunk_offset``) must come before the file part, as every client
of ``API.md`` sends them; fields after it (a late ``checksum``) are read once the file
part has been consumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from backend.errors import InvalidChunk, InvalidRequest

MAX_FIELD = 1024
MAX_FIELDS = 16
FILE_FIELD = "file"


class ChunkForm:
    """Iterate ``file_data()`` once; ``fields`` is complete after it is exhausted."""

    def __init__(self, stream: AsyncIterator[bytes], content_type: str) -> None:
        ctype, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise InvalidRequest("a chunk must be sent as multipart/form-data with a boundary")
        self.fields: dict[str, str] = {}
        self._stream = stream
        self._events: list[tuple[str, Any]] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._part: str | None = None
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._field_buf = bytearray()
        self._ended = False
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        })

    # -- parser callbacks (synchronous, inside parser.write) -----------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_name = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        key = self._header_name.lower()
        self._headers[key] = self._headers.get(key, b"") + data[start:end]

    def _on_header_end(self) -> None:
        self._header_name = b""

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part = params.get(b"name", b"").decode("utf-8", "replace")
        self._in_file = self._part == FILE_FIELD
        if self._in_file:
            if self._file_seen:
                raise InvalidRequest("only one file part is allowed")
            self._file_seen = True
        elif len(self.fields) >= MAX_FIELDS:
            raise InvalidRequest("too many form fields")
        self._field_buf = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            # A whole received message is passed on as it is (no view), so consumers
            # that need ``bytes`` (the PDF scanner) do not have to copy it.
            piece = data if start == 0 and end == len(data) else memoryview(data)[start:end]
            self._events.append(("data", piece))
        else:
            self._field_buf += data[start:end]
            if len(self._field_buf) > MAX_FIELD:
                raise InvalidRequest(f"form field {self._part!r} is longer than {MAX_FIELD} bytes")

    def _on_part_end(self) -> None:
        if self._in_file:
            self._events.append(("file_end", None))
            self._in_file = False
        elif self._part:
            self.fields[self._part] = self._field_buf.decode("utf-8", "replace").strip()

    def _on_end(self) -> None:
        self._ended = True

    # -- driving ----------------------------------------------------------------------

    async def _feed(self) -> bool:
        """Parse the next piece of the body; False when the body has ended."""
        try:
            piece = await anext(self._stream)
        except StopAsyncIteration:
            return False
        try:
            self._parser.write(piece)
        except MultipartParseError as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from exc
        return True

    async def read_fields(self) -> None:
        """Read until the file part starts (or the body ends)."""
        while not self._file_seen and not self._ended:
            if not await self._feed():
                break

    async def file_data(self) -> AsyncIterator[bytes | memoryview]:
        if not self._file_seen:
            raise InvalidRequest("the form has no 'file' part")
        while True:
            events, self._events = self._events, []
            for kind, value in events:
                if kind == "data":
                    if value:
                        yield value
                else:
                    self._file_done = True
            if self._file_done:
                break
            if not await self._feed():
                raise InvalidChunk("the request body ended before the chunk did")
        while not self._ended and await self._feed():  # trailing fields, e.g. a late checksum
            pass
        if not self._ended:
            raise InvalidChunk("the request body ended before the multipart form did")
