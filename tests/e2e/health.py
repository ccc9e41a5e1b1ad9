"""Probes ``GET /health`` on a real server while it works: how long each answer takes."""

from __future__ import annotations

import http.client
import statistics
import threading
import time


class HealthProbe:
    """``GET /health`` every 20 ms from a thread of its own, timing each answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                conn.request("GET", "/health")
                status = conn.getresponse().status
                if status != 200:
                    self.failures.append(f"status {status}")
            except OSError as exc:
                self.failures.append(repr(exc))
            finally:
                conn.close()
            self.times.append(time.perf_counter() - started)
            self._stop.wait(0.02)

    def p99(self) -> float:
        return statistics.quantiles(self.times, n=100)[98]
