"""The import's work on untrusted content in a child process
(:mod:`backend.importer.reader`): the same text and nodes as in-process, errors
that cross whole, a crash or a stall that costs one document, never the next."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.importer.extract import ExtractionError, extract_pages
from backend.importer.reader import ChildReader
from backend.importer.split import split_pages
from tests.textpdf import make_line_pdf, make_text_pdf

META = {"document_id": 1, "title": "t", "filename": "t.pdf"}


@pytest.fixture
def reader() -> Iterator[ChildReader]:
    r = ChildReader(timeout=60)
    yield r
    r.close()


def _child_pids(reader: ChildReader) -> list[int]:
    pids = [c.process.pid for c in reader.sandbox._idle]
    return [p for p in pids if p is not None]


def test_reads_and_splits_like_the_server_would(reader: ChildReader, tmp_path: Path) -> None:
    make_text_pdf(tmp_path / "t.pdf", 3, seed=5, lines=40)
    pages = reader.extract(tmp_path / "t.pdf")
    assert pages == extract_pages(tmp_path / "t.pdf")
    nodes = reader.split("d" * 64, pages, META, 128, 16)
    local = split_pages("d" * 64, pages, META, 128, 16)
    assert [n.dict() for n in nodes] == [n.dict() for n in local] and len(nodes) > 3
    assert reader.extract(tmp_path / "t.pdf", 1) == pages[:1]


def test_errors_cross_and_a_crash_costs_one_document(reader: ChildReader, tmp_path: Path) -> None:
    """Text comes back from the child; its errors cross as ExtractionError; a child that
    dies is reported for that document and replaced for the next."""
    make_text_pdf(tmp_path / "t.pdf", 2, seed=3)
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7 nothing else")
    assert len(reader.extract(tmp_path / "t.pdf")) == 2
    with pytest.raises(ExtractionError, match="cannot open"):
        reader.extract(tmp_path / "bad.pdf")
    pids = _child_pids(reader)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGSEGV)  # a crash, as PDFium might on a hostile file
    with pytest.raises(ExtractionError, match="stopped"):
        reader.extract(tmp_path / "t.pdf")
    assert len(reader.extract(tmp_path / "t.pdf")) == 2
    assert _child_pids(reader) != pids


def test_a_document_past_the_time_limit_is_stopped(reader: ChildReader, tmp_path: Path) -> None:
    """The splitter is linear, but a page of millions of letters still takes seconds: the
    child is killed at the limit, and the import fails saying so."""
    make_line_pdf(tmp_path / "l.pdf", "a" * 2_000 + ".b")
    assert reader.extract(tmp_path / "l.pdf")  # a warm child: its start-up counts against a limit
    reader.timeout = reader.sandbox.timeout = 1.5
    started = time.perf_counter()
    with pytest.raises(ExtractionError, match="longer than 1.5 s"):
        reader.split("e" * 64, ["a" * 2_000_000 + ".b"], META, 512, 32)
    assert time.perf_counter() - started < 5
    assert reader.sandbox.children == 0
