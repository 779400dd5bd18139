"""Server-side sign-in sessions: the cookie holds a random token, the table its sha256."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User, UserSession
from app.security import hash_secret, secrets_equal


def create_session(session: Session, user: User, now: datetime, ttl: timedelta) -> str:
    """Adds a session for `user` expiring after `ttl`; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            user_id=user.id, token_hash=hash_secret(token), created_at=now, expires_at=now + ttl
        )
    )
    return token


def find_session_user(session: Session, token: str, now: datetime) -> User | None:
    """The enabled user of an unexpired session `token`, if any."""
    token_hash = hash_secret(token)
    row = session.scalars(
        select(UserSession).where(UserSession.token_hash == token_hash)
    ).one_or_none()
    if row is None or not secrets_equal(row.token_hash, token_hash) or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user
