"""Server-Sent Events of event changes (``GET /api/events/stream``).

    retry: 3000
    : connected

    id: 42
    event: event
    data: {"id": "…", "camera_id": "door", …, "version": 42}

    : keepalive

The id is the event's ``version``, which grows with every change of any event, in
commit order. A client that reconnects with ``Last-Event-ID: 42`` first gets, from the
database, every event whose latest change is newer than 42 (its current state, which
supersedes the changes it missed), then the live changes. A client keeps events by id.

With several API replicas, changes stored elsewhere arrive through Redis and may arrive
out of order or (Redis restarting) not at all. So a stream tracks the version below
which it has accounted for every change; the SSE id is that mark, so a reconnect never
skips a hole. A hole that stays open ``hole_wait_s`` is filled from the database (a
committed version means every lower one is committed too), as is everything after a
GAP marker (Redis came back) or after this client fell behind.

Memory stays bounded for a slow client: the bus subscription holds at most
``max_queue`` changes and drops the oldest; when that happens the stream catches up
from the database instead, as on a reconnect. No database session is held while the
stream waits: each replay page opens and closes its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi.concurrency import run_in_threadpool

from app.db import SessionFactory
from app.eventbus import GAP, EventBus
from app.events import MAX_PAGE, EventFilter, current_version, events_after_version

log = logging.getLogger(__name__)

RETRY_MS = 3000
STREAM_MAX_QUEUE = 256
#: How long a hole in the versions may stay open before the database fills it.
HOLE_WAIT_S = 1.0
#: More versions than this waiting above a hole: stop waiting, fill from the database.
MAX_PENDING = 4096


def sse_event(event: dict[str, Any], mark: int | None = None) -> bytes:
    """One SSE message for an event (JSON has no raw newlines: one data line). Its id is
    ``mark`` (every change up to it accounted for), by default the event's version."""
    data = json.dumps(event, separators=(",", ":"))
    ident = event["version"] if mark is None else mark
    return f"id: {ident}\nevent: event\ndata: {data}\n\n".encode()


class VersionMark:
    """Which change versions a stream has accounted for: all up to ``through``, plus
    those in ``pending`` (seen above a hole)."""

    def __init__(self, through: int) -> None:
        self.through = through
        self.pending: set[int] = set()
        #: When the current hole opened (loop time), None when there is none.
        self.hole_since: float | None = None

    def is_new(self, version: int) -> bool:
        """Not accounted for yet."""
        return version > self.through and version not in self.pending

    def add(self, version: int, now: float) -> None:
        """``version`` is accounted for."""
        self.pending.add(version)
        self._advance(now)

    def settle(self, committed: int, now: float) -> None:
        """Everything up to ``committed`` is accounted for (the database was read)."""
        self.through = max(self.through, committed)
        self.pending = {v for v in self.pending if v > self.through}
        self.hole_since = None
        self._advance(now)

    def _advance(self, now: float) -> None:
        while self.through + 1 in self.pending:
            self.through += 1
            self.pending.discard(self.through)
        if not self.pending:
            self.hole_since = None
        elif self.hole_since is None:
            self.hole_since = now


def _committed(factory: SessionFactory) -> int:
    with factory() as session:
        return current_version(session)


KEEPALIVE = b": keepalive\n\n"


def _replay_page(factory: SessionFactory, after: int, flt: EventFilter) -> list[dict[str, Any]]:
    with factory() as session:
        return events_after_version(session, after, flt, MAX_PAGE)


async def _replay(
    factory: SessionFactory, after: int, flt: EventFilter
) -> AsyncIterator[dict[str, Any]]:
    while True:
        page = await run_in_threadpool(_replay_page, factory, after, flt)
        for event in page:
            yield event
        if len(page) < MAX_PAGE:
            return
        after = int(page[-1]["version"])


async def _catch_up(
    factory: SessionFactory, flt: EventFilter, mark: VersionMark
) -> AsyncIterator[dict[str, Any]]:
    """Events the database has and this stream has not accounted for; settles ``mark``."""
    # Read the committed version first: the replay after it then sees every change up
    # to it (and perhaps later ones, which are delivered and marked as well).
    committed = await run_in_threadpool(_committed, factory)
    loop = asyncio.get_running_loop()
    async for event in _replay(factory, mark.through, flt):
        version = int(event["version"])
        if mark.is_new(version):
            mark.add(version, loop.time())
            yield event
    mark.settle(committed, loop.time())


async def event_stream(
    bus: EventBus,
    factory: SessionFactory,
    flt: EventFilter,
    last_event_id: int | None,
    keepalive_s: float,
    max_queue: int = STREAM_MAX_QUEUE,
    hole_wait_s: float = HOLE_WAIT_S,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: replay after ``last_event_id`` (if given), then live changes."""
    # Subscribe before reading the database: a change committed meanwhile is then
    # either in what is read or in the queue (or both; the mark drops the repeat).
    subscription = bus.subscribe(max_queue, remote=True)
    loop = asyncio.get_running_loop()
    dropped = 0  # drops seen so far: any new one means catch up
    counts = {"live": 0, "replayed": 0, "filled": 0}
    mark = VersionMark(0)
    try:
        async with subscription:
            if last_event_id is None:
                # Live changes from here on: what is committed now is not news.
                mark.settle(await run_in_threadpool(_committed, factory), loop.time())
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            if last_event_id is not None:
                mark = VersionMark(last_event_id)
                async for replayed in _catch_up(factory, flt, mark):
                    counts["replayed"] += 1
                    yield sse_event(replayed, mark.through)
            last_write = loop.time()
            while True:
                now = loop.time()
                wait = keepalive_s - (now - last_write)
                if mark.hole_since is not None:
                    wait = min(wait, mark.hole_since + hole_wait_s - now)
                try:
                    event = await asyncio.wait_for(subscription.get(), max(wait, 0.0))
                except TimeoutError:
                    now = loop.time()
                    if mark.hole_since is not None and now - mark.hole_since >= hole_wait_s:
                        event = GAP  # a change never arrived: the database has it
                    elif now - last_write >= keepalive_s:
                        yield KEEPALIVE
                        last_write = now
                        continue
                    else:
                        continue
                if event is None:
                    return  # the bus closed the subscription
                behind = subscription.dropped != dropped
                if event is GAP or behind or len(mark.pending) > MAX_PENDING:
                    # Lost changes (this client fell behind, or another replica's never
                    # came): catch up from the database.
                    dropped = subscription.dropped
                    counts["filled"] += 1
                    async for missed in _catch_up(factory, flt, mark):
                        counts["replayed"] += 1
                        yield sse_event(missed, mark.through)
                        last_write = loop.time()
                    if event is GAP:
                        continue
                version = int(event.get("version", 0))
                if not mark.is_new(version):
                    continue
                mark.add(version, loop.time())
                if not flt.matches(event):
                    continue
                counts["live"] += 1
                yield sse_event(event, mark.through)
                last_write = loop.time()
    finally:
        log.info(
            "event stream closed",
            extra={
                "live": counts["live"],
                "replayed": counts["replayed"],
                "filled": counts["filled"],
                "last_id": mark.through,
                "fell_behind": dropped,
            },
        )
