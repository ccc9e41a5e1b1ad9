"""tus 1.0.0, Expiration (protocol.md "Expiration"): one test per MUST and SHOULD."""

from __future__ import annotations

import email.utils
import time
from datetime import datetime, timezone

import httpx

from tests.api.tus.conftest import H, create, create_url, patch
from tests.conftest import Api


def _expires(r: httpx.Response) -> datetime:
    raw = r.headers["upload-expires"]
    assert raw.endswith(" GMT") and email.utils.format_datetime(email.utils.parsedate_to_datetime(raw),
                                                                usegmt=True) == raw  # IMF-fixdate
    return email.utils.parsedate_to_datetime(raw)


def _expire(api: Api, url: str) -> None:
    api.svc.sessions.live[url.rsplit("/", 1)[-1]].session.expires_at = time.time() - 1


async def test_expiration_must_be_in_tus_extension(api: Api) -> None:
    assert "expiration" in (await api.http.options("/files/")).headers["tus-extension"].split(",")


async def test_expiration_upload_expires_must_be_in_the_post_response(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    hours = (_expires(r) - datetime.now(timezone.utc)).total_seconds() / 3600
    assert abs(hours - api.svc.settings.session_timeout_hours) < 0.1


async def test_expiration_upload_expires_must_be_in_every_patch_response(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    for start, end in ((0, 1000), (1000, 2000), (2000, len(pdf))):
        r = await patch(api, url, pdf[start:end], start)
        assert r.status_code == 204 and _expires(r) > datetime.now(timezone.utc)


async def test_expiration_upload_expires_must_be_an_rfc_9110_date(api: Api, pdf: bytes) -> None:
    r = await create(api, len(pdf))
    _expires(r)
    _expires(await api.http.head(r.headers["location"], headers=H))


async def test_expiration_expired_upload_should_be_410_when_tracked(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    await patch(api, url, pdf[:1000], 0)
    _expire(api, url)
    assert (await api.http.head(url, headers=H)).status_code == 410
    r = await patch(api, url, pdf[1000:2000], 1000)
    assert r.status_code == 410 and r.json()["error"] == "session_expired"


async def test_expiration_removed_upload_should_be_404_or_410(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    _expire(api, url)
    assert await api.svc.sessions.sweep() == 1  # the sweep removed it: no longer tracked
    r = await api.http.head(url, headers=H)
    assert r.status_code in (404, 410) and "upload-offset" not in r.headers
    assert (await patch(api, url, pdf[:10], 0)).status_code in (404, 410)
