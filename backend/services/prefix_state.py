"""The consumers of a file's contiguous prefix: the whole-file SHA-256 and the PDF scan.

They see every byte exactly once, in order, however the chunks arrived. ``copy`` forks
them so a chunk that starts at the prefix can feed a fork while its own checksum is not
yet known; the fork replaces the original only if the chunk proves good.

Several replicas (issue 15) continue one upload's prefix wherever its next contiguous
bytes arrive, so a state must leave the process: :meth:`PrefixState.dumps` /
:meth:`PrefixState.loads`. ``hashlib`` objects cannot be serialized; a state that may
travel hashes with :class:`ResumableSha256` (``rehashes``, pinned in pyproject: the
hasher's serialized form belongs to that version). The scanner is our own code, pickled:
the snapshot is made and read by the servers only (it lives in the shared store, never
in a client's hands), carries a format version and the rehashes version (another is not
loaded: the state is rebuilt from the bytes instead), and is bounded
(:data:`MAX_SNAPSHOT`; a bigger one is not saved). The in-process default keeps
``hashlib`` and never serializes.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Snapshot format: (FORMAT, rehashes version, offset, SHA-256 state, scanner).
FORMAT = "prefix-state/1"
#: A snapshot bigger than this is not saved (the scanner held an unusual amount of state):
#: the replica that continues reads the bytes since the last snapshot back instead.
MAX_SNAPSHOT = 1 << 20


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def copy(self) -> Hasher: ...

    def hexdigest(self) -> str: ...


class PrefixScanner(Protocol):
    offset: int

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]: ...

    def finish(self) -> list[Any]:
        """End of file: the findings that are new. Idempotent: a second call returns none."""
        ...

    def copy(self) -> PrefixScanner: ...

    def summary(self) -> dict[str, Any]: ...


def _rehashes_version() -> str | None:
    try:
        return metadata.version("rehashes")
    except metadata.PackageNotFoundError:
        return None


class ResumableSha256:
    """SHA-256 whose state serializes (``rehashes``'s Rust SHA-256, as fast as hashlib's).
    ``update`` takes what hashlib takes; rehashes wants ``bytes``, so other buffers are
    copied once (the scanner needs ``bytes`` too: :meth:`PrefixState.feed` converts once
    for both)."""

    __slots__ = ("_h",)

    def __init__(self, state: bytes | None = None) -> None:
        from rehashes import PySha256

        self._h = PySha256() if state is None else PySha256.deserialize(state)

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._h.update(data if type(data) is bytes else bytes(data))

    def serialize(self) -> bytes:
        state: bytes = self._h.serialize()
        return state

    def copy(self) -> ResumableSha256:
        return ResumableSha256(self.serialize())

    def hexdigest(self) -> str:
        digest: str = ResumableSha256(self.serialize())._h.finalize()  # finalize consumes: on a copy
        return digest


HasherFactory = Callable[[], Hasher]


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """A view of a whole ``bytes`` is that ``bytes`` (no copy); other views are copied once."""
    if isinstance(data, memoryview):
        if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) and data.contiguous:
            return data.obj
        return data.tobytes()
    return data


class PrefixState:
    """Not thread-safe: one feeder at a time (callers hold the session's prefix lock or own a fork)."""

    def __init__(self, scanner: PrefixScanner | None = None, hasher: Hasher | None = None) -> None:
        self.offset = 0
        self.hasher: Hasher = hashlib.sha256() if hasher is None else hasher
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
        if type(self.hasher) is ResumableSha256:
            data = _as_bytes(data)  # once, for the hasher and the scanner
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


    # -- leaving the process (several replicas) ------------------------------------------

    def dumps(self) -> bytes | None:
        """The state as bytes for :meth:`loads` in another process, or None when it cannot
        travel (a hashlib hasher, a scanner that does not pickle, a snapshot over
        :data:`MAX_SNAPSHOT`)."""
        if not isinstance(self.hasher, ResumableSha256):
            return None
        from backend.services.pdf.inflate import travelling

        try:
            with travelling():
                blob = pickle.dumps((FORMAT, _rehashes_version(), self.offset, self.hasher.serialize(), self.scanner),
                                    pickle.HIGHEST_PROTOCOL)
        except (TypeError, pickle.PicklingError, AttributeError) as exc:
            log.debug("prefix state at %d does not serialize now (%s)", self.offset, exc)
            return None
        return blob if len(blob) <= MAX_SNAPSHOT else None

    @classmethod
    def loads(cls, blob: bytes) -> PrefixState | None:
        """A state from :meth:`dumps`; None for another format or rehashes version, or
        bytes that do not read (the caller rebuilds from the stored bytes)."""
        try:
            fmt, version, offset, sha_state, scanner = pickle.loads(blob)
            if fmt != FORMAT or version != _rehashes_version():
                return None
            state = cls(scanner, ResumableSha256(sha_state))
        except Exception as exc:  # any damage: not a state we can continue
            log.warning("a saved prefix state does not load (%s: %s); rebuilt from the bytes",
                        type(exc).__name__, exc)
            return None
        state.offset = int(offset)
        return state


ScannerFactory = Callable[[], PrefixScanner | None]
