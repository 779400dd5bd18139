"""POST /api/edge/events: idempotency, order independence, concurrency, ownership,
validation, and what an applied change announces (bus, LiveKit room data)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from livekit.api import ServerError
from sqlalchemy import func, select

from app.db import make_engine, make_session_factory
from app.event_relay import RoomEventRelay
from app.event_snapshots import EventSnapshotStore
from app.eventbus import EventBus
from app.events import EventIngest
from app.models import Camera, Counter, Event, EventZone
from app.schemas import EventIn
from app.settings import Settings
from tests.app.event_helpers import T0, FakeRoomData, b64, jpeg, message
from tests.app.helpers import assert_error, enrolled_edge

EVENT_KEYS = {
    "id",
    "camera_id",
    "camera_name",
    "label",
    "object",
    "score",
    "box",
    "zones",
    "started_at",
    "updated_at",
    "ended_at",
    "active",
    "has_snapshot",
    "snapshot_url",
    "version",
    "clip",  # null until the edge uploads the event's clip (contract 5)
}


@pytest.fixture
def room_data(app: FastAPI) -> FakeRoomData:
    fake = FakeRoomData()
    app.state.room_data = fake
    return fake


@pytest.fixture
def client(app: FastAPI, room_data: FakeRoomData) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def edge(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    return enrolled_edge(client, admin, "door")


def post(client: TestClient, edge: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/edge/events", json=body, headers=edge)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def events_of(client: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/events", headers=admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


def snapshot_of(client: TestClient, admin: dict[str, str], event_id: str) -> bytes:
    response = client.get(f"/api/events/{event_id}/snapshot.jpg", headers=admin)
    assert response.status_code == 200, response.text
    content: bytes = response.content
    return content


# --- idempotency and order -------------------------------------------------------------


def test_a_message_is_stored_once_and_a_retry_is_a_duplicate(
    client: TestClient, admin: dict[str, str], edge: dict[str, str]
) -> None:
    body = message(seq=0, zones=["Driveway"], snapshot=jpeg())
    first = post(client, edge, body)
    assert first == {"status": "stored", "event_id": body["event_id"]}
    [event] = events_of(client, admin)
    assert set(event) == EVENT_KEYS
    assert event["camera_id"] == "door"
    assert event["camera_name"] == "Front door"
    assert event["label"] == "person"
    assert event["object"] == "person"
    assert event["zones"] == ["Driveway"]
    assert event["active"] is True
    assert event["ended_at"] is None
    assert event["has_snapshot"] is True
    assert event["snapshot_url"] == f"/api/events/{body['event_id']}/snapshot.jpg"
    assert event["started_at"] == "2030-01-02T03:00:00Z"
    for _ in range(3):
        assert post(client, edge, body) == {"status": "duplicate", "event_id": body["event_id"]}
    # Nothing changed, not even the change counter.
    assert events_of(client, admin) == [event]


def test_out_of_order_delivery_ends_in_the_newest_state(
    client: TestClient, admin: dict[str, str], edge: dict[str, str], app: FastAPI
) -> None:
    event_id = str(uuid.uuid4())
    low, high = jpeg(color=(10, 10, 10)), jpeg(color=(250, 250, 250))
    start = message(event_id, 0, "start", score=0.6, zones=["Gate"], snapshot=low)
    update = message(event_id, 1, "update", score=0.9, box=[0.3, 0.3, 0.5, 0.9], zones=["Lawn"])
    update["snapshot"] = b64(high)
    end = message(event_id, 2, "end", score=0.9, box=[0.5, 0.3, 0.7, 0.9], zones=["Lawn"])
    # Reversed: the end first, the start last (after a crash the edge resends them all).
    assert post(client, edge, end)["status"] == "stored"
    assert post(client, edge, update)["status"] == "stored"  # older, but a snapshot
    assert post(client, edge, start)["status"] == "stored"  # older, but a new zone
    [event] = events_of(client, admin)
    assert event["active"] is False
    assert event["ended_at"] == end["ended_at"]
    assert event["box"] == [0.5, 0.3, 0.7, 0.9]  # the newest message's box
    assert event["score"] == 0.9
    assert event["zones"] == ["Lawn", "Gate"]  # every zone it was seen in
    assert snapshot_of(client, admin, event_id) == high  # the highest-scoring snapshot
    # Everything again: all duplicates, nothing moves.
    for body in (start, update, end):
        assert post(client, edge, body)["status"] == "duplicate"
    assert events_of(client, admin) == [event]
    assert snapshot_of(client, admin, event_id) == high
    with app.state.session_factory() as session:
        row = session.get(Event, event_id)
        assert row is not None
        assert row.last_seq == 2
        assert row.snapshot_score == 0.9
        zones = set(session.scalars(select(EventZone.zone).where(EventZone.event_id == event_id)))
        assert zones == {"Gate", "Lawn"}


def test_a_better_snapshot_replaces_the_file_and_a_worse_one_is_ignored(
    client: TestClient, admin: dict[str, str], edge: dict[str, str], app: FastAPI
) -> None:
    event_id = str(uuid.uuid4())
    first, better, worse = jpeg(color=(1, 2, 3)), jpeg(color=(90, 90, 90)), jpeg(color=(9, 9, 9))
    post(client, edge, message(event_id, 0, score=0.5, snapshot=first))
    post(client, edge, message(event_id, 1, "update", score=0.7, snapshot=better))
    post(client, edge, message(event_id, 2, "update", score=0.6, snapshot=worse))
    assert snapshot_of(client, admin, event_id) == better
    files = list((app.state.settings.data_dir / "events").rglob("*.jpg"))
    assert [f.name for f in files] == [f"{event_id}.jpg"]
    assert files[0].parent.name == "2030-01-02"
    assert files[0].parent.parent.name == "door"


def test_two_deliveries_of_a_new_event_at_once_insert_it_once(
    settings: Settings, admin_key: str, tmp_path: Path
) -> None:
    """Two API processes' worth of ingest (each with its own lock) on one database."""
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            session.add(Camera(id="door", name="Door", created_at=T0, state="offline"))
            session.commit()
        store = EventSnapshotStore(tmp_path / "events")
        bus = EventBus()
        ingests = [EventIngest(factory, store, bus) for _ in range(4)]
        for round_ in range(5):
            event_id = str(uuid.uuid4())
            parsed = [
                EventIn.model_validate(message(event_id, seq, score=0.5 + seq / 10))
                for seq in (0, 0, 1, 1)
            ]
            barrier = threading.Barrier(4)

            def deliver(i: int, parsed: list[EventIn] = parsed, barrier: Any = barrier) -> str:
                barrier.wait()
                return ingests[i].apply("door", parsed[i], jpeg(), T0).status

            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(deliver, range(4)))
            # The newest message is applied exactly once; its twin is a duplicate; the
            # older pair adds at most one change (none when it came after the newer).
            assert sorted(statuses[2:]) == ["duplicate", "stored"], (round_, statuses)
            assert statuses[:2].count("stored") <= 1, (round_, statuses)
            with factory() as session:
                rows = session.scalars(select(Event).where(Event.id == event_id)).all()
                assert len(rows) == 1
                assert rows[0].last_seq == 1
                assert rows[0].best_score == 0.6
        with factory() as session:
            versions = session.scalars(select(Event.version)).all()
            assert len(versions) == len(set(versions)) == 5
            counter = session.get(Counter, "events")
            assert counter is not None
            assert counter.value >= max(versions)
    finally:
        engine.dispose()


