"""Database tables, as SQLAlchemy 2 typed mapped classes.

Timestamps are stored in UTC and always come back as aware UTC datetimes, on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
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
