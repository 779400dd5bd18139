"""app/api/health.py: database and LiveKit health for load balancers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.db import make_engine, make_session_factory
from app.rooms import LiveKitRooms
from app.settings import Settings
from tests.app.helpers import API_KEY, API_SECRET, FakeRooms, create_camera, enrolled_edge


def test_healthy(client: TestClient, admin: dict[str, str], rooms: FakeRooms) -> None:
    create_camera(client, admin, "a")
    edge = enrolled_edge(client, admin, "b")
    client.post("/api/edge/heartbeat", headers=edge, json={"publisher_state": "publishing"})
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["livekit"]["ok"] is True
    assert body["livekit"]["error"] is None
    assert isinstance(body["livekit"]["latency_ms"], float)
    assert body["db"] == {"ok": True, "error": None}
    assert body["cameras"] == {"online": 1, "total": 2}
    assert rooms.list_calls == 1


def test_livekit_unreachable_is_degraded_not_down(client: TestClient, settings: Settings) -> None:
    client.app.state.rooms = LiveKitRooms(  # type: ignore[attr-defined]
        settings.livekit_url, API_KEY, API_SECRET
    )
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["livekit"]["ok"] is False
    assert body["livekit"]["url"] == settings.livekit_url
    assert body["livekit"]["latency_ms"] is None
    assert "Cannot connect" in body["livekit"]["error"]
    assert body["db"]["ok"] is True


def test_livekit_timeout_is_reported(client: TestClient, rooms: FakeRooms) -> None:
    rooms.fail = TimeoutError()
    body = client.get("/api/health").json()
    assert body["status"] == "degraded"
    assert body["livekit"]["error"] == "timed out after 2 s"


def test_livekit_result_is_cached(client: TestClient, rooms: FakeRooms) -> None:
    for _ in range(3):
        assert client.get("/api/health").json()["status"] == "ok"
    assert rooms.list_calls == 1
    client.app.state.livekit_probe.ttl_s = 0  # type: ignore[attr-defined]
    rooms.fail = ConnectionError("refused")
    body = client.get("/api/health").json()
    assert body["status"] == "degraded"
    assert body["livekit"]["error"] == "ConnectionError: refused"
    assert rooms.list_calls == 2


def test_database_down_is_503(client: TestClient, tmp_path: object) -> None:
    engine = make_engine("sqlite:////nonexistent-livecam-dir/sub/livecam.db")
    client.app.state.session_factory = make_session_factory(engine)  # type: ignore[attr-defined]
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["db"]["ok"] is False
    assert "unable to open database file" in body["db"]["error"]
    assert body["livekit"]["ok"] is True


def test_health_needs_no_auth_and_is_documented(client: TestClient) -> None:
    assert client.get("/api/health", headers={"Authorization": "Bearer nope"}).status_code == 200
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/api/health"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/HealthOut")
