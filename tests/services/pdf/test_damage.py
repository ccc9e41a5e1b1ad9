"""Damaged files: qpdf's verdict decides, and the words are for people (hardening, point 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import errors
from backend.services.pdf import damage
from backend.services.pdf.inspect import InspectLimits, inspect_pdf
from tests import hostile_corpus
from tests.security_corpus import SHARED_CORPUS

needs_shared_corpus = pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason=f"no corpus at {SHARED_CORPUS}")


def test_qpdf_messages_in_plain_words() -> None:
    assert damage.plain("the file: unable to find /Root dictionary") == "its document catalog (/Root) cannot be found"
    assert "trailer" in damage.plain("x.pdf: unable to find trailer dictionary while recovering damaged file")
    assert damage.plain("root of pages tree has no /Kids array") == "its page tree is broken"
    assert damage.plain("the file: something new: and odd") == "qpdf reports: something new: and odd"
    assert damage.summary(["file is damaged", "file is damaged"], ["a note"]) == "a note; its structure is damaged"


def test_envelope_notes(tmp_path: Path) -> None:
    assert damage.envelope_notes(hostile_corpus.no_eof(tmp_path / "a.pdf")) == [
        "the end-of-file marker (%%EOF) is missing, so the file may be cut short"]
    notes = damage.envelope_notes(hostile_corpus.trailing_data(tmp_path / "b.pdf", extra=4096))
    assert notes == ["there are 4101 bytes of data after the end-of-file marker (%%EOF)"]
    shifted = tmp_path / "c.pdf"
    shifted.write_bytes(b"junk!" + (tmp_path / "a.pdf").read_bytes() + b"%%EOF\n")
    assert damage.envelope_notes(shifted) == ["5 bytes come before the PDF header"]


def test_files_qpdf_opens_are_stored_and_flagged_damaged(tmp_path: Path) -> None:
    trailing = hostile_corpus.trailing_data(tmp_path / "trailing.pdf")
    result = inspect_pdf(trailing)
    assert result.damaged and result.kinds == {"damaged"}
    detail = next(f.detail for f in result.findings)
    assert "65541 bytes of data after the end-of-file marker" in detail
    assert "the file:" not in detail and str(tmp_path) not in detail
    assert inspect_pdf(hostile_corpus.no_eof(tmp_path / "no-eof.pdf")).kinds == set()  # qpdf: nothing to repair
    with pytest.raises(errors.InvalidPdf, match="refused because STREAMING_REJECT_DAMAGED is on: there are 65541"):
        inspect_pdf(trailing, InspectLimits(reject_damaged=True))


def test_files_qpdf_cannot_read_are_refused_in_plain_words(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\nthis is not a PDF body at all\n")
    with pytest.raises(errors.InvalidPdf) as caught:
        inspect_pdf(path)
    assert caught.value.message.startswith("not a readable PDF: the end-of-file marker (%%EOF) is missing")
    assert str(tmp_path) not in caught.value.message


@needs_shared_corpus
def test_shared_corpus_damaged_files() -> None:
    recovered = inspect_pdf(SHARED_CORPUS / "qpdf__qpdf__qtest__qpdf__recover-xref-stream.pdf")
    assert recovered.page_count >= 1  # 2 KB past its %%EOF: qpdf reads it, so do we
    with pytest.raises(errors.InvalidPdf, match="^not a readable PDF: .*its page tree is broken"):
        inspect_pdf(SHARED_CORPUS / "malpdf-out-L1__test12.pdf")
