"""The progress bus across replicas: Redis pub/sub for events, a hash per room for state.

Contract (:class:`~backend.services.progress.ProgressBus`):

- ``publish`` delivers to this replica's subscribers at once, in order, and queues the
  event for Redis; one task sends the queue in order (a pipeline per batch): it updates
  the room's state hash (``{prefix}:room:{session_id}``: one field per kind of
  :data:`~backend.services.progress.ROOM_STATE` plus the owner, with a TTL) and
  publishes the event on one channel, ``{prefix}:events``.
- Every replica subscribes to that channel once, and hands its subscribers the events
  that other replicas published (its own it has already delivered). The hub keeps only
  what its sockets may hear: one channel costs every replica every event, which at a
  few throttled events a second per upload is cheap; sharding by room is the next step
  if it is not.
- Pub/sub is at most once: an event published while Redis is unreachable, or while a
  replica's subscription is reconnecting, is lost to the other replicas. The room state
  is not: what could not be written is kept (the latest per room and kind) and written
  when Redis is back, so a late joiner still gets the current state first.
- Losing Redis never raises out of ``publish`` and never stops the server: the
  subscription reconnects with backoff; :meth:`snapshot` raises
  :class:`~backend.errors.StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from backend.services.progress import ROOM_STATE, STATE_TTL, Envelope, Snapshot, Subscriber, room_state_kind
from backend.services.tasks import cancel_and_wait
from backend.storage.redis.client import REACH_ERRORS, unavailable

log = logging.getLogger(__name__)

OUTBOX = 8192  # events waiting for Redis; past that the oldest are dropped
BATCH = 256
BACKOFF = (0.05, 2.0)  # first and longest wait between reconnection attempts


class RedisProgressBus:
    def __init__(self, redis: Redis, prefix: str = "pdfup", state_ttl: float = STATE_TTL,
                 replica: str | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.channel = f"{prefix}:events"
        self.state_ttl_ms = max(1, int(state_ttl * 1000))
        self.replica = replica or uuid.uuid4().hex
        self._subscribers: list[Subscriber] = []
        self._outbox: asyncio.Queue[Envelope] | None = None
        self._unsaved: dict[str, dict[str, str]] = {}  # room state not yet written: key -> field -> value
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()  # set while the subscription is up (tests wait on it)
        self.dropped = 0
        self.received = 0
        self._stopping = False

    def _room_key(self, session_id: str) -> str:
        return f"{self.prefix}:room:{session_id}"

    # -- the protocol ---------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> None:
        for subscriber in self._subscribers:
            subscriber(envelope)
        if self._outbox is None:  # not started: this process only (nothing to reach)
            return
        if self._outbox.full():
            self._outbox.get_nowait()
            self.dropped += 1
        self._outbox.put_nowait(envelope)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def snapshot(self, session_id: str) -> Snapshot | None:
        async with unavailable("progress state"):
            fields = await self.redis.hgetall(self._room_key(session_id))
        pending = self._unsaved.get(self._room_key(session_id), {})
        values = {_text(k): _text(v) for k, v in fields.items()} | pending
        if not values:
            return None
        events = [json.loads(values[kind]) for kind in ROOM_STATE if kind in values]
        return Snapshot(values.get("owner") or None, events)

    async def start(self) -> None:
        self._stopping = False
        self._outbox = asyncio.Queue(OUTBOX)
        self._tasks = [asyncio.create_task(self._send(), name="progress bus: send"),
                       asyncio.create_task(self._listen(), name="progress bus: listen")]

    async def stop(self) -> None:
        """Stop sending and listening. The loops also check ``_stopping`` after each Redis
        call: redis-py can swallow a cancellation that lands inside a command (it
        disconnects and goes on), and the task must still end."""
        self._stopping = True
        await cancel_and_wait(self._tasks, swallow_errors=True)
        self._tasks = []
        self._outbox = None

    # -- sending ----------------------------------------------------------------------------

    async def _send(self) -> None:
        assert self._outbox is not None
        outbox, wait = self._outbox, BACKOFF[0]
        while True:
            if self._unsaved:  # Redis was lost: retry the state even if no event comes
                try:
                    first: Envelope | None = await asyncio.wait_for(outbox.get(), wait)
                except TimeoutError:
                    first = None
            else:
                first = await outbox.get()
            batch = [first] if first is not None else []
            while len(batch) < BATCH and not outbox.empty():
                batch.append(outbox.get_nowait())
            try:
                await self._write(batch)
                if wait > BACKOFF[0]:
                    log.info("progress bus: redis is back")
                wait = BACKOFF[0]
            except (*REACH_ERRORS, RedisError) as exc:  # RedisError: e.g. OOM under noeviction
                if wait == BACKOFF[0]:
                    log.warning("progress bus: redis refused or unreachable (%s); events to other replicas are "
                                "lost until it is back, room state is kept to write then", exc)
                wait = min(wait * 2, BACKOFF[1])
                if not self._stopping:
                    await asyncio.sleep(wait)  # events queue meanwhile (bounded: the oldest go first)
            if self._stopping:
                return

    async def _write(self, batch: list[Envelope]) -> None:
        """One pipeline: the room state of the batch (and any left unsaved), then the events.
        On failure the state is kept in ``_unsaved`` (the latest wins) and the events lost."""
        for envelope in batch:
            kind = room_state_kind(envelope)
            if kind is not None:
                assert envelope.session_id is not None
                state = self._unsaved.setdefault(self._room_key(envelope.session_id), {})
                state[kind] = json.dumps(envelope.event, separators=(",", ":"))
                state["owner"] = envelope.owner or ""
        pipe = self.redis.pipeline(transaction=False)
        for key, state in self._unsaved.items():
            mapping: dict[FieldT, EncodableT] = {k: v for k, v in state.items()}
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, self.state_ttl_ms)
        for envelope in batch:
            pipe.publish(self.channel, json.dumps(
                {"r": self.replica, "s": envelope.session_id, "o": envelope.owner, "c": envelope.client_ids,
                 "e": envelope.event}, separators=(",", ":")))
        written = list(self._unsaved)
        await pipe.execute()
        for key in written:
            self._unsaved.pop(key, None)

    # -- receiving --------------------------------------------------------------------------

    async def _listen(self) -> None:
        wait = BACKOFF[0]
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if wait > BACKOFF[0]:
                    log.info("progress bus: subscribed again")
                wait = BACKOFF[0]
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
                return
            except (*REACH_ERRORS, RedisError) as exc:
                if self.subscribed.is_set():
                    log.warning("progress bus: subscription lost (%s); reconnecting", exc)
                self.subscribed.clear()
                if self._stopping:
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, BACKOFF[1])
            finally:
                try:
                    await pubsub.aclose()
                except REACH_ERRORS:
                    pass

    def _deliver(self, data: bytes) -> None:
        try:
            message: dict[str, Any] = json.loads(data)
        except ValueError:
            log.warning("progress bus: a message that is not JSON on %s", self.channel)
            return
        if message.get("r") == self.replica:
            return
        self.received += 1
        envelope = Envelope(message.get("s"), message.get("o"), tuple(message.get("c") or ()), message["e"])
        for subscriber in self._subscribers:
            try:
                subscriber(envelope)
            except Exception:  # one subscriber's bug must not end the subscription
                log.exception("progress bus: a subscriber failed")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
