"""The chunks a byte range runs through, hashed as its bytes pass: each whole chunk's
SHA-256, the partial chunk at the end (an append's ``tail``), and the checksum the
client sent for the whole body.

An append (tus, the IETF draft) is a range that may start inside a chunk and end inside
another; :class:`Cells` cuts its bytes at the chunk boundaries, as the chunk API's
client cuts them, so both record the same chunk digests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}


@dataclass(frozen=True)
class Checksum:
    """What the client says the body hashes to (``algorithm`` one of :data:`CHECKSUMS`)."""

    algorithm: str
    digest: bytes


@dataclass
class Cells:
    """The writer thread's view of the chunks a body runs through.

    ``body`` hashes the whole body for its checksum. A SHA-256 checksum on a body that
    starts at a chunk boundary rides the chunk's own hasher instead (``riding``): the
    two are the same hash over the same bytes until that chunk ends, so a PATCH of one
    chunk (tus clients send exactly that) is hashed once. Past the chunk's end the body
    goes on with that hasher and the next chunk gets a new one.
    """

    chunk_size: int
    file_size: int
    index: int
    filled: int
    hasher: Any
    body: Any
    riding: bool = False
    done: dict[int, str] = field(default_factory=dict)

    @classmethod
    def starting(cls, chunk_size: int, file_size: int, index: int, filled: int, hasher: Any,
                 checksum: Checksum | None) -> Cells:
        """At chunk ``index``, ``filled`` bytes of it already in ``hasher``."""
        riding = checksum is not None and checksum.algorithm == "sha256" and filled == 0
        body = CHECKSUMS[checksum.algorithm]() if checksum is not None and not riding else None
        return cls(chunk_size, file_size, index, filled, hasher, body, riding)

    def add(self, piece: memoryview) -> None:
        while piece:
            size = min(self.chunk_size, self.file_size - self.index * self.chunk_size)
            part, piece = piece[:size - self.filled], piece[size - self.filled:]
            self.hasher.update(part)
            if self.body is not None:
                self.body.update(part)
            self.filled += len(part)
            if self.filled == size:
                self.done[self.index] = self.hasher.hexdigest()
                if self.riding:
                    self.body, self.riding = self.hasher, False
                self.index, self.filled, self.hasher = self.index + 1, 0, hashlib.sha256()

    def body_digest(self) -> bytes:
        digest: bytes = (self.hasher if self.riding else self.body).digest()
        return digest
