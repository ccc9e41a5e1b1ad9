"""AppendService: bytes appended at the offset, checked once for their header, kept when cut."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.services.sessions import InitiateRequest
from tests.conftest import Api


class SlowWriter:
    """A store writer that takes its time, as a busy disk does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write_pieces(self, pieces: Any) -> None:
        time.sleep(0.2)
        self.inner.write_pieces(pieces)

    def write(self, data: Any) -> None:
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_the_header_is_checked_on_the_first_block_only(api: Api, small_pdf: bytes,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The check once read the writer thread's count of bytes written: with a slow disk, the
    second block came before the first was written and was taken for the start (415)."""
    svc = api.svc
    store = svc.assembly.chunks
    opened = store.open

    async def slow_open(*args: Any) -> SlowWriter:
        return SlowWriter(await opened(*args))

    monkeypatch.setattr(store, "open", slow_open)
    live = await svc.uploads.create("local", InitiateRequest(filename="a.pdf", file_size=len(small_pdf),
                                                             protocol="tus"))
    offset = await svc.uploads.append("local", live.id, 0, pieces(small_pdf[:3_000_000], 600_000))
    assert offset == 3_000_000

