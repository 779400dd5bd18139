"""GET /api/events/stream over a real uvicorn server: live changes, keepalives,
Last-Event-ID replay, filters, tickets, no idle database session, slow clients."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.event_stream import event_stream
from app.events import EventFilter
from app.settings import Settings
from tests.app.event_helpers import (
    FakeRoomData,
    SseMessage,
    message,
    next_event,
    sse_messages,
)
from tests.app.helpers import FakeClock, assert_error, enrolled_edge, make_settings, serve


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", event_stream_keepalive=0.3)


@pytest.fixture
def base(app: FastAPI) -> Iterator[str]:
    app.state.room_data = FakeRoomData()
    with serve(app) as url:
        yield url


async def enroll(http: httpx.AsyncClient, camera_id: str) -> dict[str, str]:
    created = (await http.post("/api/cameras", json={"id": camera_id, "name": camera_id})).json()
    code = created["enrollment"]["code"]
    credential = (await http.post("/api/edge/enroll", json={"code": code})).json()["credential"]
    return {"Authorization": f"Bearer {credential}"}


async def post(http: httpx.AsyncClient, edge: dict[str, str], body: dict[str, Any]) -> int:
    """Posts a message; the event's version after it."""
    response = await http.post("/api/edge/events", json=body, headers=edge)
    assert response.status_code == 200, response.text
    event = (await http.get(f"/api/events/{body['event_id']}")).json()
    version: int = event["version"]
    return version


