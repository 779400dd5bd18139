"""app/api/media.py: MJPEG tickets, snapshots, the edge's control websocket, and the MJPEG
stream itself over a real uvicorn server."""

from __future__ import annotations

import asyncio
import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect

from app.media import MJPEG_CONTENT_TYPE
from app.settings import Settings
from scripts.mjpeg import MultipartParser, Part, boundary_of
from tests.app.helpers import FakeClock, assert_error, create_camera, enrolled_edge, serve

JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 100 + b"\xff\xd9"


def ticket(client: TestClient, admin: dict[str, str], camera_id: str = "door") -> str:
    response = client.post(f"/api/cameras/{camera_id}/mjpeg-ticket", headers=admin)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def close_code(ws: WebSocketTestSession) -> int:
    """Read (and skip demand messages) until the server closes; the close code."""
    for _ in range(100):
        try:
            ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
    raise AssertionError("the server never closed the socket")


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- tickets and stream auth ---------------------------------------------------------


def test_ticket_is_short_lived_and_names_the_stream(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    create_camera(client, admin)
    response = client.post("/api/cameras/door/mjpeg-ticket", headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    assert body["url"].startswith("/api/cameras/door/mjpeg?ticket=v1.")
    assert body["expires_at"] == (clock.now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert admin["Authorization"].split()[1] not in body["url"]


def test_ticket_needs_the_admin_key_and_a_camera(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    edge = enrolled_edge(client, admin, "yard")
    assert_error(client.post("/api/cameras/door/mjpeg-ticket"), 401, "not_authenticated")
    assert_error(
        client.post("/api/cameras/door/mjpeg-ticket", headers=edge), 401, "invalid_admin_key"
    )
    assert_error(
        client.post("/api/cameras/nope/mjpeg-ticket", headers=admin), 404, "camera_not_found"
    )


def test_stream_refuses_bad_expired_and_foreign_tickets(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    create_camera(client, admin, "door")
    create_camera(client, admin, "yard")
    door = ticket(client, admin, "door")
    value = door.split("ticket=")[1]
    for url in (
        "/api/cameras/door/mjpeg?ticket=v1.1.nonsense",
        f"/api/cameras/yard/mjpeg?ticket={value}",  # another camera's ticket
    ):
        message = assert_error(client.get(url), 401, "invalid_ticket")
        assert "mjpeg-ticket" in message
    clock.advance(61)
    assert_error(client.get(door), 401, "invalid_ticket")
    # Neither a ticket nor the header.
    assert_error(client.get("/api/cameras/door/mjpeg"), 401, "not_authenticated")
    assert_error(client.get("/api/cameras/nope/mjpeg", headers=admin), 404, "camera_not_found")
    # A valid ticket for a camera deleted since.
    fresh = ticket(client, admin, "yard")
    assert client.delete("/api/cameras/yard", headers=admin).status_code == 204
    assert_error(client.get(fresh), 404, "camera_not_found")


# --- the edge's websocket, snapshots, heartbeat demand ---------------------------------


def test_edge_socket_refuses_a_bad_credential_with_401(
    client: TestClient, admin: dict[str, str]
) -> None:
    create_camera(client, admin)
    for headers in ({}, {"Authorization": "Bearer lce_nope"}, admin):
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/api/edge/ws", headers=headers),
        ):
            pass
        assert refused.value.status_code == 401
        assert refused.value.json()["error"]["code"] == "invalid_edge_credential"


def test_snapshot_asks_the_edge_and_serves_its_jpeg(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    edge = enrolled_edge(client, admin)
    assert client.get("/api/cameras", headers=admin).json()[0]["last_snapshot_at"] is None
    with client.websocket_connect("/api/edge/ws", headers=edge) as ws:
        assert ws.receive_json() == {"type": "zones", "zones": []}  # zones come first
        assert ws.receive_json() == {"type": "jpeg", "want": False, "fps": 5.0, "max_width": 640}
        beat = client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
        assert beat.json()["mjpeg_wanted"] is False
        snapshot: dict[str, httpx.Response] = {}
        asking = threading.Thread(
            target=lambda: snapshot.update(
                r=client.get("/api/cameras/door/snapshot.jpg", headers=admin)
            )
        )
        asking.start()
        # The snapshot request turns the demand on; the edge answers with a JPEG.
        assert ws.receive_json()["want"] is True
        ws.send_bytes(JPEG)
        asking.join(10)
        response = snapshot["r"]
        assert response.status_code == 200
        assert response.content == JPEG
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "no-store"
        assert float(response.headers["x-snapshot-age"]) < 5
        assert email.utils.parsedate_to_datetime(response.headers["last-modified"]).tzinfo
        # Still within the snapshot window: the heartbeat reply says so too.
        beat = client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
        assert beat.json()["mjpeg_wanted"] is True
    assert client.get("/api/cameras/door", headers=admin).json()["last_snapshot_at"]
    # The edge is gone: the stored picture is served as it is.
    again = client.get("/api/cameras/door/snapshot.jpg", headers=admin)
    assert again.content == JPEG
    stored = settings.data_dir / "snapshots" / "door.jpg"
    wait_for(lambda: stored.exists() and stored.read_bytes() == JPEG)


def test_snapshot_needs_the_admin_key(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    assert_error(client.get("/api/cameras/door/snapshot.jpg"), 401, "not_authenticated")
    assert_error(
        client.get("/api/cameras/door/snapshot.jpg", headers=edge), 401, "invalid_admin_key"
    )
    assert_error(
        client.get("/api/cameras/nope/snapshot.jpg", headers=admin), 404, "camera_not_found"
    )
    # No edge has ever sent a picture.
    message = assert_error(
        client.get("/api/cameras/door/snapshot.jpg", headers=admin), 404, "no_snapshot"
    )
    assert "door" in message


def test_revoking_credentials_closes_the_edge_socket(
    client: TestClient, admin: dict[str, str]
) -> None:
    edge = enrolled_edge(client, admin)
    with client.websocket_connect("/api/edge/ws", headers=edge) as ws:
        ws.receive_json()
        assert client.delete("/api/cameras/door/credentials", headers=admin).status_code == 200
        assert close_code(ws) == 4401


def test_deleting_a_camera_closes_its_socket_and_forgets_its_picture(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    edge = enrolled_edge(client, admin)
    stored = settings.data_dir / "snapshots" / "door.jpg"
    with client.websocket_connect("/api/edge/ws", headers=edge) as ws:
        ws.receive_json()
        ws.send_bytes(JPEG)
        assert client.get("/api/cameras/door/snapshot.jpg", headers=admin).content == JPEG
        wait_for(stored.exists)
        assert client.delete("/api/cameras/door", headers=admin).status_code == 204
        assert close_code(ws) == 4401
    assert not stored.exists()


HEARTBEAT: dict[str, Any] = {"publisher_state": "publishing", "jpeg_frames_sent": 3}


# --- the stream, over a real server ------------------------------------------------------


@pytest.fixture
def live_api(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a loopback port (TestClient cannot stream forever)."""
    with serve(app) as url:
        yield url


def enroll_over_http(base: str, admin: dict[str, str]) -> dict[str, str]:
    with httpx.Client(base_url=base, headers=admin) as http:
        created = http.post("/api/cameras", json={"id": "door", "name": "Door"}).json()
        code = created["enrollment"]["code"]
        credential = http.post("/api/edge/enroll", json={"code": code}).json()["credential"]
    return {"Authorization": f"Bearer {credential}"}


async def test_mjpeg_stream_carries_each_jpeg_as_a_part(
    live_api: str, admin: dict[str, str]
) -> None:
    edge = enroll_over_http(live_api, admin)
    ws_url = live_api.replace("http://", "ws://") + "/api/edge/ws"
    async with (
        connect(ws_url, additional_headers=edge) as edge_ws,
        httpx.AsyncClient(base_url=live_api, timeout=10) as http,
    ):
        assert json.loads(await edge_ws.recv())["type"] == "zones"  # zones come first
        assert json.loads(await edge_ws.recv())["want"] is False
        url = (await http.post("/api/cameras/door/mjpeg-ticket", headers=admin)).json()["url"]
        arrived: asyncio.Queue[Part] = asyncio.Queue()
        headers: dict[str, str] = {}

        async def view() -> None:
            async with http.stream("GET", url) as response:
                headers.update(response.headers)
                parser = MultipartParser(boundary_of(response.headers["content-type"]))
                async for chunk in response.aiter_raw():
                    for part in parser.feed(chunk):
                        await arrived.put(part)

        viewer = asyncio.create_task(view())
        assert json.loads(await asyncio.wait_for(edge_ws.recv(), 10)) == {
            "type": "jpeg",
            "want": True,
            "fps": 5.0,
            "max_width": 640,
        }
        for n in range(3):
            body = JPEG + bytes([n])
            await edge_ws.send(body)
            part = await asyncio.wait_for(arrived.get(), 10)
            assert part.body == body
            assert part.headers["content-type"] == "image/jpeg"
            assert int(part.headers["content-length"]) == len(body)
        assert headers["content-type"] == MJPEG_CONTENT_TYPE
        assert headers["cache-control"] == "no-store"
        viewer.cancel()
        # The last viewer left: the edge is told to stop.
        assert json.loads(await asyncio.wait_for(edge_ws.recv(), 10))["want"] is False
        # Scripts may use the header instead of a ticket.
        async with http.stream("GET", "/api/cameras/door/mjpeg", headers=admin) as response:
            assert response.status_code == 200
            assert json.loads(await asyncio.wait_for(edge_ws.recv(), 10))["want"] is True
