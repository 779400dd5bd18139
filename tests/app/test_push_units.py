"""Web Push pieces on their own: quiet hours, endpoint checks, the payload, the rate
limiter, the VAPID subject setting, snapshot tickets, Retry-After, the sender's errors."""

from __future__ import annotations

import json
import socket
import stat
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.push import EventInfo, RateLimiter, encode_payload, headline, notification
from app.push_prefs import Preferences, QuietHours, check_endpoint, endpoint_host
from app.push_sender import SendError, Target, WebPushSender, parse_retry_after
from app.push_vapid import VAPID_KEY_FILE, load_vapid_key
from app.settings import ConfigError, Settings, load_settings
from app.tickets import TicketSigner, issue_event_snapshot_ticket, verify_event_snapshot_ticket
from tests.app.helpers import make_settings
from tests.app.push_service import Browser

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- quiet hours and preferences ---------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("06:59", True),
        ("07:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_across_midnight(local: str, quiet: bool) -> None:
    hours = QuietHours.parse({"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"})
    hh, mm = map(int, local.split(":"))
    when = datetime(2030, 1, 2, hh, mm, tzinfo=ZoneInfo("Europe/Berlin"))
    assert hours.covers(when) is quiet
    assert hours.covers(when.astimezone(UTC)) is quiet, "read on the subscriber's wall clock"


def test_quiet_hours_within_a_day_and_across_dst() -> None:
    hours = QuietHours.parse({"start": "09:00", "end": "17:00", "tz": "Europe/Berlin"})
    assert (hours.start, hours.end) == (time(9), time(17))
    # 08:30 UTC is 09:30 in winter (CET) but 10:30 in summer (CEST): quiet both times;
    # 07:30 UTC is 08:30 in winter (not quiet) and 09:30 in summer (quiet).
    assert hours.covers(datetime(2030, 1, 15, 8, 30, tzinfo=UTC))
    assert not hours.covers(datetime(2030, 1, 15, 7, 30, tzinfo=UTC))
    assert hours.covers(datetime(2030, 7, 15, 7, 30, tzinfo=UTC))
    assert not hours.covers(datetime(2030, 7, 15, 15, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "bad",
    [
        {"start": "7:00", "end": "08:00", "tz": "UTC"},
        {"start": "24:00", "end": "08:00", "tz": "UTC"},
        {"start": "08:00", "end": "08:00", "tz": "UTC"},
        {"start": "08:00", "end": "09:00", "tz": "../etc/passwd"},
        {"start": "08:00", "end": "09:00", "tz": "Nowhere/Special"},
    ],
)
def test_bad_quiet_hours_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|differ|IANA"):
        QuietHours.parse(bad)


def test_preferences_match_camera_and_label() -> None:
    prefs = Preferences.of(["door"], ["person", "pet"], None)
    assert prefs.wants("door", "person")
    assert not prefs.wants("yard", "person")
    assert not prefs.wants("door", "vehicle")
    everywhere = Preferences.of(None, ["motion"], None)
    assert everywhere.wants("anything", "motion")
    assert not everywhere.wants("door", "person")
    assert not prefs.is_quiet(NOW)


# --- endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "insecure", "ok"),
    [
        ("https://fcm.example.com/fcm/send/abc", False, True),
        ("https://push.example:8443/x", False, True),
        ("http://127.0.0.1:9/push/a", True, True),
        ("http://[::1]:9/push/a", True, True),
        ("http://localhost:9/push/a", True, True),
        ("http://127.0.0.1:9/push/a", False, False),
        ("http://192.168.1.2/push", True, False),
        ("https://user:pw@push.example/x", False, False),
        ("https:///nohost", False, False),
        ("https://push.example/x#frag", False, False),
        ("https://push.example:99999/x", False, False),
        ("javascript:alert(1)", True, False),
        ("https://push.example/" + "x" * 2100, False, False),
    ],
)
def test_endpoint_checks(url: str, insecure: bool, ok: bool) -> None:
    if ok:
        assert check_endpoint(url, insecure) == url
    else:
        with pytest.raises(ValueError, match=r"must|may be|not a URL"):
            check_endpoint(url, insecure)


def test_endpoint_host_drops_path_and_credentials() -> None:
    assert endpoint_host("https://u:p@push.example:8443/secret/token") == "push.example:8443"
    assert endpoint_host("https://push.example/secret") == "push.example"


# --- the notification -------------------------------------------------------------------------


def _event(**overrides: Any) -> EventInfo:
    data: dict[str, Any] = {
        "id": "e1",
        "camera_id": "door",
        "camera_name": "Front door",
        "label": "person",
        "object": "person",
        "score": 0.874,
        "zones": ["Driveway"],
        "started_at": "2030-01-02T12:03:44+00:00",
        "has_snapshot": True,
    }
    data.update(overrides)
    return EventInfo.parse(data)


def test_headline_names_the_object_for_vehicles_and_pets() -> None:
    assert headline("person", "person") == "Person"
    assert headline("vehicle", "car") == "Car"
    assert headline("pet", "dog") == "Dog"
    assert headline("motion", None) == "Motion"
    assert headline("other", None) == "Something"
    assert headline("vehicle", None) == "Vehicle"


def test_notification_text() -> None:
    payload = notification(_event(), zone=None, image="/img")
    assert payload["title"] == "Person at Front door"
    assert payload["body"] == "12:03:44 UTC · Driveway · 87 %"
    berlin = notification(
        _event(zones=["Driveway", "Gate"]), zone=ZoneInfo("Europe/Berlin"), image=None
    )
    assert berlin["body"] == "13:03:44 · Driveway, Gate · 87 %"
    assert berlin["image"] is None
    assert (
        notification(_event(camera_name=None), zone=None, image=None)["title"] == "Person at door"
    )


def test_event_parse_rejects_what_it_cannot_use() -> None:
    bad_fields: list[tuple[dict[str, Any], str]] = [
        ({"id": ""}, "id"),
        ({"label": "ghost"}, "label"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"camera_id": None}, "camera_id"),
    ]
    for bad, field in bad_fields:
        with pytest.raises(ValueError, match=field):
            _event(**bad)
    naive = _event(started_at="2030-01-02T12:03:44")
    assert naive.started_at.tzinfo is not None, "naive times are read as UTC"


