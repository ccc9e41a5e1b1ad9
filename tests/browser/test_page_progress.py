"""What the card says while bytes move, and while they do not.

* the network throttled through the DevTools protocol: progress moves within a chunk
  (from the browser's upload progress events), the speed is about the throttle's and the
  time left follows from it; Pause blanks both;
* the server killed mid-upload: "server unreachable, retrying in N s", counting down, no
  speed or time left; then the server restarts on the same port and the upload finishes;
* a chunk request that hangs: "stalled";
* a busy server at /initiate: the card says why it waits and for how long, and starts
  when the server's Retry-After says.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import readme_screenshot
from tests.browser.test_upload_page import api_json, card, download_sha256, wait_completed
from tests.e2e.conftest import MIB, ServerProcess
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

THROTTLE = 2 * MIB  # bytes per second, upload side


def throttle(page: Any, upload_bytes_per_second: float) -> Any:
    """Throttle this tab's network through CDP (as DevTools' "Network throttling" does)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_second,
    })
    return cdp


def mib_per_s(text: str) -> float:
    """ "1.9 MiB/s" -> 1.9 (KiB/s too)."""
    m = re.fullmatch(r"([\d.]+) (KiB|MiB)/s", text)
    assert m, text
    return float(m.group(1)) / (1024 if m.group(2) == "KiB" else 1)


def wait_until(page: Any, cond: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(50)


def test_throttled_upload_moves_within_a_chunk_with_a_plausible_speed(
    server: ServerProcess, page: Any, tmp_path: Path,
) -> None:
    path = tmp_path / "throttled.pdf"
    sha = make_pdf(path, 12 * MIB, seed=3)
    chunk_answers: list[int] = []
    page.on("response", lambda r: chunk_answers.append(r.status) if "/streaming/chunk/" in r.url else None)
    page.goto(f"{server.base_url}/?chunk_size={8 * MIB}&concurrency=1")
    page.wait_for_selector('#conn[data-state="open"]')
    throttle(page, THROTTLE)
    page.set_input_files("#file-input", str(path))
    c = card(page, path.name)

    # A second into the first 8 MiB chunk (4 s at 2 MiB/s): bytes counted, a speed shown.
    c.locator(".speed").filter(has_text="/s").wait_for(timeout=10_000)
    sent = int(c.get_attribute("data-bytes") or 0)
    assert chunk_answers == [], "still within the first chunk"
    assert 0 < sent < 8 * MIB, sent
    assert float(c.locator(".pct").inner_text().rstrip("%")) > 0
    page.wait_for_timeout(1200)
    assert int(c.get_attribute("data-bytes") or 0) > sent, "progress moves between chunk answers"
    speed = mib_per_s(c.locator(".speed").inner_text())
    assert 1.0 <= speed <= 3.5, f"{speed} MiB/s under a {THROTTLE / MIB} MiB/s throttle"
    eta = c.locator(".eta").inner_text()
    m = re.fullmatch(r"(\d+) s left", eta)
    assert m and 1 <= int(m.group(1)) <= 12, eta
    readme_screenshot(page, "page-uploading", "#uploads-section")

    # Pause: no speed, no time left (the chunk in flight finishes, nothing new starts).
    c.locator("button.pause").click()
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="paused"]')
    for _ in range(3):
        assert c.locator(".speed").inner_text() == "" and c.locator(".eta").inner_text() == ""
        page.wait_for_timeout(300)
    c.locator("button.pause").click()
    wait_completed(page, path.name)
    assert c.locator(".speed").inner_text() == "" and c.locator(".status").inner_text() == ""
    [doc] = api_json(server, "/api/documents")
    assert doc["sha256"] == sha
    server.assert_no_tracebacks()


