"""app/api/edge.py: enrollment, edge tokens, heartbeats and presence."""

from __future__ import annotations

import logging
import re
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from livekit.api import TokenVerifier, VideoGrants

from app.settings import Settings
from tests.app.helpers import (
    API_KEY,
    API_SECRET,
    PUBLIC_URL,
    FakeClock,
    assert_error,
    create_camera,
    enroll,
    enrolled_edge,
)

HEARTBEAT: dict[str, Any] = {
    "fps": 15.0,
    "bitrate_kbps": 1800.5,
    "cpu_percent": 23.5,
    "temperature_c": 51.2,
    "publisher_state": "publishing",
    "width": 1280,
    "height": 720,
    "frames_sent": 4500,
    "frames_dropped": 3,
    "keyframe_requests": 2,
    "jpeg_frames_sent": 120,
    "uptime_s": 300.0,
    "source": "picamera2",
    "error": None,
    "version": "0.1.0",
}


def status(client: TestClient, admin: dict[str, str], camera_id: str = "door") -> dict[str, Any]:
    response = client.get(f"/api/cameras/{camera_id}/status", headers=admin)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --- enrollment ----------------------------------------------------------------------


def test_enroll_returns_credential_once(client: TestClient, admin: dict[str, str]) -> None:
    code = create_camera(client, admin)["enrollment"]["code"]
    response = client.post("/api/edge/enroll", json={"code": code})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"camera_id", "credential", "room"}
    assert body["camera_id"] == "door"
    assert body["room"] == "camera-door"
    assert re.fullmatch(r"lce_[A-Za-z0-9_-]{43}", body["credential"])

    again = client.post("/api/edge/enroll", json={"code": code})
    assert_error(again, 410, "enrollment_code_used")


def test_enroll_accepts_code_as_typed(client: TestClient, admin: dict[str, str]) -> None:
    code = create_camera(client, admin)["enrollment"]["code"]
    typed = " " + code.replace("-", " ").lower() + "\n"
    assert client.post("/api/edge/enroll", json={"code": typed}).status_code == 200


@pytest.mark.parametrize("code", ["AAAA-BBBB-CCCC", "x", "lce_something"])
def test_enroll_unknown_code_is_401(client: TestClient, admin: dict[str, str], code: str) -> None:
    create_camera(client, admin)
    assert_error(
        client.post("/api/edge/enroll", json={"code": code}), 401, "invalid_enrollment_code"
    )


def test_enroll_validation(client: TestClient) -> None:
    message = assert_error(client.post("/api/edge/enroll", json={}), 422, "validation_error")
    assert "code:" in message


