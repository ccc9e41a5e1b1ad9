"""Prometheus metrics, one registry per app (several apps in one test process never collide).

Two kinds, so the upload path pays almost nothing:

- counts the services keep anyway (bytes and chunks accepted, completed uploads,
  backpressure waits and refusals, rate-limit refusals, active sessions, bytes in
  flight) are read when ``/metrics`` is scraped, by :class:`_Snapshot`;
- what only the API sees (a chunk's latency, a refused chunk's reason) and import
  durations are observed as they happen: one dictionary lookup and an add each, once per
  chunk or import, never per byte.

Names: ``pdfupload_*``; counters end in ``_total`` in the exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
IMPORT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Sources:
    """Where the scrape-time figures come from (each a cheap call, wired by the container)."""

    bytes_received: Callable[[], int]
    chunks_accepted: Callable[[], int]
    uploads_completed: Callable[[], int]
    active_sessions: Callable[[], int]
    open_sessions: Callable[[], int]
    inflight_bytes: Callable[[], int]
    backpressure: Callable[[], dict[str, int]]
    rate_limited: Callable[[], dict[str, int]]
    #: An object store's traffic: bytes sent to it in request bodies (``written``) and
    #: bytes it copied inside itself (``copied``); None for local disk.
    object_store: Callable[[], dict[str, int]] | None = None


class _Snapshot:
    """A custom collector: reads :class:`Sources` at scrape time."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def describe(self) -> Iterable[Metric]:
        return []  # names are not checked for duplicates: this registry holds one of each

    def collect(self) -> Iterable[Metric]:
        s = self.sources
        yield CounterMetricFamily("pdfupload_bytes_received", "Bytes of chunks accepted (checksummed and written).",
                                  value=s.bytes_received())
        yield CounterMetricFamily("pdfupload_chunks_accepted", "Chunks accepted (first receipt, not retries).",
                                  value=s.chunks_accepted())
        yield CounterMetricFamily("pdfupload_uploads_completed",
                                  "Uploads completed into a stored document (duplicates included).",
                                  value=s.uploads_completed())
        yield GaugeMetricFamily("pdfupload_active_sessions",
                                "Sessions uploading or processing with recent activity (the global cap counts these).",
                                value=s.active_sessions())
        yield GaugeMetricFamily("pdfupload_open_sessions", "Unfinished, unexpired sessions (all owners).",
                                value=s.open_sessions())
        yield GaugeMetricFamily("pdfupload_inflight_bytes", "Chunk bytes reserved in memory right now.",
                                value=s.inflight_bytes())
        backpressure = CounterMetricFamily("pdfupload_backpressure_events",
                                           "Chunks that had to wait for the memory budget, and those refused (503).",
                                           labels=["kind"])
        for kind, n in s.backpressure().items():
            backpressure.add_metric([kind], n)
        yield backpressure
        limited = CounterMetricFamily("pdfupload_rate_limited", "Session openings refused by a rate limit.",
                                      labels=["scope"])
        for scope, n in s.rate_limited().items():
            limited.add_metric([scope], n)
        yield limited
        if s.object_store is not None:
            traffic = CounterMetricFamily("pdfupload_object_store_bytes",
                                          "Bytes sent to the object store (written) and copied inside it (copied).",
                                          labels=["kind"])
            for kind, n in s.object_store().items():
                traffic.add_metric([kind], n)
            yield traffic


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.chunks_refused = Counter("pdfupload_chunks_refused", "Chunk requests refused, by error code.",
                                      ["reason"], registry=self.registry)
        self.chunk_seconds = Histogram("pdfupload_chunk_seconds",
                                       "Time to receive, check and write one accepted chunk.",
                                       buckets=CHUNK_BUCKETS, registry=self.registry)
        self.import_seconds = Histogram("pdfupload_import_seconds", "Time to import a document into the index.",
                                        ["outcome"], buckets=IMPORT_BUCKETS, registry=self.registry)
        self.auth_failures = Counter("pdfupload_auth_failures", "Requests refused for a missing or wrong API key.",
                                     registry=self.registry)
        self._refused: dict[str, Counter] = {}

    def watch(self, sources: Sources) -> None:
        self.registry.register(_Snapshot(sources))

    def chunk_accepted(self, seconds: float) -> None:
        self.chunk_seconds.observe(seconds)

    def chunk_refused(self, reason: str) -> None:
        child = self._refused.get(reason)
        if child is None:
            child = self._refused[reason] = self.chunks_refused.labels(reason)
        child.inc()

    def import_finished(self, outcome: str, seconds: float) -> None:
        self.import_seconds.labels(outcome).observe(seconds)

    def exposition(self) -> bytes:
        """The text exposition format (blocking only in the sense of CPU; it is small)."""
        return generate_latest(self.registry)
