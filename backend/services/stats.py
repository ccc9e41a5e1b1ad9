"""Memory and disk figures for ``/memory-stats`` (:class:`StatsService`), and the warnings
near the memory limit (:class:`MemoryWatch`: told by the budget when chunks wait, and a
watch on resident memory)."""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import psutil

from backend.services.backpressure import MemoryBudget
from backend.services.progress import ProgressReporter
from backend.services.sessions import SessionService
from backend.settings import MIB, Settings
from backend.storage.base import ChunkStore

log = logging.getLogger(__name__)


class MemoryWatch:
    def __init__(self, settings: Settings, reporter: ProgressReporter) -> None:
        self.settings = settings
        self.reporter = reporter
        self.process = psutil.Process()
        self._last_warning = 0.0

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / MIB

    @staticmethod
    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    def pressure(self) -> None:
        """Called by the budget when a chunk has to wait: tell the uploaders (at most every 5 s)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_warning < 5:
            return
        self._last_warning = loop.time()
        self.reporter.memory_warning(None, self.rss_mb(), self.settings.memory_limit_mb,
                                     "Upload buffers are full; chunks are being held back")

    async def watch(self, interval: float = 2.0) -> None:
        """Warn every listener while resident memory is near the limit."""
        limit = self.settings.memory_limit_mb
        while True:
            await asyncio.sleep(interval)
            rss = self.rss_mb()
            if rss >= 0.9 * limit and asyncio.get_running_loop().time() - self._last_warning >= 10:
                self._last_warning = asyncio.get_running_loop().time()
                log.warning("resident memory %.0f MB is near the limit of %.0f MB", rss, limit)
                self.reporter.memory_warning(None, rss, limit, "Approaching memory limit")


class StatsService:
    def __init__(self, settings: Settings, sessions: SessionService, chunks: ChunkStore,
                 budget: MemoryBudget, memory: MemoryWatch) -> None:
        self.settings = settings
        self.sessions = sessions
        self.chunks = chunks
        self.budget = budget
        self.memory = memory

    async def snapshot(self) -> dict[str, Any]:
        """The figures; the store's and the system's are read off the event loop."""
        count, used = await self.chunks.stats()
        free, rss, peak = await asyncio.to_thread(self._system)
        uploading = sum(1 for lv in self.sessions.live.values() if lv.in_flight)
        return {
            "active_sessions": self.sessions.admission.active_count(),
            "memory_usage_mb": round(rss, 1),
            "peak_memory_mb": round(peak, 1),
            "temp_files_count": count,
            "temp_files_size_mb": round(used / MIB, 1),
            "concurrent_uploads": uploading,
            "memory_limit_mb": float(self.settings.memory_limit_mb),
            "disk_space_available_mb": round(free / MIB, 1),
            "inflight_bytes": self.budget.in_use,
            "inflight_peak_bytes": self.budget.peak,
            "inflight_budget_bytes": self.budget.limit,
            "backpressure_active": self.budget.under_pressure,
            "backpressure_waits": self.budget.waits,
            "backpressure_refusals": self.budget.refusals,
            "sessions_loaded": len(self.sessions.live),
        }

    def _system(self) -> tuple[int, float, float]:
        """Blocking: (free bytes where partial uploads go, resident MiB, peak MiB)."""
        disk = psutil.disk_usage(str(self.settings.partial_dir))
        return disk.free, self.memory.rss_mb(), self.memory.peak_mb()
