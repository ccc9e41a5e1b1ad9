"""tus concatenation: partial uploads in parallel, then a final upload made of them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.security_corpus import build_corpus

H = {"Tus-Resumable": "1.0.0"}
STREAM = {**H, "Content-Type": "application/offset+octet-stream"}
META = "filename " + base64.b64encode(b"joined.pdf").decode()


async def _partial(api: Api, data: bytes) -> str:
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "partial", "Upload-Length": str(len(data))})
    assert r.status_code == 201, r.text
    url = r.headers["location"]
    r = await api.http.patch(url, content=data, headers={**STREAM, "Upload-Offset": "0"})
    assert r.status_code == 204 and "upload-document-id" not in r.headers  # a piece is never stored alone
    return str(url)


async def test_options_lists_concatenation(api: Api) -> None:
    assert "concatenation" in (await api.http.options("/files/")).headers["tus-extension"].split(",")


async def test_partials_in_parallel_then_the_final_is_stored_byte_exact(api: Api, small_pdf: bytes) -> None:
    cuts = [0, 1_234_567, 2_000_000, 3_500_001, len(small_pdf)]
    urls = await asyncio.gather(*(_partial(api, small_pdf[a:b]) for a, b in zip(cuts, cuts[1:])))
    head = await api.http.head(urls[1], headers=H)
    assert head.headers["upload-concat"] == "partial"  # a piece that is not a PDF on its own is fine
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "final;" + " ".join(urls),
                                                "Upload-Metadata": META})
    assert r.status_code == 201, r.text
    doc = (await api.http.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest() and doc["filename"] == "joined.pdf"
    final = r.headers["location"]
    head = await api.http.head(final, headers=H)
    assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(small_pdf))
    assert head.headers["upload-concat"] == "final;" + " ".join(urls)
    r = await api.http.patch(final, content=b"x", headers={**STREAM, "Upload-Offset": str(len(small_pdf))})
    assert r.status_code == 403
    assert (await api.http.head(urls[0], headers=H)).status_code == 404  # the pieces went with it


async def test_a_final_upload_is_scanned_whole(api: Api, tmp_path: Path) -> None:
    """The second piece alone is not a PDF (no header): only the whole file is scanned,
    and refused. (A first piece that reveals JavaScript is refused on its own PATCH.)"""
    data = build_corpus(tmp_path)["js_open_action"].path.read_bytes()
    urls = [await _partial(api, data[:20]), await _partial(api, data[20:])]
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "final;" + " ".join(urls),
                                                "Upload-Metadata": META})
    assert r.status_code == 422 and r.json()["error"] == "security_rejected" and r.json()["findings"]


async def test_unfinished_partials_and_a_length_on_the_final_are_refused(api: Api, small_pdf: bytes) -> None:
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "partial", "Upload-Length": "100"})
    unfinished = r.headers["location"]
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": f"final;{unfinished}", "Upload-Metadata": META})
    assert r.status_code == 400 and "not finished" in r.json()["message"]
    done = await _partial(api, small_pdf[:100])
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": f"final;{done}", "Upload-Length": "100",
                                                "Upload-Metadata": META})
    assert r.status_code == 400


async def test_a_final_upload_takes_its_parts_chunk_digests_and_checks_them(api: Api, small_pdf: bytes,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts cut at chunk boundaries give the final upload their chunks' digests (only the
    chunk that spans two parts is hashed back); the rebuild still checks every one against
    the copied bytes, and a copy that went wrong is refused with the parts kept."""
    from backend.services import uploads
    from backend.services.models import MIN_CHUNK

    chunk = MIN_CHUNK  # every part's and the final's: files under 10 MB
    cuts = [0, 2 * chunk, 2 * chunk + 300_000, len(small_pdf)]
    assert len(small_pdf) > cuts[2]
    hashed: list[int] = []
    real = uploads._sha256_hex

    def counting(data: bytearray) -> str:
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(uploads, "_sha256_hex", counting)
    urls = [await _partial(api, small_pdf[a:b]) for a, b in zip(cuts, cuts[1:])]
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "final;" + " ".join(urls),
                                                "Upload-Metadata": META})
    assert r.status_code == 201, r.text
    doc = (await api.http.get(f"/api/documents/{r.headers['upload-document-id']}")).json()
    assert doc["sha256"] == hashlib.sha256(small_pdf).hexdigest()
    total = -(-len(small_pdf) // chunk)
    assert len(hashed) == total - 2  # chunks 0 and 1 came from the first part

    urls = [await _partial(api, small_pdf[a:b]) for a, b in zip(cuts, cuts[1:])]
    copy_from = api.svc.uploads.assembly.chunks.copy_from

    async def wrong_copy(upload_id: str, offset: int, source_id: str, length: int) -> None:
        await copy_from(upload_id, offset, source_id, length)
        if offset == 0:
            with open(api.svc.uploads.assembly.chunks.local_path(upload_id), "r+b") as f:
                f.seek(10)
                f.write(b"#")

    monkeypatch.setattr(api.svc.uploads.assembly.chunks, "copy_from", wrong_copy)
    r = await api.http.post("/files/", headers={**H, "Upload-Concat": "final;" + " ".join(urls),
                                                "Upload-Metadata": META})
    assert r.status_code == 503 and r.json()["error"] == "storage_unavailable", r.text
    for url in urls:  # the parts are kept
        assert (await api.http.head(url, headers=H)).status_code == 200
