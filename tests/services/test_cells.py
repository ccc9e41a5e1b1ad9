"""Cells: a byte range hashed chunk by chunk as it passes, with the body's checksum."""

from __future__ import annotations

import hashlib
import random

import pytest

from backend.services.cells import CHECKSUMS, Cells, Checksum


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
@pytest.mark.parametrize("start", [0, 3, 64, 100])
@pytest.mark.parametrize("cut", [1, 7, 64, 1000])
def test_the_body_checksum_and_chunk_hashes_agree_however_the_body_is_cut(algorithm: str, start: int,
                                                                          cut: int) -> None:
    """A SHA-256 body checksum rides the chunk hasher from a chunk boundary (one hash for
    a one-chunk PATCH); whatever the start, length and piece size, the body's digest and
    every chunk's are those of their bytes."""
    chunk, size = 64, 300
    data = random.Random(start * 1000 + cut).randbytes(size)
    for end in (start + 1, (start // chunk + 1) * chunk, start + 64, start + 130, size):
        end = min(end, size)
        index, filled = divmod(start, chunk)
        hasher = hashlib.sha256(data[index * chunk:start])
        cells = Cells.starting(chunk, size, index, filled, hasher, Checksum(algorithm, b""))
        assert cells.riding == (algorithm == "sha256" and filled == 0)
        body = memoryview(data)[start:end]
        for i in range(0, len(body), cut):
            cells.add(body[i:i + cut])
        assert cells.body_digest() == CHECKSUMS[algorithm](data[start:end]).digest()
        whole = {i: hashlib.sha256(data[i * chunk:min(size, (i + 1) * chunk)]).hexdigest()
                 for i in range(index, end // chunk + 1) if min(size, (i + 1) * chunk) <= end}
        assert cells.done == whole
        assert cells.filled == end - min(end, cells.index * chunk)
