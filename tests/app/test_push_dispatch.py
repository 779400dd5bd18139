"""Web Push end to end inside the app: events published on the app's event bus reach a
local push service as VAPID-signed, aes128gcm-encrypted requests that the test's own
browser keys decrypt. Nothing of the crypto or HTTP is mocked."""

from __future__ import annotations

import base64
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.eventbus import EventBus
from app.logs import LogfmtFormatter
from app.main import create_app
from app.settings import Settings
from app.tickets import verify_event_snapshot_ticket
from tests.app.helpers import FakeClock, create_camera, enrolled_edge, make_settings
from tests.app.push_service import (
    Browser,
    LocalPushService,
    Received,
    verify_vapid,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data", push_allow_insecure=True, push_retry_delay=0.01, push_timeout=2.0
    )


@pytest.fixture
def service() -> Iterator[LocalPushService]:
    s = LocalPushService()
    yield s
    s.close()


def make_event(
    clock: FakeClock,
    *,
    camera: str = "door",
    name: str = "Front door",
    label: str = "person",
    obj: str | None = "person",
    score: float = 0.87,
    zones: tuple[str, ...] = ("Driveway",),
    started_at: datetime | None = None,
    event_id: str | None = None,
    active: bool = True,
) -> dict[str, Any]:
    """An event as the server publishes it (contract 4)."""
    event_id = event_id or str(uuid.uuid4())
    started = (started_at or clock.now).isoformat()
    return {
        "id": event_id,
        "camera_id": camera,
        "camera_name": name,
        "label": label,
        "object": obj,
        "score": score,
        "box": [0.1, 0.2, 0.3, 0.4],
        "zones": list(zones),
        "started_at": started,
        "updated_at": clock.now.isoformat(),
        "ended_at": None if active else clock.now.isoformat(),
        "active": active,
        "has_snapshot": True,
        "snapshot_url": f"/api/events/{event_id}/snapshot.jpg",
    }


