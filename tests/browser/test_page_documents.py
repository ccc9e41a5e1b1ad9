"""The documents on the page: a list that pages and deletes; a document's view with its
metadata, verdict and findings, index status, a search within it (words marked),
download and delete; the unfinished-uploads card that stops asking for the file once the
upload resumes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import readme_screenshot
from tests.browser.test_page_feedback import linked_pdf
from tests.browser.test_upload_page import CHUNK, api_json, card, search, wait_completed
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e


def upload_all(page: Any, paths: list[Path]) -> None:
    page.set_input_files("#file-input", [str(p) for p in paths])
    for p in paths:
        wait_completed(page, p.name)


def rows(page: Any) -> list[str]:
    return list(page.locator("#documents tbody tr td.title").all_inner_texts())


def wait_rows(page: Any, expected: list[str]) -> None:
    deadline = time.monotonic() + 15
    while rows(page) != expected:
        assert time.monotonic() < deadline, f"{rows(page)} != {expected}"
        page.wait_for_timeout(100)


def test_document_list_pages_and_deletes(server: ServerProcess, page: Any, tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"doc{i}.pdf")
        make_pdf(paths[-1], 150_000, text=f"Listed {i}", seed=10 + i)
    page.goto(server.base_url + "/?page_size=2")
    page.wait_for_selector('#conn[data-state="open"]')
    for p in paths:  # one at a time: "newest first" is then the reverse order
        upload_all(page, [p])
    wait_rows(page, ["doc2", "doc1"])
    pager = page.locator("#docs-pager")
    assert pager.is_visible() and page.locator("#docs-range").inner_text() == "1–2"
    assert page.locator("#docs-prev").is_disabled() and page.locator("#docs-next").is_enabled()

    page.click("#docs-next")
    wait_rows(page, ["doc0"])
    assert page.locator("#docs-range").inner_text() == "3–3"
    assert page.locator("#docs-next").is_disabled() and page.locator("#docs-prev").is_enabled()

    # Delete asks once more, then deletes; the emptied last page falls back to the one before.
    delete = page.locator("#documents tbody tr button.delete")
    delete.click()
    assert delete.inner_text() == "Really delete?"
    delete.click()
    wait_rows(page, ["doc2", "doc1"])
    assert pager.is_hidden(), "two documents fit one page: no pager"
    assert sorted(d["title"] for d in api_json(server, "/api/documents")) == ["doc1", "doc2"]

    # An unconfirmed click does nothing, and is forgotten after a few seconds.
    first = page.locator("#documents tbody tr").first.locator("button.delete")
    first.click()
    page.wait_for_timeout(4500)
    assert first.inner_text() == "Delete"
    assert len(api_json(server, "/api/documents")) == 2
    server.assert_no_tracebacks()


def test_document_view_shows_metadata_verdict_index_and_searches_within(
    server: ServerProcess, page: Any, tmp_path: Path,
) -> None:
    text_pdf = tmp_path / "annual.pdf"
    sha = make_pdf(text_pdf, 300_000, pages=3, text="Quarterly invoice", seed=21)
    page.goto(server.base_url + "/")
    page.wait_for_selector('#conn[data-state="open"]')
    upload_all(page, [text_pdf])
    page.set_input_files("#file-input", files=[{"name": "linked.pdf", "mimeType": "application/pdf",
                                                "buffer": linked_pdf()}])
    page.wait_for_selector('.upload[data-filename="linked.pdf"][data-state="flagged"]')
    wait_rows(page, ["linked", "annual"])
    doc_id = next(d["id"] for d in api_json(server, "/api/documents") if d["sha256"] == sha)

    # The search over every document marks the words.
    deadline = time.monotonic() + 20
    while "page 2" not in search(page, "invoice page"):
        assert time.monotonic() < deadline, "the import never made the text searchable"
        page.wait_for_timeout(300)
    marks = page.locator("#search-results mark").all_inner_texts()
    assert marks and {m.lower() for m in marks} <= {"invoice", "page"}, marks

    # The view, from the list.
    page.locator("#documents tbody tr td.title a", has_text="annual").click()
    view = page.locator(f'.doc-view[data-document-id="{doc_id}"]')
    view.wait_for()
    assert page.url.endswith(f"#document/{doc_id}") and page.locator("#documents-section").is_hidden()
    assert view.locator("h2").inner_text() == "annual"
    meta = dict(zip(view.locator("dt").all_inner_texts(), view.locator("dd").all_inner_texts(), strict=True))
    assert meta["File"] == "annual.pdf" and meta["Pages"] == "3" and meta["SHA-256"] == sha
    assert meta["Size"] == "293 KiB (300,000 bytes)"
    assert view.locator(".doc-security .verdict").inner_text() == "clean"
    assert view.locator(".doc-security").inner_text().endswith("No findings.")
    view.locator('.doc-index[data-status="indexed"]').wait_for()
    assert view.locator(".doc-index").inner_text() == "Search index: searchable"
    assert view.locator("a.download").get_attribute("href") == f"/api/documents/{doc_id}/file"

    view.locator(".doc-search-input").fill("quarterly")
    view.locator(".doc-search-form button").click()
    results = view.locator('.doc-search-results[data-state="done"]')
    results.wait_for()
    hits = results.locator(".hit").all_inner_texts()
    assert len(hits) == 3 and all(re.match(r"page [123]\nQuarterly invoice page [123]", h) for h in hits), hits
    assert results.locator("mark").all_inner_texts() == ["Quarterly"] * 3
    view.locator(".doc-search-input").fill("linked")  # a word of the other document only
    view.locator(".doc-search-form button").click()
    results.filter(has_text="No matches").wait_for()

    # A flagged document's view: amber verdict with its findings.
    page.goto(server.base_url + "/")  # the list, then the view by its address
    flagged_id = next(d["id"] for d in api_json(server, "/api/documents") if d["title"] == "linked")
    page.goto(f"{server.base_url}/#document/{flagged_id}")
    fview = page.locator(f'.doc-view[data-document-id="{flagged_id}"]')
    fview.wait_for()
    assert fview.get_attribute("data-verdict") == "flagged"
    assert fview.locator(".doc-security .verdict").inner_text() == "flagged"
    findings = fview.locator(".findings li").all_inner_texts()
    assert any(f.startswith("uri: ") and "https://example.com/landing?id=42" in f for f in findings), findings
    assert fview.evaluate("v => getComputedStyle(v.querySelector('.verdict')).color") == "rgb(180, 83, 9)"
    readme_screenshot(page, "page-document-view", "#document-view", alone=True)

    # Delete from the view: back to the list, without it.
    fview.locator("button.delete").click()
    fview.locator("button.delete").click()
    page.wait_for_selector("#document-view", state="hidden")
    wait_rows(page, ["annual"])
    assert [d["title"] for d in api_json(server, "/api/documents")] == ["annual"]
    page.goto(f"{server.base_url}/#document/{flagged_id}")
    page.locator("#document-view").filter(has_text="does not exist").wait_for()
    server.assert_no_tracebacks()


def test_unfinished_upload_card_stops_asking_for_the_file_once_it_resumes(
    server: ServerProcess, page: Any, tmp_path: Path,
) -> None:
    path = tmp_path / "resumed.pdf"
    make_pdf(path, 10 * MIB, seed=31)
    held: list[Any] = []
    gate = {"through": 2}

    def chunks(route: Any) -> None:
        if gate["through"] > 0:
            gate["through"] -= 1
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/documents/streaming/chunk/**", chunks)
    page.goto(f"{server.base_url}/?chunk_size={CHUNK}&concurrency=1")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", str(path))
    deadline = time.monotonic() + 20
    while not held:
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    page.reload()
    page.wait_for_selector('#conn[data-state="open"]')
    for route in held:
        try:
            route.abort()
        except Exception:  # noqa: BLE001 - died with the old document
            pass
    held.clear()
    item = page.locator('[data-testid="resumable"]')
    item.wait_for()
    assert "Pick this file again" in item.inner_text()

    page.set_input_files("#file-input", str(path))  # the chunks are held again: it stays uploading
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="uploading"]')
    page.wait_for_selector("#resumable-section", state="hidden")
    assert "Resum" in card(page, path.name).locator(".message").inner_text()
    gate["through"] = 100
    for route in held:
        route.continue_()
    wait_completed(page, path.name)
