"""The edge's server client: token caching across API restarts, and clear refusals."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from edge.backoff import Backoff
from edge.uplink import CredentialRejected, ServerClient, ServerError


def token_body(minutes: float) -> dict[str, str]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    return {
        "url": "ws://lk",
        "token": f"jwt-{minutes}",
        "room": "camera-a",
        "identity": "edge-a",
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }


def client_with(handler: httpx.MockTransport) -> ServerClient:
    client = ServerClient("http://api", "a", "lce_secret")
    client._client = httpx.AsyncClient(
        base_url="http://api",
        transport=handler,
        headers={"Authorization": "Bearer lce_secret"},
    )
    return client


async def test_token_is_fetched_with_the_credential_and_cached_while_the_api_is_down() -> None:
    calls: list[httpx.Request] = []
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if not up:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json=token_body(60))

    client = client_with(httpx.MockTransport(handler))
    first = await client.edge_token()
    assert first.room == "camera-a"
    assert calls[0].headers["Authorization"] == "Bearer lce_secret"
    up = False
    assert await client.edge_token() == first  # the API restarts; the edge reconnects anyway
    await client.aclose()


async def test_expiring_cached_token_is_not_reused() -> None:
    responses = [httpx.Response(200, json=token_body(0.5))]

    def handler(request: httpx.Request) -> httpx.Response:
        if responses:
            return responses.pop()
        raise httpx.ConnectError("down")

    client = client_with(httpx.MockTransport(handler))
    await client.edge_token()
    with pytest.raises(ServerError, match="cannot reach"):
        await client.edge_token()
    await client.aclose()


async def test_revoked_credential_is_reported_as_such() -> None:
    body = {"error": {"code": "invalid_edge_credential", "message": "credential revoked"}}
    client = client_with(httpx.MockTransport(lambda r: httpx.Response(401, json=body)))
    with pytest.raises(CredentialRejected, match="credential revoked"):
        await client.edge_token()
    await client.aclose()


async def test_heartbeat_sends_the_body_and_reports_server_errors() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if len(seen) == 1:
            return httpx.Response(200, json={"ok": True, "mjpeg_wanted": False})
        return httpx.Response(503, text="upstream down")

    client = client_with(httpx.MockTransport(handler))
    assert (await client.heartbeat({"fps": 30.0}))["ok"] is True
    assert seen == [{"fps": 30.0}]
    with pytest.raises(ServerError, match="HTTP 503: upstream down"):
        await client.heartbeat({"fps": 29.0})
    await client.aclose()


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(first=1.0, cap=8.0)
    delays = [backoff.next() for _ in range(8)]
    assert 0.7 <= delays[0] <= 1.3
    assert all(d <= 8.0 * 1.3 for d in delays)
    assert delays[-1] >= 8.0 * 0.7
    backoff.reset()
    assert backoff.next() <= 1.3


def test_backoff_survives_an_outage_of_hours() -> None:
    """Thousands of failures in a row (an edge offline overnight) stay at the cap."""
    backoff = Backoff(first=1.0, cap=60.0)
    delays = [backoff.next() for _ in range(3000)]
    assert max(delays) <= 60.0 * 1.3
    assert min(delays[-100:]) >= 60.0 * 0.7
