"""The streaming scanner: findings, piece-size independence, pdfid parity, throughput.

Throughput benchmark (not part of the test run)::

    .venv/bin/python -m tests.services.pdf.test_scan
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from pathlib import Path

import pytest
from pdfid import pdfid

from backend.services.pdf.findings import Finding
from backend.services.pdf.scan import PdfStreamScanner, ScanLimits
from backend.services.pdf.syntax import KEYWORD_NAMES, STREAM_NAMES_RE
from tests.security_corpus import SHARED_CORPUS, SPLIT_AT, Sample, session_corpus

MIB = 1 << 20
SHARED_DIR = SHARED_CORPUS
MANIFEST: dict[str, dict[str, object]] = (
    json.loads((SHARED_DIR / "manifest.json").read_text()) if SHARED_DIR.is_dir() else {})
SHARED = sorted(SHARED_DIR.glob("*.pdf"))
needs_shared_corpus = pytest.mark.skipif(not MANIFEST, reason=f"no corpus at {SHARED_DIR}")

#: What our scan counts that pdfid 0.2.7 does not, per file: vocabulary names seen in raw
#: bytes or inside inflated object streams where pdfid's count is 0. Asserted exactly.
#: Two reasons only: names hidden in compressed object streams (``*_objstm``, the qpdf
#: attachments file, pdflatex files with /ObjStm), and the action names the issue adds
#: to pdfid's vocabulary (/URI, /SubmitForm, /GoToR, /GoToE, /ImportData). pdfid counts
#: nothing we miss (see the parity tests).
PDFID_MISSES: dict[str, list[str]] = {
    "generated/clean_objstm": ["/Page"],
    "generated/js_open_action_objstm": ["/JS", "/JavaScript", "/OpenAction", "/Page"],
    "generated/page_aa_objstm": ["/AA", "/JS", "/JavaScript", "/Page"],
    "generated/launch_objstm": ["/Launch", "/OpenAction", "/Page"],
    "generated/embedded_exe_objstm": ["/Page"],
    "generated/xfa_objstm": ["/AcroForm", "/Page", "/XFA"],
    "generated/uri": ["/URI"],
    "generated/uri_objstm": ["/Page", "/URI"],
    "generated/submit_form": ["/SubmitForm"],
    "generated/submit_form_objstm": ["/Page", "/SubmitForm"],
    "generated/embedded_txt": ["/Page"],
    "corpus/malpdf-out-L1__test1.pdf": ["/GoToE"],
    "corpus/malpdf-out-L1__test16.pdf": ["/GoToE"],
    "corpus/malpdf-out-L1__test1_1.pdf": ["/GoToE"],
    "corpus/malpdf-out-L1__test21.pdf": ["/SubmitForm"],
    "corpus/malpdf-out-L1__test34_2.pdf": ["/GoToR"],
    "corpus/malpdf-out-L1__test7.pdf": ["/GoToR"],
    "corpus/malpdf-out-L1__test8.pdf": ["/SubmitForm"],
    "corpus/malpdf-out-L1__test9.pdf": ["/ImportData"],
    "corpus/pdfium__testing__resources__embedded_attachments.pdf": ["/Page"],
    "corpus/pdfium__testing__resources__gotoe_action.pdf": ["/GoToE"],
    "corpus/qpdf__qpdf__qtest__qpdf__enc-XI-attachments-base.pdf": ["/JS", "/JavaScript"],
    "corpus/sample-files__001-trivial__minimal-document.pdf": ["/Page"],
    "corpus/sample-files__003-pdflatex-image__pdflatex-image.pdf": ["/Page"],
    "corpus/sample-files__004-pdflatex-4-pages__pdflatex-4-pages.pdf": ["/Page"],
    "corpus/sample-files__006-pdflatex-outline__pdflatex-outline.pdf": ["/OpenAction", "/Page"],
    "corpus/sample-files__010-pdflatex-forms__pdflatex-forms.pdf":
        ["/AcroForm", "/OpenAction", "/Page", "/SubmitForm"],
    "corpus/sample-files__026-latex-multicolumn__multicolumn.pdf": ["/Page"],
}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return session_corpus(tmp_path_factory)


def scan(data: bytes, pieces: int | list[int] = MIB, limits: ScanLimits | None = None
         ) -> PdfStreamScanner:
    """Feed ``data`` in pieces of a fixed size, or of the sizes listed (cycled)."""
    sizes = [pieces] if isinstance(pieces, int) else pieces
    sc = PdfStreamScanner(limits)
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        sc.feed(data[pos:pos + n])
        pos, i = pos + n, i + 1
    sc.finish()
    return sc


def kinds(sc: PdfStreamScanner) -> set[str]:
    return {f.kind for f in sc.findings}


def pdfid_counts(data: bytes) -> dict[str, int]:
    """pdfid 0.2.7 (the PyPI ``pdfid`` package) as a library, on bytes in memory."""
    xml = pdfid.PDFiD("sample.pdf", filebuffer=data)
    out: list[dict[str, int]] = []
    pdfid.PDFID2Dict(xml, True, False, out)
    return out[0] if out else {}


def extras(sc: PdfStreamScanner, reference: dict[str, int]) -> list[str]:
    return sorted(k for k in KEYWORD_NAMES if (sc.keywords.get(k, 0)
                  + sc.inflated_keywords.get(k, 0)) > 0 and not reference.get(k))


def mini_pdf(*objects: bytes) -> bytes:
    body = b"%PDF-1.7\n" + b"".join(b"%d 0 obj\n%s\nendobj\n" % (i, o)
                                    for i, o in enumerate(objects, 1))
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


# -- findings ---------------------------------------------------------------------------


def test_generated_samples_yield_their_kinds(corpus: dict[str, Sample]) -> None:
    wrong = {}
    for s in corpus.values():
        got = kinds(scan(s.path.read_bytes()))
        if got != s.stream_kinds:
            wrong[s.name] = (sorted(got), sorted(s.stream_kinds))
    assert not wrong


def test_threats_hidden_in_object_streams_are_found_by_inflating(corpus: dict[str, Sample]) -> None:
    sc = scan(corpus["js_open_action_objstm"].path.read_bytes())
    assert sc.keywords["/JS"] == 0 and sc.keywords["/OpenAction"] == 0  # invisible as bytes
    assert sc.inflated_keywords["/JS"] >= 1
    js = [f for f in sc.findings if f.kind == "javascript"]
    assert js and all(f.source == "inflated" for f in js)
    assert "app.alert" in " ".join(f.detail for f in js)
    assert sc.summary()["object_streams_inspected"] >= 1
    assert any("JavaScript" in f.detail for f in sc.findings if f.kind == "open_action")


def test_names_in_stream_data_are_counted_not_judged(corpus: dict[str, Sample]) -> None:
    sc = scan(corpus["clean_image_name_bytes"].path.read_bytes())
    for name in ("/JavaScript", "/JS", "/OpenAction", "/Launch", "/AA", "/EmbeddedFile", "/XFA"):
        assert sc.keywords[name] >= 1, name  # pdfid-compatible raw counts...
    assert sc.findings == []  # ...but pixel data is not syntax


def test_hex_escaped_names_are_decoded_and_reported(corpus: dict[str, Sample]) -> None:
    sc = scan(corpus["obfuscated_names"].path.read_bytes())
    assert sc.keywords["/JavaScript"] == 1 and sc.keywords["/JavaScript_hexcode_count"] == 1
    assert sc.keywords["/JS_hexcode_count"] == 1 and sc.keywords["/OpenAction_hexcode_count"] == 1
    details = " ".join(f.detail for f in sc.findings if f.kind == "obfuscated_name")
    assert "/J#61vaScript" in details and "/Open#41ction" in details
    assert any(f.kind == "open_action" and "/JavaScript" in f.detail for f in sc.findings)


def test_names_end_at_delimiters() -> None:
    data = mini_pdf(b"<< /Type /Catalog /JSX (no) /JavaScriptX 1 /AAA 2 /Launcher 3 /URIs (x) >>")
    sc = scan(data)
    assert sc.findings == [] and sc.keywords["/JS"] == 0 and sc.keywords["/JavaScript"] == 0
    sc = scan(mini_pdf(b"<< /JS_x 1 /AcroForm.x 2 >>"))
    assert sc.keywords["/JS"] == 1 and sc.keywords["/AcroForm"] == 1  # pdfid's words...
    assert sc.findings == []  # ...are not PDF names
    sc = scan(mini_pdf(b"<</S/JavaScript/JS(app.alert\\(1\\))>>"))
    assert kinds(sc) == {"javascript"} and sc.keywords["/JS"] == 1


def test_names_inside_strings_are_text() -> None:
    sc = scan(mini_pdf(b"<< /Title (Disable /JavaScript and /JS (really)) /Subject <2F4A53> >>"))
    assert sc.findings == [] and sc.keywords["/JavaScript"] == 1  # pdfid counts them
    for trick in (b"(50% off) /JS (x)", b"(a \\( b) /JS (x)", b"% comment (\n /JS (x)"):
        assert kinds(scan(mini_pdf(b"<< /T " + trick + b" >>"))) == {"javascript"}, trick


def test_stream_keyword_after_a_comment() -> None:
    data = mini_pdf(b"<< /Length 12 >> % data follows\nstream\n/JS (x) bin\nendstream")
    sc = scan(data)
    assert sc.findings == [] and sc.keywords["/JS"] == 1 and sc.summary()["streams"] == 1


def test_open_action_judged_by_action_type() -> None:
    page = b"<< /Type /Page >>"
    dest = mini_pdf(b"<< /Type /Catalog /OpenAction [2 0 R /Fit] >>", page)
    goto = mini_pdf(b"<< /Type /Catalog /OpenAction << /S /GoTo /D [2 0 R /Fit] >> >>", page)
    assert scan(dest).findings == [] and scan(goto).findings == []
    js = b"<< /S /JavaScript /JS (x) >>"
    after = mini_pdf(b"<< /Type /Catalog /OpenAction 3 0 R >>", page, js)
    before = mini_pdf(js, page, b"<< /Type /Catalog /OpenAction 1 0 R >>")
    for data in (after, before):
        assert "open_action" in kinds(scan(data))
    launch = mini_pdf(b"<< /OpenAction << /S /Launch /F (calc.exe) >> >>")
    assert {"open_action", "launch"} <= kinds(scan(launch))
    assert "calc.exe" in " ".join(f.detail for f in scan(launch).findings)


def test_uris_are_listed(corpus: dict[str, Sample]) -> None:
    sc = scan(corpus["uri_objstm"].path.read_bytes())
    assert sc.uris == ["https://example.com/landing?id=42"]


def test_header() -> None:
    sc = PdfStreamScanner()
    sc.feed(b"%PDF-")
    assert not sc.header_decided and sc.header_version is None
    sc.feed(b"2.0\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    assert sc.header_decided and sc.header_found and sc.header_version == "2.0"
    sc = PdfStreamScanner()
    sc.feed(b"x" * 1023)
    assert not sc.header_decided
    sc.feed(b"x%PDF-1.7\n<< /JS (x) >>")
    assert sc.header_decided and not sc.header_found and sc.header_version is None
    sc.finish()
    assert sc.findings == [] and sc.keywords["/JS"] == 0  # not a PDF: nothing scanned
    sc = PdfStreamScanner()
    sc.feed(b"%PDF-1.4")
    sc.finish()
    assert sc.header_version == "1.4"


def test_trailing_data_and_missing_eof() -> None:
    base = mini_pdf(b"<< /Type /Catalog >>")
    assert scan(base + b"\r\n  \n").findings == []
    assert kinds(scan(base + b" " * 100)) == {"trailing_data"}
    assert kinds(scan(base + b"<html>")) == {"trailing_data"}
    assert kinds(scan(base[:-7])) == {"missing_eof"}


def test_inflation_is_capped(corpus: dict[str, Sample]) -> None:
    sc = scan(corpus["bomb_objstm"].path.read_bytes())
    assert sc.summary()["inflated_bytes"] == ScanLimits().max_inflate_per_stream
    assert any("limit" in f.detail for f in sc.findings if f.kind == "object_stream")
    tight = ScanLimits(max_inflate_total=10)
    sc = scan(corpus["js_open_action_objstm"].path.read_bytes(), limits=tight)
    assert kinds(sc) == {"object_stream"}


def test_length_trust_does_not_change_findings(corpus: dict[str, Sample]) -> None:
    untrusting = ScanLimits(trust_stream_length=False)
    for s in corpus.values():
        data = s.path.read_bytes()
        assert kinds(scan(data, limits=untrusting)) == kinds(scan(data)), s.name


# -- the feeding contract ---------------------------------------------------------------


def _piece_plans(size: int) -> list[int | list[int]]:
    rng = random.Random(size)
    random_sizes = [rng.randint(1, 300_000) for _ in range(50)]
    plans: list[int | list[int]] = [max(size, 1), 65536, random_sizes]
    if size <= 300_000:
        plans.append(7)
    if size <= 20_000:
        plans.append(1)
    return plans


def test_results_do_not_depend_on_piece_sizes(corpus: dict[str, Sample]) -> None:
    files = [s.path for s in corpus.values()] + SHARED
    for path in files:
        data = path.read_bytes()
        plans = _piece_plans(len(data))
        reference = scan(data, plans[0]).summary()
        for plan in plans[1:]:
            assert scan(data, plan).summary() == reference, (path.name, plan)


def test_a_stream_that_ends_past_a_window_is_counted_once() -> None:
    """Found on a shared-corpus file fed in 64 KiB + 7 pieces: when ``endstream``
    straddled the end of the range being processed, the next range counted it again."""
    rng = random.Random(7)
    objects = [b"<< /Length %d >>\nstream\n" % 300 + rng.randbytes(300) + b"\nendstream" for _ in range(400)]
    data = mini_pdf(*objects)
    reference = scan(data).summary()
    assert reference["keywords"]["endstream"] == 400
    for size in range(65536, 65536 + 400, 7):
        assert scan(data, size).summary() == reference, size


def test_a_reused_buffer_is_scanned_in_place(corpus: dict[str, Sample]) -> None:
    """The prefix worker reads every block into the same buffer: the scanner must keep
    no reference to a piece once ``feed`` returns (the next block overwrites it)."""
    for path in [s.path for s in corpus.values()] + SHARED:
        data = path.read_bytes()
        reference = scan(data).summary()
        for size in (4096, 65536 + 7):
            buf = bytearray(size)
            sc = PdfStreamScanner()
            for at in range(0, len(data), size):
                piece = data[at:at + size]
                if len(piece) == size:
                    buf[:] = piece
                    sc.feed(buf)
                else:
                    sc.feed(bytearray(piece))
                buf[:] = b"\x00" * size  # what the next block does to it
            sc.finish()
            assert sc.summary() == reference, (path.name, size)


def test_keyword_split_across_a_2_mib_boundary(corpus: dict[str, Sample]) -> None:
    data = corpus["split_keyword"].path.read_bytes()
    assert data[SPLIT_AT - 5:SPLIT_AT + 6] == b"/JavaScript"
    sc = PdfStreamScanner()
    first = sc.feed(data[:SPLIT_AT])
    assert not any(f.kind == "javascript" for f in first)  # only "/Java" so far
    new = sc.feed(data[SPLIT_AT:]) + sc.finish()
    assert any(f.kind == "javascript" and f.offset == SPLIT_AT - 5 for f in new)
    small = mini_pdf(b"<< /OpenAction << /S /JavaScript /JS (x) >> >>")
    expected = scan(small).summary()
    for cut in range(1, len(small)):
        sc = PdfStreamScanner()
        sc.feed(small[:cut])
        sc.feed(small[cut:])
        sc.finish()
        assert sc.summary() == expected, cut


def test_copy_is_independent(corpus: dict[str, Sample]) -> None:
    data = corpus["js_open_action_objstm"].path.read_bytes()
    body = data.index(b"stream", data.index(b"/ObjStm")) + 20  # mid object stream: zlib state
    sc = PdfStreamScanner()
    sc.feed(data[:body])
    fork = sc.copy()
    garbage = fork.copy()
    garbage.feed(b"\x00" * 5000)
    garbage.finish()
    sc.feed(data[body:])
    sc.finish()
    fork.feed(data[body:])
    fork.finish()
    assert fork.summary() == sc.summary() == scan(data).summary()
    assert "javascript" in kinds(fork)
    assert garbage.offset == body + 5000 and sc.offset == len(data)


@pytest.mark.parametrize("where", ["syntax", "plain_stream", "objstm"])
def test_copy_is_independent_wherever_it_is_taken(corpus: dict[str, Sample], where: str) -> None:
    """Both ways of copying (pickle; deepcopy when zlib state is inside) give a twin
    that shares nothing with the original."""
    data = corpus["js_open_action_objstm"].path.read_bytes()
    cut = {"syntax": data.index(b"obj") + 4,
           "plain_stream": data.index(b"stream\n") + 9,
           "objstm": data.index(b"stream", data.index(b"/ObjStm")) + 20}[where]
    sc = PdfStreamScanner()
    sc.feed(data[:cut])
    twin = sc.copy()
    twin.feed(b"/JavaScript /Launch " * 500)
    twin.finish()
    sc.feed(data[cut:])
    sc.finish()
    assert sc.summary() == scan(data).summary()
    assert twin.summary() != sc.summary()


def test_feed_contract() -> None:
    data = mini_pdf(b"<< /S /Launch /F (x.exe) >>")
    a = PdfStreamScanner()
    a.feed(memoryview(data)[:10])
    a.feed(bytearray(data[10:]))
    a.finish()
    assert kinds(a) == {"launch"} and a.offset == len(data)
    assert a.finish() == []  # idempotent
    with pytest.raises(RuntimeError):
        a.feed(b"more")


def test_finish_flushes_the_look_ahead_once() -> None:
    """What the prefix worker relies on when the last byte arrives: a finding within the
    16 KiB look-ahead waits for ``finish``, which reports it; a second ``finish`` (the
    one /complete asks for), or one on a copy of a finished scanner, adds nothing."""
    data = mini_pdf(b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>")
    sc = PdfStreamScanner()
    assert sc.feed(data) == []
    assert "javascript" in {f.kind for f in sc.finish()}
    summary = sc.summary()
    twin = sc.copy()
    assert sc.finish() == [] and sc.summary() == summary
    assert twin.finish() == [] and twin.summary() == summary


def test_summary_is_json(corpus: dict[str, Sample]) -> None:
    for s in corpus.values():
        summary = scan(s.path.read_bytes()).summary()
        assert json.loads(json.dumps(summary)) == summary
        for f in summary["findings"]:
            assert Finding.from_dict(f).to_dict() == f


# -- pdfid parity -----------------------------------------------------------------------


def test_pdfid_parity_on_generated_corpus(corpus: dict[str, Sample]) -> None:
    seen: dict[str, list[str]] = {}
    for s in corpus.values():
        data = s.path.read_bytes()
        reference = pdfid_counts(data)
        sc = scan(data)
        counted = {k: v for k, v in reference.items()
                   if k in sc.keywords or k.endswith("_hexcode_count")}
        missed = [k for k, v in counted.items() if v and not sc.keywords.get(k)]
        assert not missed, (s.name, missed)
        if more := extras(sc, reference):
            seen["generated/" + s.name] = more
    assert seen == {k: v for k, v in PDFID_MISSES.items() if k.startswith("generated/")}


@needs_shared_corpus
def test_pdfid_parity_on_shared_corpus() -> None:
    seen: dict[str, list[str]] = {}
    for path in SHARED:
        reference = MANIFEST[path.name]["pdfid_0_2_7"]
        assert isinstance(reference, dict)
        sc = scan(path.read_bytes())
        missed = [k for k, v in reference.items() if v and not sc.keywords.get(k)]
        assert not missed, (path.name, missed)
        if more := extras(sc, reference):
            seen["corpus/" + path.name] = more
    assert seen == {k: v for k, v in PDFID_MISSES.items() if k.startswith("corpus/")}


# -- names in stream data: counted for pdfid parity, never judged -------------------------

NO_DATA_NAMES = ScanLimits(count_names_in_stream_data=False)


def _same_judgement(data: bytes) -> tuple[PdfStreamScanner, PdfStreamScanner]:
    """The scan with stream-data names counted (pdfid parity) and without (the server's
    default): the same findings, every count without them at most the one with them."""
    full, lean = scan(data), scan(data, limits=NO_DATA_NAMES)
    assert [f.to_dict() for f in lean.findings] == [f.to_dict() for f in full.findings]
    assert lean.inflated_keywords == full.inflated_keywords  # object streams: inflated and scanned all the same
    assert all(lean.keywords.get(k, 0) <= v for k, v in full.keywords.items())
    summary, reference = lean.summary(), full.summary()
    assert {k: v for k, v in summary.items() if k != "keywords"} == {
        k: v for k, v in reference.items() if k != "keywords"}  # the rest of the summary, the same
    return full, lean


def test_without_stream_data_names_the_generated_corpus_is_judged_the_same(corpus: dict[str, Sample]) -> None:
    for s in corpus.values():
        data = s.path.read_bytes()
        _, lean = _same_judgement(data)
        assert kinds(lean) == s.stream_kinds, s.name
        odd = scan(data, pieces=[4096, 65_543, 7], limits=NO_DATA_NAMES)  # piece sizes change nothing
        assert odd.keywords == lean.keywords and odd.findings == lean.findings, s.name


@needs_shared_corpus
def test_without_stream_data_names_the_shared_corpus_is_judged_the_same() -> None:
    for path in SHARED:
        _same_judgement(path.read_bytes())


def test_without_stream_data_names_a_name_in_image_data_is_not_counted() -> None:
    pixels = b"\x00\x01/JavaScript/JS/OpenAction\xff" * 100
    data = mini_pdf(b"<< /Type /Catalog >>", b"<< /Type /XObject /Subtype /Image /Length %d >>\nstream\n%s\nendstream"
                    % (len(pixels), pixels))
    full, lean = _same_judgement(data)
    assert full.keywords["/JavaScript"] == 100 and full.findings == []  # pdfid counts them; nothing judges them
    assert lean.keywords["/JavaScript"] == 0 and lean.keywords["stream"] == 1 and lean.keywords["endstream"] == 1


def test_the_server_counts_stream_data_names_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from backend.services.validation import ValidationService
    from backend.settings import Settings

    def limits() -> ScanLimits:
        with ThreadPoolExecutor(1) as pool:
            return ValidationService(Settings(), pool, reporter=None).scan_limits  # type: ignore[arg-type]

    assert limits().count_names_in_stream_data is False
    monkeypatch.setenv("STREAMING_SCAN_STREAM_DATA_NAMES", "true")
    assert limits().count_names_in_stream_data is True


# -- speed ------------------------------------------------------------------------------


def _stream_pdf(payload: bytes) -> bytes:
    head = b"%%PDF-1.7\n1 0 obj\n<< /Length %d >>\nstream\n" % len(payload)
    return head + payload + b"\nendstream\nendobj\n%%EOF\n"


def test_stream_data_is_scanned_fast_enough() -> None:
    data = _stream_pdf(os.urandom(8 * MIB))
    pieces = [data[i:i + MIB] for i in range(0, len(data), MIB)]
    start = time.perf_counter()
    sc = PdfStreamScanner()
    for p in pieces:
        sc.feed(p)
    sc.finish()
    assert len(data) / (time.perf_counter() - start) > 100 * MIB  # measured: ~1-2 GiB/s


def _benchmark() -> None:  # pragma: no cover - run by hand
    def rate(data: bytes, piece: int = MIB, reps: int = 5) -> float:
        pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
        best = 0.0
        for _ in range(reps):
            start = time.perf_counter()
            sc = PdfStreamScanner()
            for p in pieces:
                sc.feed(p)
            sc.finish()
            best = max(best, len(data) / (time.perf_counter() - start) / MIB)
        return best

    def bare_regex(piece: bytes) -> int:
        return sum(1 for _ in STREAM_NAMES_RE.finditer(piece))

    def checksum(piece: bytes) -> int:
        return zlib.crc32(piece)

    def reference(data: bytes, reps: int = 5) -> tuple[float, float]:
        """This machine's ceiling: one bare regex pass, and zlib.crc32, in MiB/s."""
        pieces = [data[i:i + MIB] for i in range(0, len(data), MIB)]
        best = [0.0, 0.0]
        for _ in range(reps):
            for k, work in enumerate((bare_regex, checksum)):
                start = time.perf_counter()
                for p in pieces:
                    work(p)
                best[k] = max(best[k], len(data) / (time.perf_counter() - start) / MIB)
        return best[0], best[1]

    rnd = os.urandom(64 * MIB)
    regex, crc = reference(rnd)
    print(f"reference: one bare regex pass {regex:.0f} MiB/s, zlib.crc32 {crc:.0f} MiB/s")
    indirect = _stream_pdf(rnd).replace(b"/Length %d" % len(rnd), b"/Length 2 0 R", 1)
    print(f"64 MiB random bytes, no %PDF- header:        {rate(rnd):8.0f} MiB/s")
    print(f"64 MiB random stream data, direct /Length:   {rate(_stream_pdf(rnd)):8.0f} MiB/s")
    print(f"64 MiB random stream data, indirect /Length: {rate(indirect):8.0f} MiB/s")
    garbage = b"%PDF-1.7\n" + rnd
    print(f"64 MiB random bytes as object syntax:        {rate(garbage, reps=1):8.0f} MiB/s")
    files = [p.read_bytes() for p in SHARED]
    total = sum(map(len, files))
    start = time.perf_counter()
    for d in files:
        scan(d)
    print(f"shared corpus, {len(files)} files, {total / MIB:.1f} MiB:     "
          f"{total / (time.perf_counter() - start) / MIB:8.0f} MiB/s")
    for p in sorted(SHARED, key=lambda p: -p.stat().st_size)[:3]:
        print(f"  {p.name[:60]:60s} {rate(p.read_bytes()):8.0f} MiB/s")


if __name__ == "__main__":  # pragma: no cover
    _benchmark()
