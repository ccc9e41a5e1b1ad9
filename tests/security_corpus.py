"""A generated corpus of clean and malicious PDFs for the scanner tests.

``build_corpus(root)`` writes every :class:`Sample` into ``root`` (pikepdf for real
documents, a tiny raw writer where the bytes themselves matter: ``#xx`` names, a keyword
on a 2 MiB boundary, bombs) and says what each one must yield: the finding kinds of the
streaming scanner, and those of ``inspect_pdf`` or the error it raises. Most threats come
twice: in plain objects, and hidden in a compressed object stream (``_objstm``).
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, String

MIB = 1 << 20
SPLIT_AT = 2 * MIB  # the split sample puts "/JavaScript" across this offset


@dataclass(frozen=True)
class Sample:
    """One generated file and what the scanners must say about it (``deep_raises``: the
    exception class name ``inspect_pdf`` raises, instead of ``deep_kinds``)."""

    name: str
    path: Path
    stream_kinds: frozenset[str]
    deep_kinds: frozenset[str] = frozenset()
    deep_raises: str | None = None
    clean: bool = False  # must pass the default policy as "clean" in both scans


def _kinds(*kinds: str) -> frozenset[str]:
    return frozenset(kinds)


def _doc(pages: int = 1) -> pikepdf.Pdf:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica))
    for i in range(pages):
        page = pdf.add_blank_page(page_size=(612, 792))
        page.obj.Resources = Dictionary(Font=Dictionary(F1=font))
        text = f"BT /F1 24 Tf 72 700 Td (Quarterly report, page {i + 1}) Tj ET".encode()
        page.obj.Contents = pdf.make_stream(text)
    return pdf


def _save(pdf: pikepdf.Pdf, path: Path, objstm: bool, **kw: object) -> None:
    mode = pikepdf.ObjectStreamMode.generate if objstm else pikepdf.ObjectStreamMode.disable
    pdf.save(path, object_stream_mode=mode, **kw)  # type: ignore[arg-type]


def _raw_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A well-formed PDF from object bodies (object ``i+1`` is ``objects[i]``)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, xref)
    return bytes(out)


_PAGES = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
          b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"]


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


# -- threats, each applied to a fresh document ------------------------------------------


def _js_open_action(pdf: pikepdf.Pdf) -> None:
    action = Dictionary(Type=Name.Action, S=Name.JavaScript, JS=String("app.alert('pwned');"))
    pdf.Root.OpenAction = pdf.make_indirect(action)


def _page_aa(pdf: pikepdf.Pdf) -> None:
    js = Dictionary(S=Name.JavaScript, JS=String("this.print({bUI: false});"))
    pdf.pages[0].obj.AA = Dictionary(O=js)


def _launch(pdf: pikepdf.Pdf) -> None:
    win = Dictionary(F=String("cmd.exe"), P=String("/c calc"))
    action = Dictionary(S=Name.Launch, F=String("calc.exe"), Win=win)
    pdf.Root.OpenAction = pdf.make_indirect(action)


def _embedded_exe(pdf: pikepdf.Pdf) -> None:
    payload = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200)
    pdf.attachments["invoice.exe"] = pikepdf.AttachedFileSpec(  # type: ignore[call-arg]
        pdf, payload, mime_type="application/x-msdownload", description="invoice")


def _embedded_txt(pdf: pikepdf.Pdf) -> None:
    pdf.attachments["notes.txt"] = pikepdf.AttachedFileSpec(  # type: ignore[call-arg]
        pdf, b"meeting notes\n", mime_type="text/plain")


def _xfa(pdf: pikepdf.Pdf) -> None:
    xdp = pdf.make_stream(b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/"><template/></xdp:xdp>')
    pdf.Root.AcroForm = pdf.make_indirect(Dictionary(Fields=Array(), XFA=xdp))


def _link(pdf: pikepdf.Pdf, action: Dictionary) -> None:
    annot = Dictionary(Type=Name.Annot, Subtype=Name.Link, Rect=Array([72, 600, 300, 640]),
                       Border=Array([0, 0, 0]), A=action)
    pdf.pages[0].obj.Annots = Array([pdf.make_indirect(annot)])


def _uri(pdf: pikepdf.Pdf) -> None:
    _link(pdf, Dictionary(S=Name.URI, URI=String("https://example.com/landing?id=42")))


def _submit_form(pdf: pikepdf.Pdf) -> None:
    target = Dictionary(FS=Name.URL, F=String("https://collector.example/submit"))
    _link(pdf, Dictionary(S=Name.SubmitForm, F=target, Flags=4))


_THREATS: dict[str, tuple[Callable[[pikepdf.Pdf], None], frozenset[str]]] = {
    "js_open_action": (_js_open_action, _kinds("javascript", "open_action")),
    "page_aa": (_page_aa, _kinds("additional_actions", "javascript")),
    "launch": (_launch, _kinds("launch", "open_action")),
    "embedded_exe": (_embedded_exe, _kinds("embedded_file", "embedded_executable")),
    "xfa": (_xfa, _kinds("acroform", "xfa")),
    "uri": (_uri, _kinds("uri")),
    "submit_form": (_submit_form, _kinds("submit_form")),
}


def _image_with_name_bytes(pdf: pikepdf.Pdf) -> None:
    """An uncompressed grey image whose pixels spell active-content names, and a Flate
    image whose *decoded* pixels do: data, not syntax, so never findings."""
    rng = random.Random(7)
    pixels = bytearray(rng.randbytes(64 * 64))
    bait = b"/JavaScript /JS (app.alert(1)) /OpenAction /Launch /AA /EmbeddedFile /XFA "
    pixels[1000:1000 + len(bait)] = bait
    raw = pdf.make_stream(bytes(pixels), Type=Name.XObject, Subtype=Name.Image, Width=64,
                          Height=64, ColorSpace=Name.DeviceGray, BitsPerComponent=8)
    flate = pdf.make_stream(zlib.compress(bytes(pixels)), Type=Name.XObject, Subtype=Name.Image,
                            Width=64, Height=64, ColorSpace=Name.DeviceGray, BitsPerComponent=8,
                            Filter=Name.FlateDecode)
    page = pdf.pages[0].obj
    page.Resources.XObject = Dictionary(Im1=raw, Im2=flate)
    page.Contents = pdf.make_stream(
        b"q 200 0 0 200 72 400 cm /Im1 Do Q q 100 0 0 100 300 400 cm /Im2 Do Q")


def _obfuscated() -> bytes:
    return _raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R /Open#41ction 4 0 R >>", _PAGES[1], _PAGES[2],
        b"<< /Type /Action /S /J#61vaScript /J#53 (app.alert\\(1\\)) >>"])


def _split_keyword() -> bytes:
    """``/JavaScript`` starts 5 bytes before :data:`SPLIT_AT`, behind a big stream."""
    action = b"<< /Type /Action /S /JavaScript /JS (app.alert\\(2\\)) >>"
    head = [b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", _PAGES[1],
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            b"<< /XObject << /Im1 4 0 R >> >> >>"]
    pad = 1000
    for _ in range(3):  # the length's digits shift the layout: settle it
        image = _stream(b"/Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace "
                        b"/DeviceGray /BitsPerComponent 8" % pad, random.Random(3).randbytes(pad))
        data = _raw_pdf(head + [image, action])
        at = data.index(b"/JavaScript")
        pad += SPLIT_AT - 5 - at
    assert data.index(b"/JavaScript") == SPLIT_AT - 5
    return data


def _bomb(objstm: bool) -> bytes:
    """Flate zeros: 200 MB in a page's content stream, or 64 MiB as an object stream."""
    if not objstm:
        zeros = zlib.compressobj(9)
        body = b"".join(zeros.compress(bytes(MIB)) for _ in range(200)) + zeros.flush()
        return _raw_pdf(_PAGES[:2] + [
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _stream(b"/Filter /FlateDecode", body)])
    zeros = zlib.compressobj(9)
    body = zeros.compress(b"6 0 << /Type /Action /S /GoTo /D [3 0 R /Fit] >> ")
    body += b"".join(zeros.compress(bytes(MIB)) for _ in range(64)) + zeros.flush()
    return _raw_pdf(_PAGES + [b"null", _stream(b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode",
                                                body)])


