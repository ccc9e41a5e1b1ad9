"""The perimeter on a real server process: keys over real HTTP and WebSocket, the Python
client with ``api_key``, JSON log lines with request and session ids, metrics after a
real upload, and the refusal to listen publicly without keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pdf_upload_client import AsyncUploader
from pdf_upload_client.state import StateStore
from tests.e2e.conftest import REPO, ServerProcess, free_port
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

ALICE = "alice-e2e-key-0123456789abcdef"
BOB = "bob-e2e-key-0123456789abcdef"


def log_records(server: ServerProcess) -> list[dict[str, object]]:
    """Every line the server wrote, as JSON (the harness's own start markers aside)."""
    records = []
    for line in server.log_text().splitlines():
        if not line.strip() or line.startswith("====="):
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line is not JSON: {line!r}") from None
    return records


async def test_keys_client_websocket_logs_and_metrics(make_server: Callable[..., ServerProcess],
                                                      tmp_path: Path) -> None:
    server = make_server(STREAMING_API_KEYS=f"{ALICE}:alice,{BOB}:bob", STREAMING_PROGRESS_INTERVAL_SECONDS="0.05")
    pdf = tmp_path / "e2e.pdf"
    make_pdf(pdf, 5_000_000, pages=2, seed=5)
    async with aiohttp.ClientSession(server.base_url) as http:
        async with http.get("/api/documents") as r:
            assert r.status == 401 and (await r.json())["error"] == "unauthorized"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/ws/alice_tab")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"/ws/alice_tab?token={BOB}x")

        async with http.ws_connect(f"/ws/alice_tab?token={ALICE}") as alice_ws, \
                http.ws_connect("/ws/alice_tab", headers={"Authorization": f"Bearer {BOB}"}) as bob_ws:
            async with AsyncUploader(server.base_url, api_key=ALICE, store=StateStore(tmp_path / "state"),
                                     parallel=2) as uploader:
                # the client's own ids differ from alice_tab: join the room by session id instead
                result = await uploader.upload(pdf)
            assert result.document["filename"] == "e2e.pdf" and not result.duplicate
            await alice_ws.send_json({"type": "join_upload_room", "session_id": result.session_id})
            assert (await alice_ws.receive_json(timeout=10))["type"] == "joined_upload_room"
            await bob_ws.send_json({"type": "join_upload_room", "session_id": result.session_id})
            assert (await bob_ws.receive_json(timeout=10))["error"] == "not_found"

        async with AsyncUploader(server.base_url, api_key=BOB, store=StateStore(tmp_path / "bob")) as bob:
            bobs = await bob.upload(pdf)  # same bytes, another owner: stored for him, not a duplicate
        assert not bobs.duplicate and bobs.document["id"] != result.document["id"]

        headers = {"Authorization": f"Bearer {BOB}", "X-Request-ID": "e2e-trace-1"}
        async with http.get(f"/api/documents/{result.document['id']}", headers=headers) as r:
            assert r.status == 404 and r.headers["X-Request-ID"] == "e2e-trace-1"
        async with http.get("/metrics") as r:
            metrics = await r.text()
        samples = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                   if not s.labels}
        assert samples["pdfupload_uploads_completed_total"] == 2
        assert samples["pdfupload_bytes_received_total"] == 2 * 5_000_000
        assert samples["pdfupload_chunk_seconds_count"] == 6
        async with http.get("/ready") as r:
            assert r.status in (200, 503)

    records = log_records(server)
    upload_lines = [r for r in records if str(r.get("message", "")).startswith("session ")]
    assert upload_lines, "no upload log lines"
    assert all(r.get("session_id") for r in upload_lines), upload_lines
    assert any(r["session_id"] == result.session_id and "completed" in str(r["message"]) for r in upload_lines)
    access = [r for r in records if r.get("logger") == "backend.access"]
    chunk_lines = [r for r in access if "/chunk/" in str(r["path"])]
    assert chunk_lines and all(r["session_id"] and r["request_id"] and r["owner"] for r in chunk_lines)
    assert any(r["request_id"] == "e2e-trace-1" and r["status"] == 404 and r["owner"] == "bob" for r in access)
    # uvicorn logs each handshake's full path: the ?token= key is redacted, no key is ever logged
    assert any("token=[redacted]" in str(r["message"]) for r in records)
    assert not any(ALICE in json.dumps(r) or BOB in json.dumps(r) for r in records), "a key reached the log"
    assert any("API keys on: 2 keys for 2 owners" in str(r["message"]) for r in records)
    server.assert_no_tracebacks()


def test_no_keys_means_no_public_address(tmp_path: Path) -> None:
    env = dict(os.environ, STREAMING_STATE_DIR=str(tmp_path / "s"), STREAMING_DATA_DIR=str(tmp_path / "d"),
               PYTHONPATH=str(REPO))
    env.pop("STREAMING_API_KEYS", None)
    env.pop("STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS", None)
    proc = subprocess.run([sys.executable, "-m", "backend", "--host", "0.0.0.0", "--port", str(free_port())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    line = json.loads(proc.stderr.strip().splitlines()[-1])
    assert line["level"] == "ERROR" and "refusing to listen on 0.0.0.0" in line["message"]
    assert "STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS" in line["message"]


def test_bad_keys_stop_the_server_before_it_listens(tmp_path: Path) -> None:
    env = dict(os.environ, STREAMING_STATE_DIR=str(tmp_path / "s"), STREAMING_DATA_DIR=str(tmp_path / "d"),
               PYTHONPATH=str(REPO), STREAMING_API_KEYS="same:alice,same:bob")
    proc = subprocess.run([sys.executable, "-m", "backend", "--port", str(free_port())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "two owners" in proc.stderr and "same" not in proc.stderr.replace("same key", "")
