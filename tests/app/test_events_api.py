"""GET /api/events (filters, cursor pagination), one event, its snapshot, per-day
counts, deletion with the camera, and retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.events import EventPruner, decode_cursor, encode_cursor
from app.tickets import issue_event_snapshot_ticket
from tests.app.event_helpers import T0, FakeRoomData, iso, jpeg, message
from tests.app.helpers import FakeClock, assert_error, enrolled_edge


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    app.state.room_data = FakeRoomData()
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def edges(client: TestClient, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    return {cam: enrolled_edge(client, admin, cam) for cam in ("door", "yard")}


def post(client: TestClient, edge: dict[str, str], body: dict[str, Any]) -> str:
    response = client.post("/api/edge/events", json=body, headers=edge)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stored"
    event_id: str = body["event_id"]
    return event_id


def get(client: TestClient, admin: dict[str, str], url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, headers=admin, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(client: TestClient, admin: dict[str, str], **params: Any) -> list[str]:
    return [e["id"] for e in get(client, admin, "/api/events", **params)["events"]]


# --- pagination --------------------------------------------------------------------------


def test_pages_cover_every_event_once_even_with_inserts_between_pages(
    client: TestClient, admin: dict[str, str], edges: dict[str, dict[str, str]]
) -> None:
    door = edges["door"]
    original = []
    for i in range(23):
        # Pairs share a start time: the id breaks the tie.
        original.append(post(client, door, message(started=T0 + timedelta(seconds=i // 2))))
    seen: list[str] = []
    cursor = None
    newer = older = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = get(client, admin, "/api/events", **params)
        seen += [e["id"] for e in page["events"]]
        starts = [e["started_at"] for e in page["events"]]
        assert starts == sorted(starts, reverse=True)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Meanwhile: a new event (newer than every page) and a late one from long ago.
        post(client, door, message(started=T0 + timedelta(hours=1, seconds=newer)))
        post(client, door, message(started=T0 - timedelta(days=1, seconds=older)))
        newer += 1
        older += 1
    assert len(seen) == len(set(seen)), "an event showed up twice"
    assert set(original) <= set(seen), "an event was skipped"
    # The late, older events land after the cursor and are listed; the newer ones not.
    assert len(seen) == 23 + older
    assert get(client, admin, "/api/events", limit=200)["next_cursor"] is None


def test_limit_and_cursor_are_validated(client: TestClient, admin: dict[str, str]) -> None:
    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "x"}):
        assert_error(client.get("/api/events", params=bad, headers=admin), 422, "validation_error")
    for cursor in ("nonsense", encode_cursor(T0, "x")[:-3] + "!!!", "W10"):
        response = client.get("/api/events", params={"cursor": cursor}, headers=admin)
        assert_error(response, 422, "invalid_cursor")
    assert decode_cursor(encode_cursor(T0, "abc")) == (T0, "abc")


# --- filters -----------------------------------------------------------------------------


def test_filters(
    client: TestClient, admin: dict[str, str], edges: dict[str, dict[str, str]]
) -> None:
    door, yard = edges["door"], edges["yard"]
    person = post(client, door, message(zones=["Driveway"]))
    car = post(client, door, message(label="vehicle", obj="car", started=T0 + timedelta(hours=1)))
    dog_id = str(uuid.uuid4())
    dog_start = T0 + timedelta(hours=2)
    post(client, yard, message(dog_id, label="pet", obj="dog", started=dog_start))
    post(
        client,
        yard,
        message(dog_id, 1, "end", label="pet", obj="dog", zones=["Lawn"], started=dog_start),
    )
    motion = post(client, yard, message(label="motion", started=T0 + timedelta(hours=3)))

    assert ids(client, admin) == [motion, dog_id, car, person]
    assert ids(client, admin, camera="door") == [car, person]
    assert set(ids(client, admin, camera=["door", "yard"])) == {motion, dog_id, car, person}
    assert ids(client, admin, label="pet") == [dog_id]
    assert ids(client, admin, label=["person", "vehicle"]) == [car, person]
    assert ids(client, admin, zone="Driveway") == [person]
    assert ids(client, admin, zone="Lawn") == [dog_id]
    assert ids(client, admin, zone="Nowhere") == []
    assert ids(client, admin, since=iso(T0 + timedelta(hours=1))) == [motion, dog_id, car]
    assert ids(client, admin, until=iso(T0 + timedelta(hours=1))) == [person]
    assert ids(client, admin, active="false") == [dog_id]
    assert ids(client, admin, active="true") == [motion, car, person]
    assert ids(client, admin, camera="yard", label="motion") == [motion]

    event = get(client, admin, f"/api/events/{dog_id}")
    assert event["label"] == "pet"
    assert event["object"] == "dog"
    assert event["camera_name"] == "Front door"  # enrolled_edge's default name
    assert event["active"] is False
    assert_error(client.get("/api/events/nope", headers=admin), 404, "event_not_found")

    for bad in (
        {"label": "alien"},
        {"since": "2030-01-02T03:00:00"},  # no time zone
        {"since": "soon"},
        {"active": "maybe"},
        {"since": iso(T0), "until": iso(T0)},
    ):
        response = client.get("/api/events", params=bad, headers=admin)
        assert_error(response, 422, "validation_error")


def test_events_are_admin_only(client: TestClient, edges: dict[str, dict[str, str]]) -> None:
    assert_error(client.get("/api/events"), 401, "not_authenticated")
    assert_error(client.get("/api/events", headers=edges["door"]), 401, "invalid_admin_key")
    assert_error(client.get("/api/events/days"), 401, "not_authenticated")
    assert_error(client.post("/api/events/stream-ticket"), 401, "not_authenticated")


def test_days_count_per_local_day_and_label(
    client: TestClient, admin: dict[str, str], edges: dict[str, dict[str, str]], clock: FakeClock
) -> None:
    door = edges["door"]
    # 23:30 UTC on Jan 1 is 00:30 on Jan 2 in Berlin.
    late = T0.replace(day=1, hour=23, minute=30)
    post(client, door, message(started=late))
    post(client, door, message(started=late, label="vehicle", obj="car"))
    post(client, door, message(started=T0))
    clock.now = T0 + timedelta(days=1)
    utc = get(client, admin, "/api/events/days")
    assert utc == {
        "tz": "UTC",
        "days": [
            {"date": "2030-01-02", "total": 1, "labels": {"person": 1}},
            {"date": "2030-01-01", "total": 2, "labels": {"person": 1, "vehicle": 1}},
        ],
    }
    berlin = get(client, admin, "/api/events/days", tz="Europe/Berlin")
    assert berlin["days"] == [
        {"date": "2030-01-02", "total": 3, "labels": {"person": 2, "vehicle": 1}}
    ]
    only_cars = get(client, admin, "/api/events/days", label="vehicle", camera="door")
    assert [d["total"] for d in only_cars["days"]] == [1]
    response = client.get("/api/events/days", params={"tz": "Mars/Olympus"}, headers=admin)
    assert "IANA" in assert_error(response, 422, "validation_error")


# --- snapshots ---------------------------------------------------------------------------


def test_snapshot_has_validators_and_a_json_404(
    client: TestClient, admin: dict[str, str], edges: dict[str, dict[str, str]], app: FastAPI
) -> None:
    door = edges["door"]
    picture = jpeg()
    with_snapshot = post(client, door, message(snapshot=picture))
    without = post(client, door, message())
    url = f"/api/events/{with_snapshot}/snapshot.jpg"
    response = client.get(url, headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == picture
    etag = response.headers["etag"]
    assert response.headers["last-modified"].endswith("GMT")
    again = client.get(url, headers={**admin, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    changed = client.get(url, headers={**admin, "If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert "has no snapshot" in assert_error(
        client.get(f"/api/events/{without}/snapshot.jpg", headers=admin), 404, "no_snapshot"
    )
    assert_error(client.get("/api/events/nope/snapshot.jpg", headers=admin), 404, "event_not_found")
    assert_error(client.get(url), 401, "not_authenticated")
    # A push notification's ticket opens this event's snapshot, and no other.
    ticket = issue_event_snapshot_ticket(app.state.tickets, with_snapshot, app.state.clock())
    assert client.get(url, params={"ticket": ticket.value}).content == picture
    other = f"/api/events/{without}/snapshot.jpg"
    assert_error(client.get(other, params={"ticket": ticket.value}), 401, "invalid_ticket")
    mjpeg_ticket = app.state.tickets.issue(with_snapshot, app.state.clock())
    assert_error(client.get(url, params={"ticket": mjpeg_ticket.value}), 401, "invalid_ticket")


def test_deleting_a_camera_deletes_its_events_and_files(
    client: TestClient, admin: dict[str, str], edges: dict[str, dict[str, str]], app: FastAPI
) -> None:
    door_event = post(client, edges["door"], message(snapshot=jpeg(), zones=["Driveway"]))
    yard_event = post(client, edges["yard"], message(snapshot=jpeg()))
    root = app.state.settings.data_dir / "events"
    assert (root / "door").is_dir()
    assert client.delete("/api/cameras/door", headers=admin).status_code == 204
    assert not (root / "door").exists()
    assert ids(client, admin) == [yard_event]
    assert_error(client.get(f"/api/events/{door_event}", headers=admin), 404, "event_not_found")
    assert ids(client, admin, zone="Driveway") == []
    assert len(list((root / "yard").rglob("*.jpg"))) == 1


# --- retention ---------------------------------------------------------------------------


def test_retention_prunes_old_events_and_their_files(
    client: TestClient,
    admin: dict[str, str],
    edges: dict[str, dict[str, str]],
    app: FastAPI,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    door = edges["door"]
    root = app.state.settings.data_dir / "events" / "door"
    old = [
        post(client, door, message(started=T0 - timedelta(days=40 - i), snapshot=jpeg()))
        for i in range(3)
    ]
    fresh = post(client, door, message(started=T0 - timedelta(days=2), snapshot=jpeg()))
    no_picture = post(client, door, message(started=T0 - timedelta(days=31)))
    stray = root / "2029-10-01" / "left-behind.jpg"  # a file no row points at any more
    stray.parent.mkdir(parents=True)
    stray.write_bytes(jpeg())
    assert len(list(root.rglob("*.jpg"))) == 5
    clock.now = T0
    pruner: EventPruner = app.state.event_pruner
    assert pruner.retention == timedelta(days=30)
    with caplog.at_level("INFO", logger="app.events"):
        result = asyncio.run(pruner.prune_now())
    assert result.events == 4  # three old ones and the one without a picture
    assert result.files == 4  # their three files and the stray one
    assert ids(client, admin, limit=200) == [fresh]
    assert [p.name for p in root.rglob("*.jpg")] == [f"{fresh}.jpg"]
    assert not stray.parent.exists()
    pruned = [r for r in caplog.records if r.getMessage() == "old events pruned"]
    assert len(pruned) == 1
    assert pruned[0].__dict__["events"] == 4
    assert_error(client.get(f"/api/events/{no_picture}", headers=admin), 404, "event_not_found")
    assert all(client.get(f"/api/events/{o}", headers=admin).status_code == 404 for o in old)
    # A second pass finds nothing.
    assert asyncio.run(pruner.prune_now()).events == 0
