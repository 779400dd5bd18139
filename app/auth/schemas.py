"""Request and response bodies of the sign-in, users and API-key endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

Username = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@+-]+$")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class MeOut(BaseModel):
    """The caller: role, how they signed in, and the cameras they may see (null: all)."""

    role: Literal["admin", "viewer"]
    method: Literal["admin_key", "api_key", "session", "cf_access"]
    user_id: int | None
    name: str
    cameras: list[str] | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Username
    role: Literal["admin", "viewer"] = "viewer"
    password: str | None = Field(
        default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    cameras: list[str] = Field(default_factory=list, max_length=1000)


class UserUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "viewer"] | None = None
    password: str | None = Field(
        default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    cameras: list[str] | None = Field(default=None, max_length=1000)
    disabled: bool | None = None


class UserOut(BaseModel):
    id: int
    username: str
    role: Literal["admin", "viewer"]
    email: str | None
    cameras: list[str]
    has_password: bool
    created_at: datetime
    disabled_at: datetime | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    id: int
    user_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """The key itself is shown only in this answer."""

    key: str


class AuditOut(BaseModel):
    """One audit log entry."""

    id: int
    at: datetime
    action: str
    actor: str
    outcome: str
    ip: str | None
    camera_id: str | None
    detail: dict[str, Any] | None
