"""tus 1.0.0, Checksum (protocol.md "Checksum"): one test per MUST and SHOULD."""

from __future__ import annotations

import hashlib

from tests.api.tus.conftest import b64, checksum, create_url, offset_of, patch
from tests.conftest import Api


async def test_checksum_must_be_in_tus_extension(api: Api) -> None:
    extensions = (await api.http.options("/files/")).headers["tus-extension"].split(",")
    assert "checksum" in extensions and "checksum-trailer" not in extensions  # no trailers: not announced


async def test_checksum_tus_checksum_algorithm_must_be_in_options(api: Api) -> None:
    r = await api.http.options("/files/")
    algorithms = r.headers["tus-checksum-algorithm"].split(",")
    assert {"sha1", "sha256"} <= set(algorithms)


async def test_checksum_algorithm_names_must_be_lowercase_ascii(api: Api) -> None:
    for name in (await api.http.options("/files/")).headers["tus-checksum-algorithm"].split(","):
        assert name.isascii() and name == name.lower() and name.strip() == name


async def test_checksum_server_must_support_sha1(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    r = await patch(api, url, pdf[:1000], 0, **{"Upload-Checksum": checksum("sha1", pdf[:1000])})
    assert r.status_code == 204 and r.headers["upload-offset"] == "1000"


async def test_checksum_every_listed_algorithm_is_verified(api: Api, pdf: bytes) -> None:
    algorithms = (await api.http.options("/files/")).headers["tus-checksum-algorithm"].split(",")
    url = await create_url(api, len(pdf))
    offset = 0
    for name in algorithms:
        part = pdf[offset:offset + 1000]
        r = await patch(api, url, part, offset, **{"Upload-Checksum": checksum(name, part)})
        assert r.status_code == 204, (name, r.text)
        offset += 1000
        r = await patch(api, url, pdf[offset:offset + 10], offset, **{"Upload-Checksum": checksum(name, b"x")})
        assert r.status_code == 460, name


async def test_checksum_mismatch_must_be_460_and_discarded(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    await patch(api, url, pdf[:1000], 0)
    r = await patch(api, url, pdf[1000:50_000], 1000, **{"Upload-Checksum": checksum("sha1", b"other")})
    assert r.status_code == 460 and r.json()["error"] == "checksum_mismatch"
    assert await offset_of(api, url) == 1000  # the upload and its offset not updated
    r = await patch(api, url, pdf[1000:], 1000, **{"Upload-Checksum": checksum("sha256", pdf[1000:])})
    stored = await api.http.get(f"/api/documents/{r.headers['upload-document-id']}/file")
    assert hashlib.sha256(stored.content).digest() == hashlib.sha256(pdf).digest()


async def test_checksum_unsupported_algorithm_must_be_400_and_discarded(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    for header in (f"crc32 {b64(b'1234')}", f"SHA1 {b64(hashlib.sha1(pdf[:1000]).digest())}"):
        r = await patch(api, url, pdf[:1000], 0, **{"Upload-Checksum": header})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", header
    assert await offset_of(api, url) == 0


async def test_checksum_upload_checksum_must_be_algorithm_and_base64(api: Api, pdf: bytes) -> None:
    url = await create_url(api, len(pdf))
    for header in ("sha1", "sha1 not*base64", hashlib.sha1(pdf[:1000]).hexdigest()):
        r = await patch(api, url, pdf[:1000], 0, **{"Upload-Checksum": header})
        assert r.status_code == 400, header
    assert await offset_of(api, url) == 0
