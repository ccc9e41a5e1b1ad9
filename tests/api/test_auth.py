"""API keys: every API route and the WebSocket want one; the operational and page routes
do not; without keys the server has one owner and needs none."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient, WebSocketDenialResponse

from backend.app import create_app
from backend.services.auth import SINGLE_OWNER
from backend.settings import Settings, temp_settings
from tests.api.conftest import ALICE_KEY, BOB_KEY, KEYS, Owners, auth
from tests.conftest import envelope

# Open on purpose (README, "Security perimeter"): probes, scrapers, the page and the schema.
OPEN = {"/health", "/ready", "/metrics", "/", "/static/{name}", "/docs", "/docs/oauth2-redirect", "/redoc",
        "/openapi.json"}


def api_calls(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every HTTP route in the schema that is not open."""
    calls = []
    for template, operations in app.openapi()["paths"].items():
        if template in OPEN:
            continue
        path = template.replace("{session_id}", str(uuid.uuid4())).replace("{doc_id}", "1")
        assert "{" not in path, f"test knows no value for a parameter of {template}"
        calls.extend((method.upper(), path) for method in sorted(operations))
    return calls


async def test_every_api_route_wants_a_key(owners: Owners) -> None:
    calls = api_calls(owners.app)
    assert len(calls) >= 16, calls  # the streaming, documents, search and security routes
    for method, path in calls:
        for headers in ({}, auth("not-a-key"), {"Authorization": f"Basic {ALICE_KEY}"}):
            r = await owners.anon.request(method, path + "?q=x", headers=headers, json={})
            body = envelope(r, "unauthorized", 401)
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)
            assert ALICE_KEY not in r.text and "alice" not in body["message"]


async def test_open_routes_need_no_key(owners: Owners) -> None:
    for path in ("/health", "/metrics", "/openapi.json", "/docs"):
        r = await owners.anon.get(path)
        assert r.status_code == 200, (path, r.text)
    assert (await owners.anon.get("/ready")).status_code in (200, 503)  # 503 only while the index loads
    assert (await owners.anon.get("/")).status_code in (200, 503)  # 503: page not built


async def test_a_valid_key_names_its_owner(owners: Owners) -> None:
    a = await owners.alice.initiate(1000)
    assert owners.alice.svc.sessions.live[a["session_id"]].session.owner == "alice"
    b = await owners.bob.initiate(1000)
    assert owners.bob.svc.sessions.live[b["session_id"]].session.owner == "bob"


async def test_failed_attempts_are_counted(owners: Owners) -> None:
    for _ in range(3):
        await owners.anon.get("/api/documents", headers=auth("wrong"))
    metrics = (await owners.anon.get("/metrics")).text
    assert "pdfupload_auth_failures_total 3.0" in metrics


async def test_openapi_shows_the_bearer_scheme(owners: Owners) -> None:
    schema = (await owners.anon.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"]}
    initiate = schema["paths"]["/api/documents/streaming/initiate"]["post"]
    assert initiate["security"] == [{"ApiKey": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_websocket_wants_a_key_before_the_handshake(keyed_settings: Settings) -> None:
    with TestClient(create_app(keyed_settings)) as client:
        for url, headers in (("/ws/tab1", {}), ("/ws/tab1?token=wrong", {}), ("/ws/tab1", auth("wrong"))):
            with pytest.raises(WebSocketDenialResponse) as refused:
                with client.websocket_connect(url, headers=headers):
                    pass
            assert refused.value.status_code == 401
            assert refused.value.json()["error"] == "unauthorized"
        for url, headers in ((f"/ws/tab1?token={ALICE_KEY}", {}), ("/ws/tab1", auth(BOB_KEY))):
            with client.websocket_connect(url, headers=headers) as ws:
                ws.send_json({"type": "ping"})
                assert ws.receive_json() == {"type": "pong"}


async def test_without_keys_one_owner_needs_none(api: object) -> None:
    from tests.conftest import Api
    assert isinstance(api, Api)
    s = await api.initiate(1000)
    assert api.svc.sessions.live[s["session_id"]].session.owner == SINGLE_OWNER
    # a key sent to a server without keys is not an error: there is nothing to check it against
    r = await api.http.get("/api/documents", headers=auth("anything"))
    assert r.status_code == 200


async def test_keys_file_adds_owners(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\ncarol-key-0123456789abcdef:carol\n\n  dave-key-0123456789abcdef : dave\n")
    app = create_app(temp_settings(tmp_path / "srv", api_keys=KEYS, api_keys_file=keys))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            for key in ("carol-key-0123456789abcdef", "dave-key-0123456789abcdef", ALICE_KEY):
                assert (await http.get("/api/documents", headers=auth(key))).status_code == 200
            assert (await http.get("/api/documents", headers=auth("dave-key"))).status_code == 401
