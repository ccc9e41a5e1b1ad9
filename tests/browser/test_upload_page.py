"""The upload page in a real headless Chromium against the real server.

* a 20 MiB PDF picked through the page reaches 100% and is listed; a screenshot of the
  page after the upload is written to ``test-artifacts/upload-page.png``;
* a reload mid-upload, then the same file picked again: only the missing chunks are sent
  and the stored file is byte-exact;
* refused files get clear messages (not a PDF, too large) and the search box answers.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import readme_screenshot
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

SIZE = 20 * MIB
CHUNK = 2 * MIB  # asked for with ?chunk_size=: 10 chunks, so a reload can land mid-upload
UPLOAD_TIMEOUT_MS = 60_000


def api_json(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.base_url + path, timeout=10) as resp:
        return json.loads(resp.read())


def download_sha256(server: ServerProcess, doc_id: int) -> str:
    h = hashlib.sha256()
    with urllib.request.urlopen(f"{server.base_url}/api/documents/{doc_id}/file", timeout=30) as resp:
        assert resp.headers["Content-Type"] == "application/pdf"
        while block := resp.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def javascript_pdf() -> bytes:
    """A small PDF whose OpenAction runs JavaScript: the default policy refuses it."""
    import io

    from tests.security_corpus import _doc, _js_open_action

    pdf = _doc(pages=1)
    _js_open_action(pdf)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def search(page: Any, q: str) -> str:
    """Submit the search box and return the results' text once the answer is shown."""
    page.fill("#search-input", q)
    page.evaluate("document.getElementById('search-results').dataset.state = 'busy'")
    page.click("#search-form button")
    page.wait_for_selector('#search-results[data-state="done"]')
    return str(page.locator("#search-results").inner_text())


def card(page: Any, filename: str) -> Any:
    return page.locator(f'.upload[data-filename="{filename}"]').first


def wait_completed(page: Any, filename: str) -> None:
    c = card(page, filename)
    c.locator(".pct").filter(has_text="100%").wait_for(timeout=UPLOAD_TIMEOUT_MS)
    page.wait_for_selector(f'.upload[data-filename="{filename}"][data-state="completed"]', timeout=UPLOAD_TIMEOUT_MS)


@pytest.fixture(scope="module")
def pdf20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("browser_pdfs") / "report-20mb.pdf"
    return path, make_pdf(path, SIZE, pages=2, text="Browser upload", seed=20)


def test_upload_20mb_pdf_reaches_100_percent_and_is_listed(
    server: ServerProcess, page: Any, pdf20: tuple[Path, str], artifacts: Path,
) -> None:
    path, sha = pdf20
    progress: list[float] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: _record(frame, progress)))
    page.goto(server.base_url + "/")
    page.wait_for_selector('#conn[data-state="open"]')

    page.set_input_files("#file-input", str(path))
    wait_completed(page, path.name)

    c = card(page, path.name)
    assert c.locator(".pct").inner_text() == "100%"
    assert "Stored as" in c.locator(".message").inner_text()
    row = page.locator(f'#documents tr[data-sha256="{sha}"]')
    row.wait_for()
    link = row.locator("a.open")
    assert link.inner_text() == path.stem
    doc_id = int(row.get_attribute("data-document-id"))
    assert link.get_attribute("href") == f"#document/{doc_id}"
    assert row.locator("a.download").get_attribute("href") == f"/api/documents/{doc_id}/file"
    assert progress and max(progress) == 100.0, "the WebSocket sent upload_progress events"

    # Search the imported text (the import runs after completion: ask until it is in).
    results = page.locator("#search-results")
    deadline = time.monotonic() + 20
    while True:
        text = search(page, "Browser upload")
        if results.locator(".hit").count() or "not available" in text or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    if "not available" not in text:
        assert "Browser upload page 1" in text and "report-20mb · page 1" in text, text

    shot = artifacts / "upload-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot of the page after upload: {shot}")
    assert shot.stat().st_size > 10_000

    docs = api_json(server, "/api/documents")
    assert [d["sha256"] for d in docs] == [sha]
    assert download_sha256(server, doc_id) == sha
    server.assert_no_tracebacks()


def _record(frame: Any, progress: list[float]) -> None:
    try:
        event = json.loads(frame if isinstance(frame, str) else frame.get("payload", ""))
    except (TypeError, ValueError):
        return
    if event.get("type") == "upload_progress":
        progress.append(float(event["data"]["progress_percentage"]))


