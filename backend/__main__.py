"""``python -m backend --host H --port P``: serve with settings from the environment."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from backend.api.http_protocol import BoundedHttpToolsProtocol
from backend.app import create_app
from backend.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--host", help="address to bind (default: STREAMING_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: STREAMING_PORT or 8000)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level,
                http=BoundedHttpToolsProtocol, ws="websockets-sansio", lifespan="on", access_log=False)


if __name__ == "__main__":
    main()
