"""In-process fan-out of event changes (contract 6).

Ingest publishes the event JSON (the shape of ``GET /api/events``) after every applied
change; SSE streams and Web Push subscribe. Publishing never blocks and never fails:
each subscriber has a bounded queue, and a subscriber that falls behind loses its
OLDEST items (counted in ``dropped``) rather than slowing ingest or growing memory.
SSE clients recover what they lost from the database (Last-Event-ID replay).

``publish`` may be called from any thread (sync routes run in a worker pool); the
subscriber is woken on its own event loop.

With several API replicas (app/cluster.py), a change is published where it was
committed and forwarded to the other replicas, which hand it to their ``remote``
subscribers only (the SSE streams): Web Push and the LiveKit room relay run once, on the
replica that stored the change. When forwarded changes may have been lost (Redis went
away), ``gap()`` gives every remote subscriber the ``GAP`` marker, and it catches up
from the database.

    bus = EventBus()
    async with bus.subscribe() as events:
        async for event in events:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 256

#: Handed to remote subscribers when changes may have been lost; never an event.
GAP: dict[str, Any] = {"gap": True}


class BusSubscription:
    """One subscriber's bounded queue; an async context manager and async iterator.

    Iteration ends when the subscription is closed (leaving the ``async with`` block or
    ``close()``).
    """

    def __init__(self, bus: EventBus, max_queue: int, remote: bool = False) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._bus = bus
        #: Also receives changes other replicas stored (and the GAP marker).
        self.remote = remote
        self._items: deque[dict[str, Any]] = deque(maxlen=max_queue)
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: Items this subscriber lost because its queue was full.
        self.dropped = 0
        self.max_queue = max_queue

    # -- publisher side (any thread) ---------------------------------------------------

    def _offer(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning(
                        "event subscriber is falling behind; dropping oldest events",
                        extra={"dropped": self.dropped, "max_queue": self.max_queue},
                    )
            self._items.append(event)  # deque(maxlen) drops the oldest itself
        self._signal()

    def _signal(self) -> None:
        loop = self._loop
        if loop is None:
            # Not iterating yet: the flag is read on the first wait.
            self._wake.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            # RuntimeError: the subscriber's loop is closed; nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    # -- subscriber side (its event loop) ----------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once the subscription has been closed."""
        return self._closed

    def get_nowait(self) -> dict[str, Any] | None:
        """The oldest queued event, or None when the queue is empty."""
        with self._lock:
            return self._items.popleft() if self._items else None

    async def get(self) -> dict[str, Any] | None:
        """Waits for the next event; None once the subscription is closed."""
        self._loop = asyncio.get_running_loop()
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                return None
            self._wake.clear()
            # Re-check after clearing: a publish between get_nowait and clear would
            # otherwise be missed until the next one.
            with self._lock:
                if self._items or self._closed:
                    continue
            await self._wake.wait()

    def close(self) -> None:
        """Stops receiving; a waiting ``get`` returns None, iteration ends."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._items.clear()
        self._bus._remove(self)
        self._signal()

    async def __aenter__(self) -> BusSubscription:
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self.get()
            if item is None:
                return
            yield item


class EventBus:
    """Publishes event JSON to every current subscriber without ever blocking."""

    def __init__(self) -> None:
        self._subscribers: set[BusSubscription] = set()
        self._lock = threading.Lock()
        #: Events published since start (for health/metrics and tests).
        self.published = 0
        #: Events received from other replicas since start.
        self.received = 0
        #: Called with every locally published event (app/cluster.py forwards it to the
        #: other replicas); must not block or raise.
        self.forward: Callable[[dict[str, Any]], None] | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Hands ``event`` (contract 4 JSON, committed here) to every subscriber and to
        the other replicas; never blocks or raises."""
        with self._lock:
            subscribers = list(self._subscribers)
            self.published += 1
        self._offer_all(subscribers, event)
        forward = self.forward
        if forward is not None:
            try:
                forward(event)
            except Exception:  # fan-out trouble must never fail ingest
                log.exception("could not forward an event to the other replicas")

    def publish_remote(self, event: dict[str, Any]) -> None:
        """Hands an event another replica stored to the remote subscribers."""
        with self._lock:
            subscribers = [s for s in self._subscribers if s.remote]
            self.received += 1
        self._offer_all(subscribers, event)

    def gap(self) -> None:
        """Tells remote subscribers that changes from other replicas may have been lost."""
        with self._lock:
            subscribers = [s for s in self._subscribers if s.remote]
        self._offer_all(subscribers, GAP)

    @staticmethod
    def _offer_all(subscribers: list[BusSubscription], event: dict[str, Any]) -> None:
        for subscription in subscribers:
            try:
                subscription._offer(event)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("event subscriber failed to accept an event")

    def subscribe(
        self, max_queue: int = DEFAULT_MAX_QUEUE, remote: bool = False
    ) -> BusSubscription:
        """A new subscription receiving every event published from now on (``remote``:
        also those other replicas stored, and ``GAP`` markers).

        Events are queued from this call on (not from entering the ``async with``), so
        a caller can subscribe first and then replay history without a gap.
        """
        subscription = BusSubscription(self, max_queue, remote)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subscribers)

    def _remove(self, subscription: BusSubscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)
