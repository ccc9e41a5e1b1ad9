"""A small test-side client of the wire contract (``API.md``), over aiohttp.

- :class:`ApiClient`: the streaming-upload and document endpoints.
- :class:`EventStream`: a ``/ws/{client_id}`` connection collecting every event in a
  background task.
- :func:`check_event` / :func:`check_progress_order`: the event shapes of ``API.md``,
  strictly.
- :func:`upload_chunks`: a pool of workers sending chunks, N in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

PREFIX = "/api/documents/streaming"
STATUSES = {"uploading", "processing", "importing", "completed", "failed", "cancelled"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
READ_BLOCK = 1 << 20


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


def read_chunk(path: Path, chunk_id: int, chunk_size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(chunk_id * chunk_size)
        return f.read(chunk_size)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def assert_envelope(reply: Reply, code: str, status: int) -> dict[str, Any]:
    """The error envelope of ``API.md``: ``{"success": false, "error": code, "message": str}``."""
    assert reply.status == status, reply
    body = reply.body
    assert isinstance(body, dict), reply
    assert body.get("success") is False and body.get("error") == code, reply
    assert isinstance(body.get("message"), str) and body["message"], reply
    return body


class ApiClient:
    """``async with ApiClient(base_url) as api``: one aiohttp session (one server lifetime)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._http = aiohttp.ClientSession(base_url=self.base_url, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use `async with ApiClient(...)`"
        return self._http

    @staticmethod
    async def _reply(resp: aiohttp.ClientResponse) -> Reply:
        raw = await resp.read()
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return Reply(resp.status, body, dict(resp.headers))

    async def post_json(self, path: str, payload: dict[str, Any] | None = None) -> Reply:
        async with self.http.post(path, json=payload) as resp:
            return await self._reply(resp)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        async with self.http.get(path, headers=headers) as resp:
            return await self._reply(resp)

    # -- streaming upload ----------------------------------------------------------------

    async def initiate(self, filename: str, file_size: int, **fields: Any) -> dict[str, Any]:
        reply = await self.post_json(f"{PREFIX}/initiate", {"filename": filename, "file_size": file_size, **fields})
        assert reply.status == 201, reply
        session = reply.body
        assert isinstance(session, dict), reply
        check_session(session, file_size)
        return session

    async def send_chunk(self, session_id: str, chunk_id: int, data: bytes, chunk_size: int,
                         total_chunks: int) -> Reply:
        """One chunk as ``multipart/form-data``; fields before ``file``, as API.md clients do."""
        form = aiohttp.FormData()
        form.add_field("chunk_id", str(chunk_id))
        form.add_field("chunk_offset", str(chunk_id * chunk_size))
        form.add_field("is_final", "true" if chunk_id == total_chunks - 1 else "false")
        form.add_field("checksum", hashlib.sha256(data).hexdigest())
        # io.BytesIO: aiohttp warns about raw bytes bodies over 1 MiB (they would block the loop)
        form.add_field("file", io.BytesIO(data), filename=f"chunk_{chunk_id}.bin",
                       content_type="application/octet-stream")
        async with self.http.post(f"{PREFIX}/chunk/{session_id}", data=form) as resp:
            return await self._reply(resp)

    async def resume(self, session_id: str, client_id: str | None = None) -> Reply:
        payload: dict[str, Any] = {"session_id": session_id}
        if client_id is not None:
            payload["client_id"] = client_id
        return await self.post_json(f"{PREFIX}/resume", payload)

    async def complete(self, session_id: str) -> Reply:
        return await self.post_json(f"{PREFIX}/complete/{session_id}")

    # -- documents ------------------------------------------------------------------

    async def download_sha256(self, doc_id: int) -> tuple[str, int, dict[str, str]]:
        """Stream ``GET /api/documents/{id}/file``: (SHA-256, bytes, headers); the body is never held."""
        h = hashlib.sha256()
        size = 0
        async with self.http.get(f"/api/documents/{doc_id}/file") as resp:
            assert resp.status == 200, (resp.status, await resp.text())
            async for block in resp.content.iter_chunked(READ_BLOCK):
                h.update(block)
                size += len(block)
            return h.hexdigest(), size, dict(resp.headers)

    async def get_range(self, doc_id: int, spec: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(f"/api/documents/{doc_id}/file", headers={"Range": spec}) as resp:
            return resp.status, await resp.read(), dict(resp.headers)

    def events(self, client_id: str) -> EventStream:
        return EventStream(self.http, f"/ws/{client_id}")


# -- WebSocket events ---------------------------------------------------------------------


class EventStream:
    """``async with api.events(client_id) as ws``: every text frame, parsed, in ``events``."""

    def __init__(self, http: aiohttp.ClientSession, path: str) -> None:
        self.http = http
        self.path = path
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []  # frames that were not JSON objects
        self.ended: str | None = None  # how the connection ended, once it has
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> EventStream:
        self._ws = await self.http.ws_connect(self.path, autoping=True)
        self._task = asyncio.create_task(self._collect(), name=f"events {self.path}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await self._task

    async def _collect(self) -> None:
        assert self._ws is not None
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = json.loads(msg.data)
                    except ValueError:
                        self.problems.append(f"not JSON: {msg.data[:200]!r}")
                        continue
                    if isinstance(event, dict):
                        self.events.append(event)
                    else:
                        self.problems.append(f"not an object: {msg.data[:200]!r}")
                    self._arrived.set()
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.problems.append(f"binary frame of {len(msg.data)} bytes")
                else:  # CLOSE, CLOSING, CLOSED, ERROR: the server went away or we closed
                    self.ended = f"{msg.type.name}: {msg.data!r}"
                    return
        except Exception as exc:  # a connection reset when the server is killed
            self.ended = f"exception: {exc!r}"
        finally:
            self._arrived.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """True once an event matching ``predicate`` has arrived (within ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if any(predicate(e) for e in self.events):
                return True
            left = deadline - loop.time()
            if left <= 0 or self.ended is not None:
                return False
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


def _fields(where: str, obj: Any, spec: dict[str, Callable[[Any], bool]]) -> None:
    assert isinstance(obj, dict), f"{where}: not an object: {obj!r}"
    for name, ok in spec.items():
        assert name in obj, f"{where}: field {name!r} missing: {obj!r}"
        assert ok(obj[name]), f"{where}: field {name!r} has a wrong type or value {obj[name]!r}: {obj!r}"


def _opt_number(v: Any) -> bool:  # an ETA is unknown (null) until a speed is measured
    return v is None or (is_number(v) and v >= 0)


def _count(v: Any) -> bool:
    return is_int(v) and v >= 0


def _pct(v: Any) -> bool:
    return is_number(v) and 0 <= v <= 100


UPLOAD_PROGRESS = {
    "session_id": lambda v: isinstance(v, str), "status": lambda v: v in STATUSES,
    "uploaded_bytes": _count, "total_bytes": _count, "uploaded_chunks": _count, "total_chunks": _count,
    "progress_percentage": _pct, "upload_speed_bps": lambda v: is_number(v) and v >= 0,
    "estimated_time_remaining": _opt_number, "current_chunk": _count, "message": lambda v: isinstance(v, str),
}
CHUNK_PROGRESS = {
    "session_id": lambda v: isinstance(v, str), "chunk_id": _count, "chunks_uploaded": _count,
    "total_chunks": _count, "bytes_uploaded": _count, "total_bytes": _count, "progress_percentage": _pct,
    "upload_speed_bps": lambda v: is_number(v) and v >= 0, "eta_seconds": _opt_number,
}
UPLOAD_STATUS = {
    "session_id": lambda v: isinstance(v, str), "status": lambda v: v in STATUSES,
    "message": lambda v: isinstance(v, str),
}
MEMORY_WARNING = {
    "memory_usage_mb": lambda v: is_number(v) and v >= 0, "memory_limit_mb": lambda v: is_number(v) and v > 0,
    "warning": lambda v: isinstance(v, str),
}
EVENT_TYPES = {"upload_progress", "chunk_progress", "upload_status", "memory_warning"}


def check_event(event: dict[str, Any], *, session_id: str, file_size: int, total_chunks: int,
                chunk_size: int) -> None:
    """One event against ``API.md``: its shape (wrapped in ``data`` or flat), types and values."""
    kind = event.get("type")
    assert kind in EVENT_TYPES, f"unknown event type: {event!r}"
    if kind == "upload_progress":
        assert set(event) == {"type", "data"}, f"upload_progress wraps its fields in data: {event!r}"
        d = event["data"]
        _fields("upload_progress.data", d, UPLOAD_PROGRESS)
        assert d["session_id"] == session_id, event
        assert d["total_bytes"] == file_size and d["total_chunks"] == total_chunks, event
        assert d["uploaded_chunks"] <= total_chunks and d["uploaded_bytes"] <= file_size, event
        assert d["current_chunk"] < total_chunks, event
        _check_counts(event, d["uploaded_chunks"], d["uploaded_bytes"], d["progress_percentage"],
                      file_size, total_chunks, chunk_size)
    elif kind == "chunk_progress":
        assert "data" not in event, f"chunk_progress is flat: {event!r}"
        _fields("chunk_progress", event, CHUNK_PROGRESS)
        assert event["session_id"] == session_id, event
        assert event["total_bytes"] == file_size and event["total_chunks"] == total_chunks, event
        assert event["chunk_id"] < total_chunks, event
        _check_counts(event, event["chunks_uploaded"], event["bytes_uploaded"], event["progress_percentage"],
                      file_size, total_chunks, chunk_size)
    elif kind == "upload_status":
        assert "data" not in event, f"upload_status is flat: {event!r}"
        _fields("upload_status", event, UPLOAD_STATUS)
        assert event["session_id"] == session_id, event
    else:
        assert set(event) == {"type", "data"}, f"memory_warning wraps its fields in data: {event!r}"
        _fields("memory_warning.data", event["data"], MEMORY_WARNING)


def _check_counts(event: dict[str, Any], chunks: int, nbytes: int, pct: float, file_size: int,
                  total_chunks: int, chunk_size: int) -> None:
    """Bytes agree with chunks (every chunk is chunk_size but the last) and with the percentage."""
    last = file_size - (total_chunks - 1) * chunk_size
    lo = (chunks - 1) * chunk_size + last if chunks else 0
    hi = chunks * chunk_size
    assert lo <= nbytes <= hi, f"{nbytes} bytes cannot be {chunks} chunks: {event!r}"
    assert math.isclose(pct, 100.0 * nbytes / file_size, abs_tol=0.01), f"percentage off: {event!r}"


def check_progress_order(events: Iterable[dict[str, Any]]) -> None:
    """Within one connection, progress never goes back (it counts chunks received)."""
    last: dict[str, tuple[int, int, float]] = {}
    for event in events:
        kind = event.get("type")
        if kind == "upload_progress":
            d = event["data"]
            now = (d["uploaded_chunks"], d["uploaded_bytes"], d["progress_percentage"])
        elif kind == "chunk_progress":
            now = (event["chunks_uploaded"], event["bytes_uploaded"], event["progress_percentage"])
        else:
            continue
        before = last.get(kind)
        if before is not None:
            assert all(b <= n for b, n in zip(before, now)), f"{kind} went back from {before} to {now}: {event!r}"
        last[kind] = now


def check_session(session: dict[str, Any], file_size: int) -> None:
    """The session view of /initiate (and of /resume, which adds to it)."""
    _fields("session", session, {
        "session_id": lambda v: isinstance(v, str) and bool(v), "upload_url": lambda v: isinstance(v, str),
        "chunk_size": _count, "total_chunks": _count, "expires_at": lambda v: isinstance(v, str),
        "websocket_room": lambda v: isinstance(v, str), "client_id": lambda v: isinstance(v, str),
    })
    sid = session["session_id"]
    assert session["upload_url"] == f"{PREFIX}/chunk/{sid}", session
    assert session["websocket_room"] == f"upload_{sid}", session
    assert ISO_UTC.match(session["expires_at"]), session
    assert 2 << 20 <= session["chunk_size"] <= 8 << 20, session
    assert session["total_chunks"] == math.ceil(file_size / session["chunk_size"]), session


# -- parallel chunk upload ------------------------------------------------------------------


@dataclass
class UploadRun:
    """What the client saw: chunks acknowledged (200), started, failed at the transport."""

    acked: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    refused: dict[int, Reply] = field(default_factory=dict)  # an HTTP answer other than 200
    broken: dict[int, str] = field(default_factory=dict)  # no HTTP answer: connection errors
    replies: dict[int, Reply] = field(default_factory=dict)
    max_in_flight: int = 0


async def upload_chunks(
    api: ApiClient, session: dict[str, Any], source: Path, chunk_ids: Iterable[int], *, in_flight: int = 4,
    on_ack: Callable[[UploadRun, int], None] | None = None, stop: asyncio.Event | None = None,
) -> UploadRun:
    """Send ``chunk_ids`` with ``in_flight`` requests at a time. ``on_ack`` runs on every 200;
    once ``stop`` is set no new chunk is started (those in flight finish or fail)."""
    run = UploadRun()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for chunk_id in chunk_ids:
        queue.put_nowait(chunk_id)
    sid, cs, total = session["session_id"], session["chunk_size"], session["total_chunks"]
    busy = 0

    async def worker() -> None:
        nonlocal busy
        while not queue.empty() and not (stop is not None and stop.is_set()):
            chunk_id = queue.get_nowait()
            data = read_chunk(source, chunk_id, cs)
            run.started.add(chunk_id)
            busy += 1
            run.max_in_flight = max(run.max_in_flight, busy)
            try:
                reply = await api.send_chunk(sid, chunk_id, data, cs, total)
            except (aiohttp.ClientError, OSError) as exc:
                run.broken[chunk_id] = repr(exc)
                continue
            finally:
                busy -= 1
            run.replies[chunk_id] = reply
            if reply.status == 200:
                run.acked.add(chunk_id)
                if on_ack is not None:
                    on_ack(run, chunk_id)
            else:
                run.refused[chunk_id] = reply

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return run
