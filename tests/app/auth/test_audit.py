"""The audit log records sign-ins, token mints and admin changes; admins read it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.auth.users_helpers import add_user, api_key_headers
from tests.app.helpers import assert_error, create_camera


def _entries(client: TestClient, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/audit", headers=admin, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def test_audit_records_who_did_what(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin, "door")
    body = {"username": "ann", "password": "long enough pw", "cameras": ["door"]}
    user = client.post("/api/users", json=body, headers=admin).json()
    client.post("/api/auth/login", json={"username": "ann", "password": "wrong-password"})
    client.post("/api/auth/login", json={"username": "ann", "password": "long enough pw"})
    key = client.post(f"/api/users/{user['id']}/api-keys", json={"name": "s"}, headers=admin)
    viewer = {"Authorization": f"Bearer {key.json()['key']}"}
    assert client.post("/api/cameras/door/viewer-token", headers=viewer).status_code == 200

    entries = _entries(client, admin)
    summary = [(e["action"], e["actor"], e["outcome"], e["camera_id"]) for e in entries]
    assert summary == [
        ("viewer_token", "ann", "ok", "door"),
        ("api_key_create", "admin key bootstrap", "ok", None),
        ("login", "ann", "ok", None),
        ("login", "ann", "failed", None),
        ("user_create", "admin key bootstrap", "ok", None),
        ("camera_create", "admin key bootstrap", "ok", "door"),
    ]
    assert entries[3]["ip"] == "testclient"
    assert entries[4]["detail"] == {"user": "ann", "role": "viewer", "cameras": ["door"]}
    assert "long enough pw" not in str(entries)

    older = _entries(client, admin, before=entries[1]["id"], limit=2)
    assert [e["id"] for e in older] == [entries[2]["id"], entries[3]["id"]]


def test_audit_is_admin_only(client: TestClient, app: FastAPI) -> None:
    viewer = api_key_headers(app, add_user(app, "ann"))
    assert_error(client.get("/api/audit", headers=viewer), 403, "admin_required")
    assert_error(client.get("/api/audit"), 401, "not_authenticated")


def test_camera_admin_changes_are_audited(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin, "door")
    assert client.patch("/api/cameras/door", json={"name": "Back"}, headers=admin).is_success
    assert client.post("/api/cameras/door/enrollment", headers=admin).is_success
    assert client.delete("/api/cameras/door/credentials", headers=admin).is_success
    zones = client.put("/api/cameras/door/zones", json={"zones": []}, headers=admin)
    assert zones.is_success, zones.text
    entries = _entries(client, admin)
    assert [(e["action"], e["camera_id"]) for e in entries[:4]] == [
        ("zones_update", "door"),
        ("credentials_revoke", "door"),
        ("enrollment_code", "door"),
        ("camera_rename", "door"),
    ]
    assert entries[3]["detail"] == {"from": "Front door", "to": "Back"}
