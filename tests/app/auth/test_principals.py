"""Who is calling: admin key, API keys, session cookies; roles and camera grants."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.principals import SESSION_COOKIE
from app.models import User, UserApiKey
from tests.app.auth.users_helpers import add_user, api_key_headers, key_hash, session_token
from tests.app.helpers import FakeClock, assert_error, create_camera


def _two_cameras(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin, "door", "Front door")
    create_camera(client, admin, "yard", "Back yard")


def _listed(client: TestClient, headers: dict[str, str]) -> list[str]:
    response = client.get("/api/cameras", headers=headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


def test_admin_key_sees_every_camera(client: TestClient, admin: dict[str, str]) -> None:
    _two_cameras(client, admin)
    assert _listed(client, admin) == ["door", "yard"]


def test_viewer_api_key_sees_only_granted_cameras(
    client: TestClient, app: FastAPI, admin: dict[str, str]
) -> None:
    _two_cameras(client, admin)
    viewer = api_key_headers(app, add_user(app, "ann", cameras={"door"}))
    assert _listed(client, viewer) == ["door"]
    assert client.get("/api/cameras/door", headers=viewer).status_code == 200
    assert client.get("/api/cameras/door/status", headers=viewer).status_code == 200
    assert client.post("/api/cameras/door/viewer-token", headers=viewer).status_code == 200


def test_ungranted_camera_looks_missing(
    client: TestClient, app: FastAPI, admin: dict[str, str]
) -> None:
    _two_cameras(client, admin)
    viewer = api_key_headers(app, add_user(app, "ann", cameras={"door"}))
    for path in ("/api/cameras/yard", "/api/cameras/nosuch"):
        assert_error(client.get(path, headers=viewer), 404, "camera_not_found")
    assert_error(
        client.post("/api/cameras/yard/viewer-token", headers=viewer), 404, "camera_not_found"
    )
    assert_error(client.get("/api/cameras/yard/status", headers=viewer), 404, "camera_not_found")


def test_viewer_without_grants_sees_nothing(
    client: TestClient, app: FastAPI, admin: dict[str, str]
) -> None:
    _two_cameras(client, admin)
    viewer = api_key_headers(app, add_user(app, "nobody"))
    assert _listed(client, viewer) == []


def test_viewer_cannot_administer(client: TestClient, app: FastAPI, admin: dict[str, str]) -> None:
    _two_cameras(client, admin)
    viewer = api_key_headers(app, add_user(app, "ann", cameras={"door"}))
    assert_error(
        client.post("/api/cameras", json={"id": "gate", "name": "Gate"}, headers=viewer),
        403,
        "admin_required",
    )
    for method, path in [
        ("PATCH", "/api/cameras/door"),
        ("DELETE", "/api/cameras/door"),
        ("POST", "/api/cameras/door/enrollment"),
        ("DELETE", "/api/cameras/door/credentials"),
    ]:
        response = client.request(method, path, headers=viewer, json={"name": "x"})
        assert_error(response, 403, "admin_required")
    assert _listed(client, admin) == ["door", "yard"]


def test_admin_user_api_key_is_an_admin(
    client: TestClient, app: FastAPI, admin: dict[str, str]
) -> None:
    _two_cameras(client, admin)
    boss = api_key_headers(app, add_user(app, "boss", role="admin"))
    assert _listed(client, boss) == ["door", "yard"]
    create_camera(client, boss, "gate", "Gate")
    assert _listed(client, admin) == ["door", "gate", "yard"]


def test_revoked_api_key_and_disabled_user_are_refused(
    client: TestClient, app: FastAPI, admin: dict[str, str], clock: FakeClock
) -> None:
    _two_cameras(client, admin)
    first = add_user(app, "ann", cameras={"door"})
    revoked = api_key_headers(app, first)
    with app.state.session_factory() as session:
        row = session.scalars(
            select(UserApiKey).where(UserApiKey.key_hash == key_hash(revoked))
        ).one()
        row.revoked_at = clock()
        session.commit()
    assert_error(client.get("/api/cameras", headers=revoked), 401, "invalid_api_key")

    second = add_user(app, "bob", cameras={"door"})
    disabled = api_key_headers(app, second)
    assert _listed(client, disabled) == ["door"]
    with app.state.session_factory() as session:
        user = session.get(User, second)
        assert user is not None
        user.disabled_at = clock()
        session.commit()
    assert_error(client.get("/api/cameras", headers=disabled), 401, "invalid_api_key")
    assert_error(
        client.get("/api/cameras", headers={"Authorization": "Bearer lck_unknown"}),
        401,
        "invalid_api_key",
    )


def test_session_cookie_signs_in_until_it_expires(
    client: TestClient, app: FastAPI, admin: dict[str, str], clock: FakeClock
) -> None:
    _two_cameras(client, admin)
    token = session_token(app, add_user(app, "ann", cameras={"yard"}), timedelta(minutes=10))
    client.cookies.set(SESSION_COOKIE, token)
    assert _listed(client, {}) == ["yard"]
    clock.advance(11 * 60)
    assert_error(client.get("/api/cameras"), 401, "session_expired")


def test_invalid_bearer_is_not_rescued_by_a_cookie(
    client: TestClient, app: FastAPI, admin: dict[str, str]
) -> None:
    _two_cameras(client, admin)
    client.cookies.set(SESSION_COOKIE, session_token(app, add_user(app, "ann", role="admin")))
    assert_error(
        client.get("/api/cameras", headers={"Authorization": "Bearer lca_wrong"}),
        401,
        "invalid_admin_key",
    )


def test_no_credentials_is_401(client: TestClient) -> None:
    assert_error(client.get("/api/cameras"), 401, "not_authenticated")