def test_reload_mid_upload_then_same_file_resumes_byte_exact(
    server: ServerProcess, page: Any, pdf20: tuple[Path, str],
) -> None:
    path, sha = pdf20
    total = SIZE // CHUNK
    let_through = 4
    held: list[Any] = []
    passed = 0
    acked: list[int] = []

    def throttle(route: Any) -> None:
        nonlocal passed
        if passed < let_through:
            passed += 1
            route.continue_()
        else:
            held.append(route)  # never answered: the page reloads with these in flight

    page.route("**/api/documents/streaming/chunk/**", throttle)
    page.on("response", lambda r: acked.append(r.status) if "/streaming/chunk/" in r.url else None)
    page.goto(f"{server.base_url}/?chunk_size={CHUNK}")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", str(path))

    deadline = time.monotonic() + 30
    while (len(acked) < let_through or not held) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert acked == [200] * let_through, acked
    assert held, "some chunk requests were in flight when the page reloaded"
    [session] = api_json(server, "/api/documents/streaming/resumable")
    assert session["uploaded_chunks"] == let_through and session["total_chunks"] == total

    page.reload()  # the held chunk requests die with the old document
    page.wait_for_selector('#conn[data-state="open"]')
    for route in held:  # and so do any the old page issued while unloading
        try:
            route.abort()
        except Exception:  # noqa: BLE001 - already cancelled by the navigation
            pass
    page.unroute_all(behavior="ignoreErrors")
    [session] = api_json(server, "/api/documents/streaming/resumable")
    assert session["uploaded_chunks"] == let_through, "the held chunks never reached the server"
    sent_after: list[str] = []
    page.on("request", lambda r: sent_after.append(r.url)
            if r.method == "POST" and "/streaming/chunk/" in r.url else None)

    # The page lists the unfinished upload and says how to continue it.
    item = page.locator(f'[data-testid="resumable"][data-session="{session["session_id"]}"]')
    item.wait_for()
    assert path.name in item.inner_text() and "Pick this file again" in item.inner_text()

    page.set_input_files("#file-input", str(path))
    wait_completed(page, path.name)

    assert len(sent_after) == total - let_through < total, sent_after
    c = card(page, path.name)
    assert c.get_attribute("data-resumed") == str(total - let_through)
    assert f"resumed: {total - let_through} of {total} chunks sent" in c.locator(".message").inner_text()
    docs = api_json(server, "/api/documents")
    assert [d["sha256"] for d in docs] == [sha]
    assert download_sha256(server, docs[0]["id"]) == sha
    assert api_json(server, "/api/documents/streaming/resumable") == []
    page.wait_for_selector("#resumable-section", state="hidden")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('pdf-upload:'))") == []
    server.assert_no_tracebacks()


def test_refused_files_have_clear_messages_and_search_answers(
    make_server: Callable[..., ServerProcess], page: Any,
) -> None:
    server = make_server(STREAMING_MAX_FILE_SIZE_MB="1")
    page.goto(server.base_url + "/")
    page.wait_for_selector('#conn[data-state="open"]')

    page.set_input_files("#file-input", files=[
        {"name": "notes.pdf", "mimeType": "application/pdf", "buffer": b"just some text, not a PDF\n" * 10},
        {"name": "big.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n" + b"0" * (2 * MIB)},
        {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": javascript_pdf()},
    ])
    for name, code, text in (("notes.pdf", "not_a_pdf", "Not a PDF"), ("big.pdf", "file_too_large", "Too large"),
                             ("invoice.pdf", "security_rejected", "Refused for security reasons")):
        page.wait_for_selector(f'.upload[data-filename="{name}"][data-state="refused"]')
        message = card(page, name).locator(".message")
        assert message.get_attribute("data-error") == code
        assert message.inner_text().startswith(text + ":"), message.inner_text()
    findings = card(page, "invoice.pdf").locator(".findings li")
    assert findings.count() >= 1 and "javascript" in findings.all_inner_texts()[0].lower()

    text = search(page, "hello")
    assert "Search failed" not in text, text  # either results, "No matches" or "not available yet"
    readme_screenshot(page, "page-refused", "#uploads-section", alone=True)
    server.assert_no_tracebacks()


def test_pause_stops_new_chunks_resume_continues_cancel_forgets(
    server: ServerProcess, page: Any, pdf20: tuple[Path, str],
) -> None:
    path, _ = pdf20
    held: list[Any] = []
    requested: list[str] = []
    gate = {"open": 2}  # chunk requests let through before holding the rest

    def throttle(route: Any) -> None:
        requested.append(route.request.url)
        if gate["open"] > 0:
            gate["open"] -= 1
            route.continue_()
        else:
            held.append(route)

    def wait_until(cond: Callable[[], bool], what: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not cond():
            assert time.monotonic() < deadline, what
            page.wait_for_timeout(50)

    page.route("**/api/documents/streaming/chunk/**", throttle)
    page.goto(f"{server.base_url}/?chunk_size={CHUNK}")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", str(path))
    c = card(page, path.name)
    wait_until(lambda: len(held) >= 1, "chunks in flight")

    c.locator("button.pause").click()
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="paused"]')
    assert c.locator("button.pause").inner_text() == "Resume"
    wait_until(lambda: len(requested) >= 3, "all workers busy")  # 2 through + held in flight
    before = len(requested)
    gate["open"] = 100
    for route in held:  # the chunks in flight finish...
        route.continue_()
    held.clear()
    page.wait_for_timeout(800)
    assert len(requested) == before, "...and no new chunk starts while paused"

    gate["open"] = 1
    c.locator("button.pause").click()  # resume
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="uploading"]')
    wait_until(lambda: len(requested) > before and held, "chunks flow again after resume")

    c.locator("button.cancel").click()
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="cancelled"]')
    for route in held:
        try:
            route.abort()
        except Exception:  # noqa: BLE001 - the page aborted it already
            pass
    wait_until(lambda: api_json(server, "/api/documents/streaming/resumable") == [], "the session is cancelled")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('pdf-upload:'))") == []
    assert api_json(server, "/api/documents") == []
    server.assert_no_tracebacks()