def test_payload_stays_within_3kb_with_huge_names() -> None:
    event = _event(zones=[f"Zone {i} " + "é" * 60 for i in range(100)], camera_name="C" * 100)
    text = encode_payload(
        notification(event, zone=None, image="/api/events/e1/snapshot.jpg?ticket=v1.1.x")
    )
    assert len(text.encode()) <= 3072
    payload = json.loads(text)
    assert payload["body"].startswith("12:03:44 UTC · Zone 0")
    assert payload["body"].endswith("…")
    assert payload["title"] == "Person at " + "C" * 100, "the title is kept when the body suffices"
    small = encode_payload(notification(_event(), zone=None, image=None))
    assert "…" not in small


# --- rate limiter ------------------------------------------------------------------------------


def test_rate_limiter() -> None:
    limiter = RateLimiter(min_interval_s=60, max_per_hour=3)
    assert limiter.allow("s", "door", "person", 0) is None
    assert limiter.allow("s", "door", "person", 59) == "interval"
    assert limiter.allow("other", "door", "person", 59) is None, "per subscriber"
    assert limiter.allow("s", "door", "pet", 1) is None
    assert limiter.allow("s", "door", "person", 60) is None
    assert limiter.allow("s", "yard", "person", 61) == "hourly"
    assert limiter.allow("s", "yard", "person", 3600) is None, "the first one left the hour"
    limiter.forget("s")
    assert limiter.allow("s", "door", "person", 3601) is None


# --- VAPID subject and key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject", ["mailto:ops@example.org", "https://example.org", "mailto:admin@localhost"]
)
def test_vapid_subject_accepted(tmp_path: Path, subject: str) -> None:
    assert make_settings(tmp_path, vapid_subject=f" {subject} ").vapid_subject == subject


@pytest.mark.parametrize(
    "subject", ["admin@example.org", "http://example.org", "https://example.org/x", "mailto:a@b"]
)
def test_vapid_subject_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, subject: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 32)
    monkeypatch.setenv("LIVECAM_VAPID_SUBJECT", subject)
    with pytest.raises(ConfigError, match="LIVECAM_VAPID_SUBJECT must be a mailto: address"):
        load_settings()


def test_vapid_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    first = load_vapid_key(tmp_path)
    assert stat.S_IMODE((tmp_path / VAPID_KEY_FILE).stat().st_mode) == 0o600
    assert load_vapid_key(tmp_path).public_key_b64 == first.public_key_b64
    assert [p.name for p in tmp_path.iterdir()] == [VAPID_KEY_FILE], "no temporary file left"


def test_a_vapid_key_of_another_curve_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / VAPID_KEY_FILE).write_bytes(other)
    with pytest.raises(RuntimeError, match="P-256"):
        load_vapid_key(tmp_path)


# --- snapshot tickets ---------------------------------------------------------------------------


def test_event_snapshot_tickets_are_scoped_and_last_a_day() -> None:
    signer = TicketSigner(b"k" * 32)
    ticket = issue_event_snapshot_ticket(signer, "e1", NOW)
    assert ticket.expires_at == NOW + timedelta(hours=24)
    assert verify_event_snapshot_ticket(signer, ticket.value, "e1", NOW + timedelta(hours=23))
    assert not verify_event_snapshot_ticket(signer, ticket.value, "e1", NOW + timedelta(hours=24))
    assert not verify_event_snapshot_ticket(signer, ticket.value, "e2", NOW)
    assert not signer.verify(ticket.value, "e1", NOW), "not an MJPEG ticket"
    mjpeg = signer.issue("e1", NOW)
    assert not verify_event_snapshot_ticket(signer, mjpeg.value, "e1", NOW), "nor the reverse"


# --- sender ------------------------------------------------------------------------------------


def test_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("100000") == 300.0, "capped"
    assert parse_retry_after("Wed, 02 Jan 2030 03:04:15 GMT", now=NOW.timestamp()) == 10.0
    assert parse_retry_after("soon") is None


async def test_sender_reports_no_answer_without_the_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    browser = Browser(f"http://127.0.0.1:{port}/push/secret-token")
    keys = browser.subscription()["keys"]
    sender = WebPushSender(load_vapid_key(tmp_path), "mailto:admin@localhost", 2.0, 4)
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(
                Target("ps_x", browser.endpoint, keys["p256dh"], keys["auth"]),
                "{}",
                ttl=60,
                urgency="high",
            )
    finally:
        await sender.aclose()
    assert "secret-token" not in str(caught.value)
    assert "ClientConnectorError" in str(caught.value) or "Connect" in str(caught.value)


def test_settings_defaults(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    assert settings.vapid_subject == "mailto:admin@localhost"
    assert settings.push_allow_insecure is False
    assert (settings.push_ttl, settings.push_min_interval, settings.push_max_per_hour) == (
        3600,
        60.0,
        30,
    )