def build_corpus(root: Path) -> dict[str, Sample]:
    """Write the corpus into ``root``; return the samples by name."""
    root.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []

    def add(name: str, stream_kinds: frozenset[str], deep: frozenset[str] | str,
            clean: bool = False) -> Path:
        path = root / f"{name}.pdf"
        raises = deep if isinstance(deep, str) else None
        samples.append(Sample(name, path, stream_kinds, frozenset() if raises else
                              frozenset(deep), raises, clean))
        return path

    _save(_doc(3), add("clean_multipage", _kinds(), _kinds(), clean=True), objstm=False)
    _save(_doc(3), add("clean_objstm", _kinds(), _kinds(), clean=True), objstm=True)
    pdf = _doc()
    _image_with_name_bytes(pdf)
    _save(pdf, add("clean_image_name_bytes", _kinds(), _kinds(), clean=True), objstm=False,
          compress_streams=False)
    for name, (apply, kinds) in _THREATS.items():
        for objstm in (False, True):
            pdf = _doc()
            apply(pdf)
            _save(pdf, add(name + ("_objstm" if objstm else ""), kinds, kinds), objstm=objstm)
    pdf = _doc()
    _embedded_txt(pdf)
    _save(pdf, add("embedded_txt", _kinds("embedded_file"), _kinds("embedded_file")), objstm=True)

    add("obfuscated_names", _kinds("javascript", "open_action", "obfuscated_name"),  # its page: no /Resources
        _kinds("javascript", "open_action", "damaged")).write_bytes(_obfuscated())
    add("split_keyword", _kinds("javascript", "open_action"),
        _kinds("javascript", "open_action")).write_bytes(_split_keyword())
    clean = (root / "clean_multipage.pdf").read_bytes()
    add("header_garbage", _kinds("header_offset"), _kinds()).write_bytes(
        b"GIF89a" + random.Random(1).randbytes(500) + b"\n" + clean)
    add("header_garbage_far", _kinds(), "NotAPdf").write_bytes(b"x" * 2000 + clean)
    add("trailing_data", _kinds("trailing_data"), _kinds()).write_bytes(
        clean + b"PK\x03\x04" + random.Random(2).randbytes(600))
    add("trailing_data_far", _kinds("trailing_data"), _kinds("damaged")).write_bytes(
        clean + b"PK\x03\x04" + random.Random(2).randbytes(4000))
    add("truncated", _kinds("missing_eof"), _kinds("damaged")).write_bytes(clean[: len(clean) * 3 // 5])
    add("not_a_pdf", _kinds(), "NotAPdf").write_bytes(random.Random(4).randbytes(3000))
    add("bomb", _kinds(), "SecurityRejected").write_bytes(_bomb(objstm=False))
    add("bomb_objstm", _kinds("object_stream"), "SecurityRejected").write_bytes(_bomb(objstm=True))
    pdf = _doc(2)
    _save(pdf, add("encrypted_empty_password", _kinds("encrypted"), _kinds("encrypted")),
          objstm=False, encryption=pikepdf.Encryption(owner="owner-secret", user="", R=6))
    pdf = _doc(2)
    _js_open_action(pdf)
    _save(pdf, add("encrypted_password", _kinds("encrypted", "object_stream"),
                   _kinds("encrypted", "password_protected")),
          objstm=True, encryption=pikepdf.Encryption(owner="owner-secret", user="user-secret", R=6))
    return {s.name: s for s in samples}


_BUILT: dict[str, Sample] = {}


def session_corpus(factory: pytest.TempPathFactory) -> dict[str, Sample]:
    """The corpus, built once per test process (for session-scoped fixtures)."""
    if not _BUILT:
        _BUILT.update(build_corpus(factory.mktemp("security_corpus")))
    return _BUILT


#: The shared corpus of real PDFs: ``shared/corpus`` beside the checkout (as on the
#: developers' machines and in CI), or wherever ``PDF_CORPUS_DIR`` says.
SHARED_CORPUS = Path(os.environ.get("PDF_CORPUS_DIR",
                                    Path(__file__).resolve().parents[2] / "shared" / "corpus"))
