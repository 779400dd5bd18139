"""Cloudflare Access: JWTs checked against a JWKS served by a loopback test server."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.cloudflare_access import HEADER, REFRESH_INTERVAL_S, AccessVerifier
from app.models import User
from tests.app.auth.users_helpers import add_user
from tests.app.helpers import FakeClock, assert_error, create_camera

AUD = "test-aud-0123456789"
#: The app's (fake) clock at the start of each test, as Unix time.
NOW = int(FakeClock().now.timestamp())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": _b64(n), "e": _b64(e)}


def sign(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    """An RS256 JWT; default claims are valid for AUD for the next 10 minutes."""
    body = {"aud": [AUD], "email": "ann@example.com", "iat": NOW, "nbf": NOW, "exp": NOW + 600}
    body.update(claims)
    header = _b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(body).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"


class Jwks:
    """A loopback JWKS server whose keys and availability the test controls."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.down = False
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.hits += 1
                if jwks.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": [_jwk(k, v) for k, v in jwks.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cdn-cgi/access/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def new_key(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        return key

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def access(app: FastAPI, jwks: Jwks, monotonic: FakeMonotonic) -> FastAPI:
    """The app behind Cloudflare Access, its verifier reading the loopback JWKS."""
    settings = app.state.settings
    settings.cf_access_team_domain = "team.cloudflareaccess.com"
    settings.cf_access_aud = AUD
    settings.cf_access_certs_url = jwks.url
    app.state.access_verifier = AccessVerifier(jwks.url, AUD, monotonic=monotonic)
    return app


def _me(client: TestClient, token: str) -> Any:
    return client.get("/api/auth/me", headers={HEADER: token})


def _user_with_email(app: FastAPI, cameras: set[str]) -> None:
    user_id = add_user(app, "ann", cameras=cameras)
    with app.state.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.email = "ann@example.com"
        session.commit()


def test_valid_token_signs_in_the_matching_user(
    client: TestClient, access: FastAPI, jwks: Jwks, admin: dict[str, str]
) -> None:
    create_camera(client, admin, "door")
    _user_with_email(access, {"door"})
    key = jwks.new_key("k1")
    response = _me(client, sign(key, "k1", email="Ann@Example.com"))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["method"] == "cf_access"
    assert me["cameras"] == ["door"]
    listed = client.get("/api/cameras", headers={HEADER: sign(key, "k1")}).json()
    assert [c["id"] for c in listed] == ["door"]


def test_keys_still_work_and_nothing_else_does(
    client: TestClient, access: FastAPI, admin: dict[str, str]
) -> None:
    assert client.get("/api/cameras", headers=admin).status_code == 200
    assert_error(client.get("/api/auth/me"), 401, "access_required")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": NOW - 3600},
        {"aud": ["someone-else"]},
        {"nbf": NOW + 3600},
        {"email": ""},
    ],
    ids=["expired", "wrong-aud", "not-yet", "no-email"],
)
def test_bad_claims_are_refused(
    client: TestClient, access: FastAPI, jwks: Jwks, claims: dict[str, Any]
) -> None:
    _user_with_email(access, set())
    key = jwks.new_key("k1")
    assert _me(client, sign(key, "k1")).status_code == 200
    assert_error(_me(client, sign(key, "k1", **claims)), 401, "invalid_access_token")


def test_wrong_key_and_garbage_are_refused(client: TestClient, access: FastAPI, jwks: Jwks) -> None:
    _user_with_email(access, set())
    jwks.new_key("k1")
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_error(_me(client, sign(forger, "k1")), 401, "invalid_access_token")
    for garbage in ("x", "a.b.c", "e30.e30.", "....."):
        assert_error(_me(client, garbage), 401, "invalid_access_token")


def test_unknown_kid_refreshes_at_most_once_a_minute(
    client: TestClient, access: FastAPI, jwks: Jwks, monotonic: FakeMonotonic
) -> None:
    _user_with_email(access, set())
    first = jwks.new_key("k1")
    assert _me(client, sign(first, "k1")).status_code == 200
    assert jwks.hits == 1
    rotated = jwks.new_key("k2")  # Cloudflare rotated: k2 is unknown to the cache
    monotonic.now += REFRESH_INTERVAL_S + 1
    assert _me(client, sign(rotated, "k2")).status_code == 200
    assert jwks.hits == 2
    assert _me(client, sign(first, "k1")).status_code == 200  # from the cache
    assert_error(_me(client, sign(first, "k-nope")), 401, "invalid_access_token")
    assert jwks.hits == 2  # refreshed less than a minute ago: no new fetch
    monotonic.now += REFRESH_INTERVAL_S + 1
    assert_error(_me(client, sign(first, "k-nope")), 401, "invalid_access_token")
    assert jwks.hits == 3


def test_jwks_down_refuses_cleanly(client: TestClient, access: FastAPI, jwks: Jwks) -> None:
    _user_with_email(access, set())
    key = jwks.new_key("k1")
    jwks.down = True
    assert_error(_me(client, sign(key, "k1")), 401, "invalid_access_token")


def test_unknown_email_is_refused_or_auto_created(
    client: TestClient, access: FastAPI, jwks: Jwks, admin: dict[str, str]
) -> None:
    key = jwks.new_key("k1")
    token = sign(key, "k1", email="new@example.com")
    assert_error(_me(client, token), 403, "unknown_user")
    access.state.settings.cf_access_auto_create = True
    me = _me(client, token).json()
    assert me["role"] == "viewer"
    assert me["cameras"] == []
    users = client.get("/api/users", headers=admin).json()
    assert [u["email"] for u in users] == ["new@example.com"]