def test_enroll_expired_code_is_410(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    code = create_camera(client, admin)["enrollment"]["code"]
    clock.advance(86400)
    assert_error(
        client.post("/api/edge/enroll", json={"code": code}), 410, "enrollment_code_expired"
    )


def test_enroll_just_before_expiry(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    code = create_camera(client, admin)["enrollment"]["code"]
    clock.advance(86399)
    assert client.post("/api/edge/enroll", json={"code": code}).status_code == 200


def test_enrollment_ttl_setting(tmp_path: Any) -> None:
    from app.main import create_app
    from tests.app.helpers import make_settings, prepare

    settings = make_settings(tmp_path / "d", enrollment_ttl=60)
    key = prepare(settings)
    app = create_app(settings)
    clock = FakeClock()
    app.state.clock = clock
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {key}"}
        created = create_camera(client, admin)
        assert created["enrollment"]["expires_at"].startswith("2030-01-02T03:05:05")
        clock.advance(61)
        response = client.post("/api/edge/enroll", json={"code": created["enrollment"]["code"]})
        assert_error(response, 410, "enrollment_code_expired")


def test_enrolling_again_revokes_the_previous_credential(
    client: TestClient, admin: dict[str, str]
) -> None:
    old = enrolled_edge(client, admin)
    code = client.post("/api/cameras/door/enrollment", headers=admin).json()["code"]
    new = {"Authorization": f"Bearer {enroll(client, code)}"}
    assert_error(client.post("/api/edge/token", headers=old), 401, "invalid_edge_credential")
    assert client.post("/api/edge/token", headers=new).status_code == 200


def test_enrollment_is_logged_without_secrets(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = create_camera(client, admin)["enrollment"]["code"]
    credential = enroll(client, code)
    enrolled = [r for r in caplog.records if r.getMessage() == "edge enrolled"]
    assert len(enrolled) == 1
    assert enrolled[0].camera == "door"  # type: ignore[attr-defined]
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert code not in text
    assert credential not in text


# --- edge tokens ---------------------------------------------------------------------


def test_edge_token_grants_and_ttl(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    response = client.post("/api/edge/token", headers=edge)
    assert response.status_code == 200
    body = response.json()
    assert body["url"] == PUBLIC_URL
    assert body["room"] == "camera-door"
    assert body["identity"] == "edge-door"
    claims = TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    assert claims.identity == "edge-door"
    assert claims.video == VideoGrants(
        room_join=True,
        room="camera-door",
        can_publish=True,
        can_publish_sources=["camera"],
        can_subscribe=False,
        can_publish_data=True,
    )
    raw = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    assert raw["exp"] - raw["nbf"] == 21600


def test_token_ttls_come_from_settings(tmp_path: Any) -> None:
    from app.tokens import mint_edge_token, mint_viewer_token
    from tests.app.helpers import make_settings

    settings: Settings = make_settings(tmp_path, viewer_token_ttl=30, edge_token_ttl=90)
    for minted, ttl in (
        (mint_viewer_token(settings, "a"), 30),
        (mint_edge_token(settings, "a"), 90),
    ):
        raw = jwt.decode(minted.token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)
        assert raw["exp"] - raw["nbf"] == ttl
        assert minted.expires_at.timestamp() == raw["exp"]


def test_edge_only_ever_gets_its_own_room(client: TestClient, admin: dict[str, str]) -> None:
    edge_a = enrolled_edge(client, admin, "cam-a")
    edge_b = enrolled_edge(client, admin, "cam-b")
    attempts = [
        client.post("/api/edge/token", headers=edge_a),
        client.post("/api/edge/token", headers=edge_a, json={"camera_id": "cam-b"}),
        client.post("/api/edge/token?camera_id=cam-b&room=camera-cam-b", headers=edge_a),
        client.post("/api/edge/token", headers={**edge_a, "X-Camera-Id": "cam-b"}),
    ]
    for response in attempts:
        assert response.status_code == 200
        body = response.json()
        assert body["room"] == "camera-cam-a"
        assert body["identity"] == "edge-cam-a"
        claims = TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
        assert claims.video is not None
        assert claims.video.room == "camera-cam-a"
    b = client.post("/api/edge/token", headers=edge_b).json()
    assert b["room"] == "camera-cam-b"


# --- heartbeats and presence ---------------------------------------------------------


def test_heartbeat_stores_metrics_and_goes_online(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    edge = enrolled_edge(client, admin)
    response = client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "server_time": "2030-01-02T03:04:05Z",
        "mjpeg_wanted": False,
    }
    st = status(client, admin)
    assert st["online"] is True
    assert st["state"] == "publishing"
    assert st["last_seen"] == "2030-01-02T03:04:05Z"
    assert st["state_at"] == "2030-01-02T03:04:05Z"
    assert {k: st["heartbeat"][k] for k in HEARTBEAT} == HEARTBEAT
    assert st["heartbeat"]["events_queued"] is None  # an edge without detection says nothing
    camera = client.get("/api/cameras/door", headers=admin).json()
    assert camera["online"] is True
    assert camera["last_seen"] == "2030-01-02T03:04:05Z"


def test_goes_offline_after_the_heartbeat_timeout(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    edge = enrolled_edge(client, admin)
    client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
    clock.advance(30)
    assert status(client, admin)["online"] is True
    clock.advance(0.5)
    st = status(client, admin)
    assert st["online"] is False
    assert st["state"] == "publishing"  # the last report, kept for diagnosis
    assert client.get("/api/cameras", headers=admin).json()[0]["online"] is False
    # The next heartbeat brings it back.
    client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
    assert status(client, admin)["online"] is True


@pytest.mark.parametrize("state", ["connecting", "reconnecting", "stopped", "error"])
def test_not_publishing_is_not_online(
    client: TestClient, admin: dict[str, str], state: str
) -> None:
    edge = enrolled_edge(client, admin)
    client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
    body = {**HEARTBEAT, "publisher_state": state, "error": "camera unplugged"}
    assert client.post("/api/edge/heartbeat", headers=edge, json=body).status_code == 200
    st = status(client, admin)
    assert st["online"] is False
    assert st["state"] == state
    assert st["heartbeat"]["error"] == "camera unplugged"


def test_heartbeat_is_forward_compatible(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    body = {"publisher_state": "publishing", "gpu_temp": 3, "future": {"nested": True}}
    assert client.post("/api/edge/heartbeat", headers=edge, json=body).status_code == 200
    stored = status(client, admin)["heartbeat"]
    assert "future" not in stored
    assert stored["fps"] == 0.0
    assert stored["cpu_percent"] is None


def test_heartbeat_truncates_long_text(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    body = {**HEARTBEAT, "error": "x" * 5000}
    assert client.post("/api/edge/heartbeat", headers=edge, json=body).status_code == 200
    assert len(status(client, admin)["heartbeat"]["error"]) == 1000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fps": -1}, "fps"),
        ({"bitrate_kbps": -0.1}, "bitrate_kbps"),
        ({"cpu_percent": -5}, "cpu_percent"),
        ({"frames_sent": -1}, "frames_sent"),
        ({"frames_dropped": 1.5}, "frames_dropped"),
        ({"width": -640}, "width"),
        ({"uptime_s": "long"}, "uptime_s"),
        ({"publisher_state": "dancing"}, "publisher_state"),
        ({"publisher_state": None}, "publisher_state"),
    ],
)
def test_heartbeat_validation(
    client: TestClient, admin: dict[str, str], change: dict[str, Any], field: str
) -> None:
    edge = enrolled_edge(client, admin)
    response = client.post("/api/edge/heartbeat", headers=edge, json={**HEARTBEAT, **change})
    message = assert_error(response, 422, "validation_error")
    assert f"{field}:" in message
    assert status(client, admin)["heartbeat"] is None


def test_negative_temperature_is_fine(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    body = {**HEARTBEAT, "temperature_c": -12.5}
    assert client.post("/api/edge/heartbeat", headers=edge, json=body).status_code == 200


def test_state_changes_are_logged_once(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    edge = enrolled_edge(client, admin)
    for _ in range(3):
        client.post("/api/edge/heartbeat", headers=edge, json=HEARTBEAT)
    client.post("/api/edge/heartbeat", headers=edge, json={**HEARTBEAT, "publisher_state": "error"})
    changes = [r for r in caplog.records if r.getMessage() == "camera state changed"]
    assert [(r.camera, r.to) for r in changes] == [  # type: ignore[attr-defined]
        ("door", "publishing"),
        ("door", "error"),
    ]


def test_heartbeat_keeps_the_edges_detection_figures(
    client: TestClient, admin: dict[str, str]
) -> None:
    """The fields edge/camera.py's events_health() sends, with their real types."""
    edge = enrolled_edge(client, admin)
    detection = {
        "detect": "objects",
        "motion": True,
        "motion_ms": 1.2,
        "detect_ms": 61.3,
        "events_queued": 2,
        "events_oldest_s": 4.5,
        "events_dead": 0,
        "events_paused": False,
        "events_active": ["motion", "person"],
    }
    body = {**HEARTBEAT, **detection}
    assert client.post("/api/edge/heartbeat", headers=edge, json=body).status_code == 200
    stored = status(client, admin)["heartbeat"]
    assert {k: stored[k] for k in detection} == detection
    bad = {**HEARTBEAT, "detect": "everything"}
    assert client.post("/api/edge/heartbeat", headers=edge, json=bad).status_code == 422
    assert status(client, admin)["heartbeat"]["detect"] == "objects", (
        "a refused beat changes nothing"
    )
