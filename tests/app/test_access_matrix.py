"""Access matrix: every API endpoint × every kind of caller × granted/ungranted camera.

The endpoint list comes from the app's OpenAPI schema, so a new endpoint without an
entry in ACCESS fails `test_every_endpoint_has_an_access_rule` until someone decides who
may call it. Ungranted cameras (and their events) answer 404 like missing ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.auth.users_helpers import add_user, api_key_headers
from tests.app.event_helpers import message
from tests.app.helpers import create_camera, enroll

# public: anyone; edge: an edge credential; signed: a valid LiveKit webhook signature;
# admin: admins only; any: any signed-in caller (results filtered to their cameras);
# camera / event: callers granted the path's camera (or the event's camera);
# *_stream: as the base rule, but the granted request is not made (it streams forever).
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/cameras"): "any",
    ("POST", "/api/cameras"): "admin",
    ("GET", "/api/cameras/{camera_id}"): "camera",
    ("PATCH", "/api/cameras/{camera_id}"): "admin",
    ("DELETE", "/api/cameras/{camera_id}"): "admin",
    ("POST", "/api/cameras/{camera_id}/enrollment"): "admin",
    ("DELETE", "/api/cameras/{camera_id}/credentials"): "admin",
    ("POST", "/api/cameras/{camera_id}/viewer-token"): "camera",
    ("GET", "/api/cameras/{camera_id}/status"): "camera",
    ("POST", "/api/edge/enroll"): "public",
    ("POST", "/api/edge/token"): "edge",
    ("POST", "/api/edge/heartbeat"): "edge",
    ("POST", "/api/edge/events"): "edge",
    ("POST", "/api/edge/uploads"): "edge",
    ("PUT", "/api/edge/uploads/{upload_id}"): "edge",
    ("GET", "/api/edge/uploads/{upload_id}"): "edge",
    ("GET", "/api/health"): "public",
    ("POST", "/api/livekit/webhook"): "signed",
    ("POST", "/api/cameras/{camera_id}/mjpeg-ticket"): "camera",
    ("GET", "/api/cameras/{camera_id}/mjpeg"): "camera_stream",
    ("GET", "/api/cameras/{camera_id}/snapshot.jpg"): "camera",
    ("GET", "/api/push/vapid-public-key"): "public",
    ("GET", "/api/push/subscriptions"): "admin",
    ("POST", "/api/push/subscriptions"): "admin",
    ("GET", "/api/push/subscriptions/{subscription_id}"): "admin",
    ("PATCH", "/api/push/subscriptions/{subscription_id}"): "admin",
    ("DELETE", "/api/push/subscriptions/{subscription_id}"): "admin",
    ("POST", "/api/push/subscriptions/{subscription_id}/test"): "admin",
    ("GET", "/api/push/stats"): "admin",
    ("GET", "/api/events"): "any",
    ("GET", "/api/events/days"): "any",
    ("POST", "/api/events/stream-ticket"): "any",
    ("GET", "/api/events/stream"): "any_stream",
    ("GET", "/api/events/{event_id}"): "event",
    ("GET", "/api/events/{event_id}/snapshot.jpg"): "event",
    ("POST", "/api/events/{event_id}/clip-ticket"): "event",
    ("GET", "/api/events/{event_id}/clip.mp4"): "event",
    ("GET", "/api/cameras/{camera_id}/zones"): "camera",
    ("PUT", "/api/cameras/{camera_id}/zones"): "admin",
    ("POST", "/api/auth/login"): "public",
    ("POST", "/api/auth/logout"): "public",
    ("GET", "/api/auth/me"): "any",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("GET", "/api/users/{user_id}"): "admin",
    ("PATCH", "/api/users/{user_id}"): "admin",
    ("DELETE", "/api/users/{user_id}"): "admin",
    ("GET", "/api/users/{user_id}/api-keys"): "admin",
    ("POST", "/api/users/{user_id}/api-keys"): "admin",
    ("DELETE", "/api/users/{user_id}/api-keys/{key_id}"): "admin",
    ("GET", "/api/audit"): "admin",
}

ROLES = ["admin", "viewer_door", "viewer_none", "anonymous", "edge"]
DENIED = {401, 403}
HIDDEN = {"camera_not_found", "event_not_found"}


def test_every_endpoint_has_an_access_rule(app: FastAPI) -> None:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert routes - set(ACCESS) == set(), "new endpoints: add them to ACCESS"
    assert set(ACCESS) - routes == set(), "ACCESS names endpoints that are gone"


def _setup(client: TestClient, app: FastAPI, admin: dict[str, str]) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    for camera in ("door", "yard"):
        code = create_camera(client, admin, camera)["enrollment"]["code"]
        edge = {"Authorization": f"Bearer {enroll(client, code)}"}
        body = message()
        response = client.post("/api/edge/events", json=body, headers=edge)
        assert response.status_code < 300, response.text
        ids[f"event_{camera}"] = body["event_id"]
        ids[f"edge_{camera}"] = edge
    ids["victim"] = add_user(app, "victim")
    return ids


def _headers(app: FastAPI, role: str, ids: dict[str, Any], admin: dict[str, str]) -> Any:
    if role == "admin":
        return admin
    if role == "viewer_door":
        return api_key_headers(app, add_user(app, "door-viewer", cameras={"door"}))
    if role == "viewer_none":
        return api_key_headers(app, add_user(app, "no-viewer"))
    if role == "edge":
        return ids["edge_door"]
    return {}


def _url(path: str, camera: str, ids: dict[str, Any]) -> str:
    return (
        path.replace("{camera_id}", camera)
        .replace("{event_id}", ids[f"event_{camera}"])
        .replace("{user_id}", str(ids["victim"]))
        .replace("{key_id}", "999999")
        .replace("{subscription_id}", "nope")
        .replace("{upload_id}", "nope")
    )


def _code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _order(item: tuple[tuple[str, str], str]) -> tuple[bool, bool, str]:
    (method, path), _rule = item
    # Deleting a camera or a user last, so the other requests still find them.
    return (method == "DELETE", path in {"/api/cameras/{camera_id}", "/api/users/{user_id}"}, path)


def _check(role: str, rule: str, granted: bool, response: Any) -> str | None:
    """A description of what is wrong with `response`, or None."""
    status, code = response.status_code, _code(response)
    base = rule.removesuffix("_stream")
    if base == "public":
        allowed = True
    elif base == "signed":
        allowed = False
    elif base == "edge":
        allowed = role == "edge"
    elif role in {"anonymous", "edge"}:
        allowed = False
    elif base == "admin":
        if role != "admin":
            return None if status == 403 else f"want 403, got {status}"
        allowed = True
    elif base == "any":
        allowed = True
    else:  # camera, event
        if not (role == "admin" or (role == "viewer_door" and granted)):
            return None if status == 404 and code in HIDDEN else f"want 404 hidden, got {status}"
        allowed = True
    if allowed:
        bad = status in DENIED or code in HIDDEN or status >= 500
        return f"want access, got {status} {code}" if bad else None
    return None if status in DENIED else f"want 401/403, got {status}"


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(client: TestClient, app: FastAPI, admin: dict[str, str], role: str) -> None:
    ids = _setup(client, app, admin)
    headers = _headers(app, role, ids, admin)
    problems = []
    for (method, path), rule in sorted(ACCESS.items(), key=_order):
        for camera, granted in (("yard", False), ("door", True)):
            if rule.endswith("_stream") and _check(role, rule, granted, _DenyProbe()) is not None:
                continue  # access would be granted: the response would never end
            response = client.request(method, _url(path, camera, ids), headers=headers, json={})
            problem = _check(role, rule, granted, response)
            if problem is not None:
                problems.append(f"{role} {method} {path} [{camera}]: {problem}")
    assert problems == []


class _DenyProbe:
    """A stand-in response that says "401": _check accepts it only where access is denied."""

    status_code = 401

    def json(self) -> dict[str, Any]:
        return {"error": {"code": "not_authenticated"}}
