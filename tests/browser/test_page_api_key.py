"""The page against a server with API keys: it asks for a key, takes one from
``?api_key=`` (and drops it from the address bar), uploads with it over HTTP and the
WebSocket, and downloads through fetch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

KEY = "page-key-0123456789abcdef"


def test_page_with_an_api_key(make_server: Callable[..., ServerProcess], page: Any, tmp_path: Path) -> None:
    server = make_server(STREAMING_API_KEYS=f"{KEY}:pat", STREAMING_PROGRESS_INTERVAL_SECONDS="0.05")
    pdf = tmp_path / "keyed.pdf"
    sha = make_pdf(pdf, 3_000_000, pages=1, text="Keyed upload", seed=3)

    page.goto(server.base_url + "/")
    page.wait_for_selector("#key-box[open]")
    assert page.locator("#key-hint").inner_text() == "This server wants an API key."

    page.goto(server.base_url + f"/?api_key={KEY}&concurrency=2")
    page.wait_for_selector('#conn[data-state="open"]')  # the WebSocket took ?token=
    assert "api_key" not in page.url and "concurrency=2" in page.url
    page.set_input_files("#file-input", str(pdf))
    page.wait_for_selector('.upload[data-filename="keyed.pdf"][data-state="completed"]', timeout=60_000)
    row = page.locator(f'#documents tr[data-sha256="{sha}"]')
    row.wait_for()

    # a plain link cannot send the key: the page fetches the file with it
    with page.expect_download() as download:
        row.locator("a.download").click()
    assert download.value.suggested_filename == "keyed.pdf"
    doc_id = int(row.get_attribute("data-document-id"))
    fetched = page.evaluate("""async (id) => {
        const bytes = await (await window.uploadClient.download(id)).arrayBuffer();
        const digest = await crypto.subtle.digest("SHA-256", bytes);
        return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    }""", doc_id)
    assert fetched == sha

    # a wrong key is said to be wrong
    page.click("#key-box summary")
    page.fill("#key-input", "wrong-key")
    page.click("#key-form button")
    page.wait_for_selector("#key-box[open]")
    page.locator("#key-hint").filter(has_text="refused").wait_for()
    server.assert_no_tracebacks()
