"""ValidationService: is this an acceptable PDF? Cheap checks as bytes stream in, deep
ones on completion, one policy for both.

- ``check_header``: the first block of chunk 0 must hold ``%PDF-`` within 1024 bytes.
- ``scanner_factory``: makes the streaming keyword scanner the prefix consumers feed, in order,
  whatever order the chunks arrived in (:mod:`backend.services.pdf.scan`).
- ``on_findings``: the scanner's new findings go through the policy. Flagged ones are
  told to the session's listeners; a rejecting one fails the session at once (its bytes
  are removed, later chunks get ``security_rejected``).
- ``inspect``: on completion, the streaming findings are judged first (a file they
  refuse is not parsed at all); then the ``inspector`` has qpdf open the file and walk
  every object, object streams included (:mod:`backend.services.pdf.inspect`); its
  findings and the streaming ones make the document's ``security`` and its verdict.
  :class:`SandboxedInspector` runs it in a child process under a memory and a time
  limit (:mod:`backend.services.sandbox`), so that a hostile file costs the server
  neither memory it keeps nor time under its GIL; a file past either limit is refused
  with ``InspectionLimit``, naming the limit.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from backend.errors import InspectionLimit, InvalidPdf, NotAPdf, SecurityRejected
from backend.services.live import LiveSession
from backend.services.pdf.inspect import InspectLimits, Inspection, inspect_pdf
from backend.services.pdf.scan import Finding, PdfStreamScanner, ScanLimits
from backend.services.prefix_state import ScannerFactory
from backend.services.progress import ProgressReporter
from backend.services.pdf.policy import SecurityPolicy
from backend.services.sandbox import ChildCrashed, LimitExceeded, Sandbox
from backend.settings import MIB, Settings

HEADER_WINDOW = 1024
Rejecter = Callable[[LiveSession, SecurityRejected], Awaitable[None]]
Inspector = Callable[[Path, InspectLimits], Inspection]


class SandboxedInspector:
    """:func:`inspect_pdf` in a :class:`Sandbox` child: blocking, call from a worker thread.
    Raises what the inspection raises, ``InspectionLimit`` past the memory or time limit,
    ``InvalidPdf`` if the child crashed on the file."""

    def __init__(self, settings: Settings) -> None:
        self.memory_mb = settings.inspect_memory_mb
        self.timeout = settings.inspect_timeout_seconds
        self.sandbox = Sandbox(memory_bytes=int(self.memory_mb * MIB), timeout=self.timeout,
                               workers=settings.inspect_workers, preload=("backend.services.pdf.inspect",),
                               idle_seconds=settings.child_idle_seconds)

    def __call__(self, path: Path, limits: InspectLimits) -> Inspection:
        try:
            return self.sandbox.call(inspect_pdf, path, limits)
        except LimitExceeded as exc:
            if exc.limit == "memory":
                raise InspectionLimit(
                    f"the file needs more than {self.memory_mb:g} MiB of memory to inspect "
                    f"(the memory limit, STREAMING_INSPECT_MEMORY_MB)", limit="memory") from None
            raise InspectionLimit(
                f"inspecting the file took longer than {self.timeout:g} s "
                f"(the time limit, STREAMING_INSPECT_TIMEOUT_SECONDS)", limit="time") from None
        except ChildCrashed as exc:
            raise InvalidPdf(f"not a readable PDF: the inspector stopped while reading it ({exc})") from None

    def close(self) -> None:
        self.sandbox.close()


def _no_scanner() -> None:
    return None


def _describe(findings: list[Finding], limit: int = 3) -> str:
    shown = "; ".join(f"{f.kind}: {f.detail}" for f in findings[:limit])
    more = len(findings) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def scan_limits(settings: Settings) -> ScanLimits:
    """The streaming scanner's limits as ``settings`` set them (the server's, and the
    benchmark floor's, which must scan as the server does)."""
    return ScanLimits(
        max_inflate_per_stream=int(settings.scan_inflate_per_stream_mb * MIB),
        max_inflate_total=int(settings.scan_inflate_total_mb * MIB),
        count_names_in_stream_data=settings.scan_stream_data_names,
    )


