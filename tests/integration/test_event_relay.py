"""An event posted to the real API reaches a livekit.rtc participant in the camera's room
as a data message (topic livecam.event), through the real livekit-server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from livekit import rtc

from scripts.devstack import Stack, create_camera
from tests.app.event_helpers import jpeg, message
from tests.livestack import viewer_token

pytestmark = pytest.mark.live


async def test_a_posted_event_reaches_the_cameras_room(stack: Stack) -> None:
    camera_id, credential = create_camera(stack.api, "Relay camera")
    other_id, _ = create_camera(stack.api, "Other camera")
    edge = {"Authorization": f"Bearer {credential}"}
    token = viewer_token(stack, camera_id)
    other_token = viewer_token(stack, other_id)
    room, other_room = rtc.Room(), rtc.Room()
    received: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
    elsewhere: list[rtc.DataPacket] = []
    room.on("data_received", received.put_nowait)
    other_room.on("data_received", elsewhere.append)
    await room.connect(token["url"], token["token"])
    await other_room.connect(other_token["url"], other_token["token"])
    try:
        event_id = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=stack.api.url, timeout=10) as http:
            admin = {"Authorization": f"Bearer {stack.api.admin_key}"}
            started = time.monotonic()
            response = await http.post(
                "/api/edge/events",
                json=message(event_id, 0, zones=["Driveway"], snapshot=jpeg()),
                headers=edge,
            )
            assert response.json() == {"status": "stored", "event_id": event_id}
            packet = await asyncio.wait_for(received.get(), 20)
            latency_ms = (time.monotonic() - started) * 1000
            assert packet.topic == "livecam.event"
            assert packet.kind == rtc.DataPacketKind.KIND_RELIABLE
            payload = json.loads(packet.data.decode("utf-8"))
            stored = (await http.get(f"/api/events/{event_id}", headers=admin)).json()
            assert payload == stored
            assert payload["camera_id"] == camera_id
            assert payload["zones"] == ["Driveway"]
            assert payload["has_snapshot"] is True
            assert payload["active"] is True

            # The end follows; a duplicate of it is not relayed again.
            end = message(event_id, 1, "end")
            for _ in range(2):
                assert (await http.post("/api/edge/events", json=end, headers=edge)).is_success
            ended = json.loads((await asyncio.wait_for(received.get(), 20)).data)
            assert ended["active"] is False
            assert ended["version"] > payload["version"]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(received.get(), 1.0)
        assert elsewhere == []  # only the camera's own room hears of it
        print(f"event relay: post → data message in the room {latency_ms:.0f} ms")
    finally:
        await room.disconnect()
        await other_room.disconnect()


async def test_an_event_for_an_empty_room_is_stored_without_fuss(stack: Stack) -> None:
    """Nobody watching: LiveKit has no room; ingest is unaffected and nothing is logged
    as a failure."""
    _camera_id, credential = create_camera(stack.api, "Unwatched camera")
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=10) as http:
        event_id = str(uuid.uuid4())
        started = time.monotonic()
        response = await http.post(
            "/api/edge/events",
            json=message(event_id),
            headers={"Authorization": f"Bearer {credential}"},
        )
        assert response.json()["status"] == "stored"
        assert time.monotonic() - started < 5
        # Give the relay time to try, then read the API's log.
        await asyncio.sleep(1.0)
    log = stack.api.process.log_path.read_text()
    assert f"event={event_id}" in log  # the ingest line is there
    assert "could not relay events" not in log