class Harness:
    """A running app (its lifespan, so its dispatcher, started) and ways to drive it."""

    def __init__(
        self, client: TestClient, app: FastAPI, admin: dict[str, str], service: LocalPushService
    ) -> None:
        self.client, self.app, self.admin, self.service = client, app, admin, service
        self._running = True
        client.__enter__()

    def stop(self) -> None:
        """Runs the app's shutdown (once)."""
        if self._running:
            self._running = False
            self.client.__exit__(None, None, None)

    def subscribe(self, name: str, **prefs: Any) -> tuple[str, Browser]:
        browser = Browser(self.service.endpoint(name))
        response = self.client.post(
            "/api/push/subscriptions",
            json={"subscription": browser.subscription(), "device": name, **prefs},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"], browser

    def publish(self, event: dict[str, Any]) -> None:
        self.app.state.event_bus.publish(event)  # thread-safe, as ingest's worker threads use it

    def stats(self) -> dict[str, int]:
        response = self.client.get("/api/push/stats", headers=self.admin)
        assert response.status_code == 200, response.text
        stats: dict[str, int] = response.json()
        return stats

    def wait_stats(self, check: Callable[[dict[str, int]], bool], timeout: float = 20.0) -> None:
        """Waits until the dispatcher's counters satisfy ``check``."""
        deadline = time.monotonic() + timeout
        while not check(stats := self.stats()):
            assert time.monotonic() < deadline, f"push stats never matched: {stats}"
            time.sleep(0.02)

    def settle(self, events: int) -> None:
        """Waits until ``events`` bus messages were handled and nothing is being sent."""
        self.wait_stats(lambda s: s["events"] >= events and s["pending"] == 0)

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/push/subscriptions/{subscription_id}", headers=self.admin)
        body: dict[str, Any] = response.json()
        return body

    def key(self) -> str:
        key: str = self.client.get("/api/push/vapid-public-key").json()["key"]
        return key


StartApp = Callable[..., Harness]


@pytest.fixture
def start_app(
    settings: Settings,
    admin_key: str,
    admin: dict[str, str],
    clock: FakeClock,
    service: LocalPushService,
) -> Iterator[StartApp]:
    """Starts the app (settings overridden by keyword) with the test clock."""
    started: list[Harness] = []

    def _start(**overrides: Any) -> Harness:
        app = create_app(settings.model_copy(update=overrides))
        app.state.clock = clock
        if not hasattr(app.state, "event_bus"):  # until create_app makes one
            app.state.event_bus = EventBus()
        started.append(Harness(TestClient(app), app, admin, service))
        return started[-1]

    yield _start
    for harness in started:
        harness.stop()


def event_ids(browser: Browser, received: list[Received]) -> list[str]:
    return [browser.payload(r)["event_id"] for r in received]


def test_an_event_start_reaches_the_browser_signed_and_encrypted(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app()
    sub_id, browser = push.subscribe("a", tz="Europe/Berlin")
    event = make_event(clock)
    push.publish(event)
    (received,) = service.wait_for("a")

    claims = verify_vapid(received, push.key(), service.origin)
    assert claims["sub"] == "mailto:admin@localhost"
    assert received.headers["ttl"] == "3600"
    assert received.headers["urgency"] == "high"
    payload = browser.payload(received)
    assert len(browser.decrypt(received.body)) <= 3072
    eid = event["id"]
    assert payload["title"] == "Person at Front door"
    assert payload["body"] == "04:04:05 · Driveway · 87 %"  # 03:04:05 UTC in Berlin
    assert payload["tag"] == "door:person"
    assert payload["url"] == f"/#/events/{eid}"
    assert (payload["event_id"], payload["camera_id"], payload["label"]) == (eid, "door", "person")
    assert payload["at"] == event["started_at"]

    image_path, _, query = payload["image"].partition("?ticket=")
    assert image_path == f"/api/events/{eid}/snapshot.jpg"
    tickets = push.app.state.tickets
    assert verify_event_snapshot_ticket(tickets, query, eid, clock.now + timedelta(hours=23))
    assert not verify_event_snapshot_ticket(tickets, query, eid, clock.now + timedelta(hours=25))
    assert not verify_event_snapshot_ticket(tickets, query, str(uuid.uuid4()), clock.now)
    assert not tickets.verify(query, "door", clock.now), "not an MJPEG ticket"

    # Updates and the end of the same event notify nobody; the next event does.
    push.publish({**event, "score": 0.95})
    push.publish({**event, "active": False, "ended_at": clock.now.isoformat()})
    following = make_event(clock, camera="yard", name="Yard")
    push.publish(following)
    got = service.wait_for("a", 2)
    assert event_ids(browser, got) == [eid, following["id"]]
    assert push.subscription(sub_id)["last_sent_at"] == clock.now.isoformat().replace("+00:00", "Z")


def test_cameras_and_labels_filter(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app()
    create_camera(push.client, push.admin, "door")
    _, door_people = push.subscribe("a", cameras=["door"], labels=["person"])
    _, anything = push.subscribe("b", labels=["vehicle", "motion"])
    events = [
        make_event(clock, camera="yard", name="Yard"),
        make_event(clock, label="vehicle", obj="car", score=0.61, zones=()),
        make_event(
            clock, camera="yard", name="Yard", label="motion", obj=None, score=0.1, zones=()
        ),
        make_event(clock),
    ]
    for event in events:
        push.publish(event)
    push.settle(len(events))
    assert event_ids(door_people, service.received("a")) == [events[3]["id"]]
    got = service.received("b")
    assert sorted(event_ids(anything, got)) == sorted([events[1]["id"], events[2]["id"]])
    by_label = {anything.payload(r)["label"]: (anything.payload(r), r) for r in got}
    car, car_request = by_label["vehicle"]
    assert car["title"] == "Car at Front door"
    assert car["body"] == "03:04:05 UTC · 61 %"
    assert car_request.headers["urgency"] == "normal"
    assert by_label["motion"][0]["title"] == "Motion at Yard"
    assert by_label["motion"][0]["body"] == "03:04:05 UTC", "no score for motion"


def test_quiet_hours_suppress_in_the_subscribers_zone(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app()
    # 03:04 UTC is 04:04 in Berlin (inside 22:00-07:00) and 22:04 in New York (outside).
    quiet_id, quiet = push.subscribe(
        "q", quiet_hours={"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}
    )
    _, awake = push.subscribe(
        "w", quiet_hours={"start": "23:00", "end": "07:00", "tz": "America/New_York"}
    )
    first = make_event(clock)
    push.publish(first)
    push.settle(1)
    assert event_ids(awake, service.received("w")) == [first["id"]]
    assert service.received("q") == []
    assert push.stats()["quiet"] == 1

    response = push.client.patch(
        f"/api/push/subscriptions/{quiet_id}",
        json={"quiet_hours": {"start": "05:00", "end": "06:00", "tz": "Europe/Berlin"}},
        headers=push.admin,
    )
    assert response.status_code == 200
    second = make_event(clock, camera="yard", name="Yard")
    push.publish(second)
    assert event_ids(quiet, service.wait_for("q")) == [second["id"]]


def test_rate_limit_per_camera_and_label_and_per_hour(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app(push_min_interval=60, push_max_per_hour=3)
    _, browser = push.subscribe("a", labels=["person", "vehicle"])
    sent: list[str] = []
    published = 0

    def publish(expect_sent: bool, **kwargs: Any) -> None:
        nonlocal published
        event = make_event(clock, **kwargs)
        push.publish(event)
        published += 1
        push.settle(published)  # handled before the clock moves on
        if expect_sent:
            sent.append(event["id"])

    publish(True)
    publish(False)  # same camera and label within 60 s
    publish(True, camera="yard", name="Yard")  # another camera
    clock.advance(61)
    publish(True)  # the interval has passed: the third this hour
    publish(False, label="vehicle", obj="car")  # a fourth within the hour
    clock.advance(3600)
    publish(True)
    assert event_ids(browser, service.received("a")) == sent
    assert push.stats()["rate_limited"] == 2


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_deleted(
    start_app: StartApp, service: LocalPushService, clock: FakeClock, status: int
) -> None:
    push = start_app()
    gone_id, _ = push.subscribe("gone")
    kept_id, _ = push.subscribe("kept")
    service.behave("gone", then=status)
    push.publish(make_event(clock))
    push.settle(1)
    assert len(service.received("gone")) == 1, "not retried"
    listed = push.client.get("/api/push/subscriptions", headers=push.admin).json()
    assert [s["id"] for s in listed] == [kept_id]
    assert push.subscription(gone_id)["error"]["code"] == "subscription_not_found"
    assert push.stats()["removed"] == 1


def test_429_and_5xx_are_retried_with_backoff(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app()
    sub_id, browser = push.subscribe("a")
    service.behave("a", statuses=[503, 429], retry_after="0")
    event = make_event(clock)
    push.publish(event)
    push.settle(1)
    got = service.received("a")
    assert [r.status for r in got] == [503, 429, 201]
    assert event_ids(browser, got) == [event["id"]] * 3
    stats = push.stats()
    assert (stats["sent"], stats["retried"], stats["failed"]) == (1, 2, 0)
    assert push.subscription(sub_id)["last_error"] is None


def test_giving_up_records_the_error_and_logs_no_secrets(
    start_app: StartApp,
    service: LocalPushService,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    push = start_app(push_retries=2)
    always_down, down = push.subscribe("down")
    refused, _ = push.subscribe("refused")
    service.behave("down", then=500)
    service.behave("refused", then=403)
    push.publish(make_event(clock))
    push.settle(1)
    assert len(service.received("down")) == 3, "first try and two retries"
    assert len(service.received("refused")) == 1, "403 is not retried"
    assert push.stats()["failed"] == 2
    assert push.subscription(always_down)["last_error"] == "HTTP 500"
    assert "VAPID key changed" in push.subscription(refused)["last_error"]

    lines = [LogfmtFormatter().format(r) for r in caplog.records if r.name.startswith("app.push")]
    assert any(
        "push failed" in line and f"push_host=127.0.0.1:{service.port}" in line for line in lines
    )
    secrets = ["/push/down", "/push/refused", down.subscription()["keys"]["auth"]]
    for line in lines:
        assert not any(secret in line for secret in secrets), line


def test_a_hanging_push_service_does_not_delay_other_subscribers(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app(push_timeout=4.0, push_retries=0)
    push.subscribe("hang")
    _, fast = push.subscribe("fast")
    service.behave("hang", hang=True)
    event = make_event(clock)
    started = time.monotonic()
    push.publish(event)
    (received,) = service.wait_for("fast")
    assert received.at - started < 3.0, "delivered long before the hanging request times out"
    assert push.stats()["failed"] == 0, "the other request is still hanging"
    assert event_ids(fast, [received]) == [event["id"]]
    # The hanging request is cut at the timeout and counted as failed.
    push.wait_stats(lambda s: s["failed"] == 1 and s["pending"] == 0, timeout=15)
    assert time.monotonic() - started >= 4.0


def test_old_events_are_not_notified(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    push = start_app()
    _, browser = push.subscribe("a")
    push.publish(make_event(clock, started_at=clock.now - timedelta(hours=1)))
    fresh = make_event(clock, camera="yard", name="Yard")
    push.publish(fresh)
    push.settle(2)
    assert event_ids(browser, service.received("a")) == [fresh["id"]]
    assert push.stats()["stale"] == 1


def test_an_event_is_never_notified_twice_even_across_restarts(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    first = start_app()
    _, browser = first.subscribe("a")
    event = make_event(clock)
    first.publish(event)
    service.wait_for("a")
    first.stop()

    second = start_app()  # a restarted server, same database
    second.publish({**event, "score": 0.9})  # the edge's next update
    following = make_event(clock, camera="yard", name="Yard")
    second.publish(following)
    second.settle(2)
    assert event_ids(browser, service.received("a")) == [event["id"], following["id"]]


def _jpeg(width: int = 320, height: int = 240) -> bytes:
    picture = Image.new("RGB", (width, height), (40, 90, 160))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue()


def test_an_edge_event_through_ingest_notifies_with_a_working_image(
    start_app: StartApp, service: LocalPushService, clock: FakeClock
) -> None:
    """The whole server path: POST /api/edge/events (start, update, end) → ingest → bus →
    one notification whose image URL serves the event's JPEG without any header."""
    push = start_app()
    edge = enrolled_edge(push.client, push.admin, "door")  # camera "Front door"
    _, browser = push.subscribe("a", cameras=["door"])
    event_id = str(uuid.uuid4())
    started = clock.now.isoformat()
    jpeg = _jpeg()

    def post(seq: int, phase: str, **extra: Any) -> None:
        message = {
            "key": f"{event_id}:{seq}",
            "event_id": event_id,
            "seq": seq,
            "phase": phase,
            "label": "person",
            "object": "person",
            "score": 0.87,
            "box": [0.2, 0.1, 0.6, 0.9],
            "zones": ["Driveway"],
            "started_at": started,
            "at": clock.now.isoformat(),
            "ended_at": None,
            "snapshot": None,
            **extra,
        }
        response = push.client.post("/api/edge/events", json=message, headers=edge)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"

    post(0, "start", snapshot=base64.b64encode(jpeg).decode())
    (received,) = service.wait_for("a")
    payload = browser.payload(received)
    assert payload["title"] == "Person at Front door"
    assert payload["body"] == "03:04:05 UTC · Driveway · 87 %"
    assert payload["event_id"] == event_id

    # The browser fetches the image with the ticket alone (no Authorization header).
    image = push.client.get(payload["image"])
    assert image.status_code == 200, image.text
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (320, 240)
    path, _, ticket = payload["image"].partition("?ticket=")
    assert push.client.get(path).status_code == 401, "no ticket, no picture"
    other = f"/api/events/{uuid.uuid4()}/snapshot.jpg?ticket={ticket}"
    assert push.client.get(other).status_code in (401, 404), "the ticket is for one event"

    clock.advance(2)
    post(1, "update", score=0.93)
    clock.advance(10)
    post(2, "end", ended_at=clock.now.isoformat())
    push.settle(3)
    assert len(service.received("a")) == 1, "updates and the end notify nobody"