class Stream:
    """An open SSE response and its parsed messages."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.messages: AsyncIterator[SseMessage] = sse_messages(response.aiter_lines())

    async def next(self, timeout: float = 10.0) -> SseMessage:
        return await asyncio.wait_for(anext(self.messages), timeout)

    async def event(self, timeout: float = 10.0) -> SseMessage:
        return await next_event(self.messages, timeout)


async def open_stream(
    http: httpx.AsyncClient, url: str = "/api/events/stream", **kwargs: Any
) -> tuple[Stream, Any]:
    context = http.stream("GET", url, **kwargs)
    response = await context.__aenter__()
    assert response.status_code == 200, await response.aread()
    stream = Stream(response)
    hello = await stream.next()
    assert hello.retry == 3000
    assert hello.comment == "connected"
    return stream, context


async def test_stream_sends_each_change_and_keepalives(
    base: str, admin: dict[str, str], app: FastAPI
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=10) as http:
        edge = await enroll(http, "door")
        stream, context = await open_stream(http)
        try:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-store"
            # Idle: only keepalives, and no database connection is held meanwhile.
            keepalive = await stream.next(5)
            assert keepalive.comment == "keepalive"
            assert keepalive.event is None
            assert app.state.engine.pool.checkedout() == 0
            event_id = str(uuid.uuid4())
            version = await post(http, edge, message(event_id, 0, zones=["Gate"]))
            got = await stream.event()
            assert got.id == str(version)
            assert got.json() == (await http.get(f"/api/events/{event_id}")).json()
            end_version = await post(http, edge, message(event_id, 1, "end"))
            ended = await stream.event()
            assert ended.id == str(end_version)
            assert ended.json()["active"] is False
            # A duplicate is not a change: nothing is sent for it.
            await post(http, edge, message(event_id, 1, "end"))
            assert (await stream.next(5)).comment == "keepalive"
        finally:
            await context.__aexit__(None, None, None)


async def test_last_event_id_replays_what_was_missed_then_goes_live(
    base: str, admin: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=10) as http:
        edge = await enroll(http, "door")
        a, b, c = (str(uuid.uuid4()) for _ in range(3))
        await post(http, edge, message(a, 0))
        seen = await post(http, edge, message(b, 0))
        c_version = await post(http, edge, message(c, 0))
        a_end = await post(http, edge, message(a, 1, "end"))
        stream, context = await open_stream(http, headers={"Last-Event-ID": str(seen)})
        try:
            replayed = [await stream.event(), await stream.event()]
            assert [(m.id, m.json()["id"]) for m in replayed] == [
                (str(c_version), c),
                (str(a_end), a),  # a's current state, which supersedes its start
            ]
            assert replayed[1].json()["active"] is False
            d = str(uuid.uuid4())
            d_version = await post(http, edge, message(d, 0))
            live = await stream.event()
            assert (live.id, live.json()["id"]) == (str(d_version), d)
        finally:
            await context.__aexit__(None, None, None)
        # The query parameter works like the header (for a page that reloads).
        stream, context = await open_stream(http, params={"last_event_id": str(c_version)})
        try:
            assert [(await stream.event()).json()["id"] for _ in range(2)] == [a, d]
        finally:
            await context.__aexit__(None, None, None)
        bad = await http.get("/api/events/stream", headers={"Last-Event-ID": "abc"})
        assert_error(bad, 422, "validation_error")


async def test_stream_filters_by_camera_and_label(base: str, admin: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=10) as http:
        door, yard = await enroll(http, "door"), await enroll(http, "yard")
        stream, context = await open_stream(
            http, params={"camera": "yard", "label": ["pet", "vehicle"]}
        )
        try:
            await post(http, door, message(label="pet", obj="dog"))  # other camera
            await post(http, yard, message())  # a person
            wanted = str(uuid.uuid4())
            await post(http, yard, message(wanted, label="vehicle", obj="car"))
            got = await stream.event()
            assert got.json()["id"] == wanted
        finally:
            await context.__aexit__(None, None, None)


async def test_stream_auth_header_or_ticket(base: str, admin: dict[str, str], app: FastAPI) -> None:
    clock: FakeClock = app.state.clock
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert_error(await http.get("/api/events/stream"), 401, "not_authenticated")
        response = await http.get(
            "/api/events/stream", headers={"Authorization": "Bearer lca_wrong"}
        )
        assert_error(response, 401, "invalid_admin_key")
        issued = await http.post("/api/events/stream-ticket", headers=admin)
        assert issued.status_code == 200
        body = issued.json()
        assert body["url"].startswith("/api/events/stream?ticket=v1.")
        assert body["expires_at"] == (clock.now + timedelta(seconds=60)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        _stream, context = await open_stream(http, body["url"] + "&camera=door")
        await context.__aexit__(None, None, None)
        for bad in ("v1.1.nonsense", body["url"].split("ticket=")[1] + "x"):
            response = await http.get("/api/events/stream", params={"ticket": bad})
            assert "stream-ticket" in assert_error(response, 401, "invalid_ticket")
        # An MJPEG ticket is not a stream ticket.
        mjpeg = app.state.tickets.issue("events", clock())
        response = await http.get("/api/events/stream", params={"ticket": mjpeg.value})
        assert_error(response, 401, "invalid_ticket")
        clock.advance(61)
        assert_error(await http.get(body["url"]), 401, "invalid_ticket")


async def test_a_slow_client_loses_nothing_and_memory_stays_bounded(
    app: FastAPI, admin: dict[str, str]
) -> None:
    """The bus queue holds 2 changes; 8 arrive while the client reads none: the stream
    catches up from the database, in order, without repeats."""
    app.state.room_data = FakeRoomData()
    with TestClient(app) as client:
        edge = enrolled_edge(client, admin)
        stream = event_stream(
            app.state.event_bus,
            app.state.session_factory,
            EventFilter(),
            None,
            keepalive_s=5,
            max_queue=2,
        )
        hello = await anext(stream)
        assert b"connected" in hello
        ids = []
        for i in range(8):
            body = message(seq=0)
            response = client.post("/api/edge/events", json=body, headers=edge)
            assert response.status_code == 200
            ids.append(body["event_id"])
            if i == 3:
                # Both of an event's changes: the client needs only the newest.
                response = client.post(
                    "/api/edge/events", json=message(body["event_id"], 1, "end"), headers=edge
                )
        got: list[dict[str, Any]] = []
        while len(got) < 8:
            chunk = await asyncio.wait_for(anext(stream), 5)
            parsed = SseMessage()
            for line in chunk.decode().splitlines():
                if line.startswith("data: "):
                    parsed.data = line[6:]
            if parsed.data:
                got.append(parsed.json())
        await stream.aclose()
    assert [e["id"] for e in got] == ids
    versions = [e["version"] for e in got]
    assert versions == sorted(versions)
    assert got[3]["active"] is False
    assert app.state.event_bus.subscriber_count <= 2  # the stream's own is gone
    assert json.loads(hello.decode().split("\n")[0].replace("retry: ", "")) == 3000
