"""Web Push API: the VAPID key, subscriptions (strict validation, upsert by endpoint,
PATCH/DELETE), the test notification, and /sw.js served from the root."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from app.main import create_app
from app.push_vapid import VAPID_KEY_FILE, load_vapid_key
from app.settings import Settings
from tests.app.helpers import assert_error, create_camera, make_settings
from tests.app.push_service import Browser, LocalPushService, b64url, b64url_decode, verify_vapid


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", push_allow_insecure=True, push_retry_delay=0.01)


@pytest.fixture
def service() -> Iterator[LocalPushService]:
    s = LocalPushService()
    yield s
    s.close()


def body(browser: Browser, **prefs: Any) -> dict[str, Any]:
    return {"subscription": browser.subscription(), "device": "Anna's phone", **prefs}


def subscribe(
    client: TestClient, admin: dict[str, str], browser: Browser, **prefs: Any
) -> dict[str, Any]:
    response = client.post("/api/push/subscriptions", json=body(browser, **prefs), headers=admin)
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out


# --- VAPID --------------------------------------------------------------------------


def test_vapid_public_key_is_the_p256_point_of_the_private_key_file(
    client: TestClient, settings: Settings
) -> None:
    response = client.get("/api/push/vapid-public-key")
    assert response.status_code == 200
    raw = b64url_decode(response.json()["key"])
    assert len(raw) == 65
    assert raw[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # on the curve
    path = settings.data_dir / VAPID_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_vapid_key(settings.data_dir).public_key_raw == raw


def test_vapid_key_survives_a_restart(settings: Settings, admin_key: str) -> None:
    first = create_app(settings).state.vapid.public_key_b64
    assert create_app(settings).state.vapid.public_key_b64 == first


def test_a_corrupt_vapid_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / VAPID_KEY_FILE).write_text("not a key")
    with pytest.raises(RuntimeError, match=r"vapid\.pem is not an unencrypted PEM private key"):
        load_vapid_key(tmp_path)


# --- subscriptions ------------------------------------------------------------------


def test_subscribe_defaults_and_list(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    browser = Browser(service.endpoint("a"))
    created = subscribe(client, admin, browser)
    assert created["id"].startswith("ps_")
    assert created["device"] == "Anna's phone"
    assert created["cameras"] is None
    assert created["labels"] == ["person", "vehicle", "pet"]
    assert created["quiet_hours"] is None
    assert created["endpoint_host"] == f"127.0.0.1:{service.port}"
    assert not {"keys", "auth", "p256dh"} & set(created), "the keys are not returned"
    listed = client.get("/api/push/subscriptions", headers=admin).json()
    assert [s["id"] for s in listed] == [created["id"]]


def test_the_same_endpoint_again_updates_without_a_duplicate(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    browser = Browser(service.endpoint("a"))
    first = subscribe(client, admin, browser)
    browser.auth_secret = b"\x01" * 16  # the browser renewed its keys
    again = client.post(
        "/api/push/subscriptions",
        json=body(browser, labels=["motion", "motion"], device="Tablet"),
        headers=admin,
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["labels"] == ["motion"]
    assert again.json()["device"] == "Tablet"
    assert len(client.get("/api/push/subscriptions", headers=admin).json()) == 1


def test_preferences_round_trip(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    create_camera(client, admin, "door")
    create_camera(client, admin, "yard", "Yard")
    out = subscribe(
        client,
        admin,
        Browser(service.endpoint("a")),
        cameras=["door", "yard"],
        labels=["person", "pet"],
        quiet_hours={"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
        tz="America/New_York",
    )
    assert out["cameras"] == ["door", "yard"]
    assert out["labels"] == ["person", "pet"]
    assert out["quiet_hours"] == {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}
    assert out["tz"] == "America/New_York"


def _key_of(length: int, first: int = 4) -> str:
    return b64url(bytes([first]) + b"\x07" * (length - 1))


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("https-only", {"subscription": {"endpoint": "ftp://push.example/x"}}, "subscription.endpoint"),
    ("not-loopback", {"subscription": {"endpoint": "http://push.example/x"}}, "loopback"),
    ("credentials", {"subscription": {"endpoint": "https://u:p@push.example/x"}}, "password"),
    ("short-p256dh", {"subscription": {"keys": {"p256dh": _key_of(33)}}}, "p256dh"),
    ("compressed-p256dh", {"subscription": {"keys": {"p256dh": _key_of(65, 2)}}}, "p256dh"),
    ("off-curve-p256dh", {"subscription": {"keys": {"p256dh": _key_of(65)}}}, "P-256"),
    ("not-base64", {"subscription": {"keys": {"auth": "!!!!"}}}, "auth"),
    ("short-auth", {"subscription": {"keys": {"auth": b64url(b"x" * 15)}}}, "16 bytes"),
    ("labels", {"labels": ["cat"]}, "labels"),
    ("no-labels", {"labels": []}, "labels"),
    ("no-cameras", {"cameras": []}, "cameras"),
    ("bad-camera-id", {"cameras": ["Not An Id"]}, "cameras"),
    ("unknown-camera", {"cameras": ["nowhere"]}, "nowhere"),
    ("tz", {"tz": "Mars/Olympus"}, "IANA"),
    ("quiet-time", {"quiet_hours": {"start": "25:00", "end": "07:00", "tz": "UTC"}}, "HH:MM"),
    ("quiet-empty", {"quiet_hours": {"start": "07:00", "end": "07:00", "tz": "UTC"}}, "differ"),
    ("quiet-tz", {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Nowhere"}}, "IANA"),
    ("device", {"device": "  "}, "device"),
    ("extra", {"label": ["person"]}, "label"),
]


@pytest.mark.parametrize(("case", "change", "mentions"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_subscriptions_are_refused_and_change_nothing(
    client: TestClient,
    admin: dict[str, str],
    service: LocalPushService,
    case: str,
    change: dict[str, Any],
    mentions: str,
) -> None:
    payload = body(Browser(service.endpoint(case)))
    for key, value in change.items():
        if key == "subscription":
            for sub_key, sub_value in value.items():
                if sub_key == "keys":
                    payload["subscription"]["keys"].update(sub_value)
                else:
                    payload["subscription"][sub_key] = sub_value
        else:
            payload[key] = value
    response = client.post("/api/push/subscriptions", json=payload, headers=admin)
    assert response.status_code == 422, response.text
    assert mentions in response.json()["error"]["message"]
    assert client.get("/api/push/subscriptions", headers=admin).json() == []


def test_plain_http_needs_the_insecure_setting(
    settings: Settings, admin_key: str, admin: dict[str, str], service: LocalPushService
) -> None:
    settings.push_allow_insecure = False
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/push/subscriptions", json=body(Browser(service.endpoint("a"))), headers=admin
        )
    message = assert_error(response, 422, "validation_error")
    assert "must be https://" in message


def test_subscriptions_need_the_admin_key(client: TestClient, service: LocalPushService) -> None:
    browser = Browser(service.endpoint("a"))
    assert_error(
        client.post("/api/push/subscriptions", json=body(browser)), 401, "not_authenticated"
    )
    assert_error(client.get("/api/push/subscriptions"), 401, "not_authenticated")
    assert_error(
        client.get("/api/push/stats", headers={"Authorization": "Bearer lca_wrong"}),
        401,
        "invalid_admin_key",
    )


def test_patch_changes_only_what_is_sent(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    create_camera(client, admin, "door")
    created = subscribe(
        client,
        admin,
        Browser(service.endpoint("a")),
        cameras=["door"],
        quiet_hours={"start": "22:00", "end": "07:00", "tz": "UTC"},
    )
    path = f"/api/push/subscriptions/{created['id']}"
    patched = client.patch(path, json={"labels": ["motion"]}, headers=admin)
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert out["labels"] == ["motion"]
    assert out["cameras"] == ["door"]
    assert out["quiet_hours"] is not None
    out = client.patch(path, json={"cameras": None, "quiet_hours": None}, headers=admin).json()
    assert (out["cameras"], out["quiet_hours"], out["labels"]) == (None, None, ["motion"])
    assert_error(client.patch(path, json={"labels": None}, headers=admin), 422, "validation_error")
    assert_error(
        client.patch(path, json={"cameras": ["gone"]}, headers=admin), 422, "unknown_camera"
    )
    assert client.get(path, headers=admin).json() == out, "refused changes changed nothing"
    assert_error(
        client.patch("/api/push/subscriptions/ps_nope", json={}, headers=admin),
        404,
        "subscription_not_found",
    )


def test_delete(client: TestClient, admin: dict[str, str], service: LocalPushService) -> None:
    created = subscribe(client, admin, Browser(service.endpoint("a")))
    path = f"/api/push/subscriptions/{created['id']}"
    assert client.delete(path, headers=admin).status_code == 204
    assert_error(client.get(path, headers=admin), 404, "subscription_not_found")
    assert_error(client.delete(path, headers=admin), 404, "subscription_not_found")


def test_test_notification_is_signed_encrypted_and_delivered(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    browser = Browser(service.endpoint("a"))
    created = subscribe(client, admin, browser)
    response = client.post(f"/api/push/subscriptions/{created['id']}/test", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "sent", "push_status": 201}
    (received,) = service.received("a")
    key = client.get("/api/push/vapid-public-key").json()["key"]
    claims = verify_vapid(received, key, service.origin)
    assert claims["sub"] == "mailto:admin@localhost"
    payload = browser.payload(received)
    assert payload["title"] == "livecam"
    assert payload["body"] == "Notifications work on Anna's phone."


def test_test_notification_to_a_gone_subscription_deletes_it(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    service.behave("a", then=410)
    created = subscribe(client, admin, Browser(service.endpoint("a")))
    response = client.post(f"/api/push/subscriptions/{created['id']}/test", headers=admin)
    assert_error(response, 502, "subscription_gone")
    assert client.get("/api/push/subscriptions", headers=admin).json() == []


def test_test_notification_to_nobody_listening_is_a_502(
    client: TestClient, admin: dict[str, str], service: LocalPushService
) -> None:
    created = subscribe(client, admin, Browser(service.endpoint("a")))
    service.close()  # nothing listens on the port any more
    response = client.post(f"/api/push/subscriptions/{created['id']}/test", headers=admin)
    message = assert_error(response, 502, "push_unreachable")
    assert "/push/" not in message, "the endpoint's path is a secret"


# --- the service worker --------------------------------------------------------------


def test_service_worker_is_served_from_the_root(client: TestClient) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["service-worker-allowed"] == "/"
    assert response.headers["cache-control"] == "no-cache"
    assert "showNotification" in response.text
    assert "notificationclick" in response.text
    again = client.get("/sw.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["service-worker-allowed"] == "/"
