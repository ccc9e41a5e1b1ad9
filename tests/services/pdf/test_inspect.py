"""Deep inspection on completion (pikepdf/qpdf): kinds, refusals, limits, the corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pikepdf
import pytest

from backend import errors
from backend.services.pdf.inspect import InspectLimits, Inspection, inspect_pdf
from tests.security_corpus import SHARED_CORPUS, Sample, session_corpus

SHARED_DIR = SHARED_CORPUS
MANIFEST: dict[str, dict[str, object]] = (
    json.loads((SHARED_DIR / "manifest.json").read_text()) if SHARED_DIR.is_dir() else {})
needs_shared_corpus = pytest.mark.skipif(not MANIFEST, reason=f"no corpus at {SHARED_DIR}")

#: The manifest's pikepdf deep-scan keys as our finding kinds. "/ObjStm" is a count
#: (``Inspection.object_streams``), and "/OpenAction(GoTo/dest)" must NOT be a finding.
MANIFEST_KINDS: dict[str, str] = {
    "/JS": "javascript", "action /JavaScript": "javascript", "/Names/JavaScript": "javascript",
    "/OpenAction": "open_action", "/AA": "additional_actions", "/AcroForm": "acroform",
    "/XFA": "xfa", "action /URI": "uri", "action /Launch": "launch",
    "action /SubmitForm": "submit_form", "action /GoToR": "goto_remote",
    "action /GoToE": "goto_remote", "action /ImportData": "import_data",
    "/EF": "embedded_file", "/EmbeddedFile": "embedded_file", "/EmbeddedFiles": "embedded_file",
    "annot /FileAttachment": "embedded_file", "annot /Screen": "multimedia",
    "annot /RichMedia": "rich_media", "/RichMediaContent": "rich_media", "/JBIG2Decode": "jbig2",
}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return session_corpus(tmp_path_factory)


def test_generated_samples(corpus: dict[str, Sample]) -> None:
    for s in corpus.values():
        if s.deep_raises:
            with pytest.raises(getattr(errors, s.deep_raises)):
                inspect_pdf(s.path)
        else:
            assert inspect_pdf(s.path).kinds == s.deep_kinds, s.name


def test_object_stream_variants_report_the_same(corpus: dict[str, Sample]) -> None:
    threats = ("js_open_action", "page_aa", "launch", "embedded_exe", "xfa", "uri", "submit_form")
    for name in threats:
        plain, hidden = inspect_pdf(corpus[name].path), inspect_pdf(corpus[name + "_objstm"].path)
        assert plain.kinds == hidden.kinds and plain.object_streams == 0 < hidden.object_streams


def test_details(corpus: dict[str, Sample]) -> None:
    exe = inspect_pdf(corpus["embedded_exe_objstm"].path)
    assert any("invoice.exe" in f.detail for f in exe.findings if f.kind == "embedded_executable")
    assert any("x-msdownload" in f.detail for f in exe.findings)
    assert inspect_pdf(corpus["uri"].path).uris == ["https://example.com/landing?id=42"]
    js = inspect_pdf(corpus["js_open_action"].path)
    assert any("app.alert" in f.detail for f in js.findings if f.kind == "javascript")
    assert all(f.source == "deep" and f.offset is None for f in js.findings)
    clean = inspect_pdf(corpus["clean_multipage"].path)
    assert (clean.page_count, clean.encrypted, clean.damaged) == (3, False, False)
    assert clean.findings == []
    assert clean.pdf_version and clean.object_count > 3 and clean.largest_stream > 0


def test_encryption(corpus: dict[str, Sample]) -> None:
    empty = inspect_pdf(corpus["encrypted_empty_password"].path)
    assert empty.encrypted and empty.scanned and empty.page_count == 2
    locked = inspect_pdf(corpus["encrypted_password"].path)
    assert locked.encrypted and not locked.scanned and locked.page_count == 0
    assert locked.kinds == {"encrypted", "password_protected"}


def test_bombs_and_limits(corpus: dict[str, Sample]) -> None:
    for name in ("bomb", "bomb_objstm"):
        with pytest.raises(errors.SecurityRejected, match="decompression bomb"):
            inspect_pdf(corpus[name].path)
    clean = corpus["clean_multipage"].path
    with pytest.raises(errors.SecurityRejected, match="pages"):
        inspect_pdf(clean, InspectLimits(max_pages=2))
    with pytest.raises(errors.SecurityRejected, match="objects"):
        inspect_pdf(clean, InspectLimits(max_objects=5))
    with pytest.raises(errors.SecurityRejected, match="decompression bomb"):
        inspect_pdf(clean, InspectLimits(max_stream_bytes=20))
    assert inspect_pdf(clean, InspectLimits(max_stream_bytes=1000)).largest_stream <= 1000


@needs_shared_corpus
def test_refusals(corpus: dict[str, Sample], tmp_path: Path) -> None:
    truncated = inspect_pdf(corpus["truncated"].path)  # qpdf repairs it: stored, flagged
    assert truncated.damaged and "damaged" in truncated.kinds
    assert "end-of-file marker (%%EOF) is missing" in next(f.detail for f in truncated.findings if f.kind == "damaged")
    with pytest.raises(errors.InvalidPdf, match="STREAMING_REJECT_DAMAGED"):
        inspect_pdf(corpus["truncated"].path, InspectLimits(reject_damaged=True))
    with pytest.raises(errors.NotAPdf):
        inspect_pdf(corpus["not_a_pdf"].path)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nthis is not a PDF body at all\n%%EOF\n")
    with pytest.raises(errors.InvalidPdf):
        inspect_pdf(broken)
    damaged = SHARED_DIR / "malpdf-out-L1__test1.pdf"  # qpdf repairs its xref
    assert inspect_pdf(damaged).damaged and inspect_pdf(damaged).warnings
    with pytest.raises(errors.InvalidPdf):
        inspect_pdf(damaged, InspectLimits(reject_damaged=True))


@needs_shared_corpus
def test_cycles_and_deep_nesting(tmp_path: Path) -> None:
    nested = b"[" * 300 + b"]" * 300
    objects = [b"<< /Type /Catalog /Pages 2 0 R /Loop 4 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Deep " + nested + b" >>",
               b"<< /Next 5 0 R /A << /S /JavaScript /JS (x) >> >>", b"<< /Next 4 0 R >>"]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    path = tmp_path / "cycle.pdf"
    path.write_bytes(bytes(out))
    assert inspect_pdf(path).kinds == {"javascript", "damaged"}  # damaged: its page has no /Resources
    assert inspect_pdf(SHARED_DIR / "pikepdf__tests__resources__cyclic-toc.pdf").page_count == 1


def test_to_dict_is_json(corpus: dict[str, Sample]) -> None:
    result = inspect_pdf(corpus["embedded_exe"].path)
    assert isinstance(result, Inspection)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data and data["findings"][0]["source"] == "deep"


@needs_shared_corpus
def test_shared_corpus_matches_the_manifest() -> None:
    problems = []
    for name, info in sorted(MANIFEST.items()):
        path = SHARED_DIR / name
        if not info["opens_with_pikepdf"]:
            try:
                result = inspect_pdf(path)
            except (errors.InvalidPdf, errors.NotAPdf):
                continue
            if result.scanned or "password_protected" not in result.kinds:
                problems.append((name, "should be refused or password-protected"))
            continue
        result = inspect_pdf(path)
        found = set(result.kinds)
        if "embedded_executable" in found:  # the manifest has no such distinction
            found.add("embedded_file")
        deep = info["pikepdf_deep_scan"]
        assert isinstance(deep, dict)
        for key in deep:
            if key == "/ObjStm":
                ok = result.object_streams > 0
            elif key == "/OpenAction(GoTo/dest)":
                ok = "open_action" not in found
            else:
                ok = MANIFEST_KINDS[key] in found
            if not ok:
                problems.append((name, key))
        expected = {MANIFEST_KINDS[k] for k in deep if k in MANIFEST_KINDS}
        if info.get("damaged") and "damaged" not in found:
            problems.append((name, "damaged, not flagged"))
        extra = found - expected - {"encrypted", "embedded_executable", "damaged"}
        if extra:
            problems.append((name, f"unexpected {sorted(extra)}"))
    assert not problems


def test_big_streams_are_measured_from_the_file(tmp_path: Path) -> None:
    """A Flate stream over IN_MEMORY_MAX is inflated from the file a block at a time
    (qpdf never loads it), and the bytes read are exactly qpdf's raw stream data."""
    import random

    from backend.services.pdf.decoded import IN_MEMORY_MAX
    from backend.services.pdf.inspect import FileStreams

    data = random.Random(5).randbytes(IN_MEMORY_MAX + (1 << 20))
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].Contents = pdf.make_stream(data)
    path = tmp_path / "big.pdf"
    pdf.save(path, compress_streams=True, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    with pikepdf.open(path) as opened:
        stream = opened.pages[0].Contents
        offsets = {k: e.offset for k, e in opened.get_xref_table().items() if e.type == 1 and e.offset}
        assert b"".join(FileStreams(path, offsets)(stream)) == stream.read_raw_bytes()
    assert inspect_pdf(path).largest_stream == len(data)
