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
from app.eventbus import EventBus
from app.events import MAX_PAGE, EventFilter, events_after_version

log = logging.getLogger(__name__)

RETRY_MS = 3000
STREAM_MAX_QUEUE = 256


def sse_event(event: dict[str, Any]) -> bytes:
    """One SSE message for an event (JSON has no raw newlines: one data line)."""
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['version']}\nevent: event\ndata: {data}\n\n".encode()


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


async def event_stream(
    bus: EventBus,
    factory: SessionFactory,
    flt: EventFilter,
    last_event_id: int | None,
    keepalive_s: float,
    max_queue: int = STREAM_MAX_QUEUE,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: replay after ``last_event_id`` (if given), then live changes."""
    # Subscribe before replaying: a change committed during the replay is then either
    # in the replay or in the queue (or both; the version check drops the repeat).
    subscription = bus.subscribe(max_queue)
    dropped = 0  # drops seen so far: any new one (even during the replay) means catch up
    sent = 0  # the highest version sent (replayed versions are never sent again)
    counts = {"live": 0, "replayed": 0}
    try:
        async with subscription:
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            if last_event_id is not None:
                sent = last_event_id
                async for replayed in _replay(factory, sent, flt):
                    sent = max(sent, int(replayed["version"]))
                    counts["replayed"] += 1
                    yield sse_event(replayed)
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), keepalive_s)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if event is None:
                    return  # the bus closed the subscription
                if subscription.dropped != dropped:
                    # This client fell behind and lost changes: catch up from the database.
                    dropped = subscription.dropped
                    async for missed in _replay(factory, sent, flt):
                        sent = max(sent, int(missed["version"]))
                        counts["replayed"] += 1
                        yield sse_event(missed)
                version = int(event.get("version", 0))
                if version <= sent or not flt.matches(event):
                    continue
                sent = version
                counts["live"] += 1
                yield sse_event(event)
    finally:
        log.info(
            "event stream closed",
            extra={
                "live": counts["live"],
                "replayed": counts["replayed"],
                "last_id": sent,
                "fell_behind": dropped,
            },
        )
