"""Structured logs: one JSON object a line, each tagged with its request and upload session.

A :class:`RequestContext` (request id, owner, session id) lives in a context variable
for the duration of a request; the API fills in the owner and the session as it learns
them. :class:`ContextFilter` copies them onto every log record, so a line logged deep in
a service while handling a chunk carries both ids without being passed them. Lines
logged outside a request (the expiry sweep, start-up recovery) give ``session_id``
themselves with ``extra={"session_id": ...}``, which wins over the context.

Fields: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``, ``request_id``,
``session_id``, ``owner`` when known, any ``extra`` fields, and ``exc`` (the traceback)
when there is one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class RequestContext:
    request_id: str
    owner: str | None = None
    session_id: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current() -> RequestContext | None:
    return _current.get()


@contextmanager
def request_context(ctx: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def bind_session(session_id: str) -> None:
    """Tag the rest of this request's log lines with ``session_id`` (as sent: capped)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.session_id = session_id[:64]


def bind_owner(owner: str) -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.owner = owner


CONTEXT_FIELDS = ("request_id", "session_id", "owner")
# uvicorn logs each WebSocket handshake with its full path: a ``?token=`` key must not reach a log.
_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName",
                                                                           "color_message"}  # uvicorn's ANSI copy


class ContextFilter(logging.Filter):
    """Puts the request context on every record (fields given with ``extra`` win), and
    redacts API keys given as ``?token=`` in a URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN.sub(r"\1[redacted]", message), None
        ctx = _current.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(ctx, name) if ctx is not None else None)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in out and name not in CONTEXT_FIELDS and not name.startswith("_"):
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(session_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        for name in ("request_id", "session_id"):
            if getattr(record, name, None) is None:
                setattr(record, name, "-")
        return super().format(record)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Root logging for ``python -m backend``: one handler on stderr (uvicorn's loggers too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
