"""/ws/{client_id} in-process: unasked events for the client's sessions, rooms, pings."""

from __future__ import annotations

import hashlib

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from backend.app import create_app
from backend.settings import Settings

MIB = 1024 * 1024


def _chunk(client: TestClient, sid: str, i: int, data: bytes) -> None:
    r = client.post(f"/api/documents/streaming/chunk/{sid}",
                    data={"chunk_id": str(i), "checksum": hashlib.sha256(data).hexdigest()},
                    files={"file": ("b", data)})
    assert r.status_code == 200, r.text


def test_events_reach_the_client_without_asking(settings: Settings, small_pdf: bytes) -> None:
    with TestClient(create_app(settings)) as client:
        s = client.post("/api/documents/streaming/initiate",
                        json={"filename": "a.pdf", "file_size": len(small_pdf), "client_id": "web1"}).json()
        sid, cs = s["session_id"], s["chunk_size"]
        with client.websocket_connect("/ws/web1") as ws:
            for i in range(s["total_chunks"]):
                _chunk(client, sid, i, small_pdf[i * cs:(i + 1) * cs])
            client.post(f"/api/documents/streaming/complete/{sid}")
            events = []
            while not events or events[-1].get("status") != "completed":
                events.append(ws.receive_json())
        kinds = [e["type"] for e in events]
        assert "upload_progress" in kinds and "chunk_progress" in kinds
        progress = [e["data"] for e in events if e["type"] == "upload_progress"]
        assert progress[-1]["progress_percentage"] == 100.0
        statuses = [e["status"] for e in events if e["type"] == "upload_status"]
        assert statuses == ["processing", "importing", "completed"]  # stored, then imported for search


def test_rooms_and_pings(settings: Settings, small_pdf: bytes) -> None:
    with TestClient(create_app(settings)) as client:
        s = client.post("/api/documents/streaming/initiate",
                        json={"filename": "a.pdf", "file_size": len(small_pdf), "client_id": "owner_tab"}).json()
        with client.websocket_connect("/ws/watcher") as ws:
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
            ws.send_json({"type": "join_upload_room", "session_id": "00000000-0000-4000-8000-000000000000"})
            assert ws.receive_json()["error"] == "not_found"
            ws.send_json({"type": "join_upload_room", "session_id": s["session_id"]})
            assert ws.receive_json()["type"] == "joined_upload_room"
            _chunk(client, s["session_id"], 0, small_pdf[:2 * MIB])
            assert ws.receive_json()["type"] == "upload_progress"
            ws.send_text("not json")
            msg = ws.receive_json()
            while msg["type"] != "error":
                msg = ws.receive_json()
            assert msg["error"] == "invalid_message"


def test_invalid_client_id_is_refused(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/ws/bad%20id") as ws:
                ws.receive_json()
