"""A thin, typed wrapper over the HTTP API of ``API.md``, with retries.

Contracts:

- Every non-2xx answer becomes :class:`ServerError` carrying the envelope's stable
  ``code`` (``error``), its ``message``, the HTTP ``status``, the ``retry_after`` hint
  (``Retry-After`` header, else the body's ``retry_after``) and the whole body.
- :meth:`Api.call` retries 429/502/503/504 answers and transport failures (connection
  refused or reset, timeouts) with exponential backoff and jitter; an answer with a
  ``Retry-After`` is retried exactly that much later (the server knows when it will have
  room). After ``RetryPolicy.max_attempts`` it raises the last :class:`ServerError`, or
  :class:`Unavailable` for a transport failure. Any other answer is not retried.
- A busy server at ``/initiate`` and ``/resume`` (``too_many_uploads``, ``server_busy``:
  :data:`ADMISSION_CODES`) is waited out for as long as it says so: those refusals do not
  use up the attempts. ``on_retry`` is told each wait, so the user sees why and how long.
- Fail fast on a server that was never reached: until an ``Api`` has had its first HTTP
  answer, a failure to connect (refused, unknown host, no TCP connection within
  ``connect_timeout`` seconds) raises :class:`Unavailable` at once, without retries. Once
  the server has answered, the same failures are retried as above (a flaky connection
  mid-upload, a server restarting).
- Every request the API makes is idempotent on the server (a chunk sent twice with the
  same bytes is a success, ``/complete`` twice returns the same document), which is why
  retrying them blindly is safe.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

PREFIX = "/api/documents/streaming"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
ADMISSION_CODES = frozenset({"too_many_uploads", "server_busy"})  # "no room now": wait as told
MAX_RETRY_AFTER = 300.0
CONNECT_TIMEOUT = 5.0
CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)  # no TCP connection made


class ClientError(Exception):
    """Base of every error this package raises on purpose."""


class ServerError(ClientError):
    """The server answered with an error envelope (or a non-2xx status without one)."""

    def __init__(self, code: str, message: str, status: int, retry_after: float | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body: dict[str, Any] = body or {}

    @property
    def retryable(self) -> bool:
        """True for answers that mean "later" (busy, rate limited, gateway trouble)."""
        return self.status in RETRY_STATUSES


class Unavailable(ClientError):
    """No usable answer from the server: never reached, or network failures after every
    retry."""


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all; delay before try n+1 is the server's ``Retry-After``
    when it gave one (capped at ``MAX_RETRY_AFTER``), else uniform in ``[d/2, d]`` with
    ``d = min(max_delay, base_delay * 2**(n-1))``."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)  # sooner is refused again, later leaves room idle
        span = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        return random.uniform(span / 2, span)


def _parse_retry_after(header: str | None, body: dict[str, Any]) -> float | None:
    for raw in (header, body.get("retry_after")):
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue  # an HTTP date: rare enough to fall back on our own backoff
        if value >= 0:
            return value
    return None


def _why(exc: BaseException) -> str:
    """A short reason for a transport failure."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "no connection within the connect timeout"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _json_or_error(resp: aiohttp.ClientResponse) -> Any:
    """The decoded JSON body of a 2xx answer; :class:`ServerError` for anything else."""
    raw = await resp.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if 200 <= resp.status < 300:
        return body
    env = body if isinstance(body, dict) else {}
    code = str(env.get("error") or f"http_{resp.status}")
    message = str(env.get("message") or raw[:200].decode(errors="replace") or resp.reason or "")
    raise ServerError(code, message, resp.status, _parse_retry_after(resp.headers.get("Retry-After"), env), env)


