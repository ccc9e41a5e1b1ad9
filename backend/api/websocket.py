"""``/ws/{client_id}``: progress events for the caller's uploads."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.api.deps import authenticate, services
from backend.api.errors import envelope, rest_headers, rest_status
from backend.errors import Unauthorized, UploadError
from backend.services.sessions import CLIENT_ID

router = APIRouter()
log = logging.getLogger(__name__)


@router.websocket("/ws/{client_id}")
async def progress_socket(websocket: WebSocket, client_id: str) -> None:
    """Events of sessions initiated or resumed with ``client_id`` arrive unasked.

    Send ``{"type": "join_upload_room", "session_id": ...}`` (or ``leave_upload_room``)
    to follow another of your sessions; ``{"type": "ping"}`` is answered with a pong.

    With API keys on, the key comes in ``Authorization: Bearer`` or, since browsers
    cannot set headers on a WebSocket, as ``?token=``. It is checked before the
    handshake completes: a wrong or missing key gets HTTP 401 with the error envelope
    (or, on a server without the denial-response extension, a close with 1008 before
    accepting). A client only ever hears its owner's events and joins its owner's rooms."""
    if not CLIENT_ID.match(client_id):
        await websocket.close(code=1008, reason="invalid client_id")
        return
    try:
        who = authenticate(websocket, _key_of(websocket))
    except Unauthorized as exc:
        await _deny(websocket, exc)
        return
    svc = await services(websocket)
    await websocket.accept()
    conn = svc.hub.attach(client_id, who, websocket)
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                message = json.loads(raw)
                kind = message.get("type") if isinstance(message, dict) else None
            except ValueError:
                kind, message = None, {}
            if kind == "ping":
                svc.hub.send(conn, {"type": "pong"})
            elif kind in ("join_upload_room", "leave_upload_room"):
                session_id = str(message.get("session_id", ""))
                try:
                    svc.sessions.get(who, session_id, allow_expired=True)
                except UploadError as exc:
                    svc.hub.send(conn, {"type": "error", "error": exc.code, "message": exc.message})
                    continue
                if kind == "join_upload_room":
                    svc.hub.join(conn, session_id)
                else:
                    svc.hub.leave(conn, session_id)
                svc.hub.send(conn, {"type": kind.replace("_upload_room", "ed_upload_room").replace("joined", "joined"),
                                    "session_id": session_id, "room": f"upload_{session_id}"})
            else:
                svc.hub.send(conn, {"type": "error", "error": "invalid_message",
                                    "message": "send join_upload_room, leave_upload_room or ping"})
    except WebSocketDisconnect:
        pass
    finally:
        svc.hub.detach(conn)


def _key_of(websocket: WebSocket) -> str | None:
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return websocket.query_params.get("token") or None


async def _deny(websocket: WebSocket, exc: Unauthorized) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(envelope(rest_status(exc), exc.code, exc.message, headers=rest_headers(exc)))
    else:
        await websocket.close(code=1008, reason="unauthorized")
