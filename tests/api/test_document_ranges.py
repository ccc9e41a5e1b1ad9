"""/api/documents/{id}/file streamed from the blob store: the Range cases FileResponse
used to answer (one range, suffix, open end, past the end, If-Range, several ranges)."""

from __future__ import annotations

from backend.api.blob_response import byte_range, content_disposition
from tests.api.test_documents import _store
from tests.conftest import Api


def test_byte_range() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=0-9", 100) == (0, 10)
    assert byte_range("bytes=90-200", 100) == (90, 100)  # clipped to the end
    assert byte_range("bytes=-10", 100) == (90, 100)
    assert byte_range("bytes=-500", 100) == (0, 100)
    assert byte_range("bytes=50-", 100) == (50, 100)
    assert byte_range("bytes=100-", 100) is False and byte_range("bytes=-0", 100) is False
    for ignored in ("bytes=5-1", "items=0-1", "bytes=0-1,5-6", "bytes=-", "bytes=x-1"):
        assert byte_range(ignored, 100) is None, ignored


def test_content_disposition() -> None:
    assert content_disposition("a.pdf") == 'attachment; filename="a.pdf"'
    assert content_disposition("é.pdf") == "attachment; filename*=utf-8''%C3%A9.pdf"


async def test_ranges_on_the_stored_file(api: Api, small_pdf: bytes) -> None:
    doc = await _store(api, small_pdf)
    url, size = f"/api/documents/{doc['id']}/file", len(small_pdf)
    r = await api.http.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert r.status_code == 206 and r.content == small_pdf[-10:]
    assert r.headers["content-length"] == "10" and r.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    r = await api.http.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    etag = r.headers["etag"]
    r = await api.http.get(url, headers={"Range": "bytes=0-99", "If-Range": etag})
    assert r.status_code == 206 and r.content == small_pdf[:100]
    r = await api.http.get(url, headers={"Range": "bytes=0-99", "If-Range": '"another"'})
    assert r.status_code == 200 and r.content == small_pdf
    r = await api.http.get(url, headers={"Range": "bytes=0-9,20-29"})  # several: the whole file
    assert r.status_code == 200 and r.content == small_pdf
    assert r.headers["content-disposition"] == 'attachment; filename="doc.pdf"'
