"""Typed dependencies: who is calling, and what they may use.

An endpoint that takes an `AdminKey` parameter is admin-only; one that takes an
`EdgeCamera` serves an enrolled edge, and the camera comes from its credential alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin_keys import find_admin_key
from app.auth.cloudflare_access import HEADER as ACCESS_HEADER
from app.auth.cloudflare_access import AccessError, AccessVerifier, certs_url_for
from app.auth.csrf import check_origin
from app.auth.principals import (
    SESSION_COOKIE,
    Principal,
    forbidden,
    principal_from_access_email,
    principal_from_bearer,
    principal_from_cookie,
)
from app.clock import Clock
from app.db import SessionFactory
from app.errors import camera_not_found, unauthorized
from app.media import MediaRelay
from app.models import AdminApiKey, Camera, EdgeCredential
from app.rooms import LiveKitProbe, RoomAdmin
from app.security import hash_secret, secrets_equal
from app.settings import Settings
from app.tickets import TicketSigner

log = logging.getLogger(__name__)

_admin_bearer = HTTPBearer(
    scheme_name="AdminKey",
    description="Admin API key (`lca_…`), from LIVECAM_DATA/admin.key on first start.",
    auto_error=False,
)
_edge_bearer = HTTPBearer(
    scheme_name="EdgeCredential",
    description="Edge credential (`lce_…`), from POST /api/edge/enroll.",
    auto_error=False,
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> SessionFactory:
    factory: SessionFactory = request.app.state.session_factory
    return factory


def get_session(request: Request) -> Iterator[Session]:
    with get_session_factory(request)() as session:
        yield session


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_rooms(request: Request) -> RoomAdmin:
    rooms: RoomAdmin = request.app.state.rooms
    return rooms


def get_probe(request: Request) -> LiveKitProbe:
    probe: LiveKitProbe = request.app.state.livekit_probe
    return probe


def get_media(request: Request) -> MediaRelay:
    media: MediaRelay = request.app.state.media
    return media


def get_tickets(request: Request) -> TicketSigner:
    tickets: TicketSigner = request.app.state.tickets
    return tickets


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]
ClockDep = Annotated[Clock, Depends(get_clock)]
RoomsDep = Annotated[RoomAdmin, Depends(get_rooms)]
ProbeDep = Annotated[LiveKitProbe, Depends(get_probe)]
MediaDep = Annotated[MediaRelay, Depends(get_media)]
TicketsDep = Annotated[TicketSigner, Depends(get_tickets)]
#: The Authorization header if any, for endpoints that also accept other proof.
AdminCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)]


INVALID_EDGE_CREDENTIAL = "The edge credential is unknown or revoked; enroll the edge again."


def _bearer_token(credentials: HTTPAuthorizationCredentials | None, what: str) -> str:
    if credentials is None or not credentials.credentials:
        raise unauthorized(
            "not_authenticated", f"Send your {what} as 'Authorization: Bearer <{what}>'."
        )
    return credentials.credentials


def require_admin_key(session: SessionDep, credentials: AdminCredentials) -> AdminApiKey:
    token = _bearer_token(credentials, "admin key")
    key = find_admin_key(session, token)
    if key is None:
        raise unauthorized("invalid_admin_key", "The admin key is not valid.")
    return key


def require_edge_camera(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_edge_bearer)],
) -> Camera:
    token = _bearer_token(credentials, "edge credential")
    camera = find_edge_camera(session, token)
    if camera is None:
        raise unauthorized("invalid_edge_credential", INVALID_EDGE_CREDENTIAL)
    return camera


def find_edge_camera(session: Session, token: str) -> Camera | None:
    """The camera an active edge credential belongs to, if any."""
    secret_hash = hash_secret(token)
    row = session.scalars(
        select(EdgeCredential).where(
            EdgeCredential.secret_hash == secret_hash, EdgeCredential.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None or not secrets_equal(row.secret_hash, secret_hash):
        return None
    return row.camera


AdminKey = Annotated[AdminApiKey, Depends(require_admin_key)]
EdgeCamera = Annotated[Camera, Depends(require_edge_camera)]


def get_camera_or_404(session: Session, camera_id: str) -> Camera:
    camera = session.get(Camera, camera_id)
    if camera is None:
        raise camera_not_found(camera_id)
    return camera


def find_principal(
    session: Session,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    now: datetime,
) -> Principal:
    """Who is calling: the bearer (admin key or API key) first, then the session cookie.

    401 not_authenticated when neither is present; a bearer that is present but invalid
    is refused even if a cookie is also sent. For endpoints that manage their own
    database session (long responses); others take `CurrentPrincipal`.
    """
    if credentials is not None and credentials.credentials:
        return principal_from_bearer(session, credentials.credentials)
    settings: Settings = request.app.state.settings
    verifier = access_verifier(request, settings)
    if verifier is not None:
        return _access_principal(session, request, verifier, settings, now)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = principal_from_cookie(session, cookie, now)
        if principal is not None:
            check_origin(request, request.method)
            return principal
        raise unauthorized("session_expired", "The session has expired; sign in again.")
    raise unauthorized(
        "not_authenticated",
        "Send your admin key or API key as 'Authorization: Bearer <key>', or sign in.",
    )


def access_verifier(request: Request, settings: Settings) -> AccessVerifier | None:
    """The app's Cloudflare Access verifier, or None when Access is not configured."""
    if not (settings.cf_access_team_domain and settings.cf_access_aud):
        return None
    verifier: AccessVerifier | None = getattr(request.app.state, "access_verifier", None)
    if verifier is None:
        url = settings.cf_access_certs_url or certs_url_for(settings.cf_access_team_domain)
        verifier = AccessVerifier(url, settings.cf_access_aud)
        request.app.state.access_verifier = verifier
    return verifier


