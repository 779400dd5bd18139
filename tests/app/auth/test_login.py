"""Local users: password sign-in, session cookies, CSRF, lockout, the users API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.passwords import hash_password, verify_password
from app.auth.principals import SESSION_COOKIE
from tests.app.auth.users_helpers import add_user, api_key_headers
from tests.app.helpers import FakeClock, assert_error, create_camera

ORIGIN = {"Origin": "http://testserver"}
PASSWORD = "correct horse battery"


@pytest.fixture
def dev_cookies(app: FastAPI) -> None:
    """The TestClient talks plain http: the cookie must not be Secure-only."""
    app.state.settings.insecure_cookies = True


def _make_user(
    client: TestClient,
    admin: dict[str, str],
    username: str = "ann",
    cameras: list[str] | None = None,
    role: str = "viewer",
) -> dict[str, Any]:
    body = {"username": username, "password": PASSWORD, "role": role, "cameras": cameras or []}
    response = client.post("/api/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _login(client: TestClient, username: str = "ann", password: str = PASSWORD) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_password_hashes_are_argon2id_and_salted() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second
    assert verify_password("s3cret-pass", first)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("s3cret-pass", "argon2id$garbage")
    assert not verify_password("s3cret-pass", first.replace("argon2id", "argon2i", 1))


def test_login_sets_a_strict_http_only_secure_cookie(
    client: TestClient, admin: dict[str, str]
) -> None:
    _make_user(client, admin)
    response = _login(client)
    assert response.status_code == 204, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute in cookie


@pytest.mark.usefixtures("dev_cookies")
def test_session_sees_granted_cameras_until_logout(
    client: TestClient, admin: dict[str, str]
) -> None:
    create_camera(client, admin, "door")
    create_camera(client, admin, "yard")
    user = _make_user(client, admin, cameras=["yard"])
    assert user["cameras"] == ["yard"]
    assert user["has_password"] is True
    assert _login(client).status_code == 204
    me = client.get("/api/auth/me").json()
    assert me == {
        "role": "viewer",
        "method": "session",
        "user_id": user["id"],
        "name": "ann",
        "cameras": ["yard"],
    }
    assert [c["id"] for c in client.get("/api/cameras").json()] == ["yard"]
    assert client.post("/api/auth/logout").status_code == 204
    assert_error(client.get("/api/auth/me"), 401, "not_authenticated")


@pytest.mark.usefixtures("dev_cookies")
def test_cookie_requests_that_change_things_need_our_origin(
    client: TestClient, admin: dict[str, str]
) -> None:
    create_camera(client, admin, "door")
    _make_user(client, admin, cameras=["door"])
    assert _login(client).status_code == 204
    url = "/api/cameras/door/viewer-token"
    assert_error(client.post(url), 403, "csrf_failed")
    assert_error(client.post(url, headers={"Origin": "https://evil.example"}), 403, "csrf_failed")
    assert client.post(url, headers=ORIGIN).status_code == 200
    assert client.get("/api/cameras/door").status_code == 200  # safe methods need no Origin


def test_wrong_password_and_unknown_user_look_the_same(
    client: TestClient, admin: dict[str, str]
) -> None:
    _make_user(client, admin)
    wrong = assert_error(_login(client, password="nope-nope"), 401, "invalid_login")
    unknown = assert_error(_login(client, username="bob"), 401, "invalid_login")
    assert wrong == unknown


def test_lockout_after_repeated_failures(
    client: TestClient, app: FastAPI, admin: dict[str, str], clock: FakeClock
) -> None:
    _make_user(client, admin)
    limit = app.state.settings.login_max_failures
    for _ in range(limit):
        assert _login(client, password="wrong-password").status_code == 401
    locked = _login(client)
    assert_error(locked, 429, "login_locked")
    assert int(locked.headers["Retry-After"]) > 0
    clock.advance(app.state.settings.login_lockout_minutes * 60 + 1)
    assert _login(client).status_code == 204


def test_disabled_user_cannot_sign_in(client: TestClient, admin: dict[str, str]) -> None:
    user = _make_user(client, admin)
    response = client.patch(f"/api/users/{user['id']}", json={"disabled": True}, headers=admin)
    assert response.status_code == 200, response.text
    assert_error(_login(client), 401, "invalid_login")


def test_users_api_is_admin_only(client: TestClient, app: FastAPI, admin: dict[str, str]) -> None:
    viewer = api_key_headers(app, add_user(app, "viewer"))
    assert_error(client.get("/api/users", headers=viewer), 403, "admin_required")
    assert_error(
        client.post("/api/users", json={"username": "x"}, headers=viewer), 403, "admin_required"
    )
    assert_error(client.get("/api/users"), 401, "not_authenticated")


def test_users_api_validates(client: TestClient, admin: dict[str, str]) -> None:
    _make_user(client, admin)
    conflict = client.post("/api/users", json={"username": "ann"}, headers=admin)
    assert_error(conflict, 409, "user_exists")
    unknown = client.post("/api/users", json={"username": "b", "cameras": ["nope"]}, headers=admin)
    assert_error(unknown, 422, "validation_error")
    extra = client.post("/api/users", json={"username": "c", "admin": True}, headers=admin)
    assert_error(extra, 422, "validation_error")
    short = client.post("/api/users", json={"username": "d", "password": "short"}, headers=admin)
    assert_error(short, 422, "validation_error")
    names = [u["username"] for u in client.get("/api/users", headers=admin).json()]
    assert names == ["ann"]


def test_grants_change_what_a_user_sees(client: TestClient, admin: dict[str, str]) -> None:
    create_camera(client, admin, "door")
    create_camera(client, admin, "yard")
    user = _make_user(client, admin)
    created = client.post(
        f"/api/users/{user['id']}/api-keys", json={"name": "script"}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("lck_")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/cameras", headers=headers).json() == []
    client.patch(f"/api/users/{user['id']}", json={"cameras": ["door"]}, headers=admin)
    assert [c["id"] for c in client.get("/api/cameras", headers=headers).json()] == ["door"]
    client.patch(f"/api/users/{user['id']}", json={"role": "admin"}, headers=admin)
    assert len(client.get("/api/cameras", headers=headers).json()) == 2

    keys = client.get(f"/api/users/{user['id']}/api-keys", headers=admin).json()
    assert [k["name"] for k in keys] == ["script"]
    assert "key" not in keys[0]
    revoked = client.delete(f"/api/users/{user['id']}/api-keys/{keys[0]['id']}", headers=admin)
    assert revoked.json()["revoked_at"] is not None
    assert_error(client.get("/api/cameras", headers=headers), 401, "invalid_api_key")


def test_deleting_a_user_ends_their_access(client: TestClient, admin: dict[str, str]) -> None:
    user = _make_user(client, admin)
    created = client.post(f"/api/users/{user['id']}/api-keys", json={"name": "s"}, headers=admin)
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.delete(f"/api/users/{user['id']}", headers=admin).status_code == 204
    assert_error(client.get("/api/auth/me", headers=headers), 401, "invalid_api_key")
    assert_error(client.get(f"/api/users/{user['id']}", headers=admin), 404, "user_not_found")


def test_me_for_the_admin_key(client: TestClient, admin: dict[str, str]) -> None:
    me = client.get("/api/auth/me", headers=admin).json()
    assert me["role"] == "admin"
    assert me["method"] == "admin_key"
    assert me["cameras"] is None
