"""Users, their camera grants and API keys (admin only).

GET/POST          /api/users
GET/PATCH/DELETE  /api/users/{id}
GET/POST          /api/users/{id}/api-keys
DELETE            /api/users/{id}/api-keys/{key_id}
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.deps import AdminPrincipal, ClockDep, SessionDep
from app.auth.api_keys import create_api_key
from app.auth.audit import recent, record_by
from app.auth.grants import granted_camera_ids, set_grants
from app.auth.passwords import hash_password
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from app.errors import ApiError
from app.models import Camera, User, UserApiKey, UserSession
from app.schemas import ErrorResponse

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Not signed in"},
    403: {"model": ErrorResponse, "description": "Not an admin"},
    404: {"model": ErrorResponse, "description": "No such user or key"},
}

router = APIRouter(prefix="/api/users", tags=["users"], responses=_ERRORS)


def _user_not_found(user_id: int) -> ApiError:
    return ApiError(404, "user_not_found", f"No user with id {user_id}.")


def _get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise _user_not_found(user_id)
    return user


def _user_out(session: Session, user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        role="admin" if user.role == "admin" else "viewer",
        email=user.email,
        cameras=sorted(granted_camera_ids(session, user.id)),
        has_password=user.password_hash is not None,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
    )


def _check_cameras(session: Session, cameras: list[str]) -> set[str]:
    wanted = set(cameras)
    known = set(session.scalars(select(Camera.id).where(Camera.id.in_(wanted))))
    unknown = sorted(wanted - known)
    if unknown:
        raise ApiError(
            422, "validation_error", f"Invalid request: no camera with id {unknown[0]!r}."
        )
    return wanted


def _conflict() -> ApiError:
    return ApiError(409, "user_exists", "A user with this username or email already exists.")


@router.get("", summary="List users")
def list_users(_admin: AdminPrincipal, session: SessionDep) -> list[UserOut]:
    users = session.scalars(select(User).order_by(User.username))
    return [_user_out(session, u) for u in users]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (password optional: Cloudflare Access users need none)",
    responses={409: {"model": ErrorResponse, "description": "Username or email taken"}},
)
def create_user(
    body: UserCreate, admin: AdminPrincipal, session: SessionDep, clock: ClockDep
) -> UserOut:
    now = clock()
    cameras = _check_cameras(session, body.cameras)
    user = User(
        username=body.username,
        role=body.role,
        email=body.email.lower() if body.email else None,
        password_hash=hash_password(body.password) if body.password else None,
        created_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _conflict() from None
    set_grants(session, user.id, cameras, now)
    record_by(
        session,
        now,
        admin,
        "user_create",
        detail={"user": user.username, "role": user.role, "cameras": sorted(cameras)},
    )
    session.commit()
    log.info(
        "user created",
        extra={"user": user.username, "role": user.role, "cameras": len(cameras), "by": admin.name},
    )
    return _user_out(session, user)


@router.get("/{user_id}", summary="One user")
def get_user(user_id: int, _admin: AdminPrincipal, session: SessionDep) -> UserOut:
    return _user_out(session, _get_user(session, user_id))


@router.patch("/{user_id}", summary="Change a user's role, password, email, grants or state")
def update_user(
    user_id: int, body: UserUpdate, admin: AdminPrincipal, session: SessionDep, clock: ClockDep
) -> UserOut:
    now = clock()
    user = _get_user(session, user_id)
    sent = body.model_fields_set
    cameras = _check_cameras(session, body.cameras) if body.cameras is not None else None
    if body.role is not None:
        user.role = body.role
    if "email" in sent:
        user.email = body.email.lower() if body.email else None
    if body.password is not None:
        user.password_hash = hash_password(body.password)
    if body.disabled is not None:
        user.disabled_at = now if body.disabled else None
    if body.disabled or body.password is not None:
        # A new password or a disabled account ends every signed-in browser.
        session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    if cameras is not None:
        set_grants(session, user.id, cameras, now)
    changed: dict[str, Any] = {"user": user.username, "fields": sorted(sent - {"password"})}
    if body.password is not None:
        changed["password_changed"] = True
    if cameras is not None:
        changed["cameras"] = sorted(cameras)
    if body.role is not None:
        changed["role"] = body.role
    record_by(session, now, admin, "user_update", detail=changed)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _conflict() from None
    log.info(
        "user changed",
        extra={"user": user.username, "fields": ",".join(sorted(sent)), "by": admin.name},
    )
    return _user_out(session, user)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a user with their grants, API keys and sessions",
)
def delete_user(
    user_id: int, admin: AdminPrincipal, session: SessionDep, clock: ClockDep
) -> Response:
    user = _get_user(session, user_id)
    if admin.user_id == user.id:
        raise ApiError(409, "cannot_delete_self", "You cannot delete your own user.")
    session.delete(user)
    record_by(session, clock(), admin, "user_delete", detail={"user": user.username})
    session.commit()
    log.info("user deleted", extra={"user": user.username, "by": admin.name})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _key_out(row: UserApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.get("/{user_id}/api-keys", summary="A user's API keys (never the keys themselves)")
def list_api_keys(user_id: int, _admin: AdminPrincipal, session: SessionDep) -> list[ApiKeyOut]:
    user = _get_user(session, user_id)
    rows = session.scalars(
        select(UserApiKey).where(UserApiKey.user_id == user.id).order_by(UserApiKey.id)
    )
    return [_key_out(r) for r in rows]


@router.post(
    "/{user_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (`lck_…`) for a user; the key is shown only in this answer",
)
def new_api_key(
    user_id: int, body: ApiKeyCreate, admin: AdminPrincipal, session: SessionDep, clock: ClockDep
) -> ApiKeyCreated:
    user = _get_user(session, user_id)
    now = clock()
    row, key = create_api_key(session, user, body.name, now)
    session.flush()
    record_by(
        session,
        now,
        admin,
        "api_key_create",
        detail={"user": user.username, "key_id": row.id, "name": body.name},
    )
    session.commit()
    log.info("api key created", extra={"user": user.username, "key_id": row.id, "by": admin.name})
    return ApiKeyCreated(**_key_out(row).model_dump(), key=key)


@router.delete("/{user_id}/api-keys/{key_id}", summary="Revoke an API key")
def revoke_api_key(
    user_id: int, key_id: int, admin: AdminPrincipal, session: SessionDep, clock: ClockDep
) -> ApiKeyOut:
    row = session.get(UserApiKey, key_id)
    if row is None or row.user_id != user_id:
        raise ApiError(404, "api_key_not_found", f"User {user_id} has no API key {key_id}.")
    if row.revoked_at is None:
        row.revoked_at = clock()
        record_by(
            session,
            row.revoked_at,
            admin,
            "api_key_revoke",
            detail={"user_id": user_id, "key_id": key_id},
        )
        session.commit()
        log.info("api key revoked", extra={"user_id": user_id, "key_id": key_id, "by": admin.name})
    return _key_out(row)


audit_router = APIRouter(prefix="/api/audit", tags=["users"], responses=_ERRORS)


@audit_router.get("", summary="The audit log, newest first (page with `before`)")
def audit_log(
    _admin: AdminPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, description="Entries with a smaller id.")] = None,
) -> list[AuditOut]:
    return [
        AuditOut.model_validate(e, from_attributes=True) for e in recent(session, limit, before)
    ]