def test_concurrent_http_deliveries_of_one_event(
    client: TestClient, admin: dict[str, str], edge: dict[str, str]
) -> None:
    event_id = str(uuid.uuid4())
    bodies = [message(event_id, seq % 3, score=0.5, snapshot=jpeg()) for seq in range(12)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda b: post(client, edge, b)["status"], bodies))
    assert results.count("stored") >= 1
    [event] = events_of(client, admin)
    assert event["id"] == event_id
    assert event["updated_at"] == "2030-01-02T03:00:02Z"  # seq 2's `at`


# --- ownership and auth -------------------------------------------------------------------


def test_another_cameras_event_id_is_a_conflict_and_changes_nothing(
    client: TestClient, admin: dict[str, str], edge: dict[str, str]
) -> None:
    yard = enrolled_edge(client, admin, "yard")
    body = message(seq=0, snapshot=jpeg())
    post(client, edge, body)
    before = events_of(client, admin)
    hijack = message(body["event_id"], 5, "end", score=1.0, snapshot=jpeg(color=(0, 255, 0)))
    response = client.post("/api/edge/events", json=hijack, headers=yard)
    assert "another camera" in assert_error(response, 409, "event_conflict")
    assert events_of(client, admin) == before
    assert snapshot_of(client, admin, body["event_id"]) == jpeg()


