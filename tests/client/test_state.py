"""The local resume state and the CLI's argument normalisation (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdf_upload_client.api import RetryPolicy
from pdf_upload_client.cli import normalize_argv
from pdf_upload_client.state import Fingerprint, StateStore, UploadState, default_state_dir


def test_state_roundtrip_and_keying(tmp_path: Path) -> None:
    f = tmp_path / "a.pdf"
    f.write_bytes(b"%PDF-1.7\n" + b"x" * 5000)
    fp = Fingerprint.of(f)
    store = StateStore(tmp_path / "st")
    state = UploadState("http://h:1/", "sid", "cid", fp.path, fp.size, fp.mtime_ns, fp.sha256, 2048, 3)
    store.save(state, durable=True)
    state.acked = [0, 2]
    store.save(state)
    assert store.load("http://h:1", fp.path) == state  # the trailing slash does not matter
    assert store.load("http://other:1", fp.path) is None
    assert store.find_session("sid") == state and store.all() == [state]
    assert [p.name.endswith(".json") for p in (tmp_path / "st").iterdir()] == [True]  # no temp file left
    assert state.acked_bytes() == 2048 + (5009 - 2 * 2048)
    (tmp_path / "st" / "junk.json").write_text("{not json")
    assert store.all() == [state]  # unreadable files are skipped
    store.delete(state)
    assert store.load("http://h:1", fp.path) is None


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PDF_UPLOAD_STATE_DIR", str(tmp_path / "x"))
    assert default_state_dir() == tmp_path / "x"
    monkeypatch.delenv("PDF_UPLOAD_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "pdf-upload"


def test_retry_delay_never_below_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=4)
    assert all(0.25 <= policy.delay(1, None) <= 0.5 for _ in range(50))
    assert all(2 <= policy.delay(10, None) <= 4 for _ in range(50))
    assert all(policy.delay(1, 3.0) >= 3.0 for _ in range(50))
    assert policy.delay(10, 1.0) == 1.0, "the server's Retry-After, not a longer backoff"
    assert policy.delay(1, 1e6) == 300.0


@pytest.mark.parametrize(("argv", "expected"), [
    (["a.pdf", "b.pdf"], ["upload", "a.pdf", "b.pdf"]),
    (["--server", "http://x", "a.pdf"], ["upload", "--server", "http://x", "a.pdf"]),
    (["--server", "http://x", "resume"], ["resume", "--server", "http://x"]),
    (["-q", "search", "list"], ["search", "-q", "list"]),
    (["--", "list"], ["upload", "--", "list"]),
    (["--help"], ["--help"]),
])
def test_normalize_argv(argv: list[str], expected: list[str]) -> None:
    assert normalize_argv(argv) == expected
