"""Edge endpoints: enrollment, the edge's own LiveKit token, heartbeats and events.

The edge's control websocket (JPEG demand and JPEGs) is in app/api/media.py.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from app.api.deps import (
    INVALID_EDGE_CREDENTIAL,
    ClockDep,
    EdgeCamera,
    MediaDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    find_edge_camera,
)
from app.db import SessionFactory
from app.enrollment import redeem_code
from app.errors import ApiError, unauthorized
from app.event_snapshots import SnapshotError, decode_snapshot
from app.events import EventIngest
from app.presence import set_state
from app.schemas import (
    EnrollRequest,
    EnrollResponse,
    ErrorResponse,
    EventIn,
    EventStored,
    Heartbeat,
    HeartbeatAck,
    TokenOut,
)
from app.tokens import mint_edge_token

log = logging.getLogger(__name__)

_EDGE_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing, unknown or revoked edge credential"},
}

router = APIRouter(prefix="/api/edge", tags=["edge"])


@router.post(
    "/enroll",
    summary="Trade a one-time enrollment code for an edge credential",
    responses={
        401: {"model": ErrorResponse, "description": "Unknown code"},
        410: {"model": ErrorResponse, "description": "Code already used, replaced or expired"},
    },
)
def enroll(body: EnrollRequest, session: SessionDep, clock: ClockDep) -> EnrollResponse:
    enrolled = redeem_code(session, body.code, clock())
    return EnrollResponse(
        camera_id=enrolled.camera.id,
        credential=enrolled.credential,
        room=enrolled.camera.room,
    )


@router.post(
    "/token",
    summary="Mint a publish-only LiveKit token for the edge's own camera room",
    responses=_EDGE_AUTH_ERRORS,
)
def edge_token(camera: EdgeCamera, settings: SettingsDep) -> TokenOut:
    # The room comes from the credential alone; nothing in the request can change it.
    minted = mint_edge_token(settings, camera.id)
    return TokenOut.of(minted)


@router.post(
    "/heartbeat",
    summary="Report the edge's health; keeps the camera online",
    responses=_EDGE_AUTH_ERRORS,
)
def heartbeat(
    body: Heartbeat, camera: EdgeCamera, session: SessionDep, clock: ClockDep, media: MediaDep
) -> HeartbeatAck:
    now = clock()
    set_state(camera, body.publisher_state, now, cause="heartbeat")
    camera.metrics = body.model_dump(mode="json")
    session.commit()
    log.debug(
        "heartbeat",
        extra={
            "camera": camera.id,
            "state": body.publisher_state,
            "fps": body.fps,
            "bitrate_kbps": body.bitrate_kbps,
        },
    )
    return HeartbeatAck(server_time=now, mjpeg_wanted=media.wanted(camera.id))


# --- events ----------------------------------------------------------------------------

#: Room for the JSON around a snapshot (ids, times, a box, up to 64 zone names).
_EVENT_JSON_OVERHEAD = 64 * 1024

# The same scheme as require_edge_camera's (same name and text: one entry in OpenAPI).
_edge_bearer = HTTPBearer(
    scheme_name="EdgeCredential",
    description="Edge credential (`lce_…`), from POST /api/edge/enroll.",
    auto_error=False,
)


def _camera_of(factory: SessionFactory, token: str) -> str | None:
    with factory() as session:
        camera = find_edge_camera(session, token)
        return camera.id if camera is not None else None


async def edge_camera_id(
    factory: SessionFactoryDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_edge_bearer)],
) -> str:
    """The camera of the edge credential, like ``EdgeCamera``, with a session of its own
    closed at once (the snapshot check and the write run later, in a thread)."""
    if credentials is None or not credentials.credentials:
        raise unauthorized(
            "not_authenticated",
            "Send your edge credential as 'Authorization: Bearer <edge credential>'.",
        )
    camera_id = await run_in_threadpool(_camera_of, factory, credentials.credentials)
    if camera_id is None:
        raise unauthorized("invalid_edge_credential", INVALID_EDGE_CREDENTIAL)
    return camera_id


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is larger than {limit} bytes.")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large("The request body", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large("The request body", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_event(body: bytes) -> EventIn:
    try:
        return EventIn.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        raise RequestValidationError(errors) from None


@router.post(
    "/events",
    summary="Report one phase of an event (idempotent by event_id and seq)",
    responses={
        **_EDGE_AUTH_ERRORS,
        409: {"model": ErrorResponse, "description": "The event id belongs to another camera"},
        413: {
            "model": ErrorResponse,
            "description": "The body or the snapshot is too large (send it without the snapshot)",
        },
        422: {"model": ErrorResponse, "description": "Malformed message or snapshot"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventIn.model_json_schema()}},
        }
    },
)
async def post_event(
    request: Request,
    camera_id: Annotated[str, Depends(edge_camera_id)],
    settings: SettingsDep,
    clock: ClockDep,
) -> EventStored:
    max_snapshot = settings.event_snapshot_max_bytes
    body = await _read_body(request, (max_snapshot + 2) // 3 * 4 + _EVENT_JSON_OVERHEAD)
    ingest: EventIngest = request.app.state.event_ingest

    def apply() -> EventStored:
        # Parsing a body with a snapshot takes milliseconds: off the event loop too.
        message = _parse_event(body)
        snapshot = None
        if message.snapshot is not None:
            try:
                snapshot = decode_snapshot(message.snapshot, max_snapshot)
            except SnapshotError as exc:
                log.warning(
                    "event snapshot refused",
                    extra={"camera": camera_id, "event": message.event_id, "error": str(exc)},
                )
                if exc.too_large:
                    raise _too_large("The snapshot", max_snapshot) from None
                raise ApiError(422, "invalid_snapshot", f"Invalid snapshot: {exc}.") from None
        result = ingest.apply(camera_id, message, snapshot, clock())
        return EventStored(status=result.status, event_id=result.event_id)

    return await run_in_threadpool(apply)