def test_events_need_an_active_edge_credential(
    client: TestClient, admin: dict[str, str], edge: dict[str, str]
) -> None:
    body = message()
    assert_error(client.post("/api/edge/events", json=body), 401, "not_authenticated")
    for headers in ({"Authorization": "Bearer lce_nope"}, admin):
        response = client.post("/api/edge/events", json=body, headers=headers)
        assert_error(response, 401, "invalid_edge_credential")
    assert client.delete("/api/cameras/door/credentials", headers=admin).status_code == 200
    assert_error(
        client.post("/api/edge/events", json=body, headers=edge), 401, "invalid_edge_credential"
    )
    assert events_of(client, admin) == []


# --- validation ------------------------------------------------------------------------------


def _bad_bodies() -> list[tuple[str, dict[str, Any] | str]]:
    good = message()
    cases: list[tuple[str, dict[str, Any] | str]] = [
        ("score", {**good, "score": 1.5}),
        ("score", {**good, "score": -0.1}),
        ("score", {**good, "score": "high"}),
        ("box", {**good, "box": [0.5, 0.2, 0.4, 0.8]}),  # x0 > x1
        ("box", {**good, "box": [0.1, 0.2, 0.4, 1.2]}),
        ("box", {**good, "box": [0.1, 0.2, 0.4]}),
        ("label", {**good, "label": "alien"}),
        ("phase", {**good, "phase": "middle"}),
        ("started_at", {**good, "started_at": "2030-01-02T03:00:00"}),  # no zone
        ("at", {**good, "at": "yesterday"}),
        ("event_id", {**good, "event_id": "not-a-uuid", "key": "not-a-uuid:0"}),
        ("key", {**good, "key": "something:else"}),
        ("seq", {**good, "seq": -1}),
        ("seq", {**good, "seq": "0"}),
        ("object", {**good, "object": None}),  # a person event names its object
        ("object", {**message(label="motion"), "object": "person"}),
        ("ended_at", {**good, "ended_at": good["at"]}),  # only an end ends
        ("ended_at", message(phase="end", ended=T0.replace(hour=2))),  # before the start
        ("zones", {**good, "zones": "Driveway"}),
        ("snapshot", {**good, "snapshot": "%%% not base64 %%%"}),
        ("snapshot", {**good, "snapshot": b64(b"GIF89a not a jpeg")}),
        ("snapshot", {**good, "snapshot": b64(jpeg()[:200])}),  # truncated JPEG
        ("JSON", "{not json"),
        ("event_id", {k: v for k, v in good.items() if k != "event_id"}),
    ]
    return cases


@pytest.mark.parametrize(("field", "body"), _bad_bodies())
def test_malformed_messages_are_refused_with_422_and_change_nothing(
    client: TestClient,
    admin: dict[str, str],
    edge: dict[str, str],
    app: FastAPI,
    room_data: FakeRoomData,
    field: str,
    body: dict[str, Any] | str,
) -> None:
    if isinstance(body, str):
        response = client.post(
            "/api/edge/events",
            content=body,
            headers={**edge, "Content-Type": "application/json"},
        )
    else:
        response = client.post("/api/edge/events", json=body, headers=edge)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] in ("validation_error", "invalid_snapshot")
    assert field.lower() in error["message"].lower() or field == "JSON"
    assert events_of(client, admin) == []
    with app.state.session_factory() as session:
        assert session.get(Counter, "events").value == 0
        assert session.scalar(select(func.count()).select_from(Event)) == 0
    assert not (app.state.settings.data_dir / "events").exists()
    assert app.state.event_bus.published == 0


