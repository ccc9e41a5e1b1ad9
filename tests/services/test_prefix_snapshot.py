"""A prefix state (whole-file SHA-256 + streaming scan) leaves the process mid-file and
continues in another object: same digest, same findings, same summary as one pass.

Run over every file of the shared corpus and the generated security corpus (object
streams included: the inflater pickles as its replay input), cut at several places,
fed in pieces of odd sizes."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import pytest

from backend.services.pdf.inflate import REPLAY_CAP, BoundedInflater, travelling
from backend.services.pdf.scan import PdfStreamScanner
from backend.services.prefix_state import MAX_SNAPSHOT, PrefixState, ResumableSha256
from tests.pdfgen import make_pdf
from tests.security_corpus import SHARED_CORPUS, session_corpus

PIECE = 37_123  # an odd size: cuts fall anywhere


def _files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = sorted(SHARED_CORPUS.glob("*.pdf")) if SHARED_CORPUS.is_dir() else []
    files += [sample.path for sample in session_corpus(tmp_path_factory).values()]
    big = tmp_path_factory.mktemp("generated") / "big.pdf"
    make_pdf(big, 3 << 20, pages=4, seed=7)
    return files + [big]


def _state() -> PrefixState:
    return PrefixState(PdfStreamScanner(), ResumableSha256())


def _feed(state: PrefixState, data: bytes, start: int, end: int) -> list[Any]:
    findings: list[Any] = []
    for at in range(start, end, PIECE):
        findings += state.feed(memoryview(data)[at:min(at + PIECE, end)])
    return findings


def _one_pass(data: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    state = _state()
    findings = _feed(state, data, 0, len(data)) + state.finish()
    return state.hexdigest(), findings, state.scan_summary()


def _handed_over(data: bytes, cuts: list[int]) -> tuple[str, list[Any], dict[str, Any], int]:
    """Feed up to each cut, serialize, continue in a new object; the number of hand-overs
    that travelled (a state inside a long object stream may not)."""
    state = _state()
    findings: list[Any] = []
    at = travelled = 0
    for cut in [*cuts, len(data)]:
        findings += _feed(state, data, at, cut)
        at = cut
        blob = state.dumps()
        if blob is not None:
            assert len(blob) <= MAX_SNAPSHOT
            restored = PrefixState.loads(blob)
            assert restored is not None and restored.offset == cut
            state = restored
            travelled += 1
    findings += state.finish()
    return state.hexdigest(), findings, state.scan_summary(), travelled


def test_every_file_continues_elsewhere_with_the_same_digest_and_findings(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    files = _files(tmp_path_factory)
    assert len(files) > 20
    total = travelled = 0
    for path in files:
        data = path.read_bytes()
        n = len(data)
        cuts = sorted({c for c in (1, 700, n // 7, n // 3, n // 2, n - 1) if 0 < c < n})
        digest, findings, summary = _one_pass(data)
        assert digest == hashlib.sha256(data).hexdigest()
        got_digest, got_findings, got_summary, moved = _handed_over(data, cuts)
        assert got_digest == digest, path.name
        assert [f.to_dict() for f in got_findings] == [f.to_dict() for f in findings], path.name
        assert got_summary == summary, path.name
        total += len(cuts) + 1
        travelled += moved
    assert travelled >= total * 0.9  # nearly every state travels; none is wrong


def test_an_inflater_mid_stream_pickles_as_its_input_and_inflates_on() -> None:
    import zlib

    payload = b"<< /OpenAction 5 0 R /JS (app.alert(1)) >> " * 4000
    packed = zlib.compress(payload)
    whole = BoundedInflater(1 << 20).feed(packed, 1 << 20)
    inflater = BoundedInflater(1 << 20)
    first = inflater.feed(packed[:1000], 1 << 20)
    with pytest.raises(TypeError):  # outside a hand-over: as before (copy deep-copies zlib)
        pickle.dumps(inflater)
    with travelling():
        twin = pickle.loads(pickle.dumps(inflater))
    assert first + twin.feed(packed[1000:], 1 << 20) == whole == payload


def test_an_inflater_past_its_replay_cap_does_not_travel() -> None:
    import os
    import zlib

    packed = zlib.compress(os.urandom(REPLAY_CAP + 1000), 0)
    inflater = BoundedInflater(16 << 20)
    inflater.feed(packed[:REPLAY_CAP + 10], 16 << 20)
    with travelling(), pytest.raises(TypeError):
        pickle.dumps(inflater)


def test_a_snapshot_of_another_format_or_version_is_not_loaded() -> None:
    state = _state()
    state.feed(b"%PDF-1.7\n" + b"x" * 5000)
    blob = state.dumps()
    assert blob is not None
    fmt, version, offset, sha, scanner = pickle.loads(blob)
    assert PrefixState.loads(pickle.dumps(("prefix-state/0", version, offset, sha, scanner))) is None
    assert PrefixState.loads(pickle.dumps((fmt, "0.0.1", offset, sha, scanner))) is None
    assert PrefixState.loads(b"garbage") is None


def test_a_hashlib_state_does_not_travel() -> None:
    state = PrefixState(PdfStreamScanner())
    state.feed(b"%PDF-1.7\n")
    assert state.dumps() is None


def test_resumable_sha256_matches_hashlib_on_any_buffer() -> None:
    data = bytes(range(256)) * 5000
    h = ResumableSha256()
    h.update(memoryview(data)[:1000])
    h.update(bytearray(data[1000:5000]))
    twin = h.copy()
    h.update(data[5000:])
    assert h.hexdigest() == h.hexdigest() == hashlib.sha256(data).hexdigest()
    twin.update(data[5000:])
    assert twin.hexdigest() == hashlib.sha256(data).hexdigest()
