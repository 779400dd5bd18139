"""What a Web Push subscription is and wants: checks for what a browser sends, quiet hours,
and which events a subscription hears about. Pure functions; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric import ec

from app.push_vapid import b64url, b64url_decode

LABELS: Final = ("person", "vehicle", "pet", "motion", "other")
MAX_ENDPOINT_LENGTH = 2048

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def check_endpoint(url: str, allow_insecure: bool = False) -> str:
    """The push service URL a browser subscribed with; raises ValueError if unusable.

    Push services are https. Plain http is accepted only for a loopback host and only
    when ``allow_insecure`` (LIVECAM_PUSH_ALLOW_INSECURE, for tests and local services).
    """
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise ValueError(f"must be at most {MAX_ENDPOINT_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("is not a URL") from None
    del port
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if not parts.hostname:
        raise ValueError("must be an absolute https:// URL with a host")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http":
        if not allow_insecure:
            raise ValueError("must be https:// (push services are)")
        if not is_loopback(parts.hostname):
            raise ValueError(
                "may be http:// only for a loopback host (LIVECAM_PUSH_ALLOW_INSECURE is on)"
            )
        return url
    raise ValueError("must be an https:// URL")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_host(url: str) -> str:
    """What logs may say about an endpoint: its host (and port), never the path."""
    try:
        parts = urlsplit(url)
        return parts.netloc.rpartition("@")[2] or "?"
    except ValueError:
        return "?"


def check_p256dh(text: str) -> str:
    """The browser's ECDH public key: base64url of an uncompressed P-256 point (65 bytes);
    returned unpadded. Raises ValueError otherwise."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise ValueError("must be base64url") from None
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError(
            f"must be an uncompressed P-256 point (65 bytes starting 0x04), got {len(raw)} bytes"
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("is not a point on the P-256 curve") from None
    return b64url(raw)


def check_auth_secret(text: str) -> str:
    """The browser's 16-byte auth secret, base64url; returned unpadded."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise ValueError("must be base64url") from None
    if len(raw) != 16:
        raise ValueError(f"must be 16 bytes, got {len(raw)}")
    return b64url(raw)


def check_zone(name: str) -> str:
    """An IANA time zone name (e.g. "Europe/Berlin"); raises ValueError otherwise."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Europe/Berlin'") from None
    return name


def parse_hhmm(text: str) -> time:
    """ "HH:MM" (24 h) as a time; raises ValueError otherwise."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (00:00-23:59)")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in its own time zone, when a subscription gets no notifications.
    ``start`` > ``end`` spans midnight (22:00-07:00)."""

    start: time
    end: time
    tz: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> QuietHours:
        """From ``{"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}``."""
        start, end = parse_hhmm(str(data["start"])), parse_hhmm(str(data["end"]))
        if start == end:
            raise ValueError("start and end must differ (use null for no quiet hours)")
        return cls(start, end, check_zone(str(data["tz"])))

    def as_dict(self) -> dict[str, str]:
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "tz": self.tz,
        }

    def covers(self, when: datetime) -> bool:
        """True when the aware datetime ``when`` falls in the window (start inclusive,
        end exclusive), read on the wall clock of ``tz``."""
        local = when.astimezone(ZoneInfo(self.tz)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class Preferences:
    """What one subscription wants to hear about."""

    cameras: frozenset[str] | None  # None: every camera
    labels: frozenset[str]
    quiet_hours: QuietHours | None

    @classmethod
    def of(
        cls,
        cameras: list[str] | None,
        labels: list[str],
        quiet_hours: dict[str, Any] | None,
    ) -> Preferences:
        """From the stored columns (already checked when they were stored)."""
        return cls(
            None if cameras is None else frozenset(cameras),
            frozenset(labels),
            None if quiet_hours is None else QuietHours.parse(quiet_hours),
        )

    def wants(self, camera_id: str, label: str) -> bool:
        """True when events of ``label`` on ``camera_id`` are wanted (quiet hours aside)."""
        in_cameras = self.cameras is None or camera_id in self.cameras
        return in_cameras and label in self.labels

    def is_quiet(self, when: datetime) -> bool:
        return self.quiet_hours is not None and self.quiet_hours.covers(when)
