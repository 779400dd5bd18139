"""app/eventbus.py: fan-out, bounded queues that drop the oldest, thread-safe publish."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from app.eventbus import BusSubscription, EventBus


def ev(n: int) -> dict[str, Any]:
    return {"id": f"e{n}", "version": n}


async def drain(sub: BusSubscription, count: int, timeout: float = 5.0) -> list[int]:
    got = []
    for _ in range(count):
        item = await asyncio.wait_for(sub.get(), timeout)
        assert item is not None
        got.append(int(item["version"]))
    return got


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    async with bus.subscribe() as a, bus.subscribe() as b:
        assert bus.subscriber_count == 2
        for n in range(5):
            bus.publish(ev(n))
        assert await drain(a, 5) == [0, 1, 2, 3, 4]
        assert await drain(b, 5) == [0, 1, 2, 3, 4]
        assert a.dropped == b.dropped == 0
    assert bus.subscriber_count == 0
    assert bus.published == 5


async def test_a_slow_subscriber_loses_its_oldest_and_never_blocks_publish() -> None:
    bus = EventBus()
    async with bus.subscribe(max_queue=3) as slow, bus.subscribe(max_queue=10_000) as fast:
        started = time.perf_counter()
        for n in range(10_000):
            bus.publish(ev(n))
        assert time.perf_counter() - started < 2.0
        assert len(slow) == 3
        assert slow.dropped == 9_997
        assert await drain(slow, 3) == [9_997, 9_998, 9_999]
        assert slow.get_nowait() is None
        assert fast.dropped == 0
        assert len(fast) == 10_000


async def test_publish_from_another_thread_wakes_a_waiting_subscriber() -> None:
    bus = EventBus()
    async with bus.subscribe() as sub:
        waiter = asyncio.create_task(drain(sub, 3))
        await asyncio.sleep(0.05)  # the subscriber is waiting now
        assert not waiter.done()

        def publish_later() -> None:
            for n in range(3):
                time.sleep(0.01)
                bus.publish(ev(n))

        thread = threading.Thread(target=publish_later)
        thread.start()
        assert await asyncio.wait_for(waiter, 5) == [0, 1, 2]
        thread.join()


async def test_subscribing_queues_events_before_the_context_is_entered() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(ev(1))  # e.g. while the subscriber replays history
    async with sub:
        assert await drain(sub, 1) == [1]


async def test_closing_ends_iteration_and_stops_delivery() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    got: list[int] = []

    async def consume() -> None:
        async with sub:
            async for item in sub:
                got.append(int(item["version"]))

    task = asyncio.create_task(consume())
    bus.publish(ev(1))
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    sub.close()
    await asyncio.wait_for(task, 5)
    assert got == [1]
    assert sub.closed
    assert bus.subscriber_count == 0
    bus.publish(ev(2))
    assert len(sub) == 0
    assert await sub.get() is None


async def test_a_broken_subscriber_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus = EventBus()
    async with bus.subscribe() as broken, bus.subscribe() as healthy:

        def explode(_event: dict[str, Any]) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(broken, "_offer", explode)
        bus.publish(ev(1))
        assert await drain(healthy, 1) == [1]


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        EventBus().subscribe(max_queue=0)
