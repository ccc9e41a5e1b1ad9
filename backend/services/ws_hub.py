"""WebSocketHub: who hears what.

A connection belongs to a ``client_id`` and an owner. It hears a session's events when
the session was initiated or resumed with its client id, or when it joined the
session's room (``upload_{session_id}``). Each connection has a bounded outbox drained
by its own task: a slow or dead socket loses its oldest queued events (progress is
last-value-wins) and never slows an upload; the bus's publish only enqueues.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Protocol

from backend.services.progress import Envelope

log = logging.getLogger(__name__)

OUTBOX = 256


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...


class Connection:
    def __init__(self, client_id: str, owner: str, socket: Socket) -> None:
        self.client_id = client_id
        self.owner = owner
        self.socket = socket
        self.rooms: set[str] = set()
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    def offer(self, text: str) -> None:
        if self.outbox.full():
            self.outbox.get_nowait()
            self.dropped += 1
        self.outbox.put_nowait(text)

    async def pump(self) -> None:
        while True:
            text = await self.outbox.get()
            await self.socket.send_text(text)


class WebSocketHub:
    def __init__(self) -> None:
        self.by_client: dict[str, set[Connection]] = defaultdict(set)
        self.rooms: dict[str, set[Connection]] = defaultdict(set)
        self.connections: set[Connection] = set()

    def attach(self, client_id: str, owner: str, socket: Socket) -> Connection:
        conn = Connection(client_id, owner, socket)
        conn.task = asyncio.create_task(self._pump(conn), name=f"ws {client_id}")
        self.connections.add(conn)
        self.by_client[client_id].add(conn)
        return conn

    async def _pump(self, conn: Connection) -> None:
        try:
            await conn.pump()
        except Exception as exc:  # the socket is gone; the receive loop will notice too
            log.debug("websocket %s: send failed (%s)", conn.client_id, exc)

    def detach(self, conn: Connection) -> None:
        if conn.task is not None:
            conn.task.cancel()
        self.connections.discard(conn)
        peers = self.by_client.get(conn.client_id)
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del self.by_client[conn.client_id]
        for room in conn.rooms:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.rooms[room]
        conn.rooms.clear()

    def join(self, conn: Connection, session_id: str) -> None:
        room = f"upload_{session_id}"
        conn.rooms.add(room)
        self.rooms[room].add(conn)

    def leave(self, conn: Connection, session_id: str) -> None:
        room = f"upload_{session_id}"
        conn.rooms.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(conn)

    def deliver(self, envelope: Envelope) -> None:
        """Bus subscriber: route an event to the connections allowed to hear it."""
        if envelope.session_id is None:
            targets = set(self.connections)
        else:
            targets = set(self.rooms.get(f"upload_{envelope.session_id}", ()))
            for client_id in envelope.client_ids:
                targets |= self.by_client.get(client_id, set())
        if not targets:
            return
        text = json.dumps(envelope.event, separators=(",", ":"))
        for conn in targets:
            if envelope.owner is None or conn.owner == envelope.owner:
                conn.offer(text)

    def send(self, conn: Connection, event: dict[str, object]) -> None:
        conn.offer(json.dumps(event, separators=(",", ":")))
