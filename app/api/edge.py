"""Edge endpoints: enrollment, the edge's own LiveKit token, and heartbeats.

The edge's control websocket (JPEG demand and JPEGs) is in app/api/media.py.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from app.api.deps import ClockDep, EdgeCamera, MediaDep, SessionDep, SettingsDep
from app.enrollment import redeem_code
from app.presence import set_state
from app.schemas import (
    EnrollRequest,
    EnrollResponse,
    ErrorResponse,
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
