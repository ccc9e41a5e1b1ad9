"""The consumers of a file's contiguous prefix: the whole-file SHA-256 and the PDF scan.

They see every byte exactly once, in order, however the chunks arrived. ``copy`` forks
them so a chunk that starts at the prefix can feed a fork while its own checksum is not
yet known; the fork replaces the original only if the chunk proves good.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol


class PrefixScanner(Protocol):
    offset: int

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]: ...

    def finish(self) -> list[Any]:
        """End of file: the findings that are new. Idempotent: a second call returns none."""
        ...

    def copy(self) -> PrefixScanner: ...

    def summary(self) -> dict[str, Any]: ...


class PrefixState:
    """Not thread-safe: one feeder at a time (callers hold the session's prefix lock or own a fork)."""

    def __init__(self, scanner: PrefixScanner | None = None) -> None:
        self.offset = 0
        self.hasher = hashlib.sha256()
        self.scanner = scanner

    def copy(self) -> PrefixState:
        twin = PrefixState.__new__(PrefixState)
        twin.offset = self.offset
        twin.hasher = self.hasher.copy()
        twin.scanner = self.scanner.copy() if self.scanner is not None else None
        return twin

    def adopt(self, other: PrefixState) -> None:
        """Take over the consumers of a fork that went further."""
        self.offset, self.hasher, self.scanner = other.offset, other.hasher, other.scanner

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Consume the next bytes of the file; returns the scanner's new findings."""
        self.hasher.update(data)
        self.offset += len(data)
        return self.scanner.feed(data) if self.scanner is not None else []

    def finish(self) -> list[Any]:
        """The file's end: the scanner's last findings. Idempotent (the scanner's is)."""
        return self.scanner.finish() if self.scanner is not None else []

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()

    def scan_summary(self) -> dict[str, Any]:
        return self.scanner.summary() if self.scanner is not None else {}


ScannerFactory = Callable[[], PrefixScanner | None]
