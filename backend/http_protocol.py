"""uvicorn's httptools protocol, without its two copies of every request body byte.

uvicorn collects body pieces with ``cycle.body += piece`` into a ``bytearray`` and hands
them to the app as ``bytes(cycle.body)``: two copies of every byte of every chunk, on
the event loop thread, holding the GIL (measured: ~0.1 s of a 256 MiB upload's 0.45 s on
the loop thread). :class:`BodyPieces` takes their place: ``+=`` keeps a reference to
the piece httptools made, and ``bytes()`` returns that very object when it is alone (the
usual case: uvicorn pauses reading after each socket read of more than 64 KiB), joining
only when several wait.

It relies on two lines of uvicorn's ``RequestResponseCycle`` (``body += piece`` in
``on_body`` and ``bytes(self.body)`` in ``receive``); any other use of ``body`` falls back
to the real bytes. ``tests/api/test_http_protocol.py`` checks both, so an uvicorn upgrade
that changes them fails a test instead of slowing down or breaking uploads.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class PiecewiseHttpToolsProtocol(HttpToolsProtocol):
    """Pass to ``uvicorn.run(http=...)``; behaves as ``http="httptools"`` otherwise."""

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        current: object = cycle.body
        if type(current) is not BodyPieces:
            cycle.body = BodyPieces(cycle.body)  # type: ignore[assignment]
        super().on_body(body)
