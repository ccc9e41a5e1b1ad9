"""/api/documents: list, get, file (byte-exact, Range), delete."""

from __future__ import annotations

from tests.conftest import MIB, Api, envelope

CS = 2 * MIB


async def _store(api: Api, data: bytes, name: str = "doc.pdf") -> dict[str, object]:
    sid = (await api.initiate(len(data), filename=name, check_duplicates=False))["session_id"]
    await api.upload_all(sid, data, CS)
    return dict((await api.complete(sid)).json()["document"])


async def test_list_get_file_delete(api: Api, small_pdf: bytes) -> None:
    doc = await _store(api, small_pdf)
    listed = (await api.http.get("/api/documents")).json()
    assert [d["id"] for d in listed] == [doc["id"]]
    await api.svc.importer.drain()  # the import runs after /complete: only index_status moves
    got = (await api.http.get(f"/api/documents/{doc['id']}")).json()
    assert got["index_status"] == "indexed" and doc["index_status"] == "pending"
    assert {**got, "index_status": "pending"} == doc and got["page_count"] == 2 and got["pdf_version"] == "1.7"

    r = await api.http.get(f"/api/documents/{doc['id']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == small_pdf and r.headers["accept-ranges"] == "bytes"
    r = await api.http.get(f"/api/documents/{doc['id']}/file", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == small_pdf[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(small_pdf)}"
    r = await api.http.get(f"/api/documents/{doc['id']}/file", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == small_pdf[-10:]

    r = await api.http.delete(f"/api/documents/{doc['id']}")
    assert r.json()["success"] is True
    envelope(await api.http.get(f"/api/documents/{doc['id']}"), "not_found", 404)
    envelope(await api.http.get(f"/api/documents/{doc['id']}/file"), "not_found", 404)
    envelope(await api.http.delete(f"/api/documents/{doc['id']}"), "not_found", 404)
    assert not list((api.svc.settings.data_dir / "documents").rglob("*.pdf"))


async def test_shared_bytes_survive_one_delete(api: Api, small_pdf: bytes) -> None:
    a = await _store(api, small_pdf, "a.pdf")
    b = await _store(api, small_pdf, "b.pdf")
    await api.http.delete(f"/api/documents/{a['id']}")
    assert (await api.http.get(f"/api/documents/{b['id']}/file")).content == small_pdf


async def test_bad_ids(api: Api) -> None:
    envelope(await api.http.get("/api/documents/999"), "not_found", 404)
    envelope(await api.http.get("/api/documents/abc"), "invalid_request", 422)


async def test_head_file_is_get_without_the_body(api: Api, small_pdf: bytes) -> None:
    doc = await _store(api, small_pdf)
    url = f"/api/documents/{doc['id']}/file"
    get, head = await api.http.get(url), await api.http.head(url)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "content-disposition", "accept-ranges", "cache-control"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["content-length"]) == len(small_pdf)
    ranged = await api.http.head(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(small_pdf)}"
    assert (await api.http.head("/api/documents/999/file")).status_code == 404
    assert "head" not in (await api.http.get("/openapi.json")).json()["paths"]["/api/documents/{doc_id}/file"]
