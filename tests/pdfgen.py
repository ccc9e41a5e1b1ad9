"""Valid PDFs of any size, written as a stream (a 1 GiB file never sits in memory).

The file has real pages with text and one uncompressed image XObject whose pixel data
is random bytes: big enough to reach ``size`` exactly, opaque to keyword scans.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_BLOCK = 1 << 20


def _text_stream(text: str) -> bytes:
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET\nq 100 0 0 100 72 500 cm /Im1 Do Q\n".encode()


def make_pdf(path: Path | str, size: int, *, pages: int = 1, text: str = "Hello", seed: int = 0) -> str:
    """Write a valid PDF of exactly ``size`` bytes to ``path`` and return its SHA-256."""
    path = Path(path)
    objs: list[bytes] = []
    n_fixed = 3 + 2 * pages  # catalog, pages, font, then (page, content) per page; image last
    image_num = n_fixed + 1
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i in range(pages):
        objs.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
                f"/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 {image_num} 0 R >> >> >>"
            ).encode()
        )
        content = _text_stream(f"{text} page {i + 1}")
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")

    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    body = bytearray(head)
    offsets: list[int] = []
    for num, obj in enumerate(objs, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % num + obj + b"\nendobj\n"

    def tail_for(img_len: int, img_off: int) -> tuple[bytes, bytes]:
        img_head = (
            b"%d 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (image_num, img_len, img_len)
        )
        xref_off = img_off + len(img_head) + img_len + len(b"\nendstream\nendobj\n")
        xref = bytearray(b"xref\n0 %d\n0000000000 65535 f \n" % (image_num + 1))
        for off in offsets + [img_off]:
            xref += b"%010d 00000 n \n" % off
        xref += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (image_num + 1, xref_off)
        return img_head, b"\nendstream\nendobj\n" + bytes(xref)

    img_off = len(body)
    img_head, tail = tail_for(1, img_off)
    img_len = size - len(body) - len(img_head) - len(tail)
    for _ in range(3):  # the digits of the length change the header's length: settle it
        img_head, tail = tail_for(max(img_len, 1), img_off)
        img_len = size - len(body) - len(img_head) - len(tail)
    if img_len < 1:
        raise ValueError(f"size {size} is too small for a PDF with {pages} pages")

    digest = hashlib.sha256()
    rng_state = hashlib.sha256(b"seed%d" % seed).digest()
    with open(path, "wb") as f:
        for part in (bytes(body), img_head):
            f.write(part)
            digest.update(part)
        left = img_len
        while left:
            n = min(left, _BLOCK)
            block = os.urandom(n) if seed < 0 else _prng(rng_state, n)
            rng_state = hashlib.sha256(rng_state).digest()
            f.write(block)
            digest.update(block)
            left -= n
        f.write(tail)
        digest.update(tail)
    assert path.stat().st_size == size
    return digest.hexdigest()


def _prng(key: bytes, n: int) -> bytes:
    """Deterministic incompressible bytes, fast (a repeated random-looking 64 KiB block
    would be compressible; os.urandom per seed is not repeatable)."""
    import random

    return random.Random(key).randbytes(n)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()
