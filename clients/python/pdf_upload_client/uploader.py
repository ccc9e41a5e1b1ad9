"""``AsyncUploader``: parallel, checksummed, retried, resumable uploads of one file.

Contracts:

- The file is read in chunk-size pieces with ``os.pread`` (never whole): at most
  ``parallel`` chunks are in memory at once. Its whole SHA-256 is computed first,
  streaming, and sent as ``expected_hash`` (the server verifies it and deduplicates).
- Each chunk is sent with its own SHA-256; 429/503 are retried when ``Retry-After``
  says, transport failures with backoff (see :mod:`pdf_upload_client.api`).
  Any other refusal stops the upload with :class:`~pdf_upload_client.api.ServerError`.
- Every acknowledged chunk is recorded in the local state file (atomic writes) before
  the progress callback ``progress(bytes_acked, total_bytes, chunks_done, total_chunks)``
  runs. On resume the server's ``/resume`` is the truth; only its missing chunks are sent.
- On success the local state is removed. On a permanent refusal (4xx other than
  401/403/429) the server session is cancelled (best effort) and the state removed. On
  a network failure, or when the task is cancelled, the state stays: resumable later.
- ``cancel_event``: once set, the upload stops, the server session is cancelled and
  :class:`UploadCancelled` is raised.
- ``client_id``: sent at ``/initiate`` and ``/resume``, so the progress of every upload
  reaches a WebSocket opened at ``/ws/{client_id}``. Without one, each new upload gets a
  generated id and a resumed one keeps the id it started with.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pdf_upload_client.api import CONNECT_TIMEOUT, Api, ClientError, RetryPolicy, ServerError
from pdf_upload_client.state import Fingerprint, StateStore, UploadState

ProgressCallback = Callable[[int, int, int, int], None]
Notify = Callable[[str], None]
KEEP_SESSION_STATUSES = frozenset({401, 403, 408, 429})
GONE_CODES = frozenset({"not_found", "session_expired"})


class UploadCancelled(ClientError):
    """The upload was cancelled through ``cancel_event``."""


class ResumeImpossible(ClientError):
    """``code``: ``session_expired``/``not_found`` (gone on the server), ``file_changed``
    or ``file_missing`` (the local file is not what was being uploaded)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class UploadResult:
    path: str
    document: dict[str, Any]
    duplicate: bool
    session_id: str | None
    chunks_sent: int
    total_chunks: int
    resumed: bool


