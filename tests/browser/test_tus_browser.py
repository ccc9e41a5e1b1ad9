"""tus clients in Chromium, unchanged, against /files/: Uppy's Dashboard with @uppy/tus on
the page we serve at /uppy, and tus-js-client itself. Each uploads a PDF byte-exact, and
resumes after the server is killed (SIGKILL, restarted on the same port) and after the
client is killed (its tab closed mid-upload; a new tab finds the upload in localStorage,
as tus-js-client stores it, and sends only the rest)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_page_progress import throttle, wait_until
from tests.browser.test_upload_page import download_sha256
from tests.e2e.conftest import MIB, REPO, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _uppy_built() -> None:
    if not (REPO / "frontend" / "uppy" / "dist" / "uppy.js").is_file():
        pytest.skip("the Uppy page is not built: run `make uppy`")


def document_of(server: ServerProcess, upload_url: str) -> int:
    """The document a finished tus upload became (HEAD's ``Upload-Document-Id``)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("HEAD", urllib.parse.urlsplit(upload_url).path, headers={"Tus-Resumable": "1.0.0"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        return int(resp.headers["Upload-Document-Id"])
    finally:
        conn.close()


def pdf(tmp_path: Path, name: str, size: int) -> tuple[Path, str]:
    path = tmp_path / name
    make_pdf(path, size, seed=size % 97)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


# -- Uppy ---------------------------------------------------------------------------------

# Set before the upload starts, awaited after: evaluate() waits for a promise it is given.
UPPY_DONE = """() => { window.uppyDone = new Promise(resolve => window.uppy.once('complete', r => resolve({
    ok: r.successful.map(f => f.tus && f.tus.uploadUrl || f.uploadURL),
    failed: r.failed.map(f => String(f.error)) }))); }"""


def uppy_result(page: Any) -> Any:
    return page.evaluate("window.uppyDone")


def uppy_add(page: Any, path: Path) -> None:
    page.locator(".uppy-Dashboard-input").first.set_input_files(str(path))
    page.wait_for_selector(".uppy-StatusBar-actionBtn--upload")


def test_uppy_dashboard_uploads_a_pdf_byte_exact(server: ServerProcess, page: Any, tmp_path: Path) -> None:
    path, sha = pdf(tmp_path, "uppy.pdf", 3 * MIB)
    page.goto(f"{server.base_url}/uppy")
    uppy_add(page, path)
    page.evaluate(UPPY_DONE)
    page.click(".uppy-StatusBar-actionBtn--upload")
    result = uppy_result(page)
    assert result["failed"] == [] and len(result["ok"]) == 1, result
    assert download_sha256(server, document_of(server, result["ok"][0])) == sha


def test_uppy_resumes_after_the_server_is_killed(server: ServerProcess, page: Any, tmp_path: Path) -> None:
    path, sha = pdf(tmp_path, "uppy-kill.pdf", 6 * MIB)
    page.goto(f"{server.base_url}/uppy?chunk={512 * 1024}")
    throttle(page, 2 * MIB)
    uppy_add(page, path)
    page.evaluate(UPPY_DONE)
    page.click(".uppy-StatusBar-actionBtn--upload")
    wait_until(page, lambda: page.evaluate("window.uppy.getState().totalProgress") >= 25, "no progress")
    server.kill()
    time.sleep(1.0)
    server.start()
    result = uppy_result(page)
    assert result["failed"] == [] and len(result["ok"]) == 1, result
    assert download_sha256(server, document_of(server, result["ok"][0])) == sha


def test_uppy_resumes_after_its_tab_is_closed(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    path, sha = pdf(tmp_path, "uppy-tab.pdf", 6 * MIB)
    first = browser.new_page()
    first.goto(f"{server.base_url}/uppy?chunk={512 * 1024}")
    throttle(first, 2 * MIB)
    uppy_add(first, path)
    first.click(".uppy-StatusBar-actionBtn--upload")
    wait_until(first, lambda: first.evaluate("window.uppy.getState().totalProgress") >= 30, "no progress")
    url = first.evaluate("Object.values(window.uppy.getState().files)[0].tus.uploadUrl")
    first.close()  # the client dies mid-upload; its upload URL stays in localStorage
    second = browser.new_page()
    try:
        second.goto(f"{server.base_url}/uppy?chunk={512 * 1024}")
        uppy_add(second, path)
        second.evaluate(UPPY_DONE)
        second.click(".uppy-StatusBar-actionBtn--upload")
        result = uppy_result(second)
        assert result["failed"] == [] and len(result["ok"]) == 1, result
        assert result["ok"] == [url]  # the same upload, resumed: not sent again from byte 0
        assert download_sha256(server, document_of(server, result["ok"][0])) == sha
    finally:
        second.close()


# -- tus-js-client in the page -----------------------------------------------------------

TUS_UPLOAD = """([b64, name, chunkSize, resume]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const file = new File([bytes], name, { type: 'application/pdf', lastModified: 1700000000000 });
    window.tusSent = 0;
    window.tusDone = new Promise((resolve, reject) => {
        const upload = new window.tus.Upload(file, {
            endpoint: '/files/', chunkSize, retryDelays: [0, 500, 1000, 2000, 3000, 5000, 8000],
            metadata: { filename: name, filetype: 'application/pdf' },
            onProgress: (sent) => { window.tusSent = sent; },
            onError: (e) => reject(String(e)),
            onSuccess: () => resolve({ url: upload.url }),
        });
        window.tusUpload = upload;
        upload.findPreviousUploads().then(previous => {
            if (resume && previous.length) { upload.resumeFromPreviousUpload(previous[0]); }
            upload.start();
        });
    });
}"""


def tus_upload(page: Any, path: Path, *, chunk: int, resume: bool = False) -> None:
    """Start the upload; ``tus_result(page)`` awaits it."""
    b64 = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(TUS_UPLOAD, [b64, path.name, chunk, resume])


def tus_result(page: Any) -> Any:
    return page.evaluate("window.tusDone")


def test_tus_js_client_uploads_byte_exact_and_survives_a_server_kill(
        server: ServerProcess, page: Any, tmp_path: Path) -> None:
    path, sha = pdf(tmp_path, "tusjs.pdf", 5 * MIB)
    page.goto(f"{server.base_url}/uppy")
    tus_upload(page, path, chunk=MIB)
    result = tus_result(page)
    assert download_sha256(server, document_of(server, result["url"])) == sha

    path, sha = pdf(tmp_path, "tusjs-kill.pdf", 6 * MIB)
    throttle(page, 2 * MIB)
    tus_upload(page, path, chunk=512 * 1024)
    wait_until(page, lambda: (page.evaluate("window.tusSent || 0") or 0) > 2 * MIB, "no progress")
    server.kill()
    time.sleep(1.0)
    server.start()
    result = tus_result(page)
    assert download_sha256(server, document_of(server, result["url"])) == sha


def test_tus_js_client_resumes_in_a_new_tab(server: ServerProcess, browser: Any, tmp_path: Path) -> None:
    path, sha = pdf(tmp_path, "tusjs-tab.pdf", 6 * MIB)
    first = browser.new_page()
    first.goto(f"{server.base_url}/uppy")
    throttle(first, 2 * MIB)
    tus_upload(first, path, chunk=512 * 1024)
    wait_until(first, lambda: (first.evaluate("window.tusSent || 0") or 0) > 2 * MIB, "no progress")
    url = first.evaluate("window.tusUpload.url")
    first.close()
    second = browser.new_page()
    try:
        second.goto(f"{server.base_url}/uppy")
        tus_upload(second, path, chunk=512 * 1024, resume=True)
        result = tus_result(second)
        assert result["url"] == url  # the same upload, resumed from localStorage
        assert download_sha256(server, document_of(server, result["url"])) == sha
    finally:
        second.close()
