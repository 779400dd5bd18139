"""LiveKit webhooks: signed room and participant events that move camera state."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from google.protobuf.json_format import ParseError
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent

from app.api.deps import ClockDep, SessionFactoryDep, SettingsDep
from app.db import session_scope
from app.errors import ApiError, unauthorized
from app.models import Camera
from app.presence import OFFLINE, CameraState, set_state
from app.schemas import ErrorResponse, WebhookAck

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/livekit", tags=["livekit"])

EDGE_PREFIX = "edge-"
ROOM_PREFIX = "camera-"

# What each participant event says about the edge's publisher.
_PARTICIPANT_STATES: dict[str, CameraState] = {
    "participant_joined": "connecting",
    "track_published": "publishing",
    "track_unpublished": OFFLINE,
    "participant_left": OFFLINE,
}


def _camera_for_event(event: WebhookEvent) -> tuple[str, CameraState] | None:
    """(camera id, new state) for events about a camera's edge or room, else None."""
    if event.event in _PARTICIPANT_STATES:
        identity = event.participant.identity
        if not identity.startswith(EDGE_PREFIX):
            return None
        camera_id = identity.removeprefix(EDGE_PREFIX)
        room = event.room.name
        if room and room != ROOM_PREFIX + camera_id:
            return None
        return camera_id, _PARTICIPANT_STATES[event.event]
    if event.event == "room_finished" and event.room.name.startswith(ROOM_PREFIX):
        return event.room.name.removeprefix(ROOM_PREFIX), OFFLINE
    return None


@router.post(
    "/webhook",
    summary="Receive a LiveKit webhook (signed with the LiveKit API key)",
    responses={401: {"model": ErrorResponse, "description": "Missing or bad signature"}},
)
async def livekit_webhook(
    request: Request,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    clock: ClockDep,
    authorization: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    raw = await request.body()
    if not authorization:
        log.warning("webhook rejected", extra={"reason": "no Authorization header"})
        raise unauthorized("invalid_webhook_signature", "The webhook is not signed.")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_webhook_body", "The webhook body is not UTF-8.") from None
    receiver = WebhookReceiver(
        TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
    )
    try:
        event = receiver.receive(body, token)
    except ParseError as exc:
        log.warning("webhook rejected", extra={"reason": "unparseable body", "error": str(exc)})
        raise ApiError(
            400, "invalid_webhook_body", "The webhook body is not a LiveKit event."
        ) from None
    except Exception as exc:
        log.warning("webhook rejected", extra={"reason": "bad signature", "error": str(exc)})
        raise unauthorized(
            "invalid_webhook_signature", "The webhook signature is not valid."
        ) from None

    target = _camera_for_event(event)
    if target is None:
        log.debug(
            "webhook ignored",
            extra={
                "event": event.event,
                "room": event.room.name,
                "identity": event.participant.identity,
            },
        )
        return WebhookAck()
    camera_id, state = target

    def apply() -> None:
        with session_scope(factory) as session:
            camera = session.get(Camera, camera_id)
            if camera is None:
                log.debug(
                    "webhook for unknown camera", extra={"camera": camera_id, "event": event.event}
                )
                return
            set_state(camera, state, clock(), cause=f"webhook:{event.event}")

    await run_in_threadpool(apply)
    return WebhookAck()
