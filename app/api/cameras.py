"""Cameras: CRUD, enrollment codes and credentials (admin); list, viewer tokens and status
(any signed-in caller, for the cameras they are granted)."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.deps import (
    AdminPrincipal,
    ClockDep,
    CurrentPrincipal,
    GrantedCamera,
    MediaDep,
    RoomsDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    get_camera_or_404,
)
from app.auth.audit import record_by
from app.db import session_scope
from app.enrollment import issue_code, revoke_credentials
from app.errors import ApiError, camera_not_found
from app.events import forget_camera_events
from app.models import Camera, room_name
from app.presence import is_online, reported_state
from app.rooms import describe_error
from app.schemas import (
    CameraCreate,
    CameraCreated,
    CameraOut,
    CameraStatus,
    CameraUpdate,
    CredentialsRevoked,
    EnrollmentOut,
    ErrorResponse,
    TokenOut,
)
from app.security import new_camera_id
from app.tokens import mint_viewer_token

log = logging.getLogger(__name__)

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin key"},
}
_CAMERA_ERRORS: dict[int | str, dict[str, object]] = {
    **_AUTH_ERRORS,
    404: {"model": ErrorResponse, "description": "No such camera"},
}

router = APIRouter(prefix="/api/cameras", tags=["cameras"], responses=_AUTH_ERRORS)


def camera_out(
    camera: Camera,
    now: datetime,
    heartbeat_timeout: float,
    last_snapshot_at: datetime | None = None,
) -> CameraOut:
    return CameraOut(
        id=camera.id,
        name=camera.name,
        room=camera.room,
        created_at=camera.created_at,
        online=is_online(camera, now, heartbeat_timeout),
        state=reported_state(camera),
        last_seen=camera.last_seen,
        last_snapshot_at=last_snapshot_at,
    )


@router.get("", response_model=list[CameraOut], summary="List cameras")
def list_cameras(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    media: MediaDep,
) -> list[CameraOut]:
    now = clock()
    query = select(Camera).order_by(Camera.created_at, Camera.id)
    if principal.camera_ids is not None:
        query = query.where(Camera.id.in_(principal.camera_ids))
    cameras = session.scalars(query)
    return [
        camera_out(c, now, settings.heartbeat_timeout, media.last_snapshot_at(c.id))
        for c in cameras
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a camera and its first enrollment code",
    responses={409: {"model": ErrorResponse, "description": "The id is taken"}},
)
def create_camera(
    body: CameraCreate,
    admin: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> CameraCreated:
    now = clock()
    camera_id = body.id
    if camera_id is None:
        camera_id = new_camera_id()
        while session.get(Camera, camera_id) is not None:
            camera_id = new_camera_id()
    elif session.get(Camera, camera_id) is not None:
        raise _camera_exists(camera_id)
    camera = Camera(id=camera_id, name=body.name, created_at=now, state="offline")
    session.add(camera)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _camera_exists(camera_id) from None
    issued = issue_code(session, camera, now, settings.enrollment_ttl)
    record_by(session, now, admin, "camera_create", camera_id=camera.id)
    session.commit()
    log.info("camera created", extra={"camera": camera.id, "camera_name": camera.name})
    return CameraCreated(
        camera=camera_out(camera, now, settings.heartbeat_timeout),
        enrollment=EnrollmentOut(code=issued.code, expires_at=issued.expires_at),
    )


def _camera_exists(camera_id: str) -> ApiError:
    return ApiError(409, "camera_exists", f"A camera with id {camera_id!r} already exists.")


@router.get("/{camera_id}", summary="Get a camera", responses=_CAMERA_ERRORS)
def get_camera(
    camera: GrantedCamera,
    settings: SettingsDep,
    clock: ClockDep,
    media: MediaDep,
) -> CameraOut:
    return camera_out(
        camera, clock(), settings.heartbeat_timeout, media.last_snapshot_at(camera.id)
    )


@router.patch("/{camera_id}", summary="Rename a camera", responses=_CAMERA_ERRORS)
def update_camera(
    camera_id: str,
    body: CameraUpdate,
    admin: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    media: MediaDep,
) -> CameraOut:
    camera = get_camera_or_404(session, camera_id)
    if camera.name != body.name:
        old_name = camera.name
        camera.name = body.name
        record_by(
            session,
            clock(),
            admin,
            "camera_rename",
            camera_id=camera.id,
            detail={"from": old_name, "to": camera.name},
        )
        session.commit()
        log.info("camera renamed", extra={"camera": camera.id, "from": old_name, "to": camera.name})
    return camera_out(
        camera, clock(), settings.heartbeat_timeout, media.last_snapshot_at(camera.id)
    )


@router.delete(
    "/{camera_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a camera, revoke its credentials and close its LiveKit room",
    responses=_CAMERA_ERRORS,
)
async def delete_camera(
    camera_id: str,
    request: Request,
    admin: AdminPrincipal,
    clock: ClockDep,
    factory: SessionFactoryDep,
    rooms: RoomsDep,
    media: MediaDep,
) -> Response:
    def delete() -> int:
        with session_scope(factory) as session:
            camera = session.get(Camera, camera_id)
            if camera is None:
                raise camera_not_found(camera_id)
            credentials = sum(1 for c in camera.credentials if c.revoked_at is None)
            session.delete(camera)
            record_by(session, clock(), admin, "camera_delete", request, camera_id=camera_id)
            return credentials

    revoked = await run_in_threadpool(delete)
    media.forget(camera_id)
    # The events went with the camera (ON DELETE CASCADE); their snapshot files go now.
    await run_in_threadpool(forget_camera_events, request.app.state.event_snapshots, camera_id)
    log.info("camera deleted", extra={"camera": camera_id, "revoked_credentials": revoked})
    room = room_name(camera_id)
    try:
        await rooms.delete_room(room)
    except Exception as exc:
        log.warning(
            "could not close the camera's LiveKit room",
            extra={"camera": camera_id, "room": room, "error": describe_error(exc)},
        )
    else:
        log.info("camera's LiveKit room closed", extra={"camera": camera_id, "room": room})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{camera_id}/enrollment",
    status_code=status.HTTP_201_CREATED,
    summary="Issue a new one-time enrollment code (older unused codes stop working)",
    responses=_CAMERA_ERRORS,
)
def new_enrollment(
    camera_id: str,
    admin: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> EnrollmentOut:
    camera = get_camera_or_404(session, camera_id)
    issued = issue_code(session, camera, clock(), settings.enrollment_ttl)
    record_by(session, clock(), admin, "enrollment_code", camera_id=camera.id)
    session.commit()
    return EnrollmentOut(code=issued.code, expires_at=issued.expires_at)


@router.delete(
    "/{camera_id}/credentials",
    summary="Revoke every edge credential of a camera",
    responses=_CAMERA_ERRORS,
)
def delete_credentials(
    camera_id: str, admin: AdminPrincipal, session: SessionDep, clock: ClockDep, media: MediaDep
) -> CredentialsRevoked:
    camera = get_camera_or_404(session, camera_id)
    revoked = revoke_credentials(session, camera, clock())
    record_by(
        session,
        clock(),
        admin,
        "credentials_revoke",
        camera_id=camera.id,
        detail={"revoked": revoked},
    )
    session.commit()
    media.disconnect_edges(camera.id)
    return CredentialsRevoked(camera_id=camera.id, revoked=revoked)


@router.post(
    "/{camera_id}/viewer-token",
    summary="Mint a subscribe-only LiveKit token for the camera's room",
    responses=_CAMERA_ERRORS,
)
def viewer_token(
    camera: GrantedCamera,
    principal: CurrentPrincipal,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> TokenOut:
    minted = mint_viewer_token(settings, camera.id)
    record_by(session, clock(), principal, "viewer_token", request, camera_id=camera.id)
    session.commit()
    return TokenOut.of(minted)


@router.get(
    "/{camera_id}/status",
    summary="Presence and the last heartbeat of a camera",
    responses=_CAMERA_ERRORS,
)
def camera_status(camera: GrantedCamera, settings: SettingsDep, clock: ClockDep) -> CameraStatus:
    return CameraStatus(
        id=camera.id,
        online=is_online(camera, clock(), settings.heartbeat_timeout),
        state=reported_state(camera),
        state_at=camera.state_at,
        last_seen=camera.last_seen,
        heartbeat=camera.metrics,
    )
