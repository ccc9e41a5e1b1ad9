"""Operations: liveness, readiness (and its failures), Prometheus metrics that move with
uploads, request ids, JSON log lines, CORS."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from backend.app import create_app
from backend.logs import ContextFilter, JsonFormatter, RequestContext, bind_session, request_context
from backend.settings import temp_settings
from tests.conftest import MIB, Api, envelope

CS = 2 * MIB


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await api.http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_health_is_liveness_only(api: Api) -> None:
    r = await api.http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_ready_when_dirs_are_writable_and_the_index_loaded(api: Api) -> None:
    await api.svc.importer.ready()
    r = await api.http.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and set(body["checks"]) == {"state_dir", "data_dir", "upload_dir", "index", "storage"}
    assert all(c["ok"] for c in body["checks"].values())
    assert str(api.svc.settings.state_dir) not in r.text  # open to probes: no paths


async def test_ready_fails_while_the_state_dir_is_unwritable(api: Api) -> None:
    await api.svc.importer.ready()
    state = api.svc.settings.state_dir
    # Root writes through permission bits, so make it unwritable for anyone: a file in its place.
    aside = state.with_name("state.aside")
    state.rename(aside)
    state.write_text("not a directory")
    try:
        body = envelope(await api.http.get("/ready"), "not_ready", 503)
        assert body["checks"]["state_dir"]["ok"] is False and "not writable" in body["checks"]["state_dir"]["error"]
        assert body["checks"]["data_dir"]["ok"] is True
        assert (await api.http.get("/health")).status_code == 200  # alive, just not ready
    finally:
        state.unlink()
        aside.rename(state)
    if os.geteuid() != 0:  # where permission bits bind, they count too
        state.chmod(0o500)
        try:
            envelope(await api.http.get("/ready"), "not_ready", 503)
        finally:
            state.chmod(0o700)
    assert (await api.http.get("/ready")).status_code == 200  # recovered


async def test_ready_fails_below_the_free_space_threshold(tmp_path: Path) -> None:
    app = create_app(temp_settings(tmp_path / "srv", ready_min_free_mb=1e12))
    async with app.router.lifespan_context(app):
        await app.state.services.importer.ready()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            body = envelope(await http.get("/ready"), "not_ready", 503)
            assert "below the" in body["checks"]["data_dir"]["error"]


async def test_metrics_move_when_uploads_happen(api: Api, small_pdf: bytes) -> None:
    before = await scrape(api)
    s = await api.initiate(len(small_pdf))
    assert value(await scrape(api), "pdfupload_active_sessions") == 1
    sid = s["session_id"]
    envelope(await api.chunk(sid, 0, small_pdf[:CS], checksum="0" * 64), "checksum_mismatch", 422)
    envelope(await api.chunk(sid, 0, b"not a pdf" + small_pdf[9:CS]), "not_a_pdf", 415)
    await api.upload_all(sid, small_pdf, CS)
    assert (await api.complete(sid)).status_code == 200
    await api.svc.importer.drain()
    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pdfupload_bytes_received_total") == len(small_pdf)
    assert moved("pdfupload_chunks_accepted_total") == 3
    assert moved("pdfupload_chunks_refused_total", reason="checksum_mismatch") == 1
    assert moved("pdfupload_chunks_refused_total", reason="not_a_pdf") == 1
    assert moved("pdfupload_uploads_completed_total") == 1
    assert moved("pdfupload_chunk_seconds_count") == 3 and moved("pdfupload_chunk_seconds_sum") > 0
    assert sum(moved("pdfupload_import_seconds_count", outcome=o) for o in ("indexed", "no_text", "failed")) == 1
    assert value(after, "pdfupload_active_sessions") == 0 and value(after, "pdfupload_open_sessions") == 0
    assert ("pdfupload_backpressure_events_total", (("kind", "refusal"),)) in after
    assert ("pdfupload_inflight_bytes", ()) in after


async def test_each_app_has_its_own_registry(api: Api, tmp_path: Path, small_pdf: bytes) -> None:
    other = create_app(temp_settings(tmp_path / "other"))
    async with other.router.lifespan_context(other):
        s = await api.initiate(len(small_pdf))
        await api.upload_all(s["session_id"], small_pdf, CS)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://t") as http:
            text = (await http.get("/metrics")).text
        assert "pdfupload_bytes_received_total 0.0" in text
        assert value(await scrape(api), "pdfupload_bytes_received_total") == len(small_pdf)


async def test_request_id_is_echoed_or_made(api: Api) -> None:
    r = await api.http.get("/health")
    assert len(r.headers["x-request-id"]) == 32
    r = await api.http.get("/api/documents", headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["x-request-id"] == "trace-abc.123"
    r = await api.http.get("/api/documents", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces" and len(r.headers["x-request-id"]) == 32
    r = await api.http.get("/api/documents/999")  # errors carry it too
    assert r.status_code == 404 and len(r.headers["x-request-id"]) == 32


def test_json_log_lines_carry_request_and_session() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.perimeter.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        with request_context(RequestContext("req-1", owner="alice")):
            bind_session("sess-1")
            log.warning("chunk %d refused", 3, extra={"code": "checksum_mismatch"})
        log.info("swept", extra={"session_id": "sess-2"})
        log.info('%s - "WebSocket %s" %s', "127.0.0.1:5", "/ws/tab?token=sekrit-key&x=1", "[accepted]")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("crashed")
    finally:
        log.removeHandler(handler)
    first, second, handshake, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert handshake["message"] == '127.0.0.1:5 - "WebSocket /ws/tab?token=[redacted]&x=1" [accepted]'
    assert first["message"] == "chunk 3 refused" and first["level"] == "WARNING"
    assert (first["request_id"], first["session_id"], first["owner"], first["code"]) == \
        ("req-1", "sess-1", "alice", "checksum_mismatch")
    assert first["ts"].endswith("Z") and first["logger"] == "test.perimeter.json"
    assert second["session_id"] == "sess-2" and "request_id" not in second
    assert "ValueError: boom" in third["exc"]


async def test_cors_from_settings(tmp_path: Path) -> None:
    app = create_app(temp_settings(tmp_path / "srv", cors_origins="https://app.example, https://other.example",
                                   api_keys="k-0123456789abcdef:alice"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            pre = await http.options("/api/documents/streaming/initiate", headers={
                "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            assert pre.status_code == 200  # a preflight needs no key
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            assert "authorization" in pre.headers["access-control-allow-headers"].lower()
            r = await http.get("/api/documents", headers={"Origin": "https://other.example",
                                                           "Authorization": "Bearer k-0123456789abcdef"})
            assert r.headers["access-control-allow-origin"] == "https://other.example"
            exposed = r.headers["access-control-expose-headers"].lower()
            assert all(h in exposed for h in ("retry-after", "x-request-id", "content-range"))
            r = await http.get("/api/documents", headers={"Origin": "https://evil.example"})
            assert r.status_code == 401 and "access-control-allow-origin" not in r.headers
            r = await http.get("/api/documents", headers={"Origin": "https://app.example"})
            assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example"


async def test_no_cors_headers_by_default(api: Api) -> None:
    r = await api.http.get("/api/documents", headers={"Origin": "https://app.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
