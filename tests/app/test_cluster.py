"""Two API replicas on one PostgreSQL database and one Redis (both real, started by the
tests), each served by uvicorn in its own thread and event loop, as two processes would
be: events reach the SSE clients of both, Web Push and the room relay run once, zone
changes reach the replica holding the edge's websocket, and a Redis restart costs no
event. Also the SSE stream's version mark: out-of-order and missing remote changes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from app.__main__ import prepare as prepare_replica
from app.event_stream import VersionMark, event_stream
from app.eventbus import EventBus
from app.events import EventFilter, EventIngest
from app.main import create_app
from app.schemas import EventIn
from scripts.dbservers import Redis
from tests.app.event_helpers import FakeRoomData, SseMessage, message, next_event, sse_messages
from tests.app.helpers import FakeRooms, enrolled_edge, make_settings, prepare, serve


@dataclass
class Replica:
    app: FastAPI
    url: str


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str, redis_server: Redis) -> Iterator[list[Replica]]:
    settings = make_settings(
        tmp_path / "data",
        database_url=postgres_url,
        redis_url=redis_server.url,
        event_stream_keepalive=0.3,
    )
    key = prepare(settings)
    assert key is not None
    (tmp_path / "admin.key").write_text(key)
    with ExitStack() as stack:
        out = []
        for _ in range(2):
            app = create_app(settings)
            app.state.rooms = FakeRooms()
            app.state.room_data = FakeRoomData()
            out.append(Replica(app, stack.enter_context(serve(app))))
        for replica in out:
            wait_for(lambda r=replica: r.app.state.cluster.connected, "replica subscribed")
        yield out


@pytest.fixture
def admin_headers(tmp_path: Path, replicas: list[Replica]) -> dict[str, str]:
    return {"Authorization": f"Bearer {(tmp_path / 'admin.key').read_text()}"}


def wait_for(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.messages: AsyncIterator[SseMessage] = sse_messages(response.aiter_lines())

    async def event(self, timeout: float = 20.0) -> dict[str, Any]:
        msg = await next_event(self.messages, timeout)
        parsed: dict[str, Any] = json.loads(msg.data)
        return parsed


async def open_stream(http: httpx.AsyncClient, stack: Any) -> Stream:
    response = await stack.enter_async_context(http.stream("GET", "/api/events/stream"))
    assert response.status_code == 200
    return Stream(response)


def edge_of(replica: Replica, admin: dict[str, str], camera_id: str) -> dict[str, str]:
    with httpx.Client(base_url=replica.url, timeout=10) as http:
        return enrolled_edge(http, admin, camera_id)  # type: ignore[arg-type]


async def test_an_event_posted_to_one_replica_reaches_sse_clients_of_both(
    replicas: list[Replica], admin_headers: dict[str, str]
) -> None:
    a, b = replicas
    edge = edge_of(b, admin_headers, "door")  # created and enrolled on B
    async with AsyncExitStack() as stack:
        http_a = await stack.enter_async_context(
            httpx.AsyncClient(base_url=a.url, headers=admin_headers, timeout=20)
        )
        http_b = await stack.enter_async_context(
            httpx.AsyncClient(base_url=b.url, headers=admin_headers, timeout=20)
        )
        on_a = await open_stream(http_a, stack)
        on_b = await open_stream(http_b, stack)
        body = message()
        response = await http_a.post("/api/edge/events", json=body, headers=edge)
        assert response.status_code == 200, response.text
        got_a, got_b = await asyncio.gather(on_a.event(), on_b.event())
        assert got_a["id"] == got_b["id"] == body["event_id"]
        assert got_a["version"] == got_b["version"]
        # The end of the event, posted to the other replica, reaches both as well.
        ended = await http_b.post(
            "/api/edge/events", json=message(body["event_id"], 1, "end"), headers=edge
        )
        assert ended.status_code == 200
        end_a, end_b = await asyncio.gather(on_a.event(), on_b.event())
        assert end_a["active"] is end_b["active"] is False
        assert end_a["version"] > got_a["version"]
    # The live overlay relay ran once per change, on the replica that stored it.
    wait_for(lambda: len(a.app.state.room_data.sent) == 1, "relay on A")
    wait_for(lambda: len(b.app.state.room_data.sent) == 1, "relay on B")
    assert a.app.state.event_bus.published == 1
    assert b.app.state.event_bus.published == 1
    assert a.app.state.event_bus.received == 1
    assert b.app.state.event_bus.received == 1


async def test_a_redis_restart_loses_no_event_and_repeats_none(
    replicas: list[Replica], admin_headers: dict[str, str], redis_server: Redis
) -> None:
    a, b = replicas
    edge = edge_of(a, admin_headers, "door")
    async with AsyncExitStack() as stack:
        http_a = await stack.enter_async_context(
            httpx.AsyncClient(base_url=a.url, headers=admin_headers, timeout=20)
        )
        http_b = await stack.enter_async_context(
            httpx.AsyncClient(base_url=b.url, headers=admin_headers, timeout=20)
        )
        on_b = await open_stream(http_b, stack)
        await asyncio.to_thread(redis_server.stop)
        sent = []
        for _ in range(3):
            body = message()
            response = await http_a.post("/api/edge/events", json=body, headers=edge)
            assert response.status_code == 200  # ingest never waits for Redis
            sent.append(body["event_id"])
        health = (await http_b.get("/api/health")).json()
        assert health["cluster"]["ok"] is False
        assert health["status"] == "degraded"
        await asyncio.to_thread(redis_server.start)
        got = [(await on_b.event(30))["id"] for _ in range(3)]
        assert got == sent
        # Live again; the held messages A sends late are not repeated to the client.
        body = message()
        response = await http_a.post("/api/edge/events", json=body, headers=edge)
        assert response.status_code == 200
        assert (await on_b.event(30))["id"] == body["event_id"]
        with pytest.raises(TimeoutError):
            await on_b.event(1.5)
    wait_for(lambda: b.app.state.cluster.connected, "B subscribed again")


async def test_a_zone_change_on_one_replica_reaches_the_edge_on_the_other(
    replicas: list[Replica], admin_headers: dict[str, str]
) -> None:
    a, b = replicas
    edge = edge_of(a, admin_headers, "door")
    ws_url = a.url.replace("http://", "ws://") + "/api/edge/ws"
    async with connect(ws_url, additional_headers=edge) as ws:
        assert json.loads(await ws.recv()) == {"type": "zones", "zones": []}
        assert json.loads(await ws.recv())["type"] == "jpeg"
        zones = {
            "zones": [
                {
                    "name": "Path",
                    "kind": "zone",
                    "points": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
                    "labels": [],
                }
            ]
        }
        async with httpx.AsyncClient(base_url=b.url, headers=admin_headers, timeout=20) as http:
            response = await http.put("/api/cameras/door/zones", json=zones)
            assert response.status_code == 200, response.text
        got = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert got["type"] == "zones"
        assert [z["name"] for z in got["zones"]] == ["Path"]


def test_version_mark_accounts_for_holes() -> None:
    mark = VersionMark(10)
    mark.add(12, now=1.0)
    assert mark.through == 10
    assert mark.hole_since == 1.0
    assert not mark.is_new(12)
    assert mark.is_new(11)
    mark.add(11, now=2.0)
    assert mark.through == 12
    assert mark.hole_since is None
    mark.add(15, now=3.0)
    mark.settle(14, now=4.0)  # the database was read up to 14
    assert mark.through == 15
    assert not mark.pending
    assert not mark.is_new(13)


async def test_a_change_another_replica_never_announced_is_filled_from_the_database(
    app: FastAPI, admin: dict[str, str]
) -> None:
    """Replica "elsewhere" commits two changes; only the second reaches this replica's
    bus (the first's message was lost). The stream sends the second at once, with an id
    that does not skip the hole, and the first after ``hole_wait_s`` from the database."""
    app.state.room_data = FakeRoomData()
    with TestClient(app) as client:
        edge = enrolled_edge(client, admin)
        camera_id = "door"
        stream = event_stream(
            app.state.event_bus,
            app.state.session_factory,
            EventFilter(),
            None,
            keepalive_s=5,
            hole_wait_s=0.5,
        )
        assert b"connected" in await anext(stream)
        elsewhere = EventIngest(app.state.session_factory, app.state.event_snapshots, EventBus())
        now = datetime.now(UTC)
        first = elsewhere.apply(camera_id, EventIn.model_validate(message()), None, now)
        second = elsewhere.apply(camera_id, EventIn.model_validate(message()), None, now)
        assert first.event is not None
        assert second.event is not None
        app.state.event_bus.publish_remote(second.event)
        chunk = (await asyncio.wait_for(anext(stream), 5)).decode()
        assert f'"id":"{second.event["id"]}"' in chunk
        assert f"id: {first.event['version'] - 1}\n" in chunk  # the mark, below the hole
        started = time.monotonic()
        chunk = (await asyncio.wait_for(anext(stream), 5)).decode()
        assert f'"id":"{first.event["id"]}"' in chunk
        assert time.monotonic() - started >= 0.3
        assert f"id: {second.event['version']}\n" in chunk  # hole closed
        await stream.aclose()
    assert edge


def test_replicas_starting_at_once_migrate_once_and_make_one_admin_key(
    tmp_path: Path, postgres_url: str
) -> None:
    """`python -m app` start-up (migrations, first admin key, secrets) on two replicas
    at the same moment, on a fresh database: both succeed, one key, one secret."""
    settings = make_settings(tmp_path / "data", database_url=postgres_url)
    settings.ensure_data_dir()
    barrier = threading.Barrier(2)

    def start() -> str | None:
        barrier.wait()
        key, _app = prepare_replica(settings)
        return key

    with ThreadPoolExecutor(2) as pool:
        keys = list(pool.map(lambda _: start(), range(2)))
    made = [k for k in keys if k is not None]
    assert len(made) == 1
    assert (tmp_path / "data" / "admin.key").read_text().strip() == made[0]
    apps = [create_app(settings) for _ in range(2)]
    now = datetime.now(UTC)
    ticket = apps[0].state.tickets.issue("door", now)
    assert apps[1].state.tickets.verify(ticket.value, "door", now)
