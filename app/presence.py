"""Camera presence: the reported state, and whether a camera counts as online."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal, cast, get_args

from app.models import Camera

log = logging.getLogger(__name__)

PublisherState = Literal["connecting", "publishing", "reconnecting", "stopped", "error"]
CameraState = Literal["offline", "connecting", "publishing", "reconnecting", "stopped", "error"]
CAMERA_STATES: frozenset[str] = frozenset(get_args(CameraState))

OFFLINE: CameraState = "offline"
PUBLISHING: CameraState = "publishing"


def reported_state(camera: Camera) -> CameraState:
    """The camera's stored state (anything unexpected reads as offline)."""
    return cast(CameraState, camera.state) if camera.state in CAMERA_STATES else OFFLINE


def last_activity(camera: Camera) -> datetime | None:
    """The latest of last_seen and state_at."""
    times = [t for t in (camera.last_seen, camera.state_at) if t is not None]
    return max(times) if times else None


def is_online(camera: Camera, now: datetime, timeout_s: float) -> bool:
    """Publishing, and heard from (heartbeat or webhook) within the heartbeat timeout.

    An edge that vanished without a webhook goes offline once the timeout passes.
    """
    if camera.state != PUBLISHING:
        return False
    latest = last_activity(camera)
    return latest is not None and now - latest <= timedelta(seconds=timeout_s)


def set_state(camera: Camera, state: CameraState, now: datetime, *, cause: str) -> bool:
    """Records a reported state; logs only when it differs from the previous one."""
    previous = camera.state
    camera.state = state
    camera.state_at = now
    camera.last_seen = now
    if previous == state:
        return False
    log.info(
        "camera state changed",
        extra={"camera": camera.id, "from": previous, "to": state, "cause": cause},
    )
    return True
