"""Sign-in for people: POST /api/auth/login, POST /api/auth/logout, GET /api/auth/me.

Login sets an HttpOnly, SameSite=Strict session cookie (Secure unless
LIVECAM_INSECURE_COOKIES=1, for plain-http development); the session lives server-side
in `user_sessions`. Failed sign-ins are throttled per client IP and per username
(app/auth/login_limits.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import delete, select

from app.api.deps import ClockDep, CurrentPrincipal, SessionDep, SettingsDep
from app.auth.audit import record
from app.auth.login_limits import LoginLimiter
from app.auth.passwords import hash_password, verify_password
from app.auth.principals import SESSION_COOKIE
from app.auth.schemas import LoginIn, MeOut
from app.auth.sessions import create_session
from app.errors import ApiError, unauthorized
from app.models import User, UserSession
from app.schemas import ErrorResponse
from app.security import hash_secret
from app.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth", tags=["auth"])

# Verified against when the username is unknown, so that both cases take as long.
_DUMMY_HASH = hash_password("livecam-no-such-user")


def _limiter(request: Request, settings: Settings) -> LoginLimiter:
    limiter: LoginLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = LoginLimiter(
            settings.login_max_failures, timedelta(minutes=settings.login_lockout_minutes)
        )
        request.app.state.login_limiter = limiter
    return limiter


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post(
    "/login",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign in with username and password (sets the session cookie)",
    responses={
        401: {"model": ErrorResponse, "description": "Wrong username or password"},
        429: {"model": ErrorResponse, "description": "Too many failures; locked for a while"},
    },
)
def login(
    body: LoginIn, request: Request, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    now = clock()
    ip = _client_ip(request)
    keys = [f"ip:{ip}", f"user:{body.username.lower()}"]
    limiter = _limiter(request, settings)
    until = limiter.locked_until(keys, now)
    if until is not None:
        log.warning("sign-in refused: locked", extra={"username": body.username, "ip": ip})
        record(session, now, "login", body.username, outcome="locked", ip=ip)
        session.commit()
        retry = max(1, int((until - now).total_seconds()))
        raise ApiError(
            429,
            "login_locked",
            f"Too many failed sign-ins; try again in {retry} s.",
            headers={"Retry-After": str(retry)},
        )
    user = session.scalars(select(User).where(User.username == body.username)).one_or_none()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    good = verify_password(body.password, stored)
    if user is None or not user.password_hash or not good or user.disabled_at is not None:
        limiter.failed(keys, now)
        log.warning("sign-in failed", extra={"username": body.username, "ip": ip})
        session.rollback()
        record(session, now, "login", body.username, outcome="failed", ip=ip)
        session.commit()
        raise unauthorized("invalid_login", "The username or password is wrong.")
    limiter.succeeded(keys)
    token = create_session(session, user, now, timedelta(seconds=settings.session_ttl))
    record(session, now, "login", user.username, ip=ip)
    session.commit()
    log.info("signed in", extra={"user": user.username, "ip": ip})
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl,
        path="/",
        secure=not settings.insecure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out: end the session and clear its cookie",
)
def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session.execute(delete(UserSession).where(UserSession.token_hash == hash_secret(token)))
        session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=not settings.insecure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get(
    "/me",
    summary="Who the caller is: role, sign-in method, visible cameras",
    responses={401: {"model": ErrorResponse, "description": "Not signed in"}},
)
def me(principal: CurrentPrincipal) -> MeOut:
    cameras = None if principal.camera_ids is None else sorted(principal.camera_ids)
    return MeOut(
        role=principal.role,
        method=principal.method,
        user_id=principal.user_id,
        name=principal.name,
        cameras=cameras,
    )
