"""GET/PUT /api/cameras/{id}/zones, validation, and the zones message on the edge's
control websocket (first thing on connect, and on every change)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from app.zones import normalise_zones, self_intersection
from tests.app.event_helpers import FakeRoomData
from tests.app.helpers import FakeClock, assert_error, create_camera, enrolled_edge, serve

SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
TRIANGLE = [[0.6, 0.6], [0.9, 0.6], [0.75, 0.9]]


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    app.state.room_data = FakeRoomData()
    with TestClient(app) as test_client:
        yield test_client


def zones_body() -> dict[str, Any]:
    return {
        "zones": [
            {"id": "drive", "name": "Driveway", "kind": "zone", "points": SQUARE,
             "labels": ["vehicle", "person", "person"]},
            {"name": "Street", "kind": "zone", "points": TRIANGLE},
            {"name": "Neighbour's window", "kind": "mask",
             "points": [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]},
        ]
    }  # fmt: skip


EXPECTED = [
    {
        "id": "drive",
        "name": "Driveway",
        "kind": "zone",
        "points": SQUARE,
        "labels": ["person", "vehicle"],
    },
    {"id": "z1", "name": "Street", "kind": "zone", "points": TRIANGLE, "labels": []},
    {
        "id": "z2",
        "name": "Neighbour's window",
        "kind": "mask",
        "points": [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]],
    },
]


def test_zones_round_trip(client: TestClient, admin: dict[str, str], clock: FakeClock) -> None:
    create_camera(client, admin)
    empty = client.get("/api/cameras/door/zones", headers=admin)
    assert empty.json() == {"camera_id": "door", "zones": [], "updated_at": None}
    put = client.put("/api/cameras/door/zones", json=zones_body(), headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["zones"] == EXPECTED
    assert put.json()["updated_at"] == "2030-01-02T03:04:05Z"
    got = client.get("/api/cameras/door/zones", headers=admin).json()
    assert got["zones"] == EXPECTED
    assert "labels" not in got["zones"][2]  # masks have none
    # Replacing with an empty list clears them.
    cleared = client.put("/api/cameras/door/zones", json={"zones": []}, headers=admin)
    assert cleared.json()["zones"] == []
    assert client.get("/api/cameras/door/zones", headers=admin).json()["zones"] == []


def _invalid_bodies() -> list[tuple[str, Any]]:
    zone = {"name": "A", "kind": "zone", "points": SQUARE}
    bowtie = [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]
    return [
        ("outside", [{**zone, "points": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}]),
        ("negative", [{**zone, "points": [[-0.1, 0.1], [0.2, 0.1], [0.5, 0.5]]}]),
        ("two points", [{**zone, "points": [[0.1, 0.1], [0.2, 0.2]]}]),
        ("65 points", [{**zone, "points": [[i / 100, (i % 2) / 2] for i in range(65)]}]),
        ("line", [{**zone, "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}]),
        ("bow tie", [{**zone, "points": bowtie}]),
        ("same name", [zone, {**zone, "points": TRIANGLE}]),
        ("same name, other case", [zone, {**zone, "name": "a", "points": TRIANGLE}]),
        ("same id", [{**zone, "id": "x"}, {**zone, "name": "B", "id": "x"}]),
        ("bad id", [{**zone, "id": "no spaces"}]),
        ("mask labels", [{**zone, "kind": "mask", "labels": ["person"]}]),
        ("label", [{**zone, "labels": ["alien"]}]),
        ("kind", [{**zone, "kind": "fence"}]),
        ("empty name", [{**zone, "name": "  "}]),
        ("extra key", [{**zone, "colour": "red"}]),
        ("33 polygons", [{**zone, "name": f"z{i}"} for i in range(33)]),
        ("not a point", [{**zone, "points": [[0.1], [0.2, 0.2], [0.3, 0.1]]}]),
    ]


@pytest.mark.parametrize(("case", "zones"), _invalid_bodies())
def test_invalid_zones_are_refused_and_change_nothing(
    client: TestClient, admin: dict[str, str], case: str, zones: Any
) -> None:
    create_camera(client, admin)
    assert (
        client.put("/api/cameras/door/zones", json=zones_body(), headers=admin).status_code == 200
    )
    response = client.put("/api/cameras/door/zones", json={"zones": zones}, headers=admin)
    assert response.status_code == 422, (case, response.text)
    assert response.json()["error"]["code"] in ("validation_error", "invalid_zones")
    assert client.get("/api/cameras/door/zones", headers=admin).json()["zones"] == EXPECTED


def test_zone_errors_say_which_polygon_and_why(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    bowtie = [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]
    body = {"zones": [{"name": "Gate", "kind": "zone", "points": SQUARE},
                      {"name": "Bow", "kind": "zone", "points": bowtie}]}  # fmt: skip
    message = assert_error(
        client.put("/api/cameras/door/zones", json=body, headers=admin), 422, "invalid_zones"
    )
    assert "zones[1] ('Bow')" in message
    assert "cross" in message


def test_self_intersection() -> None:
    assert self_intersection([(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5)]) is None
    assert self_intersection([(0.1, 0.1), (0.5, 0.5), (0.5, 0.1), (0.1, 0.5)]) == (0, 2)
    # A concave (but simple) outline is fine.
    arrow = [(0.1, 0.1), (0.9, 0.5), (0.1, 0.9), (0.4, 0.5)]
    assert self_intersection(arrow) is None
    # A point visited twice makes two non-neighbouring edges touch.
    assert self_intersection([(0, 0), (0.5, 0), (0.5, 0.5), (0, 0), (0, 0.5), (0.2, 0.7)])
    assert normalise_zones([]) == []


def test_zones_need_admin_and_a_camera(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    assert_error(client.get("/api/cameras/door/zones"), 401, "not_authenticated")
    assert_error(
        client.put("/api/cameras/door/zones", json={"zones": []}, headers=edge),
        401,
        "invalid_admin_key",
    )
    assert_error(
        client.put("/api/cameras/nope/zones", json={"zones": []}, headers=admin),
        404,
        "camera_not_found",
    )
    assert_error(client.get("/api/cameras/nope/zones", headers=admin), 404, "camera_not_found")


def test_the_edge_gets_its_zones_first_on_connect(
    client: TestClient, admin: dict[str, str]
) -> None:
    edge = enrolled_edge(client, admin, "door")
    other = enrolled_edge(client, admin, "yard")
    client.put("/api/cameras/door/zones", json=zones_body(), headers=admin)
    with client.websocket_connect("/api/edge/ws", headers=edge) as ws:
        assert ws.receive_json() == {"type": "zones", "zones": EXPECTED}
        assert ws.receive_json()["type"] == "jpeg"
    with client.websocket_connect("/api/edge/ws", headers=other) as ws:
        assert ws.receive_json() == {"type": "zones", "zones": []}


async def test_a_change_reaches_the_connected_edge_at_once(
    app: FastAPI, admin: dict[str, str]
) -> None:
    app.state.room_data = FakeRoomData()
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=10) as http:
            door = (await http.post("/api/cameras", json={"id": "door", "name": "Door"})).json()
            yard = (await http.post("/api/cameras", json={"id": "yard", "name": "Yard"})).json()
            credentials = {}
            for cam in (door, yard):
                code = cam["enrollment"]["code"]
                response = await http.post("/api/edge/enroll", json={"code": code})
                credentials[cam["camera"]["id"]] = response.json()["credential"]
            ws_url = base.replace("http://", "ws://") + "/api/edge/ws"

            def headers(cam: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {credentials[cam]}"}

            async with (
                connect(ws_url, additional_headers=headers("door")) as door_ws,
                connect(ws_url, additional_headers=headers("yard")) as yard_ws,
            ):
                for ws in (door_ws, yard_ws):
                    assert json.loads(await ws.recv()) == {"type": "zones", "zones": []}
                    assert json.loads(await ws.recv())["type"] == "jpeg"
                response = await http.put("/api/cameras/door/zones", json=zones_body())
                assert response.status_code == 200
                got = json.loads(await asyncio.wait_for(door_ws.recv(), 10))
                assert got == {"type": "zones", "zones": EXPECTED}
                # The other camera's edge hears nothing.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(yard_ws.recv(), 0.5)
                await http.put("/api/cameras/door/zones", json={"zones": []})
                got = json.loads(await asyncio.wait_for(door_ws.recv(), 10))
                assert got == {"type": "zones", "zones": []}
