"""Typed dependencies: who is calling, and what they may use.

An endpoint that takes an `AdminKey` parameter is admin-only; one that takes an
`EdgeCamera` serves an enrolled edge, and the camera comes from its credential alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin_keys import find_admin_key
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
