"""Browser fixtures: the real server (``ServerProcess``) and Debian's headless Chromium
driven by Playwright for Python (no browser download: ``executable_path``).

``make test`` builds the page (``make frontend``) and installs Chromium (``make browser``)
first; run alone, these tests skip with the command to run when either is missing.

The README's screenshots of the page are taken by the tests (:func:`readme_screenshot`):
always into ``test-artifacts/screenshots/``, and into ``docs/screenshots/`` (committed)
with ``README_SCREENSHOTS=1``::

    README_SCREENSHOTS=1 .venv/bin/python -m pytest -q tests/browser -k "throttled or refused or flagged"
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, ServerProcess, make_server  # noqa: F401  (fixture re-export)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
README_SHOTS = REPO / "docs" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]

pw = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test does)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    # Module scope, not session: the sync API runs an event loop on this thread while it
    # is open, which would break every asyncio test collected after these.
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"{CHROMIUM} missing: run `make browser` (apt-get install chromium)")
    if not (REPO / "frontend" / "dist" / "app.js").is_file():
        pytest.skip("frontend not built: run `make frontend`")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with pw.sync_playwright() as p:
        # A persistent context is the only way to give Chromium its own --user-data-dir.
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1000, "height": 820}, accept_downloads=False,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh tab with empty storage (a new origin per server port anyway)."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(30_000)
    logs: list[str] = []
    page.on("console", lambda msg: logs.append(f"console.{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: logs.append(f"pageerror: {exc}"))
    yield page
    page.close()
    if logs:
        print("----- browser console -----\n" + "\n".join(logs[-50:]))


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server(STREAMING_PROGRESS_INTERVAL_SECONDS="0.05")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def readme_screenshot(page: Any, name: str, down_to: str, *, alone: bool = False) -> Path:
    """The top of the page down to the bottom of ``down_to`` (a selector; with ``alone``,
    that element only), as ``<name>.png`` in test-artifacts/screenshots/ and, with
    ``README_SCREENSHOTS=1``, in docs/screenshots/ for the README. Small on purpose: no
    wider than the viewport, no taller than the part shown."""
    target = page.locator(down_to)
    box = target.bounding_box()
    assert box is not None, f"{down_to} is not shown"
    shot = ARTIFACTS / "screenshots" / f"{name}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    if alone:
        target.screenshot(path=str(shot))
    else:
        width = page.viewport_size["width"]
        page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"] + 16})
    if os.environ.get("README_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SHOTS / f"{name}.png")
    return shot
