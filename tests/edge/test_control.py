"""edge.control: the control websocket, against a real websockets server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from edge.analysis import AnalysisStage
from edge.backoff import Backoff
from edge.control import REFUSED_RETRY_S, ControlChannel
from edge.detect.zones import ZoneState
from edge.jpeg import JpegTap

JPEG = b"\xff\xd8\xff\xe0fake jpeg\xff\xd9"


class Hub:
    """The server side: records connections and what the edge sent."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.headers: list[Headers] = []
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.refuse_with: int | None = None
        self.close_with: int | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        self.headers.append(ws.request.headers if ws.request else Headers())
        if self.close_with is not None:
            await ws.close(self.close_with, "credential revoked")
            return
        self.connected.set()
        with contextlib.suppress(Exception):
            async for message in ws:
                if isinstance(message, bytes):
                    await self.received.put(message)

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.refuse_with is not None:
            self.headers.append(request.headers)
            return ws.respond(self.refuse_with, "no\n")
        return None

    async def demand(self, **message: Any) -> None:
        ws = self.connections[-1]
        await ws.send(json.dumps({"type": "jpeg", **message}))


@contextlib.asynccontextmanager
async def running(hub: Hub, port: int = 0) -> AsyncIterator[Server]:
    async with serve(hub.handler, "127.0.0.1", port, process_request=hub.process_request) as srv:
        yield srv


def port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def make_channel(
    port: int, on_zones: Callable[[dict[str, Any]], object] | None = None
) -> tuple[ControlChannel, JpegTap]:
    tap = JpegTap(AnalysisStage("cam", decode=True), lambda jpeg, t: None)
    channel = ControlChannel(
        "cam",
        f"ws://127.0.0.1:{port}/api/edge/ws",
        {"Authorization": "Bearer lce_secret"},
        tap,
        backoff=Backoff(first=0.05, cap=0.2),
        on_zones=on_zones,
    )
    return channel, tap


@contextlib.asynccontextmanager
async def channel_running(channel: ControlChannel) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(channel.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def offer_until_received(channel: ControlChannel, hub: Hub, data: bytes) -> bytes:
    """Offer JPEGs (as the tap's worker would) until the server has one."""

    async def offer() -> None:
        while True:
            await asyncio.to_thread(channel.offer_jpeg, data, 0)
            await asyncio.sleep(0.02)

    offering = asyncio.create_task(offer())
    try:
        return await asyncio.wait_for(hub.received.get(), 10)
    finally:
        offering.cancel()


async def test_demand_switches_the_tap_and_jpegs_go_out_as_binary() -> None:
    hub = Hub()
    async with running(hub) as server:
        channel, tap = make_channel(port_of(server))
        async with channel_running(channel):
            await asyncio.wait_for(hub.connected.wait(), 10)
            assert hub.headers[0]["Authorization"] == "Bearer lce_secret"
            channel.offer_jpeg(JPEG, 0)  # nobody asked yet: it still goes, nothing is lost
            await hub.demand(want=True, fps=2, max_width=320)
            await until(lambda: tap.wanted)
            assert (tap.fps, tap.max_width) == (2, 320)
            assert await offer_until_received(channel, hub, JPEG) == JPEG
            assert channel.stats.jpeg_frames_sent >= 1
            await hub.demand(want=False)
            await until(lambda: not tap.wanted)
            await hub.demand(want=True, fps="fast", max_width=-1)  # junk values are ignored
            await until(lambda: tap.wanted)
            assert (tap.fps, tap.max_width) == (2, 320)
        assert not tap.wanted, "stopping the link stops the JPEGs"


async def test_zones_messages_reach_the_zone_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub()
    zones = ZoneState("cam", tmp_path / "zones.json")
    mask = {"id": "m", "kind": "mask", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}
    driveway = {
        "id": "z",
        "name": "Driveway",
        "kind": "zone",
        "labels": ["vehicle"],
        "points": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
    }
    async with running(hub) as server:
        channel, _ = make_channel(port_of(server), on_zones=zones.update)
        async with channel_running(channel):
            await asyncio.wait_for(hub.connected.wait(), 10)
            ws = hub.connections[-1]
            await ws.send(json.dumps({"type": "zones", "zones": [mask, driveway]}))
            await until(lambda: len(zones.current.masks) == 1)
            assert [z.name for z in zones.current.zones] == ["Driveway"]
            with caplog.at_level(logging.WARNING, "edge.zones"):
                await ws.send(
                    json.dumps({"type": "zones", "zones": [{**mask, "points": [[0, 0]]}]})
                )
                await until(lambda: zones.rejected == 1)
            assert "zones message rejected camera=cam" in caplog.text
            assert len(zones.current.masks) == 1, "a bad message keeps the previous zones"
            await ws.send(json.dumps({"type": "zones", "zones": []}))
            await until(lambda: not zones.current.masks)
            assert channel.stats.zones_messages == 3


async def test_reconnects_after_the_server_restarts_and_makes_no_jpegs_meanwhile() -> None:
    hub = Hub()
    async with running(hub) as server:
        port = port_of(server)
        channel, tap = make_channel(port)
        async with channel_running(channel):
            await asyncio.wait_for(hub.connected.wait(), 10)
            await hub.demand(want=True)
            await until(lambda: tap.wanted)
            server.close()
            await server.wait_closed()
            await until(lambda: not channel.connected)
            assert not tap.wanted
            sent_before = channel.stats.jpeg_frames_sent
            channel.offer_jpeg(JPEG, 0)
            assert channel.stats.jpeg_frames_sent == sent_before
            assert channel.stats.jpeg_frames_dropped >= 1

            hub.connected.clear()
            async with running(hub, port):
                await asyncio.wait_for(hub.connected.wait(), 10)
                await until(lambda: channel.connected)
                assert channel.stats.connects == 2
                await hub.demand(want=True)
                await until(lambda: tap.wanted)
                assert await offer_until_received(channel, hub, JPEG) == JPEG


@pytest.mark.parametrize("how", ["http-401", "close-4401"])
async def test_a_refused_credential_is_logged_and_not_hammered(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub()
    if how == "http-401":
        hub.refuse_with = 401
    else:
        hub.close_with = 4401
    caplog.set_level(logging.INFO, logger="edge.control")
    async with running(hub) as server:
        channel, tap = make_channel(port_of(server))
        async with channel_running(channel):
            await until(lambda: channel.retry_in_s is not None)
            # A minute until the next try, not the backoff's 50 ms.
            assert channel.retry_in_s == REFUSED_RETRY_S
            assert "control link refused camera=cam" in caplog.text
            assert len(hub.headers) == 1
        assert not tap.wanted
