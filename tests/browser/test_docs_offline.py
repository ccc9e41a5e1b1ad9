"""``/docs`` renders in Chromium with every request to another host refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e


def offline(page: Any) -> list[str]:
    """Refuse every request that leaves 127.0.0.1; returns the refused URLs."""
    refused: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_offline(server: ServerProcess, page: Any) -> None:
    refused = offline(page)
    page.goto(server.base_url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Resumable PDF upload server" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/documents/streaming/initiate']")
    page.locator(".opblock-summary-path[data-path='/api/documents/streaming/initiate']").click()
    page.wait_for_selector("text=Try it out")  # an operation opens: the schema is fully read
    assert refused == []
