"""Security headers on every response; no CORS."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.auth.headers import dashboard_csp


@pytest.mark.parametrize("path", ["/", "/api/health", "/api/cameras", "/api/nope"])
def test_every_response_has_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "script-src 'self';" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers


def test_hsts_only_behind_https(client: TestClient) -> None:
    response = client.get("/api/health", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_no_cors(client: TestClient, admin: dict[str, str]) -> None:
    origin = {"Origin": "https://evil.example"}
    response = client.get("/api/cameras", headers={**admin, **origin})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/api/cameras", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_csp_allows_livekit() -> None:
    csp = dashboard_csp("wss://lk.example.com:7881/some/path")
    assert "connect-src 'self' wss://lk.example.com:7881 https://lk.example.com:7881;" in csp
    assert "connect-src 'self';" in dashboard_csp("")