def _access_principal(
    session: Session,
    request: Request,
    verifier: AccessVerifier,
    settings: Settings,
    now: datetime,
) -> Principal:
    # Behind Access, every request without a key must carry Access's JWT; a session
    # cookie alone is not enough (Access is the sign-in then).
    token = request.headers.get(ACCESS_HEADER)
    if not token:
        raise unauthorized("access_required", f"The {ACCESS_HEADER} header is missing.")
    try:
        claims = verifier.verify(token, now.timestamp())
    except AccessError as exc:
        log.warning("Cloudflare Access token refused", extra={"reason": str(exc)})
        raise unauthorized(
            "invalid_access_token", "The Cloudflare Access token is not valid."
        ) from None
    return principal_from_access_email(
        session, str(claims["email"]), settings.cf_access_auto_create, now
    )


def resolve_principal(
    request: Request, session: SessionDep, clock: ClockDep, credentials: AdminCredentials
) -> Principal:
    """The `CurrentPrincipal` dependency: see `find_principal`."""
    return find_principal(session, request, credentials, clock())


def granted_camera(session: Session, principal: Principal, camera_id: str) -> Camera:
    """The camera, if `principal` may see it; 404 camera_not_found otherwise.

    An ungranted camera answers exactly like a missing one so that viewers cannot probe
    which camera ids exist.
    """
    if not principal.may_see(camera_id):
        raise camera_not_found(camera_id)
    return get_camera_or_404(session, camera_id)


CurrentPrincipal = Annotated[Principal, Depends(resolve_principal)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be an admin (admin key, or a user with the admin role)."""
    if not principal.is_admin:
        raise forbidden()
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def require_camera(camera_id: str, principal: CurrentPrincipal, session: SessionDep) -> Camera:
    """The path's camera, if the caller may see it (see `granted_camera`)."""
    return granted_camera(session, principal, camera_id)


GrantedCamera = Annotated[Camera, Depends(require_camera)]