class Api:
    """``async with Api(base_url) as api``. Owns its aiohttp session unless given one.

    ``on_retry(what, attempt, delay, error)`` is told about every retry (for logs).
    ``connect_timeout`` bounds each TCP connect (a session passed in keeps its own)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None,
                 session: aiohttp.ClientSession | None = None, request_timeout: float = 300.0,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 on_retry: Callable[[str, int, float, Exception], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.reached = False  # set by the first HTTP answer, whatever its status
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=connect_timeout)

    async def __aenter__(self) -> Api:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
        self._session = None if self._own else self._session

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with Api(...)`")
        return self._session

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _answer(self, resp: aiohttp.ClientResponse) -> Any:
        self.reached = True
        return await _json_or_error(resp)

    async def call(self, what: str, attempt_once: Callable[[], Awaitable[Any]], *,
                   wait_for_room: bool = False) -> Any:
        """Run ``attempt_once`` under the retry policy (see the module docstring);
        ``wait_for_room``: admission refusals do not count as attempts."""
        attempt = 0
        counted = 0
        while True:
            attempt += 1
            try:
                return await attempt_once()
            except ServerError as exc:
                for_room = wait_for_room and exc.code in ADMISSION_CODES
                counted += 0 if for_room else 1
                if not exc.retryable or counted >= self.retry.max_attempts:
                    raise
                error: Exception = exc
                delay = self.retry.delay(attempt, exc.retry_after)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                never_reached = not self.reached and isinstance(exc, CONNECT_ERRORS)
                counted += 1
                if never_reached or counted >= self.retry.max_attempts:
                    tries = "" if never_reached else f" after {counted} attempts"
                    raise Unavailable(f"{what}: cannot reach {self.base_url}{tries}: {_why(exc)}") from exc
                error = exc
                delay = self.retry.delay(attempt, None)
            if self.on_retry is not None:
                self.on_retry(what, attempt, delay, error)
            await asyncio.sleep(delay)

    async def _request(self, method: str, path: str, *, json_body: Any = None,
                       params: dict[str, str] | None = None, wait_for_room: bool = False) -> Any:
        async def once() -> Any:
            async with self.http.request(method, self.url(path), json=json_body, params=params,
                                         headers=self._headers) as resp:
                return await self._answer(resp)
        return await self.call(f"{method} {path}", once, wait_for_room=wait_for_room)

    # -- streaming upload ---------------------------------------------------------------

    async def initiate(self, filename: str, file_size: int, **fields: Any) -> dict[str, Any]:
        """``POST /initiate``: the session (``session_id``, ``chunk_size``, ``total_chunks``...)."""
        body = {"filename": filename, "file_size": file_size, **{k: v for k, v in fields.items() if v is not None}}
        return dict(await self._request("POST", f"{PREFIX}/initiate", json_body=body, wait_for_room=True))

    async def send_chunk(self, session_id: str, chunk_id: int, data: bytes, *, chunk_size: int,
                         total_chunks: int, checksum: str) -> dict[str, Any]:
        """``POST /chunk/{id}``: multipart with ``chunk_id``, ``chunk_offset``, ``is_final``,
        ``checksum`` and then ``file`` (the server requires the fields first)."""
        async def once() -> Any:
            form = aiohttp.FormData()
            form.add_field("chunk_id", str(chunk_id))
            form.add_field("chunk_offset", str(chunk_id * chunk_size))
            form.add_field("is_final", "true" if chunk_id == total_chunks - 1 else "false")
            form.add_field("checksum", checksum)
            # A BytesIO payload: aiohttp warns on raw bytes bodies over 1 MiB.
            form.add_field("file", io.BytesIO(data), filename=f"chunk_{chunk_id}.bin",
                           content_type="application/octet-stream")
            async with self.http.post(self.url(f"{PREFIX}/chunk/{session_id}"), data=form,
                                      headers=self._headers) as resp:
                return await self._answer(resp)
        return dict(await self.call(f"chunk {chunk_id}", once))

    async def complete(self, session_id: str) -> dict[str, Any]:
        return dict(await self._request("POST", f"{PREFIX}/complete/{session_id}"))

    async def resume(self, session_id: str, client_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"session_id": session_id}
        if client_id is not None:
            body["client_id"] = client_id
        return dict(await self._request("POST", f"{PREFIX}/resume", json_body=body, wait_for_room=True))

    async def cancel(self, session_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        return dict(await self._request("POST", f"{PREFIX}/cancel/{session_id}", json_body=body))

    async def resumable(self) -> list[dict[str, Any]]:
        return list(await self._request("GET", f"{PREFIX}/resumable"))

    # -- documents ----------------------------------------------------------------------

    async def document(self, doc_id: int) -> dict[str, Any]:
        return dict(await self._request("GET", f"/api/documents/{doc_id}"))

    async def search(self, query: str, top_k: int = 10) -> list[dict[str, Any]]:
        """``GET /api/documents/search``: hits (``document_id``, ``title``, ``page``,
        ``score``, ``text``). Accepts a bare list or an object with ``hits``/``results``."""
        body = await self._request("GET", "/api/documents/search", params={"q": query, "top_k": str(top_k)})
        if isinstance(body, dict):
            body = body.get("hits", body.get("results", []))
        return [dict(hit) for hit in body or []]
