"""app/api/cameras.py: admin auth, CRUD, enrollment codes, credentials, viewer tokens."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from livekit.api import TokenVerifier, VideoGrants

from app.rooms import LiveKitRooms
from app.settings import Settings
from tests.app.helpers import (
    API_KEY,
    API_SECRET,
    PUBLIC_URL,
    FakeRooms,
    assert_error,
    create_camera,
    enroll,
    enrolled_edge,
)

ADMIN_ROUTES = [
    ("GET", "/api/cameras"),
    ("POST", "/api/cameras"),
    ("GET", "/api/cameras/door"),
    ("PATCH", "/api/cameras/door"),
    ("DELETE", "/api/cameras/door"),
    ("POST", "/api/cameras/door/enrollment"),
    ("DELETE", "/api/cameras/door/credentials"),
    ("POST", "/api/cameras/door/viewer-token"),
    ("GET", "/api/cameras/door/status"),
]
EDGE_ROUTES = [("POST", "/api/edge/token"), ("POST", "/api/edge/heartbeat")]
PROTECTED = ADMIN_ROUTES + EDGE_ROUTES
CODE_RE = re.compile(r"^[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}$")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer lca_wrong-key-wrong-key-wrong-key-wrong-key", "Bearer ", "Basic Zm9vOmJhcg=="],
    ids=["missing", "wrong", "empty", "basic"],
)
def test_protected_routes_need_credentials(
    client: TestClient,
    admin: dict[str, str],
    method: str,
    path: str,
    authorization: str | None,
) -> None:
    create_camera(client, admin)
    headers = {"Authorization": authorization} if authorization else {}
    response = client.request(method, path, headers=headers, json={"name": "x"})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] in {
        "not_authenticated",
        "invalid_admin_key",
        "invalid_edge_credential",
    }


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_edge_credential_is_not_an_admin_key(
    client: TestClient, admin: dict[str, str], method: str, path: str
) -> None:
    edge = enrolled_edge(client, admin)
    response = client.request(method, path, headers=edge, json={"name": "x"})
    assert_error(response, 401, "invalid_admin_key")


@pytest.mark.parametrize(("method", "path"), EDGE_ROUTES)
def test_admin_key_is_not_an_edge_credential(
    client: TestClient, admin: dict[str, str], method: str, path: str
) -> None:
    create_camera(client, admin)
    response = client.request(method, path, headers=admin, json={"publisher_state": "publishing"})
    assert_error(response, 401, "invalid_edge_credential")


# --- CRUD ----------------------------------------------------------------------------


def test_create_get_list(client: TestClient, admin: dict[str, str], clock: object) -> None:
    created = create_camera(client, admin, "door", "Front door")
    camera = created["camera"]
    assert camera == {
        "id": "door",
        "name": "Front door",
        "room": "camera-door",
        "created_at": camera["created_at"],
        "online": False,
        "state": "offline",
        "last_seen": None,
        "last_snapshot_at": None,
    }
    assert CODE_RE.match(created["enrollment"]["code"])
    created_at = _parse(camera["created_at"])
    expires_at = _parse(created["enrollment"]["expires_at"])
    assert expires_at - created_at == timedelta(seconds=86400)

    assert client.get("/api/cameras/door", headers=admin).json() == camera
    create_camera(client, admin, "yard", "Yard")
    listed = client.get("/api/cameras", headers=admin).json()
    assert [c["id"] for c in listed] == ["door", "yard"]
    assert listed[0] == camera


def test_create_generates_id(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post("/api/cameras", json={"name": "  Garage  "}, headers=admin)
    assert response.status_code == 201
    camera = response.json()["camera"]
    assert re.fullmatch(r"[a-z0-9]{8}", camera["id"])
    assert camera["name"] == "Garage"
    assert camera["room"] == f"camera-{camera['id']}"


def test_duplicate_id_is_409(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin, "door")
    response = client.post("/api/cameras", json={"id": "door", "name": "Again"}, headers=admin)
    message = assert_error(response, 409, "camera_exists")
    assert "door" in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "id": "Door"}, "id"),
        ({"name": "ok", "id": "-door"}, "id"),
        ({"name": "ok", "id": "a" * 33}, "id"),
        ({"name": "ok", "id": "door_1"}, "id"),
        ({"name": 5}, "name"),
    ],
)
def test_create_validation_is_422_naming_the_field(
    client: TestClient, admin: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = client.post("/api/cameras", json=body, headers=admin)
    message = assert_error(response, 422, "validation_error")
    assert f"{field}:" in message


def test_id_limits_accepted(client: TestClient, admin: dict[str, str]) -> None:
    for camera_id in ("a", "0", "a" * 32, "front-door-2"):
        create_camera(client, admin, camera_id)


def test_malformed_json_is_422(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/cameras",
        content=b"{not json",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(("method", "path"), [r for r in ADMIN_ROUTES if r[1] != "/api/cameras"])
def test_unknown_camera_is_404(
    client: TestClient, admin: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path, headers=admin, json={"name": "x"})
    message = assert_error(response, 404, "camera_not_found")
    assert "door" in message


def test_patch_renames(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    response = client.patch("/api/cameras/door", json={"name": "Back door"}, headers=admin)
    assert response.status_code == 200
    assert response.json()["name"] == "Back door"
    assert client.get("/api/cameras/door", headers=admin).json()["name"] == "Back door"
    bad = client.patch("/api/cameras/door", json={"name": ""}, headers=admin)
    assert_error(bad, 422, "validation_error")


def test_delete_revokes_and_closes_room(
    client: TestClient, admin: dict[str, str], rooms: FakeRooms
) -> None:
    edge = enrolled_edge(client, admin)
    assert client.post("/api/edge/token", headers=edge).status_code == 200
    response = client.delete("/api/cameras/door", headers=admin)
    assert response.status_code == 204
    assert response.content == b""
    assert rooms.deleted == ["camera-door"]
    assert_error(client.get("/api/cameras/door", headers=admin), 404, "camera_not_found")
    assert_error(client.post("/api/edge/token", headers=edge), 401, "invalid_edge_credential")
    # The id can be reused, and the old credential stays dead.
    create_camera(client, admin)
    assert_error(client.post("/api/edge/token", headers=edge), 401, "invalid_edge_credential")


def test_delete_survives_livekit_failure(
    client: TestClient, admin: dict[str, str], rooms: FakeRooms
) -> None:
    create_camera(client, admin)
    rooms.fail = ConnectionError("connection refused")
    assert client.delete("/api/cameras/door", headers=admin).status_code == 204
    assert_error(client.get("/api/cameras/door", headers=admin), 404, "camera_not_found")


def test_delete_with_unreachable_livekit(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    client.app.state.rooms = LiveKitRooms(  # type: ignore[attr-defined]
        settings.livekit_url, API_KEY, API_SECRET, timeout_s=2.0
    )
    create_camera(client, admin)
    assert client.delete("/api/cameras/door", headers=admin).status_code == 204


# --- enrollment codes and credentials --------------------------------------------------


def test_new_enrollment_code_replaces_unused_ones(
    client: TestClient, admin: dict[str, str]
) -> None:
    first = create_camera(client, admin)["enrollment"]["code"]
    response = client.post("/api/cameras/door/enrollment", headers=admin)
    assert response.status_code == 201
    second = response.json()["code"]
    assert CODE_RE.match(second)
    assert second != first
    assert_error(
        client.post("/api/edge/enroll", json={"code": first}), 410, "enrollment_code_replaced"
    )
    enroll(client, second)


def test_revoke_credentials(client: TestClient, admin: dict[str, str]) -> None:
    edge = enrolled_edge(client, admin)
    assert client.post("/api/edge/token", headers=edge).status_code == 200
    response = client.delete("/api/cameras/door/credentials", headers=admin)
    assert response.status_code == 200
    assert response.json() == {"camera_id": "door", "revoked": 1}
    assert_error(client.post("/api/edge/token", headers=edge), 401, "invalid_edge_credential")
    heartbeat = client.post(
        "/api/edge/heartbeat", headers=edge, json={"publisher_state": "publishing"}
    )
    assert_error(heartbeat, 401, "invalid_edge_credential")
    # Revoking again is harmless.
    again = client.delete("/api/cameras/door/credentials", headers=admin)
    assert again.json() == {"camera_id": "door", "revoked": 0}
    # A fresh enrollment brings the edge back.
    code = client.post("/api/cameras/door/enrollment", headers=admin).json()["code"]
    fresh = {"Authorization": f"Bearer {enroll(client, code)}"}
    assert client.post("/api/edge/token", headers=fresh).status_code == 200


# --- viewer tokens -------------------------------------------------------------------


def test_viewer_token_grants_and_ttl(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    response = client.post("/api/cameras/door/viewer-token", headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "token", "room", "identity", "expires_at"}
    assert body["url"] == PUBLIC_URL
    assert body["room"] == "camera-door"
    assert re.fullmatch(r"viewer-[a-z0-9]{10}", body["identity"])

    claims = TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    assert claims.identity == body["identity"]
    assert claims.video == VideoGrants(
        room_join=True,
        room="camera-door",
        can_subscribe=True,
        can_publish=False,
        can_publish_data=False,
    )
    raw = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    assert raw["video"] == {
        "roomJoin": True,
        "room": "camera-door",
        "canPublish": False,
        "canSubscribe": True,
        "canPublishData": False,
    }
    assert raw["exp"] - raw["nbf"] == 600
    assert _parse(body["expires_at"]).timestamp() == raw["exp"]

    other = client.post("/api/cameras/door/viewer-token", headers=admin).json()
    assert other["identity"] != body["identity"]


def test_viewer_token_is_signed_with_the_server_secret(
    client: TestClient, admin: dict[str, str]
) -> None:
    create_camera(client, admin)
    token = client.post("/api/cameras/door/viewer-token", headers=admin).json()["token"]
    with pytest.raises(jwt.InvalidSignatureError):
        TokenVerifier(API_KEY, "another-secret-another-secret-another-secret").verify(token)
    assert API_SECRET not in client.get("/openapi.json").text


def test_status_of_a_new_camera(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin)
    response = client.get("/api/cameras/door/status", headers=admin)
    assert response.json() == {
        "id": "door",
        "online": False,
        "state": "offline",
        "state_at": None,
        "last_seen": None,
        "heartbeat": None,
    }
