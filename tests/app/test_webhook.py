"""app/api/webhook.py: signed LiveKit webhooks move camera state; unsigned ones do not."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.protobuf.json_format import MessageToJson
from livekit.api import AccessToken
from livekit.protocol.models import ParticipantInfo, Room, TrackInfo
from livekit.protocol.webhook import WebhookEvent

from tests.app.helpers import API_KEY, API_SECRET, FakeClock, assert_error, create_camera

URL = "/api/livekit/webhook"


def event_body(event: str, room: str = "camera-door", identity: str = "") -> str:
    message = WebhookEvent(event=event, room=Room(name=room), id="EV_1", created_at=1_900_000_000)
    if identity:
        message.participant.CopyFrom(ParticipantInfo(identity=identity, sid="PA_1"))
    if event.startswith("track_"):
        message.track.CopyFrom(TrackInfo(sid="TR_1", name="camera"))
    return MessageToJson(message)


def sign(body: str, key: str = API_KEY, secret: str = API_SECRET) -> str:
    """The Authorization header livekit-server sends: a JWT carrying sha256(body)."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return AccessToken(key, secret).with_sha256(digest).to_jwt()


def post(client: TestClient, body: str, authorization: str | None) -> Any:
    headers = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post(URL, content=body.encode(), headers=headers)


def state(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/api/cameras/door/status", headers=admin).json()
    return body


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("participant_joined", "connecting"),
        ("track_published", "publishing"),
        ("track_unpublished", "offline"),
        ("participant_left", "offline"),
    ],
)
def test_participant_events_set_state(
    client: TestClient, admin: dict[str, str], event: str, expected: str
) -> None:
    create_camera(client, admin)
    if expected == "offline":
        body = event_body("track_published", identity="edge-door")
        assert post(client, body, sign(body)).status_code == 200
        assert state(client, admin)["state"] == "publishing"
    body = event_body(event, identity="edge-door")
    response = post(client, body, sign(body))
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    st = state(client, admin)
    assert st["state"] == expected
    assert st["state_at"] == "2030-01-02T03:04:05Z"
    assert st["last_seen"] == "2030-01-02T03:04:05Z"
    assert st["online"] is (expected == "publishing")


def test_publishing_webhook_makes_online_until_timeout(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    create_camera(client, admin)
    body = event_body("track_published", identity="edge-door")
    post(client, body, sign(body))
    assert state(client, admin)["online"] is True
    clock.advance(31)
    assert state(client, admin)["online"] is False


def test_room_finished_sets_offline(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    published = event_body("track_published", identity="edge-door")
    post(client, published, sign(published))
    body = event_body("room_finished")
    assert post(client, body, sign(body)).status_code == 200
    assert state(client, admin)["state"] == "offline"


def test_bearer_prefix_is_accepted(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    body = event_body("track_published", identity="edge-door")
    assert post(client, body, "Bearer " + sign(body)).status_code == 200
    assert state(client, admin)["state"] == "publishing"


@pytest.mark.parametrize(
    "make_auth",
    [
        lambda body: None,
        lambda body: "",
        lambda body: "not-a-jwt",
        lambda body: sign(body, secret="wrong-secret-wrong-secret-wrong-secret"),
        lambda body: sign(body, key="otherkey"),
        lambda body: sign(body.replace("track_published", "participant_left")),
        lambda body: AccessToken(API_KEY, API_SECRET).to_jwt(),
    ],
    ids=["missing", "empty", "garbage", "wrong-secret", "wrong-key", "other-body", "no-sha256"],
)
def test_bad_signature_is_401_and_changes_nothing(
    client: TestClient,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    make_auth: Any,
) -> None:
    create_camera(client, admin)
    before = state(client, admin)
    body = event_body("track_published", identity="edge-door")
    caplog.set_level(logging.WARNING)
    response = post(client, body, make_auth(body))
    assert_error(response, 401, "invalid_webhook_signature")
    assert state(client, admin) == before
    assert any(r.getMessage() == "webhook rejected" for r in caplog.records)


def test_tampered_body_is_401(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    signed = event_body("participant_left", identity="edge-door")
    tampered = event_body("track_published", identity="edge-door")
    assert_error(post(client, tampered, sign(signed)), 401, "invalid_webhook_signature")
    assert state(client, admin)["state"] == "offline"
    assert state(client, admin)["state_at"] is None


def test_signed_garbage_body_is_400(client: TestClient, admin: dict[str, str]) -> None:
    body = "{not json"
    assert_error(post(client, body, sign(body)), 400, "invalid_webhook_body")


@pytest.mark.parametrize(
    ("event", "room", "identity"),
    [
        ("track_published", "camera-ghost", "edge-ghost"),  # unknown camera
        ("track_published", "camera-door", "viewer-abc"),  # a viewer, not the edge
        ("track_published", "camera-yard", "edge-door"),  # identity and room disagree
        ("room_started", "camera-door", ""),  # an event we do not track
        ("egress_ended", "", ""),
        ("room_finished", "lobby", ""),
    ],
)
def test_other_events_are_acknowledged_and_ignored(
    client: TestClient, admin: dict[str, str], event: str, room: str, identity: str
) -> None:
    create_camera(client, admin)
    before = state(client, admin)
    body = event_body(event, room=room, identity=identity)
    assert post(client, body, sign(body)).status_code == 200
    assert state(client, admin) == before
