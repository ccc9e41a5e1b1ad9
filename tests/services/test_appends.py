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


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
@pytest.mark.parametrize("start", [0, 3, 64, 100])
@pytest.mark.parametrize("cut", [1, 7, 64, 1000])
def test_the_body_checksum_and_chunk_hashes_agree_however_the_body_is_cut(algorithm: str, start: int,
                                                                          cut: int) -> None:
    """A SHA-256 body checksum rides the chunk hasher from a chunk boundary (one hash for
    a one-chunk PATCH); whatever the start, length and piece size, the body's digest and
    every chunk's are those of their bytes."""
    import hashlib
    import random

    from backend.services.appends import CHECKSUMS, _Cells

    chunk, size = 64, 300
    data = random.Random(start * 1000 + cut).randbytes(size)
    for end in (start + 1, (start // chunk + 1) * chunk, start + 64, start + 130, size):
        end = min(end, size)
        index, filled = divmod(start, chunk)
        hasher = hashlib.sha256(data[index * chunk:start])
        riding = algorithm == "sha256" and filled == 0
        cells = _Cells(chunk, size, index, filled, hasher, None if riding else CHECKSUMS[algorithm](), riding=riding)
        body = memoryview(data)[start:end]
        for i in range(0, len(body), cut):
            cells.add(body[i:i + cut])
        assert cells.body_digest() == CHECKSUMS[algorithm](data[start:end]).digest()
        whole = {i: hashlib.sha256(data[i * chunk:min(size, (i + 1) * chunk)]).hexdigest()
                 for i in range(index, end // chunk + 1) if min(size, (i + 1) * chunk) <= end}
        assert cells.done == whole
        assert cells.filled == end - min(end, cells.index * chunk)
