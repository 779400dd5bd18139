"""Zones and privacy masks of a camera (read: callers granted it; change: admins).

    GET /api/cameras/{id}/zones   → {"camera_id", "zones": [...], "updated_at"}
    PUT /api/cameras/{id}/zones   {"zones": [...]} replaces the whole list

A change goes to the camera's edge at once over its control websocket (app/api/media.py
sends the list first thing on every connect, too).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import AdminPrincipal, ClockDep, GrantedCamera, SessionDep, get_camera_or_404
from app.auth.audit import record_by
from app.schemas import ErrorResponse, ZoneOut, ZonesIn, ZonesOut
from app.zones import ZonesNotifier, load_zones, normalise_zones, store_zones

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin key"},
    404: {"model": ErrorResponse, "description": "No such camera"},
}

router = APIRouter(prefix="/api/cameras", tags=["zones"])


def _out(camera_id: str, zones: list[dict[str, Any]], updated_at: Any) -> ZonesOut:
    return ZonesOut(
        camera_id=camera_id,
        zones=[ZoneOut.model_validate(z) for z in zones],
        updated_at=updated_at,
    )


@router.get(
    "/{camera_id}/zones",
    summary="The camera's zones and privacy masks",
    responses=_ERRORS,
)
def get_zones(camera: GrantedCamera, session: SessionDep) -> ZonesOut:
    zones, updated_at = load_zones(session, camera.id)
    return _out(camera.id, zones, updated_at)


@router.put(
    "/{camera_id}/zones",
    summary="Replace the camera's zones and privacy masks (sent to its edge at once)",
    responses={
        **_ERRORS,
        422: {
            "model": ErrorResponse,
            "description": "A polygon is invalid (points outside 0..1, fewer than 3 or more "
            "than 64 points, crossing edges, repeated name, labels on a mask, > 32 polygons)",
        },
    },
)
def put_zones(
    camera_id: str,
    body: ZonesIn,
    request: Request,
    admin: AdminPrincipal,
    session: SessionDep,
    clock: ClockDep,
) -> ZonesOut:
    camera = get_camera_or_404(session, camera_id)
    zones = normalise_zones(body.zones)
    now = clock()
    store_zones(session, camera.id, zones, now)
    record_by(
        session,
        now,
        admin,
        "zones_update",
        request,
        camera_id=camera.id,
        detail={"zones": len(zones)},
    )
    session.commit()
    notifier: ZonesNotifier = request.app.state.zones_notifier
    edges = notifier.changed(camera.id)
    log.info(
        "zones changed",
        extra={
            "camera": camera.id,
            "zones": sum(1 for z in zones if z["kind"] == "zone"),
            "masks": sum(1 for z in zones if z["kind"] == "mask"),
            "edges_told": edges,
        },
    )
    return _out(camera.id, zones, now)