def test_a_too_large_snapshot_or_body_is_413(
    client: TestClient, admin: dict[str, str], edge: dict[str, str], app: FastAPI
) -> None:
    app.state.settings.event_snapshot_max_bytes = 4096
    big = jpeg(600, 400, (1, 2, 3))
    noisy = bytearray(big)  # random bytes after the header: it will not compress
    rng = random.Random(1)
    noisy[2000:] = bytes(rng.randrange(256) for _ in range(len(noisy) - 2000))
    body = message(snapshot=bytes(noisy) + bytes(5000))
    assert len(body["snapshot"]) > 4096
    response = client.post("/api/edge/events", json=body, headers=edge)
    assert "larger than 4096" in assert_error(response, 413, "payload_too_large")
    huge = {**message(), "padding": "x" * 200_000}
    response = client.post("/api/edge/events", json=huge, headers=edge)
    assert "request body" in assert_error(response, 413, "payload_too_large")
    assert events_of(client, admin) == []
    # The edge then sends it without the snapshot: stored.
    assert post(client, edge, {**body, "snapshot": None})["status"] == "stored"


# --- what a change announces ------------------------------------------------------------------


def test_each_change_is_published_once_on_the_bus_and_relayed_to_the_room(
    client: TestClient, edge: dict[str, str], app: FastAPI, room_data: FakeRoomData
) -> None:
    bus: EventBus = app.state.event_bus
    got: list[dict[str, Any]] = []

    async def listen(ready: threading.Event, done: threading.Event) -> None:
        async with bus.subscribe() as sub:
            ready.set()
            while len(got) < 2:
                item = await asyncio.wait_for(sub.get(), 10)
                assert item is not None
                got.append(item)
        done.set()

    ready, done = threading.Event(), threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(listen(ready, done)), daemon=True)
    listener.start()
    assert ready.wait(10)
    event_id = str(uuid.uuid4())
    post(client, edge, message(event_id, 0))
    post(client, edge, message(event_id, 0))  # duplicate: not published
    post(client, edge, message(event_id, 1, "end"))
    assert done.wait(10)
    listener.join(10)
    assert [e["active"] for e in got] == [True, False]
    assert got[0]["version"] < got[1]["version"]
    assert set(got[1]) == EVENT_KEYS
    deadline = time.monotonic() + 10
    while len(room_data.sent) < 2:
        assert time.monotonic() < deadline, room_data.sent
        time.sleep(0.01)
    assert [(room, topic) for room, _, topic in room_data.sent] == [
        ("camera-door", "livecam.event"),
        ("camera-door", "livecam.event"),
    ]
    assert [json.loads(data) for _, data, _ in room_data.sent] == got
    assert bus.published == 2


def test_a_hanging_livekit_never_slows_ingest(
    client: TestClient, edge: dict[str, str], app: FastAPI, room_data: FakeRoomData
) -> None:
    relay: RoomEventRelay = app.state.event_relay
    relay.timeout_s = 60.0
    room_data.delay_s = 60.0  # LiveKit takes a minute to answer each message
    started = time.monotonic()
    for _ in range(5):
        assert post(client, edge, message())["status"] == "stored"
    assert time.monotonic() - started < 10.0  # a relay on the request path would take 300 s
    assert room_data.sent == []


async def test_relay_failures_are_counted_logged_once_and_recovery_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeRoomData(fail=ConnectionRefusedError("livekit is down"))
    relay = RoomEventRelay(fake, timeout_s=0.5, log_every_s=60)
    bus = EventBus()
    relay.start(bus)
    event = {"id": "e1", "camera_id": "door", "version": 1}
    with caplog.at_level(logging.INFO, logger="app.event_relay"):
        for _ in range(5):
            bus.publish(event)
        for _ in range(200):
            if relay.failed == 5:
                break
            await asyncio.sleep(0.01)
        assert relay.failed == 5
        assert relay.sent == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # rate-limited
        assert "ConnectionRefusedError" in warnings[0].__dict__["error"]
        fake.fail = ServerError("not_found", "requested room does not exist", status=404)
        bus.publish(event)
        for _ in range(200):
            if relay.no_room == 1:
                break
            await asyncio.sleep(0.01)
        fake.fail = None
        bus.publish(event)
        for _ in range(200):
            if relay.sent == 1:
                break
            await asyncio.sleep(0.01)
        assert relay.sent == 1
        assert relay.no_room == 1
        assert relay.failed == 5
        assert any(
            r.getMessage() == "relaying events into LiveKit rooms again" for r in caplog.records
        )
    await relay.aclose()
    assert fake.closed
    assert fake.sent[0][0] == "camera-door"
    assert fake.sent[0][2] == "livecam.event"
