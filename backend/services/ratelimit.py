"""Rate limits on opening upload sessions, per owner and per client address.

A :class:`Rule` of ``limit`` events per ``window`` seconds with a ``burst`` allows at
most ``burst`` events in any ``window * burst / limit`` seconds and at most ``limit`` in
any ``window``: with the defaults (60 a minute, burst 10) a client may open 10 sessions
at once, then about one a second. Both windows slide (a log of event times per key,
``limit`` entries at most), so there is no boundary where twice the rate slips through.

:class:`RateLimiter` is the seam: :class:`SlidingWindowLimiter` keeps its log in this
process; :class:`~backend.storage.redis.limiter.RedisRateLimiter` keeps the same log in
Redis (a list per key, checked and written by one script), so several replicas share one
budget per owner and per address. :class:`SessionRateLimits` is what the API calls.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from backend.errors import RateLimited

PRUNE_EVERY = 1024


@dataclass(frozen=True)
class Rule:
    limit: int  # events per window; 0 turns the rule off
    window: float  # seconds
    burst: int  # events at once

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def burst_window(self) -> float:
        return self.window * min(self.burst, self.limit) / self.limit


@dataclass(frozen=True)
class Refusal:
    key: str
    retry_after: float  # seconds until the event would be admitted


class RateLimiter(Protocol):
    async def acquire(self, hits: Sequence[tuple[str, Rule]]) -> Refusal | None:
        """Record one event under every key if each has room under its rule; otherwise
        record nothing and say which key refused and for how long (all or nothing)."""
        ...


@dataclass
class _Log:
    events: deque[float]
    window: float


class SlidingWindowLimiter:
    """In-process sliding-window logs. Memory: ``limit`` floats per active key; keys idle
    for a whole window are dropped every :data:`PRUNE_EVERY` admissions."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[str, _Log] = {}
        self._since_prune = 0

    def __len__(self) -> int:
        return len(self._logs)

    async def acquire(self, hits: Sequence[tuple[str, Rule]]) -> Refusal | None:
        now = self.clock()
        worst: Refusal | None = None
        for key, rule in hits:
            if not rule.enabled:
                continue
            log = self._logs.get(key)
            wait = self._wait(log.events, rule, now) if log is not None else 0.0
            if wait > 0 and (worst is None or wait > worst.retry_after):
                worst = Refusal(key, wait)
        if worst is not None:
            return worst
        for key, rule in hits:
            if rule.enabled:
                log = self._logs.get(key)
                if log is None:
                    log = self._logs[key] = _Log(deque(maxlen=rule.limit), rule.window)
                log.events.append(now)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune(now)
        return None

    @staticmethod
    def _wait(events: deque[float], rule: Rule, now: float) -> float:
        """Seconds until one more event fits both windows (0: it fits now)."""
        wait = 0.0
        for count, window in ((rule.limit, rule.window), (min(rule.burst, rule.limit), rule.burst_window)):
            if len(events) >= count:
                oldest = events[-count]  # the ``count``-th most recent event
                wait = max(wait, oldest + window - now)
        return wait

    def prune(self, now: float | None = None) -> None:
        """Forget keys whose every event has left its window."""
        now = self.clock() if now is None else now
        self._since_prune = 0
        for key in [k for k, log in self._logs.items() if not log.events or log.events[-1] <= now - log.window]:
            del self._logs[key]


class SessionRateLimits:
    """The limits on ``/initiate``: one rule per owner, one per client address."""

    def __init__(self, limiter: RateLimiter, owner_rule: Rule, ip_rule: Rule) -> None:
        self.limiter = limiter
        self.owner_rule = owner_rule
        self.ip_rule = ip_rule
        self.refusals = {"owner": 0, "ip": 0}

    async def check(self, owner: str, ip: str | None) -> None:
        """Count one session opening; raise :class:`RateLimited` (with ``Retry-After``) past a limit."""
        hits = [(f"owner:{owner}", self.owner_rule)]
        if ip is not None:
            hits.append((f"ip:{ip}", self.ip_rule))
        refusal = await self.limiter.acquire(hits)
        if refusal is None:
            return
        scope = refusal.key.split(":", 1)[0]
        self.refusals[scope] = self.refusals.get(scope, 0) + 1
        rule = self.owner_rule if scope == "owner" else self.ip_rule
        who = "this owner" if scope == "owner" else "this client address"
        raise RateLimited(
            f"{who} may open {rule.limit} upload sessions a minute, {rule.burst} at once; retry later",
            retry_after=max(1, math.ceil(refusal.retry_after)), scope=scope,
        )

    def config(self) -> dict[str, object]:
        return {scope: {"per_minute": r.limit, "burst": r.burst, "burst_window_seconds": round(r.burst_window, 3)
                        if r.enabled else None}
                for scope, r in (("per_owner", self.owner_rule), ("per_ip", self.ip_rule))}