class ValidationService:
    def __init__(self, settings: Settings, pool: Executor, reporter: ProgressReporter,
                 inspector: Inspector = inspect_pdf, on_reject: Rejecter | None = None) -> None:
        """``on_reject(live, refusal)``: fails the session whose findings refuse it."""
        self.pool = pool
        self.reporter = reporter
        self.inspector = inspector
        self.on_reject = on_reject
        self.policy = SecurityPolicy.from_lists(settings.security_reject_list, settings.security_flag_list)
        self.stream_scan = settings.stream_scan
        self.scan_limits = scan_limits(settings)
        self.inspect_limits = InspectLimits(
            max_pages=settings.max_pages, max_objects=settings.max_objects,
            max_stream_bytes=int(settings.max_stream_mb * MIB), max_ratio=settings.max_compression_ratio,
            reject_damaged=settings.reject_damaged, huge_image_bytes=int(settings.huge_image_mb * MIB),
        )

    @property
    def scanner_factory(self) -> ScannerFactory:
        """Makes the streaming scanner for a new prefix; picklable (the prefix worker's)."""
        return functools.partial(PdfStreamScanner, self.scan_limits) if self.stream_scan else _no_scanner

    def check_header(self, first_block: bytes | bytearray, file_size: int) -> None:
        if b"%PDF-" not in first_block[:HEADER_WINDOW]:
            raise NotAPdf("the file does not start with a PDF header (%PDF-) within its first 1024 bytes")

    async def on_findings(self, live: LiveSession, findings: list[Any]) -> None:
        """Judge findings of the streaming scan (they are kept in the scanner's summary,
        which is saved with the session). Raises ``SecurityRejected`` after failing the
        session when one of them rejects the file."""
        exc = self._rejection(findings)
        if exc is not None:
            if self.on_reject is not None:
                await self.on_reject(live, exc)
            raise exc
        flagged = self.policy.flagging(findings)
        if flagged:
            self.reporter.status(live, live.session.status, f"Security scan flagged: {_describe(flagged)}",
                                 findings=[f.to_dict() for f in flagged])

    def _rejection(self, findings: list[Finding]) -> SecurityRejected | None:
        rejecting = self.policy.rejecting(findings)
        if not rejecting:
            return None
        return SecurityRejected(f"refused by the security policy: {_describe(rejecting)}",
                                findings=[f.to_dict() for f in rejecting])

    async def inspect(self, path: Path, stream_findings: list[Finding],
                      scan: dict[str, Any]) -> dict[str, Any]:
        """Deep-inspect the complete file; raise ``SecurityRejected`` when the policy says so.

        Returns the document fields it learned: ``page_count``, ``pdf_version`` and
        ``security`` (verdict, findings, keywords, URIs). What the streaming scan found is
        judged first: a file it already refuses is refused for that, and qpdf never
        parses it (however damaged it is)."""
        exc = self._rejection(stream_findings)
        if exc is not None:
            raise exc
        loop = asyncio.get_running_loop()
        inspection: Inspection = await loop.run_in_executor(self.pool, self.inspector, path, self.inspect_limits)
        seen = {(f.kind, f.detail) for f in inspection.findings}
        findings = inspection.findings + [f for f in stream_findings if (f.kind, f.detail) not in seen]
        exc = self._rejection(findings)
        if exc is not None:
            raise exc
        verdict = self.policy.verdict(findings)
        security = {
            "verdict": verdict,
            "findings": [f.to_dict() for f in findings if self.policy.level(f.kind) != "ignore"],
            "keywords": scan.get("keywords", {}),
            "uris": sorted(set(inspection.uris) | set(scan.get("uris", []))),
            "encrypted": inspection.encrypted,
            "damaged": inspection.damaged,
            "header_version": scan.get("header_version"),
        }
        return {"page_count": inspection.page_count, "pdf_version": inspection.pdf_version, "security": security}

    def close(self) -> None:
        """Ends the inspection's child processes, if it has any."""
        if isinstance(self.inspector, SandboxedInspector):
            self.inspector.close()

    def config(self, settings: Settings) -> dict[str, Any]:
        """The active policy and limits (no secrets) for the public config endpoint."""
        return {
            "policy": self.policy.to_dict(),
            "streaming_scan": {"enabled": self.stream_scan, "max_inflate_per_stream": self.scan_limits.max_inflate_per_stream,
                               "max_inflate_total": self.scan_limits.max_inflate_total},
            "inspection": {"max_pages": self.inspect_limits.max_pages, "max_objects": self.inspect_limits.max_objects,
                           "max_stream_bytes": self.inspect_limits.max_stream_bytes,
                           "max_ratio": self.inspect_limits.max_ratio,
                           "reject_damaged": self.inspect_limits.reject_damaged,
                           "huge_image_bytes": self.inspect_limits.huge_image_bytes,
                           "isolation": settings.inspect_isolation,
                           "memory_limit": int(settings.inspect_memory_mb * MIB),
                           "timeout_seconds": settings.inspect_timeout_seconds},
            "limits": {"max_file_size": settings.max_file_size, "chunk_size_min": 2 * MIB, "chunk_size_max": 8 * MIB,
                       "max_concurrent_uploads": settings.max_concurrent_uploads,
                       "session_timeout_hours": settings.session_timeout_hours},
        }
