"""``/ws/{client_id}``: progress events for the caller's uploads."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.api.deps import authenticate, services
from backend.api.errors import envelope, rest_headers, rest_status
from backend.composition import Services
from backend.errors import NotFound, StorageUnavailable, Unauthorized, UploadError
from backend.services.progress import Snapshot
from backend.services.sessions import CLIENT_ID

router = APIRouter()
ACKS = {"join_upload_room": "joined_upload_room", "leave_upload_room": "left_upload_room"}
log = logging.getLogger(__name__)


@router.websocket("/ws/{client_id}")
async def progress_socket(websocket: WebSocket, client_id: str) -> None:
    """Events of sessions initiated or resumed with ``client_id`` arrive unasked.

    Send ``{"type": "join_upload_room", "session_id": ...}`` (or ``leave_upload_room``)
    to follow another of your sessions; ``{"type": "ping"}`` is answered with a pong.
    After ``joined_upload_room`` come the room's latest events (progress, chunk
    progress, status: see :data:`~backend.services.progress.ROOM_STATE`), so a late
    joiner knows where the upload stands before the next event arrives.

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
                    state = await _room_state(svc, who, session_id)
                except UploadError as exc:
                    svc.hub.send(conn, {"type": "error", "error": exc.code, "message": exc.message})
                    continue
                if kind == "join_upload_room":
                    svc.hub.join(conn, session_id)
                else:
                    svc.hub.leave(conn, session_id)
                svc.hub.send(conn, {"type": ACKS[kind], "session_id": session_id, "room": f"upload_{session_id}"})
                if kind == "join_upload_room" and state is not None:
                    for event in state.events:  # a late joiner hears where the upload stands first
                        svc.hub.send(conn, event)
            else:
                svc.hub.send(conn, {"type": "error", "error": "invalid_message",
                                    "message": "send join_upload_room, leave_upload_room or ping"})
    except WebSocketDisconnect:
        pass
    finally:
        svc.hub.detach(conn)


async def _room_state(svc: Services, who: str, session_id: str) -> Snapshot | None:
    """The room's latest state, once ``who`` may follow it: the session is ``who``'s on
    this replica, or (with Redis, the session held by another replica) the room's state
    says it is ``who``'s. Raises NotFound otherwise, StorageUnavailable when the shared
    state is needed and cannot be read."""
    try:
        svc.sessions.get(who, session_id, allow_expired=True)
        here = True
    except NotFound:
        here = False
    if len(session_id) > 128:
        raise NotFound(f"no upload session {session_id[:128]}")
    try:
        state = await svc.reporter.bus.snapshot(session_id)
    except StorageUnavailable:
        if here:
            return None  # the session is here: it can be followed, its past events are lost
        raise
    if state is not None and state.owner == who:
        return state
    if here:
        return None
    raise NotFound(f"no upload session {session_id}")


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
