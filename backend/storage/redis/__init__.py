"""Redis backends (``STREAMING_REDIS_URL``): what several replicas must share.

- :mod:`.client`: the connection (bounded timeouts, few retries) and the one place where
  losing Redis becomes :class:`~backend.errors.StorageUnavailable` (503, Retry-After).
- :mod:`.limiter`: the sliding-window rate limiter, one Lua script per decision.
- :mod:`.bus`: the progress bus (pub/sub) and the latest state of each room.
- :mod:`.locks`: per-upload locks with a token, an expiry and a release request.
- :mod:`.slots`: the admission counters (active uploads, each owner's unfinished ones).

Every key starts with a prefix (``pdfup`` by default), so one Redis can serve several
deployments, and tests can keep apart what they write.
"""
