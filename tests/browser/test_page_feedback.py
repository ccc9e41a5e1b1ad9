"""What the page says about a stored file: a flagged document is amber with its findings."""

from __future__ import annotations

import io
from typing import Any

import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, String

from tests.browser.conftest import readme_screenshot
from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def linked_pdf() -> bytes:
    """A one-page PDF with a link to a web address: the default policy flags, not refuses."""
    doc = pikepdf.new()
    page = doc.add_blank_page(page_size=(612, 792))
    link = Dictionary(Type=Name.Annot, Subtype=Name.Link, Rect=Array([72, 600, 300, 640]),
                      A=Dictionary(S=Name.URI, URI=String("https://example.com/landing?id=42")))
    page.obj.Annots = Array([doc.make_indirect(link)])
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_flagged_document_is_amber_with_its_findings(server: ServerProcess, page: Any) -> None:
    page.goto(server.base_url + "/")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", files=[{"name": "linked.pdf", "mimeType": "application/pdf",
                                                "buffer": linked_pdf()}])
    page.wait_for_selector('.upload[data-filename="linked.pdf"][data-state="flagged"]')
    card = page.locator('.upload[data-filename="linked.pdf"]')
    assert card.locator(".badge").inner_text() == "flagged"
    assert card.locator(".message").inner_text().startswith("Stored, with security warnings")
    findings = card.locator(".findings li").all_inner_texts()
    assert any(f.startswith("uri: ") and "https://example.com/landing?id=42" in f for f in findings), findings
    assert int(card.get_attribute("data-findings")) == len(findings)
    amber = card.evaluate("c => getComputedStyle(c.querySelector('.badge')).color")
    assert amber == "rgb(180, 83, 9)"  # --warn, not the green of "done"
    readme_screenshot(page, "page-flagged", "#uploads-section", alone=True)
    server.assert_no_tracebacks()
