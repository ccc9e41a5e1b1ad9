"""``/`` and ``/static/{name}``: the built page from frontend/dist, or a clear 503."""

from __future__ import annotations

from pathlib import Path

import pytest

import backend.app
from tests.conftest import Api, envelope


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "dist"
    monkeypatch.setattr(backend.app, "FRONTEND_DIST", out)
    return out


async def test_unbuilt_frontend_is_a_clear_503(api: Api, dist: Path) -> None:
    body = envelope(await api.http.get("/"), "frontend_not_built", 503)
    assert "run make run" in body["message"]
    envelope(await api.http.get("/static/app.js"), "not_found", 404)


async def test_built_page_and_its_files(api: Api, dist: Path) -> None:
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>x</title>")
    (dist / "app.js").write_text("console.log(1)")
    r = await api.http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<title>x" in r.text
    r = await api.http.get("/static/app.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    for bad in ("/static/..%2Fsecret", "/static/.hidden", "/static/missing.js"):
        envelope(await api.http.get(bad), "not_found", 404)
