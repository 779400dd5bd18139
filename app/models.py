"""Database tables, as SQLAlchemy 2 typed mapped classes.

Timestamps are stored in UTC and always come back as aware UTC datetimes, on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime(timezone=True) that stores UTC and returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class AdminApiKey(Base):
    """An admin API key (only its sha256 is kept)."""

    __tablename__ = "admin_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Camera(Base):
    """A camera; its edge publishes into the LiveKit room `camera-<id>`."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # offline | connecting | publishing | reconnecting | stopped | error
    state: Mapped[str] = mapped_column(String(20), default="offline")
    state_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last heartbeat body the edge sent.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    enrollment_codes: Mapped[list[EnrollmentCode]] = relationship(
        back_populates="camera", cascade="all, delete-orphan", passive_deletes=True
    )
    credentials: Mapped[list[EdgeCredential]] = relationship(
        back_populates="camera", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def room(self) -> str:
        return room_name(self.id)


def room_name(camera_id: str) -> str:
    return f"camera-{camera_id}"


class EnrollmentCode(Base):
    """A one-time code that an edge trades for its credential."""

    __tablename__ = "enrollment_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a newer code for the same camera replaced this one.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    camera: Mapped[Camera] = relationship(back_populates="enrollment_codes")


class EdgeCredential(Base):
    """The long-lived secret an enrolled edge authenticates with (only its sha256 is kept)."""

    __tablename__ = "edge_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    camera: Mapped[Camera] = relationship(back_populates="credentials")


class PushSubscription(Base):
    """A browser's Web Push subscription and what it wants to hear about.

    The endpoint is a capability URL: it is kept to send to, returned to admins, and never
    logged (logs name its host only).
    """

    __tablename__ = "push_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text)
    # sha256 of the endpoint: one row per endpoint without a unique index on a long text.
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    p256dh: Mapped[str] = mapped_column(String(100))  # base64url, 65-byte P-256 point
    auth: Mapped[str] = mapped_column(String(40))  # base64url, 16 bytes
    device: Mapped[str] = mapped_column(String(100))
    # Camera ids to notify about; null = every camera.
    cameras: Mapped[list[str] | None] = mapped_column(JSON)
    labels: Mapped[list[str]] = mapped_column(JSON)
    # {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"} or null.
    quiet_hours: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # IANA zone the notification text shows times in (null: the quiet hours' zone, or UTC).
    tz: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200))


class PushNotice(Base):
    """An event that Web Push has already dispatched: at most one notification per event."""

    __tablename__ = "push_notices"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Event(Base):
    """A detection or motion event, as the edge reported it (its latest state).

    ``id`` is the edge's event id. ``last_seq`` is the highest message seq applied, so
    a message is applied at most once whatever order messages arrive in. ``version``
    grows with every applied change across all events (SSE ids, Last-Event-ID replay).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_camera_started", "camera_id", "started_at"),
        Index("ix_events_label_started", "label", "started_at"),
        Index("ix_events_started_at", "started_at"),
        Index("ix_events_version", "version", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16))  # person | vehicle | pet | motion | other
    object: Mapped[str | None] = mapped_column(String(40))  # COCO name; null for motion
    score: Mapped[float] = mapped_column(Float)  # of the newest message
    best_score: Mapped[float] = mapped_column(Float)  # the highest of any message
    box: Mapped[list[float] | None] = mapped_column(JSON)
    # Every zone the event was seen in (union over its messages), in order of entry.
    zones: Mapped[list[str]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())  # `at` of the newest message
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seq: Mapped[int] = mapped_column(Integer)
    # Path of the kept snapshot under <data>/events/, and the score it was sent with.
    snapshot: Mapped[str | None] = mapped_column(String(200))
    snapshot_score: Mapped[float | None] = mapped_column(Float)
    snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())  # first message received
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())  # last change applied
    version: Mapped[int] = mapped_column(Integer)

    # The event's clip, if one was uploaded (app/clips.py writes the rows). Loaded with
    # the events (one extra query per page), read-only here.
    clip: Mapped[Clip | None] = relationship(lazy="selectin", viewonly=True)


class EventZone(Base):
    """One zone an event was seen in (for the ``zone`` filter, portable across databases)."""

    __tablename__ = "event_zones"

    event_id: Mapped[str] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    zone: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Counter(Base):
    """A named counter. ``events`` numbers event changes; bumping it first in the ingest
    transaction also serialises event writes, so versions are handed out in commit order."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class CameraZones(Base):
    """A camera's zones and privacy masks (the contract-2 list), replaced as a whole."""

    __tablename__ = "camera_zones"

    camera_id: Mapped[str] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Clip(Base):
    """An event's video clip, uploaded by its edge (contract 5); at most one per event.

    The bytes are in the media store (app/media_store.py) under ``storage_key``.
    ``upload_id`` is the upload that delivered it, so a retried request for a finished
    upload is answered as complete.
    """

    __tablename__ = "clips"
    __table_args__ = (Index("ix_clips_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_s: Mapped[float] = mapped_column(Float)
    upload_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(Base):
    """A person who signs in to the dashboard (issue 6): an admin, or a viewer of some cameras."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    # admin | viewer
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CameraGrant(Base):
    """A viewer may see one camera. Admins see every camera without grants."""

    __tablename__ = "camera_grants"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    camera_id: Mapped[str] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserApiKey(Base):
    """A user's API key (`lck_…`) for scripts; only its sha256 is kept."""

    __tablename__ = "user_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserSession(Base):
    """A signed-in browser: the cookie holds the token, the table its sha256 and expiry."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AuditEntry(Base):
    """One security-relevant act: a sign-in, a token minted, an admin change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # login | token | user | grant | api_key | camera
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(10))
    ip: Mapped[str | None] = mapped_column(String(64))
    camera_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
