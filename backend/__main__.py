"""``python -m backend --host H --port P``: serve with settings from the environment.

Logs are JSON lines on stderr (``STREAMING_LOG_FORMAT=text`` for plain ones). With no
API keys the server has one owner and refuses a non-loopback address unless
``STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS=true``; it says which mode it is in at start.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from backend.api.http_protocol import UploadHttpProtocol
from backend.app import create_app
from backend.logs import configure_logging
from backend.services import heap
from backend.services.auth import KeyConfigError, KeyRing, bind_refusal, is_loopback
from backend.settings import Settings

log = logging.getLogger("backend")
WS_MAX_MESSAGE = 64 << 10  # the WebSocket's client messages are tiny JSON (join, leave, ping)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--host", help="address to bind (default: STREAMING_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: STREAMING_PORT or 8000)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    configure_logging(args.log_level, settings.log_format)
    try:
        ring = KeyRing.from_settings(settings)
    except KeyConfigError as exc:
        log.error("API keys: %s", exc)
        sys.exit(2)
    refusal = bind_refusal(ring, settings, host)
    if refusal is not None:
        log.error(refusal)
        sys.exit(2)
    if ring.enabled:
        log.info("API keys on: %d keys for %d owners; every API endpoint and the WebSocket need one",
                 len(ring.owners_by_digest), len(ring.owners))
        if ring.weak_keys:
            log.warning("%d API keys are shorter than 16 characters: use long random keys "
                        "(python -c 'import secrets; print(secrets.token_urlsafe(32))')", ring.weak_keys)
    elif is_loopback(host):
        log.info("no API keys: single-owner mode, listening on loopback (%s) only", host)
    else:
        log.warning("no API keys and listening on %s: STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS is set, so anyone "
                    "who reaches this address owns every upload", host)
    heap.tune()  # body buffers reuse heap pages instead of faulting in fresh ones per read
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level, log_config=None,
                http=UploadHttpProtocol, ws="websockets-sansio", ws_max_size=WS_MAX_MESSAGE, lifespan="on",
                access_log=False)


if __name__ == "__main__":
    main()
