"""tus 1.0.0, Termination (protocol.md "Termination"): one test per MUST and SHOULD."""

from __future__ import annotations

from tests.api.tus.conftest import H, create, create_url, patch
from tests.conftest import Api


async def test_termination_must_be_in_tus_extension(api: Api) -> None:
    assert "termination" in (await api.http.options("/files/")).headers["tus-extension"].split(",")


async def test_termination_delete_must_answer_204(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    await patch(api, url, pdf[:1000], 0)
    r = await api.http.delete(url, headers=H)
    assert r.status_code == 204 and not r.content


async def test_termination_later_requests_should_get_404_or_410(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    assert (await api.http.delete(url, headers=H)).status_code == 204
    head = await api.http.head(url, headers=H)
    assert head.status_code in (404, 410) and "upload-offset" not in head.headers
    assert (await patch(api, url, pdf[:1000], 0)).status_code in (404, 410)
    assert (await api.http.delete(url, headers=H)).status_code in (404, 410)


async def test_termination_should_free_the_resources(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    await patch(api, url, pdf[:100_000], 0)
    upload_id = url.rsplit("/", 1)[-1]
    assert (api.svc.settings.partial_dir / f"{upload_id}.part").exists()
    await api.http.delete(url, headers=H)
    assert not (api.svc.settings.partial_dir / f"{upload_id}.part").exists()
    assert not (api.svc.settings.state_dir / f"{upload_id}.json").exists()
    assert (await api.http.get("/api/documents/streaming/resumable")).json() == []


async def test_termination_of_a_completed_upload(api: Api, pdf: bytes) -> None:
    """Completed uploads may be terminated too; the document it became is not the
    upload's to remove (DELETE /api/documents/{id} does that)."""
    r = await create(api, len(pdf), body=pdf)
    doc_id = r.headers["upload-document-id"]
    r = await api.http.delete(r.headers["location"], headers=H)
    assert r.status_code == 204, r.text
    assert (await api.http.get(f"/api/documents/{doc_id}")).status_code == 200
