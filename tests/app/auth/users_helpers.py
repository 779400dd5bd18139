"""Direct database set-up of users, grants, API keys and sessions for access tests."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from app.auth.api_keys import create_api_key
from app.auth.grants import set_grants
from app.auth.sessions import create_session
from app.models import User
from app.security import hash_secret


def add_user(
    app: FastAPI, username: str, role: str = "viewer", cameras: set[str] | None = None
) -> int:
    """Adds a user with `cameras` granted; returns the user id."""
    now = app.state.clock()
    with app.state.session_factory() as session:
        user = User(username=username, role=role, created_at=now)
        session.add(user)
        session.flush()
        set_grants(session, user.id, cameras or set(), now)
        session.commit()
        return user.id


def api_key_headers(app: FastAPI, user_id: int) -> dict[str, str]:
    """A new API key of the user, as Authorization headers."""
    with app.state.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        _row, key = create_api_key(session, user, "script", app.state.clock())
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def session_token(app: FastAPI, user_id: int, ttl: timedelta = timedelta(hours=1)) -> str:
    """A new sign-in session of the user; returns the cookie value."""
    with app.state.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        token = create_session(session, user, app.state.clock(), ttl)
        session.commit()
    return token


def key_hash(headers: dict[str, str]) -> str:
    return hash_secret(headers["Authorization"].removeprefix("Bearer "))