class RateLimiter:
    """Paces chunk starts so that the average rate stays under ``bytes_per_second``."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self._next = 0.0

    async def take(self, nbytes: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next)
        self._next = start + nbytes / self.rate
        if start > now:
            await asyncio.sleep(start - now)


def new_client_id() -> str:
    """A fresh id for ``/ws/{client_id}`` (the server accepts ``[A-Za-z0-9_.:-]{1,128}``)."""
    return f"pdf-upload-{uuid.uuid4().hex[:16]}"


def read_piece(fd: int, offset: int, length: int) -> tuple[bytes, str]:
    """Exactly ``length`` bytes at ``offset`` and their SHA-256 (ResumeImpossible if short)."""
    parts: list[bytes] = []
    got = 0
    while got < length:
        piece = os.pread(fd, length - got, offset + got)
        if not piece:
            raise ResumeImpossible("file_changed", f"file shorter than expected at offset {offset + got}")
        parts.append(piece)
        got += len(piece)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return data, hashlib.sha256(data).hexdigest()


class AsyncUploader:
    """``async with AsyncUploader(server) as up: await up.upload(path)``."""

    def __init__(self, server: str, *, parallel: int = 4, store: StateStore | None = None,
                 api_key: str | None = None, retry: RetryPolicy | None = None, chunk_size: int | None = None,
                 limit_rate: float | None = None, check_duplicates: bool = True,
                 session: aiohttp.ClientSession | None = None, client_id: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 on_retry: Callable[[str, int, float, Exception], None] | None = None) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.server = server.rstrip("/")
        self.parallel = parallel
        self.store = store or StateStore()
        self.chunk_size = chunk_size
        self.check_duplicates = check_duplicates
        self.client_id = client_id
        self.limiter = RateLimiter(limit_rate) if limit_rate else None
        self.api = Api(self.server, api_key=api_key, retry=retry, session=session, connect_timeout=connect_timeout,
                       on_retry=on_retry)

    async def __aenter__(self) -> AsyncUploader:
        await self.api.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.close()

    # -- public operations --------------------------------------------------------------

    async def upload(self, path: Path | str, *, title: str | None = None, progress: ProgressCallback | None = None,
                     notify: Notify | None = None, cancel_event: asyncio.Event | None = None,
                     resume: bool = True) -> UploadResult:
        """Upload ``path``; continues this file's unfinished upload to this server if there
        is one and the file is unchanged (else starts over, saying why through ``notify``)."""
        path = Path(path)
        say = notify or (lambda _msg: None)
        holder: list[UploadState] = []

        async def run() -> UploadResult:
            state = self.store.load(self.server, Fingerprint.quick(path)[0])
            if state is not None and not resume:
                say(f"starting over: unfinished upload {state.session_id} cancelled")
                await self._forget(state)
                state = None
            fingerprint: Fingerprint | None = None
            if state is not None:
                fingerprint = await asyncio.to_thread(Fingerprint.of, path)
                if fingerprint != state.fingerprint:
                    say(f"changed since its unfinished upload {state.session_id}: starting over")
                    await self._forget(state)
                else:
                    say(f"resuming unfinished upload {state.session_id}")
                    holder.append(state)
                    try:
                        return await self._continue(state, path, progress, fingerprint)
                    except ResumeImpossible as exc:
                        if exc.code not in GONE_CODES:
                            raise
                        say(f"session {state.session_id} is gone on the server ({exc.code}): starting over")
                        self.store.delete(state)
                        holder.clear()
            if fingerprint is None:
                fingerprint = await asyncio.to_thread(Fingerprint.of, path)
            return await self._fresh(path, fingerprint, title, progress, holder)

        return await self._cancellable(run(), holder, cancel_event)

    async def resume(self, state: UploadState, *, progress: ProgressCallback | None = None,
                     cancel_event: asyncio.Event | None = None) -> UploadResult:
        """Continue a saved upload. :class:`ResumeImpossible` when the file changed or the
        session is gone (the local state is kept then; the caller decides)."""
        path = Path(state.path)

        async def run() -> UploadResult:
            if not path.is_file():
                raise ResumeImpossible("file_missing", f"{path} no longer exists")
            if Fingerprint.quick(path)[1:] != (state.size, state.mtime_ns):
                raise ResumeImpossible("file_changed", f"{path} changed since the upload started (size or mtime)")
            fingerprint = await asyncio.to_thread(Fingerprint.of, path)
            return await self._continue(state, path, progress, fingerprint)

        return await self._cancellable(run(), [state], cancel_event)

    async def cancel(self, session_id: str, reason: str | None = None) -> None:
        """Cancel a session on the server and drop its local state (if any)."""
        local = self.store.find_session(session_id)
        try:
            await self.api.cancel(session_id, reason)
        finally:
            if local is not None:
                self.store.delete(local)

    # -- internals ----------------------------------------------------------------------

    async def _cancellable(self, work: Coroutine[Any, Any, UploadResult], holder: list[UploadState],
                           cancel_event: asyncio.Event | None) -> UploadResult:
        task: asyncio.Task[UploadResult] = asyncio.ensure_future(work)
        if cancel_event is None:
            return await task
        waiter = asyncio.ensure_future(cancel_event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if holder:
            await self._forget(holder[0], "cancelled by the client")
        raise UploadCancelled("upload cancelled")

    async def _forget(self, state: UploadState, reason: str = "superseded") -> None:
        """Best-effort cancel on the server, then drop the local state."""
        try:
            await self.api.cancel(state.session_id, reason)
        except ClientError:
            pass
        self.store.delete(state)

    async def _fresh(self, path: Path, fp: Fingerprint, title: str | None, progress: ProgressCallback | None,
                     holder: list[UploadState]) -> UploadResult:
        client_id = self.client_id or new_client_id()
        try:
            session = await self.api.initiate(
                path.name, fp.size, chunk_size=self.chunk_size, client_id=client_id, title=title,
                check_duplicates=self.check_duplicates, expected_hash=fp.sha256)
        except ServerError as exc:
            if exc.code == "duplicate_document" and isinstance(exc.body.get("document"), dict):
                return UploadResult(fp.path, exc.body["document"], True, None, 0, 0, False)
            raise
        state = UploadState(
            server=self.server, session_id=session["session_id"], client_id=session.get("client_id", client_id),
            path=fp.path, size=fp.size, mtime_ns=fp.mtime_ns, sha256=fp.sha256,
            chunk_size=int(session["chunk_size"]), total_chunks=int(session["total_chunks"]), title=title)
        self.store.save(state, durable=True)
        holder.append(state)
        return await self._finish(state, path, list(range(state.total_chunks)), progress, resumed=False)

    async def _continue(self, state: UploadState, path: Path, progress: ProgressCallback | None,
                        fp: Fingerprint) -> UploadResult:
        if fp != state.fingerprint:
            raise ResumeImpossible("file_changed", f"{path} changed since the upload started (content)")
        try:
            info = await self.api.resume(state.session_id, self.client_id or state.client_id)
        except ServerError as exc:
            if exc.status in (404, 410):
                raise ResumeImpossible(exc.code, exc.message) from exc
            raise
        missing = sorted(int(i) for i in info.get("missing_chunks", []))
        state.acked = sorted(int(i) for i in info.get("uploaded_chunks", []))
        self.store.save(state)
        return await self._finish(state, path, missing, progress, resumed=True)

    async def _finish(self, state: UploadState, path: Path, chunk_ids: list[int],
                      progress: ProgressCallback | None, *, resumed: bool) -> UploadResult:
        try:
            sent = await self._send(state, path, chunk_ids, progress)
            for _round in range(3):
                try:
                    done = await self.api.complete(state.session_id)
                    break
                except ServerError as exc:
                    missing = exc.body.get("missing_chunks")
                    if exc.code != "upload_incomplete" or not missing or _round == 2:
                        raise
                    ids = sorted(int(i) for i in missing)
                    state.acked = sorted(set(state.acked) - set(ids))
                    sent += await self._send(state, path, ids, progress)
        except ServerError as exc:
            if 400 <= exc.status < 500 and exc.status not in KEEP_SESSION_STATUSES:
                await self._forget(state, f"client gave up: {exc.code}")
            raise
        self.store.delete(state)
        return UploadResult(state.path, dict(done.get("document") or {}), bool(done.get("duplicate")),
                            state.session_id, sent, state.total_chunks, resumed)

    async def _send(self, state: UploadState, path: Path, chunk_ids: list[int],
                    progress: ProgressCallback | None) -> int:
        """Send ``chunk_ids`` with ``parallel`` workers; returns how many were acknowledged."""
        queue: asyncio.Queue[int] = asyncio.Queue()
        for chunk_id in chunk_ids:
            queue.put_nowait(chunk_id)
        acked = set(state.acked)
        sent = 0

        def report() -> None:
            if progress is not None:
                progress(state.acked_bytes(), state.size, len(acked), state.total_chunks)

        report()
        fd = os.open(path, os.O_RDONLY)

        async def worker() -> None:
            nonlocal sent
            while not queue.empty():
                chunk_id = queue.get_nowait()
                length = state.chunk_len(chunk_id)
                if self.limiter is not None:
                    await self.limiter.take(length)
                data, checksum = await asyncio.to_thread(read_piece, fd, chunk_id * state.chunk_size, length)
                await self.api.send_chunk(state.session_id, chunk_id, data, chunk_size=state.chunk_size,
                                          total_chunks=state.total_chunks, checksum=checksum)
                del data
                sent += 1
                acked.add(chunk_id)
                state.acked = sorted(acked)
                self.store.save(state)
                report()

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(self.parallel, max(1, len(chunk_ids))))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            os.close(fd)
        return sent
