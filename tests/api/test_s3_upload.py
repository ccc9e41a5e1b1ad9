"""The services over the S3 stores, in-process (the app on a real SeaweedFS bucket), and
what they send to S3: an in-order upload of 8 MiB chunks sends each byte once (parts);
chunks out of order are staged (the digest reads them back) and copied inside S3 at
completion; either way the document comes back byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import temp_settings
from backend.storage.s3.chunks import S3ChunkStore
from tests.conftest import Api
from tests.pdfgen import make_pdf
from tests.realservers.seaweed import SeaweedServer

MIB = 1 << 20
SIZE = 3 * 8 * MIB + 3 * MIB + 11


@pytest.fixture
async def s3_api(tmp_path: Path, seaweed_server: SeaweedServer, s3_bucket: str) -> AsyncIterator[Api]:
    s = seaweed_server
    settings = temp_settings(tmp_path / "srv", progress_interval_seconds=0, storage_backend="s3",
                             s3_endpoint_url=s.endpoint_url, s3_bucket=s3_bucket, s3_access_key_id=s.access_key,
                             s3_secret_access_key=s.secret_key, s3_region=s.region, s3_prefix="api/")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield Api(http, app.state.services)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("s3api") / "doc.pdf"
    make_pdf(path, SIZE, pages=2, seed=77)
    return path.read_bytes()


async def _upload(api: Api, data: bytes, order: list[int] | None = None) -> tuple[int, int, int]:
    chunks = api.svc.assembly.chunks
    assert isinstance(chunks, S3ChunkStore)
    written, copied = chunks.bytes_written, chunks.bytes_copied
    s = await api.initiate(len(data))
    assert s["chunk_size"] == 8 * MIB
    await api.upload_all(s["session_id"], data, s["chunk_size"], order)
    sent = chunks.bytes_written - written
    r = await api.complete(s["session_id"])
    assert r.status_code == 200, r.text
    doc = r.json()["document"]
    got = await api.http.get(f"/api/documents/{doc['id']}/file")
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    print(f"\n{len(data)} bytes uploaded: {sent} sent while uploading, {chunks.bytes_written - written} sent "
          f"in all ({(chunks.bytes_written - written) / len(data):.3f} per byte), "
          f"{chunks.bytes_copied - copied} copied inside S3 (the staged tail and the copy to the content address)")
    return sent, chunks.bytes_written - written, chunks.bytes_copied - copied


async def test_in_order_8_mib_chunks_send_each_byte_to_s3_once(s3_api: Api, pdf: bytes) -> None:
    sent, total, copied = await _upload(s3_api, pdf)
    assert sent == total == len(pdf)
    assert copied == (3 * MIB + 11) + len(pdf)  # the last (short, staged) chunk, then adopt's copy


async def test_chunks_out_of_order_are_staged_and_read_back(s3_api: Api, pdf: bytes) -> None:
    sent, total, copied = await _upload(s3_api, pdf, order=[3, 1, 2, 0])
    assert sent == total == len(pdf)  # staged pieces of 8 MiB are copied into parts inside S3
    assert copied == 2 * len(pdf) - 8 * MIB  # all but chunk 0 (a part), then adopt's copy


async def test_resume_reads_back_chunks_in_parts_without_losing_them(s3_api: Api, pdf: bytes) -> None:
    """``/resume`` verifies every recorded chunk from the bytes: those in parts are made
    readable (a snapshot) rather than forgotten, and the upload finishes."""
    chunks = s3_api.svc.assembly.chunks
    assert isinstance(chunks, S3ChunkStore)
    written = chunks.bytes_written
    s = await s3_api.initiate(len(pdf))
    sid, cs = s["session_id"], s["chunk_size"]
    for i in (0, 1, 3):
        r = await s3_api.chunk(sid, i, pdf[i * cs:(i + 1) * cs], chunk_size=cs)
        assert r.status_code == 200, r.text
    r = await s3_api.http.post("/api/documents/streaming/resume", json={"session_id": sid})
    assert r.status_code == 200 and r.json()["missing_chunks"] == [2], r.text
    r = await s3_api.chunk(sid, 2, pdf[2 * cs:3 * cs], chunk_size=cs)
    assert r.status_code == 200, r.text
    r = await s3_api.complete(sid)
    assert r.status_code == 200, r.text
    got = await s3_api.http.get(f"/api/documents/{r.json()['document']['id']}/file")
    assert got.content == pdf
    assert chunks.bytes_written - written == len(pdf)
