"""``python -m backend.importer``: the importer service, with settings from the environment.

It imports what the upload servers queue (in ``STREAMING_DATA_DIR``'s SQLite files, or
the PostgreSQL of ``STREAMING_DATABASE_URL``) into the document index, ``--workers`` (``STREAMING_IMPORT_WORKERS``) at a time, until
SIGINT or SIGTERM; then it gives its running jobs back to the queue and exits. Run as
many as you like against one data directory: they share the queue (leased claims).
Logs are JSON lines on stderr, like the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from backend.importer.worker import ImportWorker
from backend.logs import configure_logging
from backend.settings import Settings
from backend.errors import StorageUnavailable
from backend.storage.databases import describe, open_documents, open_import_queue
from backend.storage.byte_stores import open_blob_store

log = logging.getLogger("backend.importer")


async def serve(settings: Settings, workers: int | None) -> None:
    """Run an importer until SIGINT or SIGTERM."""
    repo = open_documents(settings)
    queue = open_import_queue(settings)
    worker = ImportWorker(settings, repo, queue, open_blob_store(settings), workers=workers)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        wait = 1.0
        while True:  # a database or store out of reach at start: wait for it, do not exit
            try:
                await worker.start()
                break
            except StorageUnavailable as exc:
                log.warning("importer: %s; trying again in %g s", exc.message, wait)
                try:
                    await asyncio.wait_for(stopping.wait(), wait)
                    return
                except asyncio.TimeoutError:
                    wait = min(wait * 2, 30.0)
        log.info("importer ready (%s)", describe(settings))
        await stopping.wait()
        log.info("importer stopping")
    finally:
        await worker.stop()
        queue.close()
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.importer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, help="imports at once (default: STREAMING_IMPORT_WORKERS or 1)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(args.log_level, settings.log_format)
    asyncio.run(serve(settings, args.workers))


if __name__ == "__main__":
    main()