def test_server_killed_mid_upload_says_unreachable_counts_down_then_recovers(
    server: ServerProcess, page: Any, tmp_path: Path,
) -> None:
    path = tmp_path / "outage.pdf"
    sha = make_pdf(path, 20 * MIB, seed=4)
    acked: list[int] = []
    page.on("response", lambda r: acked.append(r.status) if "/streaming/chunk/" in r.url else None)
    page.goto(f"{server.base_url}/?chunk_size={2 * MIB}&concurrency=1")
    page.wait_for_selector('#conn[data-state="open"]')
    throttle(page, 4 * MIB)
    page.set_input_files("#file-input", str(path))
    c = card(page, path.name)
    wait_until(page, lambda: len(acked) >= 2, "two chunks acknowledged")
    c.locator(".speed").filter(has_text="/s").wait_for()

    server.kill()
    seen: list[str] = []
    c.locator(".status").filter(has_text="server unreachable").wait_for(timeout=10_000)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # down for 6 s: watch the card
        status = c.locator(".status").inner_text()
        if status:
            seen.append(status)
            assert c.locator(".speed").inner_text() == "" and c.locator(".eta").inner_text() == "", \
                "no stale speed or time left during an outage"
        page.wait_for_timeout(100)
    counts = [int(m.group(1)) for s in seen if (m := re.fullmatch(r"server unreachable, retrying in (\d+) s", s))]
    assert counts, seen
    assert any(b < a for a, b in zip(counts, counts[1:], strict=False)), f"a countdown: {counts}"
    assert c.get_attribute("data-wait") == "unreachable"
    assert page.locator("#conn").get_attribute("data-state") != "open"

    server.start()  # the same directories and port
    wait_completed(page, path.name)
    assert c.get_attribute("data-wait") is None and c.locator(".status").inner_text() == ""
    [doc] = api_json(server, "/api/documents")
    assert doc["sha256"] == sha and download_sha256(server, doc["id"]) == sha


def test_a_chunk_that_hangs_says_stalled(server: ServerProcess, page: Any, tmp_path: Path) -> None:
    path = tmp_path / "stall.pdf"
    make_pdf(path, 6 * MIB, seed=5)
    held: list[Any] = []
    page.route("**/api/documents/streaming/chunk/**", lambda route: held.append(route))
    page.goto(f"{server.base_url}/?chunk_size={2 * MIB}&concurrency=1")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", str(path))
    c = card(page, path.name)
    c.locator(".status").filter(has_text="stalled: nothing sent for").wait_for(timeout=15_000)
    assert c.get_attribute("data-wait") == "stalled"
    assert c.locator(".speed").inner_text() == "" and c.locator(".eta").inner_text() == ""
    c.locator("button.cancel").click()
    page.wait_for_selector(f'.upload[data-filename="{path.name}"][data-state="cancelled"]')
    for route in held:
        try:
            route.abort()
        except Exception:  # noqa: BLE001 - the page aborted it already
            pass


def test_busy_server_at_initiate_says_why_and_starts_when_told(
    server: ServerProcess, page: Any, tmp_path: Path,
) -> None:
    path = tmp_path / "busy.pdf"
    sha = make_pdf(path, 3 * MIB, seed=6)
    refusals = {"left": 1}
    initiated: list[float] = []

    def busy(route: Any) -> None:
        initiated.append(time.monotonic())
        if refusals["left"] > 0:
            refusals["left"] -= 1
            route.fulfill(status=429, headers={"Retry-After": "3", "Content-Type": "application/json"},
                          body='{"success": false, "error": "too_many_uploads", '
                               '"message": "5 uploads are already active; retry later", "retry_after": 3}')
        else:
            route.continue_()

    page.route("**/api/documents/streaming/initiate", busy)
    page.goto(server.base_url + "/")
    page.wait_for_selector('#conn[data-state="open"]')
    page.set_input_files("#file-input", str(path))
    c = card(page, path.name)
    c.locator(".status").filter(has_text="server busy, starting in").wait_for()
    assert c.get_attribute("data-wait") == "busy"
    assert c.locator(".badge").inner_text() == "waiting"
    message = c.locator(".message").inner_text()
    assert message == ("Waiting for the server: 5 uploads are already active; retry later. "
                       "It asked to try again in 3 s."), message
    counts = set()
    while c.get_attribute("data-wait") == "busy":
        m = re.fullmatch(r"server busy, starting in (\d+) s", c.locator(".status").inner_text())
        if m:
            counts.add(int(m.group(1)))
        page.wait_for_timeout(100)
    assert {1, 2} <= counts <= {1, 2, 3}, counts
    wait_completed(page, path.name)
    assert len(initiated) == 2
    assert 2.8 <= initiated[1] - initiated[0] <= 4.5, "started when the server said, not 30 s later"
    [doc] = api_json(server, "/api/documents")
    assert doc["sha256"] == sha
    server.assert_no_tracebacks()
