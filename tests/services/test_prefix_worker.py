"""PrefixWorker, in this thread: the operation that brings a prefix to the end of the file
finishes its scan, whichever it is (commit, catch-up, rebuild), and all three agree."""

from __future__ import annotations

import functools
import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from backend.services.pdf.scan import PdfStreamScanner
from backend.services.prefix_worker import PrefixWorker
from backend.storage.local_chunks import LocalRangeReader
from tests.security_corpus import _PAGES, _raw_pdf, _stream

CHUNK = 64 << 10


def tail_javascript(size: int) -> bytes:
    """A PDF of about ``size`` bytes whose JavaScript action is in its last KiB, behind
    an image: within the scanner's 16 KiB look-ahead until the file ends."""
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /XObject << /Im1 4 0 R >> >> >>")
    pad = size - 1024
    image = _stream(b"/Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray "
                    b"/BitsPerComponent 8" % pad, random.Random(5).randbytes(pad))
    data = _raw_pdf([b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", _PAGES[1], page, image,
                     b"<< /Type /Action /S /JavaScript /JS (app.alert\\(4\\)) >>"])
    assert len(data) - data.index(b"/JavaScript") < 1024
    return data


@pytest.fixture
def data() -> bytes:
    return tail_javascript(3 * CHUNK - 5000)  # three chunks, the last one short


@pytest.fixture
def worker(tmp_path: Path, data: bytes) -> PrefixWorker:
    (tmp_path / "u.part").write_bytes(data)
    return PrefixWorker(LocalRangeReader(tmp_path), functools.partial(PdfStreamScanner, None))


def _kinds(findings: list[Any]) -> set[str]:
    return {f.kind for f in findings}


def _recorded(data: bytes) -> dict[int, str]:
    return {i: hashlib.sha256(data[i * CHUNK:(i + 1) * CHUNK]).hexdigest() for i in range(-(-len(data) // CHUNK))}


def _ranges(data: bytes, recorded: dict[int, str]) -> list[tuple[int, int, str]]:
    return [(i * CHUNK, len(data[i * CHUNK:(i + 1) * CHUNK]), sha) for i, sha in sorted(recorded.items())]


def _commit_all(worker: PrefixWorker, data: bytes) -> list[list[Any]]:
    """Every chunk forked, fed and committed in order: each commit's findings."""
    worker.open(1)
    answers = []
    for i, offset in enumerate(range(0, len(data), CHUNK)):
        worker.fork(100 + i, 1)
        worker.fork_feed(100 + i, "u", offset, min(CHUNK, len(data) - offset))
        adopted, findings, progress = worker.commit(1, 100 + i, len(data))
        assert adopted and progress is not None and progress[0] == min(offset + CHUNK, len(data))
        answers.append(findings)
    return answers


def test_the_commit_that_completes_the_file_answers_its_tail(worker: PrefixWorker, data: bytes) -> None:
    answers = _commit_all(worker, data)
    assert answers[:-1] == [[], []]
    assert "javascript" in _kinds(answers[-1])
    digest, findings, summary, offset = worker.finish(1)
    assert findings == answers[-1], "finished once: /complete reads the same findings, no more"
    assert digest == hashlib.sha256(data).hexdigest() and offset == len(data)
    assert worker.finish(1)[2] == summary


def test_the_catch_up_that_completes_the_file_answers_its_tail(worker: PrefixWorker, data: bytes) -> None:
    recorded = _recorded(data)
    worker.open(1)
    answers = []
    for i, offset in enumerate(range(0, len(data), CHUNK)):
        ok, findings, _ = worker.catch_up(1, "u", offset, min(CHUNK, len(data) - offset), recorded[i], len(data))
        assert ok
        answers.append(findings)
    assert answers[:-1] == [[], []] and "javascript" in _kinds(answers[-1])
    assert worker.finish(1)[1] == answers[-1]


def test_a_prefix_short_of_the_end_is_not_finished(worker: PrefixWorker, data: bytes) -> None:
    recorded = _recorded(data)
    worker.open(1)
    ok, findings, _ = worker.catch_up(1, "u", 0, CHUNK, recorded[0], len(data))
    assert ok and findings == []
    worker.fork(9, 1)
    worker.fork_feed(9, "u", CHUNK, CHUNK)
    adopted, findings, _ = worker.commit(1, 9, len(data))
    assert adopted and findings == []
    ok, findings, _ = worker.catch_up(1, "u", 2 * CHUNK, len(data) - 2 * CHUNK, recorded[2], len(data))
    assert ok and "javascript" in _kinds(findings)


def test_rebuild_commit_and_catch_up_agree(worker: PrefixWorker, data: bytes) -> None:
    """After a restart the prefix is rebuilt from the bytes: finished at the same place,
    with the same findings and summary as the one the chunks built."""
    _commit_all(worker, data)
    streamed = worker.finish(1)
    bad, findings, progress = worker.rebuild(2, "u", _ranges(data, _recorded(data)), len(data))
    assert bad == [] and progress == (len(data), streamed[2])
    assert findings == streamed[1] and "javascript" in _kinds(findings)
    assert worker.finish(2) == streamed


def test_rebuild_short_of_the_end_leaves_the_scan_open(worker: PrefixWorker, data: bytes) -> None:
    recorded = _recorded(data)
    del recorded[1]
    _, findings, progress = worker.rebuild(1, "u", _ranges(data, recorded), len(data))
    assert findings == [] and progress[0] == CHUNK
    ok, findings, _ = worker.catch_up(1, "u", CHUNK, CHUNK, _recorded(data)[1], len(data))
    assert ok and findings == []


def test_rebuild_verifies_a_partial_tail_and_names_bad_ranges_by_offset(worker: PrefixWorker,
                                                                         data: bytes) -> None:
    """An append's tail (part of a chunk) is a range like any other: fed if it checks out."""
    ranges = _ranges(data, {0: _recorded(data)[0]})
    tail = data[CHUNK:CHUNK + 1000]
    ranges.append((CHUNK, 1000, hashlib.sha256(tail).hexdigest()))
    bad, _, progress = worker.rebuild(1, "u", ranges, len(data))
    assert bad == [] and progress[0] == CHUNK + 1000
    ranges[-1] = (CHUNK, 1000, hashlib.sha256(b"other bytes").hexdigest())
    bad, _, progress = worker.rebuild(2, "u", ranges, len(data))
    assert bad == [CHUNK] and progress[0] == CHUNK


def test_without_a_scanner_the_end_is_just_the_end(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "u.part").write_bytes(data)
    worker = PrefixWorker(LocalRangeReader(tmp_path), lambda: None)
    assert _commit_all(worker, data) == [[], [], []]
    assert worker.finish(1) == (hashlib.sha256(data).hexdigest(), [], {}, len(data))
