"""edge.events.delivery against a real HTTP server on loopback (a small Starlette app)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.events.delivery import EventDelivery
from edge.events.message import EventMessage
from edge.events.outbox import Outbox
from edge.uplink import ServerClient

S = 1_000_000
T0 = 1_700_000_000 * S
CREDENTIAL = "lce_test_credential"


class FakeApi:
    """POST /api/edge/events with the server's idempotency rule (apply only newer seqs)."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []  # every request body, in arrival order
        self.stored: dict[str, dict[str, Any]] = {}  # event_id -> latest applied body
        self.failures: list[Callable[[dict[str, Any]], Response | None]] = []
        self.credential = CREDENTIAL
        self.app = Starlette(routes=[Route("/api/edge/events", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.credential}":
            return JSONResponse({"error": {"message": "credential revoked"}}, 401)
        body = await request.json()
        self.attempts.append(body)
        if self.failures:
            answer = self.failures.pop(0)(body)
            if answer is not None:
                return answer
        return self.apply(body)

    def apply(self, body: dict[str, Any]) -> Response:
        old = self.stored.get(body["event_id"])
        if old is not None and old["seq"] >= body["seq"]:
            return JSONResponse({"status": "duplicate"})
        self.stored[body["event_id"]] = body
        return JSONResponse({"status": "stored", "event_id": body["event_id"]})

    def keys(self) -> list[str]:
        return [b["key"] for b in self.attempts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(api: FakeApi, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(
        api.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def message(event: str, seq: int, snapshot: bytes | None = None) -> EventMessage:
    return EventMessage(
        event_id=event,
        seq=seq,
        phase="start" if seq == 0 else "update",
        label="person",
        object="person",
        score=0.5 + seq / 100,
        box=(0.1, 0.2, 0.3, 0.4),
        zones=(),
        started_us=T0,
        at_us=T0 + seq * S,
        snapshot=snapshot,
    )


class Edge:
    """An outbox, a ServerClient and a running delivery task."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.outbox = Outbox(tmp_path / "cam" / "outbox.sqlite3")
        self.client = ServerClient(f"http://127.0.0.1:{port}", "cam", CREDENTIAL)
        self.delivery = EventDelivery(
            "cam",
            self.outbox,
            self.client.post_event,
            first_s=0.05,
            cap_s=0.2,
            refused_retry_s=0.2,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.delivery.run(self.stop, idle_poll_s=5))

    def enqueue(self, *messages: EventMessage) -> None:
        self.outbox.enqueue(messages)
        self.delivery.notify()

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        await self.client.aclose()
        self.outbox.close()


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[tuple[Edge, FakeApi, int]]:
    port = free_port()
    e = Edge(tmp_path, port)
    try:
        yield e, FakeApi(), port
    finally:
        await e.close()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_delivers_in_order_with_the_credential_and_the_snapshot(
    edge: tuple[Edge, FakeApi, int],
) -> None:
    e, api, port = edge
    async with serving(api, port):
        e.start()
        e.enqueue(message("a", 0, snapshot=b"\xff\xd8\xffjpeg"), message("b", 0))
        e.enqueue(message("a", 1))
        await until(lambda: e.outbox.depth().queued == 0)
    assert api.keys() == ["a:0", "b:0", "a:1"]
    first = api.attempts[0]
    assert base64.b64decode(first["snapshot"]) == b"\xff\xd8\xffjpeg"
    assert api.attempts[1]["snapshot"] is None
    assert first["started_at"] == "2023-11-14T22:13:20.000Z"
    assert e.delivery.stats.delivered == 3


async def test_an_edge_offline_for_a_while_loses_nothing(
    edge: tuple[Edge, FakeApi, int], caplog: pytest.LogCaptureFixture
) -> None:
    e, api, port = edge
    e.start()
    with caplog.at_level(logging.WARNING, "edge.delivery"):
        for i in range(20):
            e.enqueue(message(f"ev{i}", 0, snapshot=bytes(100)))
        await until(lambda: e.delivery.stats.retries >= 3)  # nobody listens on the port
    assert "event delivery failed camera=cam key=ev0:0" in caplog.text
    assert e.outbox.depth().queued == 20
    async with serving(api, port):
        await until(lambda: e.outbox.depth().queued == 0)
    assert api.keys() == [f"ev{i}:0" for i in range(20)]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_are_retried_with_the_same_key(
    edge: tuple[Edge, FakeApi, int], status: int
) -> None:
    e, api, port = edge
    headers = {"Retry-After": "0"} if status == 429 else None
    api.failures = [lambda b: JSONResponse({"error": {"message": "busy"}}, status, headers)] * 3
    async with serving(api, port):
        e.start()
        e.enqueue(message("a", 0, snapshot=b"\xff\xd8x"), message("a", 1))
        await until(lambda: e.outbox.depth().queued == 0)
    assert api.keys() == ["a:0", "a:0", "a:0", "a:0", "a:1"]
    assert api.attempts[0] == api.attempts[3], "byte for byte the same body"
    assert e.delivery.stats.retries == 3
    assert api.stored["a"]["seq"] == 1


async def test_a_lost_reply_is_harmless(edge: tuple[Edge, FakeApi, int]) -> None:
    e, api, port = edge

    def store_then_fail(body: dict[str, Any]) -> Response:
        api.apply(body)  # the server stored it, then the reply was lost
        return Response("bad gateway", 502)

    api.failures = [store_then_fail]
    async with serving(api, port):
        e.start()
        e.enqueue(message("a", 0))
        await until(lambda: e.outbox.depth().queued == 0)
    assert api.keys() == ["a:0", "a:0"]
    assert (e.delivery.stats.delivered, e.delivery.stats.duplicates) == (0, 1)


async def test_a_malformed_message_is_dead_lettered_and_the_next_goes(
    edge: tuple[Edge, FakeApi, int], caplog: pytest.LogCaptureFixture
) -> None:
    e, api, port = edge
    error = {"error": {"code": "validation", "message": "box: x0 must be below x1"}}
    api.failures = [lambda b: JSONResponse(error, 422)]
    with caplog.at_level(logging.ERROR, "edge.delivery"):
        async with serving(api, port):
            e.start()
            e.enqueue(message("bad", 0), message("good", 0))
            await until(lambda: e.outbox.depth().queued == 0)
    assert api.keys() == ["bad:0", "good:0"]
    assert e.outbox.depth().dead == 1
    (dead,) = e.outbox.dead_rows()
    assert dead[0] == "bad:0"
    assert dead[1] == 422
    assert "x0 must be below x1" in dead[2]
    assert "event refused camera=cam key=bad:0 status=422" in caplog.text


async def test_too_large_is_retried_without_the_snapshot(edge: tuple[Edge, FakeApi, int]) -> None:
    e, api, port = edge
    api.failures = [lambda b: JSONResponse({"error": {"message": "too large"}}, 413)]
    async with serving(api, port):
        e.start()
        e.enqueue(message("a", 0, snapshot=b"\xff\xd8" + bytes(5000)))
        await until(lambda: e.outbox.depth().queued == 0)
    assert [b["snapshot"] is None for b in api.attempts] == [False, True]
    assert api.stored["a"]["seq"] == 0


async def test_a_revoked_credential_pauses_delivery_until_it_works_again(
    edge: tuple[Edge, FakeApi, int], caplog: pytest.LogCaptureFixture
) -> None:
    e, api, port = edge
    api.credential = "someone else"
    with caplog.at_level(logging.INFO, "edge.delivery"):
        async with serving(api, port):
            e.start()
            e.enqueue(message("a", 0))
            await until(lambda: e.delivery.stats.paused)
            await asyncio.sleep(0.5)
            assert e.outbox.depth().queued == 1, "the row waits"
            assert caplog.text.count("event delivery paused") == 1, "said once"
            api.credential = CREDENTIAL  # re-enrolled with the same credential file
            await until(lambda: e.outbox.depth().queued == 0)
    assert "re-enroll the camera" in caplog.text
    assert "event delivery resumed camera=cam" in caplog.text
    assert not e.delivery.stats.paused
    assert api.keys() == ["a:0"]
