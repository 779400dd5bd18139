"""The Principal: the caller of an API endpoint, however they authenticated.

Resolution order (first match wins): the Authorization bearer (`lca_…` admin key =
admin; `lck_…` API key = its user's role), then the session cookie. A bearer that is
present but not valid is refused outright rather than falling through to the cookie, so
a script with a revoked key gets 401 and not a browser's identity.

Ungranted cameras answer exactly like missing ones (404 camera_not_found), so a viewer
cannot learn which camera ids exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin_keys import find_admin_key
from app.auth.api_keys import API_KEY_PREFIX, find_api_key_user
from app.auth.grants import granted_camera_ids
from app.auth.sessions import find_session_user
from app.errors import ApiError, unauthorized
from app.models import Camera, User

log = logging.getLogger(__name__)

Role = Literal["admin", "viewer"]
AuthMethod = Literal["admin_key", "api_key", "session", "cf_access"]
ROLES: tuple[Role, ...] = ("admin", "viewer")

#: The cookie that carries a sign-in session token.
SESSION_COOKIE = "livecam_session"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `camera_ids` is None for admins (every camera)."""

    role: Role
    method: AuthMethod
    user_id: int | None
    name: str
    camera_ids: frozenset[str] | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, camera_id: str) -> bool:
        """Whether this caller may use `camera_id` (not whether it exists)."""
        return self.camera_ids is None or camera_id in self.camera_ids


def admin_key_principal(name: str) -> Principal:
    """The principal of the admin key: an admin with every camera."""
    return Principal(role="admin", method="admin_key", user_id=None, name=name, camera_ids=None)


def user_principal(session: Session, user: User, method: AuthMethod) -> Principal:
    """The principal of a signed-in user; a viewer gets their grants."""
    role: Role = "admin" if user.role == "admin" else "viewer"
    cameras = None if role == "admin" else frozenset(granted_camera_ids(session, user.id))
    return Principal(
        role=role, method=method, user_id=user.id, name=user.username, camera_ids=cameras
    )


def principal_from_bearer(session: Session, token: str) -> Principal:
    """The principal of an `Authorization: Bearer` token; 401 when it is not valid."""
    if token.startswith(API_KEY_PREFIX):
        user = find_api_key_user(session, token)
        if user is None:
            raise unauthorized("invalid_api_key", "The API key is unknown or revoked.")
        return user_principal(session, user, "api_key")
    # Anything else is checked as an admin key, so an edge credential or a typo sent to a
    # dashboard endpoint keeps the long-standing `invalid_admin_key` answer.
    key = find_admin_key(session, token)
    if key is None:
        raise unauthorized("invalid_admin_key", "The admin key is not valid.")
    return admin_key_principal(f"admin key {key.name}")


def principal_from_cookie(session: Session, token: str, now: datetime) -> Principal | None:
    """The principal of a session cookie, or None when the session is unknown or expired."""
    user = find_session_user(session, token, now)
    if user is None:
        return None
    return user_principal(session, user, "session")


def forbidden(message: str = "This needs an admin.") -> ApiError:
    return ApiError(403, "admin_required", message)


def visible_camera_ids(session: Session, principal: Principal) -> list[str]:
    """The ids of the cameras `principal` may see, in listing order."""
    query = select(Camera.id).order_by(Camera.created_at, Camera.id)
    if principal.camera_ids is not None:
        query = query.where(Camera.id.in_(principal.camera_ids))
    return list(session.scalars(query))


#: A camera filter that matches no camera: "" is never a camera id, and an empty filter
#: would mean "every camera".
NO_CAMERAS: tuple[str, ...] = ("",)


def scoped_cameras(camera_ids: frozenset[str] | None, requested: list[str]) -> tuple[str, ...]:
    """The camera filter for a listing: `requested` narrowed to what the caller may see.

    `camera_ids` None (an admin) keeps `requested` as is (empty = every camera). A viewer
    gets the granted cameras they asked for, or all their grants when they asked for none.
    """
    if camera_ids is None:
        return tuple(requested)
    wanted = [c for c in requested if c in camera_ids] if requested else sorted(camera_ids)
    return tuple(wanted) or NO_CAMERAS


def principal_from_access_email(
    session: Session, email: str, auto_create: bool, now: datetime
) -> Principal:
    """The principal of a Cloudflare Access identity, matched to a user by email.

    An unknown email is refused (403), or, with auto-create, becomes a viewer with no
    cameras until an admin grants some.
    """
    address = email.strip().lower()
    user = session.scalars(select(User).where(User.email == address)).one_or_none()
    if user is None and auto_create:
        user = User(username=address[:100], email=address, role="viewer", created_at=now)
        session.add(user)
        session.commit()
        log.info("user created from Cloudflare Access", extra={"user": address})
    if user is None:
        raise ApiError(403, "unknown_user", "Your Cloudflare Access identity has no livecam user.")
    if user.disabled_at is not None:
        raise ApiError(403, "user_disabled", "Your livecam user is disabled.")
    return user_principal(session, user, "cf_access")
