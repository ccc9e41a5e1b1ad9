"""The benchmark's tus client (bench/tus_client.py): how it cuts a file into parts and
the ``Upload-Checksum`` values it sends, checked without a server."""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

MIB = 1 << 20


@pytest.fixture(scope="module")
def tus() -> ModuleType:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        return importlib.import_module("tus_client")
    finally:
        sys.path.pop(0)


def test_parts_are_whole_chunks_and_cover_the_file(tus: ModuleType) -> None:
    parts = tus.parts(10 * MIB + 5, 4, 2 * MIB)
    assert [p.length for p in parts] == [4 * MIB, 4 * MIB, 2 * MIB + 5]
    assert [p.offset for p in parts] == [0, 4 * MIB, 8 * MIB]
    assert tus.parts(3 * MIB, 1, 2 * MIB) == [tus.Part(0, 3 * MIB)]


def test_patch_checksums_are_sha256_base64_of_each_patch_body(tus: ModuleType, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB + 3)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    parts = tus.parts(len(data), 2, 2 * MIB)
    sums = tus.patch_checksums(str(path), parts, 2 * MIB)
    bodies = [[data[p.offset + at:p.offset + min(at + 2 * MIB, p.length)] for at in range(0, p.length, 2 * MIB)]
              for p in parts]
    assert sums == [[f"sha256 {base64.b64encode(hashlib.sha256(b).digest()).decode()}" for b in each]
                    for each in bodies]
    assert [len(s) for s in sums] == [2, 1]


def test_capabilities_read_from_the_options_lists(tus: ModuleType) -> None:
    ours = tus.Capabilities(frozenset({"creation", "checksum", "concatenation"}), frozenset({"sha1", "sha256"}))
    assert ours.concatenation and ours.sha256_checksum
    node = tus.Capabilities(frozenset({"creation", "termination"}), frozenset())
    assert not node.concatenation and not node.sha256_checksum
    assert not tus.Capabilities(frozenset({"checksum"}), frozenset({"md5"})).sha256_checksum
