"""Generated files for the hardening tests: odd or hostile PDFs, each with the verdict
the server must give it (issue "a hostile or odd PDF may cost the server nothing").

Every maker writes one file and returns its path; :data:`VERDICTS` says what the
upload of each must end in. Pillow (JPEG) and pikepdf write them; nothing is read from
outside the tests.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Final

import pikepdf
from pikepdf import Dictionary, Name

MIB: Final = 1 << 20


def _jpeg(width: int, height: int, mode: str = "RGB") -> bytes:
    """A real, tiny-on-disk JPEG: one flat colour compresses to almost nothing."""
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, (width, height), (250, 250, 245) if mode == "RGB" else 250).save(out, "JPEG", quality=30)
    return out.getvalue()


def _image_page(pdf: pikepdf.Pdf, data: bytes, width: int, height: int, colour: str = "/DeviceRGB",
                filters: Name | pikepdf.Array = Name.DCTDecode) -> None:
    image = pdf.make_stream(data, Type=Name.XObject, Subtype=Name.Image, Width=width, Height=height,
                            ColorSpace=Name(colour), BitsPerComponent=8, Filter=filters)
    page = pdf.add_blank_page(page_size=(612, 792))
    page.obj.Resources = Dictionary(XObject=Dictionary(Im0=image))
    page.obj.Contents = pdf.make_stream(b"q 612 0 0 792 0 0 cm /Im0 Do Q")


def scanned_page(path: Path) -> Path:
    """A 300-dpi US-letter page scan: a 2550 x 3300 RGB JPEG of a few KB (25 MB unpacked)."""
    pdf = pikepdf.new()
    _image_page(pdf, _jpeg(2550, 3300), 2550, 3300)
    pdf.save(path)
    return path


def long_image(path: Path) -> Path:
    """A 40000 x 512 JPEG strip (61 MB unpacked, ~100 KB on disk)."""
    pdf = pikepdf.new()
    _image_page(pdf, _jpeg(40000, 512), 40000, 512)
    pdf.save(path)
    return path


def huge_declared_image(path: Path) -> Path:
    """A JPEG whose dictionary declares 100000 x 100000 RGB (30 GB unpacked): flagged
    ``huge_image``, since nothing here decodes it."""
    pdf = pikepdf.new()
    _image_page(pdf, _jpeg(64, 64), 100_000, 100_000)
    pdf.save(path)
    return path


def flate_bomb(path: Path, decoded_mib: int = 300) -> Path:
    """A real Flate bomb: ``decoded_mib`` MiB of zeros in one content stream (~300 KB)."""
    z = zlib.compressobj(9)
    data = b"".join(z.compress(bytes(MIB)) for _ in range(decoded_mib)) + z.flush()
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(612, 792))
    page.obj.Contents = pdf.make_stream(data, Filter=Name.FlateDecode)
    pdf.save(path, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return path


def many_objects(path: Path, count: int = 100_000) -> Path:
    """``count`` small indirect objects, all reachable from the page (kept by qpdf)."""
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(612, 792))
    objects = [pdf.make_indirect(Dictionary(N=i, Label=pikepdf.String(f"item {i}"))) for i in range(count)]
    page.obj.Items = pikepdf.Array(objects)
    pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return path


def _text_pdf(text: str) -> bytes:
    pdf = pikepdf.new()
    font = pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica))
    page = pdf.add_blank_page(page_size=(612, 792))
    page.obj.Resources = Dictionary(Font=Dictionary(F1=font))
    page.obj.Contents = pdf.make_stream(
        f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode("latin-1"))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def trailing_data(path: Path, extra: int = 64 << 10) -> Path:
    """A good PDF followed by ``extra`` bytes of something else after its ``%%EOF``."""
    path.write_bytes(_text_pdf("Trailing data follows this file") + b"PK\x03\x04" + bytes(range(256)) * (extra // 256))
    return path


def no_eof(path: Path) -> Path:
    """A good PDF whose last line, ``%%EOF``, was lost."""
    data = _text_pdf("This file lost its end-of-file marker")
    path.write_bytes(data[:data.rindex(b"%%EOF")])
    return path


def javascript_at_the_end(path: Path) -> Path:
    """A PDF whose OpenAction JavaScript is an object in its last KiB (after the pages)."""
    body = _text_pdf("JavaScript at the end")
    with pikepdf.open(io.BytesIO(body)) as pdf:
        js = pdf.make_indirect(Dictionary(S=Name.JavaScript, JS=pikepdf.String("app.alert(1)")))
        pdf.Root.OpenAction = js
        pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    data = path.read_bytes()
    assert b"/JavaScript" in data[-1024:], "the action must sit in the last KiB"
    return path


def regex_stall(path: Path, letters: int = 30_000) -> Path:
    """A page whose text is ``letters`` times ``a`` then ``.b``: quadratic for a sentence
    regex that backtracks."""
    path.write_bytes(_text_pdf("a" * letters + ".b"))
    return path


def encrypted_text(path: Path) -> Path:
    """A text PDF encrypted with an empty user password (opens without one)."""
    with pikepdf.open(io.BytesIO(_text_pdf("Encrypted quarterly wombat figures"))) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner-secret", user="", R=6))
    return path


#: file stem -> (maker, outcome): "indexed"/"flagged:<kind>" (stored), or the refusal's code.
VERDICTS: Final = {
    "scanned_page": (scanned_page, "clean"),
    "long_image": (long_image, "clean"),
    "huge_declared_image": (huge_declared_image, "flagged:huge_image"),
    "flate_bomb": (flate_bomb, "security_rejected"),
    "many_objects": (many_objects, "clean"),
    "trailing_data": (trailing_data, "flagged:damaged"),
    "no_eof": (no_eof, "flagged:missing_eof"),  # qpdf reads it without a warning
    "javascript_at_the_end": (javascript_at_the_end, "security_rejected"),
    "regex_stall": (regex_stall, "clean"),
    "encrypted_text": (encrypted_text, "flagged:encrypted"),
}


def build(root: Path) -> dict[str, Path]:
    """Every file of :data:`VERDICTS` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return {name: maker(root / f"{name}.pdf") for name, (maker, _) in VERDICTS.items()}  # type: ignore[operator]
