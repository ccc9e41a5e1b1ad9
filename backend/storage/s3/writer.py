"""A writer of one byte range of an S3 upload (:class:`~backend.storage.base.ChunkWriter`,
a worker thread's), and the upload's record.

The writer buffers what it is given and sends it in pieces of 8 MiB: as parts of the
multipart upload when the range is ``direct`` (a whole chunk the caller will not read
back, of at least a part's size), else as staged objects. A direct range's last part takes
whatever is left after the last whole 8 MiB, so that no part is short; a range cut off
before its end keeps what arrived as a staged piece (:meth:`S3ChunkWriter.close`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backend.storage.s3.layout import MIB

TARGET = 8 * MIB  # staged pieces and direct parts are cut at this size


@dataclass
class Meta:
    upload_id: str
    size: int
    grid: int
    done: bool = False
    generation: int = 1  # which multipart upload is in progress (see snapshot)
    # generation -> S3 upload id of each multipart upload a snapshot went on from but has
    # not finished with yet (completed, views noted): what a later call finishes
    unfinished: dict[str, str] = field(default_factory=dict)

    def dump(self) -> bytes:
        return json.dumps(self.__dict__).encode()


class _Sender(Protocol):
    def send_part(self, upload_id: str, meta: Meta, start: int, data: bytes) -> None: ...

    def send_staged(self, upload_id: str, start: int, data: bytes) -> None: ...


class S3ChunkWriter:
    """Buffers a range's bytes and sends them as parts (``direct``) or staged pieces."""

    def __init__(self, store: _Sender, upload_id: str, meta: Meta, offset: int, length: int,
                 direct: bool) -> None:
        self.store, self.upload_id, self.meta = store, upload_id, meta
        self.direct = direct
        self._pos = offset  # where the buffer's first byte goes
        self._end = offset + length
        self._buf = bytearray()
        self._closed = False

    @property
    def _written(self) -> int:
        return self._pos + len(self._buf)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.write_pieces([memoryview(data)])

    def write_pieces(self, pieces: Sequence[memoryview]) -> None:
        total = sum(len(p) for p in pieces)
        if self._written + total > self._end:
            raise ValueError("write past the end of the range")
        for piece in pieces:
            self._buf += piece
        self._send(final=False)

    def _send(self, *, final: bool) -> None:
        grid = self.meta.grid
        while len(self._buf) >= TARGET:
            after = self._end - (self._pos + TARGET)
            if self.direct and 0 < after < grid:
                break  # the range's last part takes the rest, so that none is short
            self._flush(TARGET)
        if final and self._buf:
            whole = self._written == self._end
            self._flush(len(self._buf), as_part=whole)

    def _flush(self, n: int, *, as_part: bool | None = None) -> None:
        data = bytes(self._buf[:n])
        if (self.direct if as_part is None else self.direct and as_part):
            self.store.send_part(self.upload_id, self.meta, self._pos, data)
        else:
            self.store.send_staged(self.upload_id, self._pos, data)
        del self._buf[:n]
        self._pos += n

    def close(self) -> None:
        """Send what is buffered: the rest of a whole direct range as its last part, else
        (a cut-off range, or a staged one) as a staged piece, so that it is kept."""
        if self._closed:
            return
        self._closed = True
        self._send(final=True)
