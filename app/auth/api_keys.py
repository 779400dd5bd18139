"""Per-user API keys (`lck_…`) for scripts: created once, stored as sha256, revocable."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User, UserApiKey
from app.security import hash_secret, secrets_equal

API_KEY_PREFIX = "lck_"


def new_api_key() -> str:
    """`lck_` + 43 URL-safe random characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def create_api_key(
    session: Session, user: User, name: str, now: datetime
) -> tuple[UserApiKey, str]:
    """Adds a key for `user`; returns the row and the key itself (shown only once)."""
    key = new_api_key()
    row = UserApiKey(user_id=user.id, key_hash=hash_secret(key), name=name, created_at=now)
    session.add(row)
    return row, key


def find_api_key_user(session: Session, key: str) -> User | None:
    """The enabled user owning the active API key `key`, if any."""
    key_hash = hash_secret(key)
    row = session.scalars(
        select(UserApiKey).where(UserApiKey.key_hash == key_hash, UserApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None or not secrets_equal(row.key_hash, key_hash):
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user
