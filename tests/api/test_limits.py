"""Limits through the API: session-creation rate limits (per owner, per address), the
per-owner caps, the file-size limit and the body caps, each hit and then recovered;
file names sanitized before they are stored or sent back."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.services.ratelimit import SlidingWindowLimiter
from backend.settings import temp_settings
from tests.api.conftest import ALICE_KEY, BOB_KEY, KEYS, Owners, auth
from tests.conftest import MIB, Api, envelope
from tests.pdfgen import make_pdf

S = "/api/documents/streaming"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock(api: Api) -> Clock:
    clock = Clock()
    limiter = api.svc.rate_limits.limiter
    assert isinstance(limiter, SlidingWindowLimiter)
    limiter.clock = clock
    return clock


async def test_owner_rate_limit_hit_and_recovered(owners: Owners) -> None:
    """Defaults: 10 at once, then one a second (60 a minute)."""
    clock = fake_clock(owners.alice)
    for _ in range(10):
        await owners.alice.initiate(1000)
    r = await owners.alice.http.post(f"{S}/initiate", json={"filename": "a.pdf", "file_size": 1000})
    body = envelope(r, "rate_limited", 429)
    assert body["scope"] == "owner" and body["retry_after"] == 10 and r.headers["retry-after"] == "10"
    # Bob has a budget of his own, but he calls from the same address, which has opened 10
    r = await owners.bob.http.post(f"{S}/initiate", json={"filename": "b.pdf", "file_size": 1000})
    assert envelope(r, "rate_limited", 429)["scope"] == "ip"
    clock.now += 9.5
    envelope(await owners.alice.http.post(f"{S}/initiate", json={"filename": "a.pdf", "file_size": 1000}),
             "rate_limited", 429)
    clock.now += 0.5
    await owners.alice.initiate(1000)  # recovered once the burst window slid past
    await owners.bob.initiate(1000)
    metrics = (await owners.anon.get("/metrics")).text
    assert 'pdfupload_rate_limited_total{scope="owner"} 2.0' in metrics
    assert 'pdfupload_rate_limited_total{scope="ip"} 1.0' in metrics


async def test_ip_rate_limit_spans_owners(tmp_path: Path) -> None:
    settings = temp_settings(tmp_path / "srv", api_keys=KEYS, rate_limit_burst=10, ip_rate_limit_per_minute=6,
                             ip_rate_limit_burst=3)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        svc = app.state.services
        clock = Clock()
        svc.rate_limits.limiter.clock = clock
        one = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
        other = httpx.ASGITransport(app=app, client=("203.0.113.8", 5000))
        async with httpx.AsyncClient(transport=one, base_url="http://t") as http, \
                httpx.AsyncClient(transport=other, base_url="http://t") as elsewhere:
            body = {"filename": "a.pdf", "file_size": 1000}
            for key in (ALICE_KEY, BOB_KEY, ALICE_KEY):
                assert (await http.post(f"{S}/initiate", json=body, headers=auth(key))).status_code == 201
            r = await http.post(f"{S}/initiate", json=body, headers=auth(BOB_KEY))
            refused = envelope(r, "rate_limited", 429)
            assert refused["scope"] == "ip" and int(r.headers["retry-after"]) == 30  # 3 per 30 s
            r = await elsewhere.post(f"{S}/initiate", json=body, headers=auth(BOB_KEY))
            assert r.status_code == 201  # another address, and Bob's own budget was not charged
            clock.now += 30
            assert (await http.post(f"{S}/initiate", json=body, headers=auth(BOB_KEY))).status_code == 201


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[Owners]:
    settings = temp_settings(tmp_path / "srv", api_keys=KEYS, max_open_sessions_per_owner=2,
                             max_pending_mb_per_owner=12, max_file_size_mb=10, max_concurrent_uploads=10)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth(ALICE_KEY)) as a, \
                httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth(BOB_KEY)) as b, \
                httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
            yield Owners(app, Api(a, app.state.services), Api(b, app.state.services), anon)


async def test_open_sessions_cap_per_owner(capped: Owners) -> None:
    alice, bob = capped.alice, capped.bob
    first = (await alice.initiate(1000))["session_id"]
    await alice.initiate(1000)
    r = await alice.http.post(f"{S}/initiate", json={"filename": "c.pdf", "file_size": 1000})
    body = envelope(r, "too_many_uploads", 429)
    assert body["scope"] == "owner" and body["limit"] == 2 and r.headers["retry-after"]
    await bob.initiate(1000)  # Bob's cap is his own
    assert (await alice.http.post(f"{S}/cancel/{first}")).status_code == 200
    await alice.initiate(1000)  # a slot again


async def test_pending_bytes_quota_per_owner(capped: Owners, small_pdf: bytes) -> None:
    """12 MiB of unfinished uploads: two 5 MB files fit, a third does not until one completes."""
    alice = capped.alice
    first = await alice.initiate(len(small_pdf))
    await alice.initiate(len(small_pdf))
    await alice.http.post(f"{S}/cancel/{(await alice.http.get(f'{S}/resumable')).json()[1]['session_id']}")
    await alice.initiate(len(small_pdf))
    r = await alice.http.post(f"{S}/initiate", json={"filename": "big.pdf", "file_size": 9 * MIB})
    # the count cap (2) is reached too; the quota is checked after it, so free a slot first
    envelope(r, "too_many_uploads", 429)
    sid = first["session_id"]
    await alice.upload_all(sid, small_pdf, first["chunk_size"])
    assert (await alice.complete(sid)).status_code == 200
    body = envelope(await alice.http.post(f"{S}/initiate", json={"filename": "big.pdf", "file_size": 9 * MIB}),
                    "upload_quota_exceeded", 507)
    assert body["quota_bytes"] == 12 * MIB and body["pending_bytes"] == len(small_pdf)
    await capped.bob.initiate(9 * MIB)  # Bob's quota is untouched
    await alice.initiate(7 * MIB)  # fits next to the 5 MB one: 12 MiB at most


async def test_file_size_limit(capped: Owners) -> None:
    r = await capped.alice.http.post(f"{S}/initiate", json={"filename": "a.pdf", "file_size": 10 * MIB + 1})
    assert envelope(r, "file_too_large", 413)["max_file_size"] == 10 * MIB


async def test_body_caps(api: Api, small_pdf: bytes) -> None:
    big_json = {"filename": "a.pdf", "file_size": 1000, "title": "x" * 500, "junk": "y" * (70 << 10)}
    r = await api.http.post(f"{S}/initiate", json=big_json)
    assert envelope(r, "request_too_large", 413)["limit"] == 64 << 10

    async def streamed(total: int) -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        for _ in range(total // (16 << 10)):
            yield b" " * (16 << 10)

    r = await api.http.post(f"{S}/initiate", content=streamed(128 << 10), headers={"content-type": "application/json"})
    envelope(r, "request_too_large", 413)
    # the chunk endpoint takes a full 8 MiB chunk plus its form, not more
    s = await api.initiate(20 * MIB, chunk_size=8 * MIB)
    r = await api.http.post(f"{S}/chunk/{s['session_id']}", content=b"x" * (8 * MIB + (64 << 10) + 1),
                            headers={"content-type": "multipart/form-data; boundary=b"})
    envelope(r, "request_too_large", 413)
    chunk = b"%PDF-1.7\n" + b"\0" * (8 * MIB - 9)
    assert (await api.chunk(s["session_id"], 0, chunk)).status_code == 200
    # and the service still answers small requests after refusing big ones
    assert (await api.http.get(f"{S}/resumable")).status_code == 200


async def test_chunked_chunk_body_over_the_cap_is_refused(api: Api) -> None:
    s = await api.initiate(20 * MIB, chunk_size=8 * MIB)
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"chunk_id\"\r\n\r\n0\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c\"\r\n\r\n").encode()

    async def body() -> AsyncIterator[bytes]:
        yield head + b"%PDF-1.7\n"
        for _ in range(9 * 16):  # 9 MiB in 64 KiB pieces, no Content-Length
            yield b"\0" * (64 << 10)

    r = await api.http.post(f"{S}/chunk/{s['session_id']}", content=body(),
                            headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code in (413, 422), r.text  # the cap, or the chunk's own length check, whichever first
    resumed = (await api.http.post(f"{S}/resume", json={"session_id": s["session_id"]})).json()
    assert resumed["uploaded_chunks"] == []


@pytest.mark.parametrize(("sent", "stored"), [
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\Windows\\system32\\evil.pdf", "evil.pdf"),
    ("report\x00.pdf\r\nX-Injected: 1", "report.pdfX-Injected_ 1"),
    ("invoice\u202egpj.pdf", "invoicegpj.pdf"),
    ("CON.pdf", "_CON.pdf"),
    ('a<b>"c"|d?.pdf', "a_b__c__d_.pdf"),
])
async def test_filenames_are_sanitized_and_the_original_kept(api: Api, tmp_path: Path, sent: str,
                                                            stored: str) -> None:
    make_pdf(tmp_path / "n.pdf", 20_000, seed=len(sent))
    data = (tmp_path / "n.pdf").read_bytes()
    s = await api.initiate(len(data), filename=sent)
    assert s["filename"] == stored and s["original_filename"] == sent
    assert list(api.svc.settings.partial_dir.iterdir()) == [api.svc.settings.partial_dir / f"{s['session_id']}.part"]
    r = await api.chunk(s["session_id"], 0, data)
    assert r.status_code == 200, r.text
    done = await api.complete(s["session_id"])
    assert done.status_code == 200, done.text
    doc = done.json()["document"]
    assert doc["filename"] == stored and doc["original_filename"] == sent
    r = await api.http.get(f"/api/documents/{doc['id']}/file")
    disposition = r.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert hashlib.sha256(r.content).hexdigest() == doc["sha256"]


async def test_refusals_never_show_server_paths(api: Api) -> None:
    """qpdf names the file it read; that name is the partial file's path on the server."""
    data = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] "
            b"/Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    s = await api.initiate(len(data))
    assert (await api.chunk(s["session_id"], 0, data)).status_code == 200
    body = envelope(await api.complete(s["session_id"]), "invalid_pdf", 422)
    assert str(api.svc.settings.partial_dir) not in body["message"] and ".part" not in body["message"], body


async def test_a_name_with_nothing_left_is_refused(api: Api) -> None:
    for name in ("/", "../..", "\x00\x01", " . "):
        r = await api.http.post(f"{S}/initiate", json={"filename": name, "file_size": 100})
        envelope(r, "invalid_request", 422)
