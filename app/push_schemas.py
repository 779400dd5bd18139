"""Request and response bodies of the Web Push API (/api/push)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.push_prefs import (
    QuietHours,
    check_auth_secret,
    check_p256dh,
    check_zone,
    parse_hhmm,
)
from app.schemas import CameraId

Label = Literal["person", "vehicle", "pet", "motion", "other"]
DeviceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CameraList = Annotated[list[CameraId], Field(min_length=1, max_length=200)]
LabelList = Annotated[list[Label], Field(min_length=1, max_length=5)]


class VapidPublicKey(BaseModel):
    key: str = Field(
        description="The server's VAPID public key, base64url (65-byte uncompressed P-256 "
        "point): PushManager.subscribe's applicationServerKey.",
        examples=["BOr5…"],
    )


class PushKeys(BaseModel):
    p256dh: str = Field(description="base64url, the browser's P-256 public key (65 bytes).")
    auth: str = Field(description="base64url, the browser's 16-byte auth secret.")

    @field_validator("p256dh")
    @classmethod
    def _p256dh(cls, value: str) -> str:
        return check_p256dh(value)

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        return check_auth_secret(value)


class BrowserSubscription(BaseModel):
    """``PushSubscription.toJSON()`` as the browser gives it (expirationTime is ignored)."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(description="The push service URL (https).")
    keys: PushKeys


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(description="HH:MM, 24 h, in tz.", examples=["22:00"])
    end: str = Field(description="HH:MM; earlier than start spans midnight.", examples=["07:00"])
    tz: str = Field(description="IANA time zone.", examples=["Europe/Berlin"])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return parse_hhmm(value).strftime("%H:%M")

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_zone(value)

    @model_validator(mode="after")
    def _window(self) -> QuietHoursIn:
        QuietHours.parse(self.model_dump())  # start == end is refused
        return self


def _default_labels() -> list[Label]:
    return ["person", "vehicle", "pet"]


def _dedupe_labels(value: list[Label] | None) -> list[Label] | None:
    return None if value is None else list(dict.fromkeys(value))


def _dedupe_cameras(value: list[str] | None) -> list[str] | None:
    return None if value is None else list(dict.fromkeys(value))


def _zone_or_none(value: str | None) -> str | None:
    return None if value is None else check_zone(value)


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription: BrowserSubscription
    device: DeviceName = Field(description="A name for this browser, e.g. 'Anna's phone'.")
    cameras: CameraList | None = Field(
        default=None, description="Camera ids to notify about; null = all cameras."
    )
    labels: LabelList = Field(
        default_factory=_default_labels,
        description="Event labels to notify about.",
    )
    quiet_hours: QuietHoursIn | None = Field(
        default=None, description="A daily window without notifications; null = none."
    )
    tz: str | None = Field(
        default=None,
        description="IANA zone for times in the notification text (default: the quiet "
        "hours' zone, else UTC).",
        examples=["Europe/Berlin"],
    )

    _labels = field_validator("labels")(_dedupe_labels)
    _cameras = field_validator("cameras")(_dedupe_cameras)
    _tz = field_validator("tz")(_zone_or_none)


class SubscriptionUpdate(BaseModel):
    """Only the fields present change; cameras/quiet_hours/tz may be set to null."""

    model_config = ConfigDict(extra="forbid")

    device: DeviceName | None = None
    cameras: CameraList | None = None
    labels: LabelList | None = None
    quiet_hours: QuietHoursIn | None = None
    tz: str | None = None

    _labels = field_validator("labels")(_dedupe_labels)
    _cameras = field_validator("cameras")(_dedupe_cameras)
    _tz = field_validator("tz")(_zone_or_none)


class QuietHoursOut(BaseModel):
    start: str
    end: str
    tz: str


class SubscriptionOut(BaseModel):
    id: str
    device: str
    endpoint: str = Field(description="The push service URL (a capability: keep it private).")
    endpoint_host: str
    cameras: list[str] | None
    labels: list[str]
    quiet_hours: QuietHoursOut | None
    tz: str | None
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None
    last_error: str | None = Field(description="Why the last delivery failed, if it did.")


class PushTestResult(BaseModel):
    status: Literal["sent"]
    push_status: int = Field(description="HTTP status the push service answered.")


class PushStatsOut(BaseModel):
    """Counters since the server started."""

    events: int = Field(description="Event changes seen on the bus.")
    notified_events: int = Field(description="Events that were dispatched (once each).")
    sent: int = Field(description="Notifications the push services accepted.")
    failed: int = Field(description="Notifications given up on.")
    retried: int
    removed: int = Field(description="Subscriptions deleted because the push service said gone.")
    quiet: int = Field(description="Notifications suppressed by quiet hours.")
    rate_limited: int = Field(description="Notifications dropped by the per-subscriber limit.")
    stale: int = Field(description="Events too old to notify about when first seen.")
    overflow: int = Field(description="Notifications dropped because too many were pending.")
    pending: int = Field(description="Notifications being sent right now.")
