"""Fan-out between API replicas over Redis pub/sub (``LIVECAM_REDIS_URL``).

Several API processes share one PostgreSQL database; what they must tell each other
goes over one Redis channel:

* every event change a replica commits, so SSE clients of every replica see it
  (``EventBus.publish_remote``: the SSE streams only; Web Push and the LiveKit room
  relay run once, on the replica that stored the change);
* zone changes, so the replica holding a camera's control websocket sends the new list.

Redis is a messenger, not a store: the database stays the truth. Nothing waits for
Redis: messages are queued (bounded) and sent by one task; while Redis is away they wait
and are retried, and when it is back every replica is told to catch up (a ``gap``
message, and ``EventBus.gap()`` on reconnect), which the SSE streams do from the
database. So a Redis restart costs SSE clients a moment, never an event.

    {"from": "<node id>", "kind": "event", "event": {...}}
    {"from": "<node id>", "kind": "zones", "camera_id": "door"}
    {"from": "<node id>", "kind": "gap"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.eventbus import EventBus
from app.zones import ZonesNotifier

log = logging.getLogger(__name__)

CHANNEL = "livecam.cluster"
MAX_QUEUE = 4096
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


def redacted(url: str) -> str:
    """The Redis URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("redis", url)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


class ClusterLink:
    """This replica's link to the others: forwards local changes, applies theirs."""

    def __init__(
        self, url: str, bus: EventBus, zones: ZonesNotifier, channel: str = CHANNEL
    ) -> None:
        self.url = url
        self.channel = channel
        self.node_id = secrets.token_hex(6)
        self._bus = bus
        self._zones = zones
        self._outbox: asyncio.Queue[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aioredis.Redis | None = None
        #: Messages sent, received from other replicas, and dropped (outbox full).
        self.sent = 0
        self.received = 0
        self.dropped = 0
        #: Whether the last attempt to reach Redis worked (for /api/health).
        self.connected = False
        self._lost_outgoing = False

    # -- wiring ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connects the bus and the zones notifier and starts the sender and listener
        (from the app's event loop). Does not wait for Redis: the API works without it."""
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue(MAX_QUEUE)
        self._client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=2.0, socket_keepalive=True
        )
        self._bus.forward = self.forward_event
        self._zones.forward = self.forward_zones
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="cluster-send"),
            asyncio.create_task(self._listen_loop(), name="cluster-listen"),
        ]
        log.info("cluster link started", extra={"redis": redacted(self.url), "node": self.node_id})

    async def aclose(self) -> None:
        """Stops both tasks and disconnects; local fan-out keeps working."""
        self._bus.forward = None
        self._zones.forward = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- outgoing (any thread) -------------------------------------------------------

    def forward_event(self, event: dict[str, Any]) -> None:
        """Queues an event this replica committed for the others."""
        self._queue({"from": self.node_id, "kind": "event", "event": event})

    def forward_zones(self, camera_id: str) -> None:
        """Queues a zone change of ``camera_id`` for the others."""
        self._queue({"from": self.node_id, "kind": "zones", "camera_id": camera_id})

    def _queue(self, message: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        data = json.dumps(message, separators=(",", ":")).encode()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._put, data)

    def _put(self, data: bytes) -> None:
        assert self._outbox is not None
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            # Redis has been away long enough to fill the queue: drop, and tell the
            # others to catch up from the database once it is back.
            self.dropped += 1
            self._lost_outgoing = True
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "cluster outbox full; other replicas will catch up from the database",
                    extra={"dropped": self.dropped},
                )

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        assert self._client is not None
        delay = RETRY_MIN_S
        failing = False
        data = await self._outbox.get()
        while True:
            try:
                if self._lost_outgoing:
                    gap = {"from": self.node_id, "kind": "gap"}
                    await self._client.publish(self.channel, json.dumps(gap))
                    self._lost_outgoing = False
                await self._client.publish(self.channel, data)
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning(
                        "cannot reach Redis; holding changes for the other replicas",
                        extra={"redis": redacted(self.url), "error": str(exc) or repr(exc)},
                    )
                failing = True
                # Whatever the others miss meanwhile, they fill from the database.
                self._lost_outgoing = True
                self.connected = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if failing:
                log.info("Redis reachable again; sending held changes", extra={})
                failing = False
            delay = RETRY_MIN_S
            self.sent += 1
            data = await self._outbox.get()

    # -- incoming --------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        assert self._client is not None
        delay = RETRY_MIN_S
        first = True
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected = True
                if not first:
                    log.info("cluster link subscribed again; catching up", extra={})
                    # Whatever was published while we were away is lost to pub/sub.
                    self._bus.gap()
                first = False
                delay = RETRY_MIN_S
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"])
            except (RedisError, OSError) as exc:
                if self.connected or first:
                    log.warning(
                        "cluster link lost Redis; retrying",
                        extra={"redis": redacted(self.url), "error": str(exc) or repr(exc)},
                    )
                self.connected = False
                first = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _apply(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            sender = message["from"]
            kind = message["kind"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cluster message", extra={"size": len(data)})
            return
        if sender == self.node_id:
            return
        self.received += 1
        if kind == "event" and isinstance(message.get("event"), dict):
            self._bus.publish_remote(message["event"])
        elif kind == "zones" and isinstance(message.get("camera_id"), str):
            self._zones.wake(message["camera_id"])
        elif kind == "gap":
            self._bus.gap()
        else:
            log.warning("ignoring an unknown cluster message", extra={"kind": str(kind)})
