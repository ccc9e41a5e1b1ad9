"""A WebSocket that joins a room late hears where the upload stands first (the room's
latest events right after ``joined_upload_room``), with either bus; with Redis, a room
whose session another replica holds can be joined by its owner only."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings

MIB = 1024 * 1024
ACKS = {"join_upload_room": "joined_upload_room", "leave_upload_room": "left_upload_room"}  # not 'leaveed_'


@pytest.fixture(params=["local", "redis"])
def app_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "redis":
        return settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    return settings


def test_a_late_joiner_hears_the_current_state_first(app_settings: Settings, small_pdf: bytes) -> None:
    with TestClient(create_app(app_settings)) as client:
        s = client.post("/api/documents/streaming/initiate",
                        json={"filename": "a.pdf", "file_size": len(small_pdf), "client_id": "tab"}).json()
        sid, cs = s["session_id"], s["chunk_size"]
        for i in range(2):
            data = small_pdf[i * cs:(i + 1) * cs]
            r = client.post(f"/api/documents/streaming/chunk/{sid}", files={"file": ("b", data)},
                            data={"chunk_id": str(i), "checksum": hashlib.sha256(data).hexdigest()})
            assert r.status_code == 200, r.text
        with client.websocket_connect("/ws/late") as ws:
            state: list[dict[str, Any]] = []
            for _ in range(40):  # with Redis the state is written by a background task: a moment
                state = _rejoin(ws, sid)
                if [e["type"] for e in state] == ["upload_progress", "chunk_progress"] and \
                        state[0]["data"]["uploaded_chunks"] == 2:
                    break
            assert [e["type"] for e in state] == ["upload_progress", "chunk_progress"]
            assert state[0]["data"]["uploaded_chunks"] == 2 and state[1]["chunks_uploaded"] == 2


def _rejoin(ws: Any, sid: str) -> list[dict[str, Any]]:
    """Leave and join the room: the events heard after ``joined_upload_room`` (a ping
    answered marks their end)."""
    for kind in ("leave_upload_room", "join_upload_room"):
        ws.send_json({"type": kind, "session_id": sid})
        ws.send_json({"type": "ping"})
        heard = []
        while (msg := ws.receive_json())["type"] != "pong":
            heard.append(msg)
        assert heard and heard[0]["type"] == ACKS[kind] and heard[0]["session_id"] == sid, heard
    return heard[1:]
