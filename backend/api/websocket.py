"""``/ws/{client_id}``: progress events for the caller's uploads."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.api.deps import SINGLE_OWNER, services
from backend.errors import UploadError
from backend.services.sessions import CLIENT_ID

router = APIRouter()
log = logging.getLogger(__name__)


@router.websocket("/ws/{client_id}")
async def progress_socket(websocket: WebSocket, client_id: str) -> None:
    """Events of sessions initiated or resumed with ``client_id`` arrive unasked.

    Send ``{"type": "join_upload_room", "session_id": ...}`` (or ``leave_upload_room``)
    to follow another of your sessions; ``{"type": "ping"}`` is answered with a pong."""
    if not CLIENT_ID.match(client_id):
        await websocket.close(code=1008, reason="invalid client_id")
        return
    svc = await services(websocket)
    who = SINGLE_OWNER
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
