"""``/docs`` works with no network: every asset comes from this server. ``/redoc`` is off
(its bundle fetches a logo from a CDN whatever it is told)."""

from __future__ import annotations

import re

from tests.conftest import Api

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


async def test_docs_page_names_no_other_host_and_its_assets_answer(api: Api) -> None:
    r = await api.http.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", r.text, re.I), "an external URL in /docs"
    urls = ASSET.findall(r.text)
    assert {u.rsplit("/", 1)[-1] for u in urls} == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}
    for url in urls:
        assert url.startswith("/docs/"), url  # under /docs: open without a key, as the page is
        got = await api.http.get(url)
        assert got.status_code == 200 and len(got.content) > 1000, url
        assert TYPES[url[url.rindex("."):]] in got.headers["content-type"], (url, got.headers["content-type"])


async def test_swagger_ui_reads_our_schema_and_asks_no_validator(api: Api) -> None:
    html = (await api.http.get("/docs")).text
    assert "url: '/openapi.json'" in html and '"validatorUrl": null' in html
    assert (await api.http.get("/openapi.json")).json()["info"]["title"] == "Resumable PDF upload server"
    assert (await api.http.get("/docs/oauth2-redirect")).status_code == 200
    assert (await api.http.get("/redoc")).status_code == 404
