"""MJPEG and snapshots (the fallback when WebRTC cannot get through), and the edge's
control websocket that carries the JPEGs.

    POST /api/cameras/{id}/mjpeg-ticket   admin → {"url": ".../mjpeg?ticket=…", "expires_at"}
    GET  /api/cameras/{id}/mjpeg          ?ticket=… or admin header → multipart/x-mixed-replace
    GET  /api/cameras/{id}/snapshot.jpg   admin → the newest JPEG (Last-Modified, X-Snapshot-Age)
    WS   /api/edge/ws                     edge credential; JSON out (zones first, then
                                          JPEG demand), binary JPEGs in
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from app.api.deps import (
    INVALID_EDGE_CREDENTIAL,
    AdminCredentials,
    ClockDep,
    MediaDep,
    SessionFactoryDep,
    TicketsDep,
    find_edge_camera,
    find_principal,
    get_camera_or_404,
    granted_camera,
)
from app.db import SessionFactory
from app.errors import ApiError, error_response, unauthorized
from app.media import (
    CLOSE_UNAUTHORIZED,
    MJPEG_CONTENT_TYPE,
    EdgeLink,
    MediaRelay,
    multipart_part,
)
from app.schemas import ErrorResponse, MjpegTicket
from app.zones import ZonesNotifier, ZonesWatch, load_zones, zones_message

log = logging.getLogger(__name__)

_CAMERA_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin key"},
    404: {"model": ErrorResponse, "description": "No such camera"},
}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(tags=["media"])


def _granted_camera(
    factory: SessionFactory,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    camera_id: str,
    now: datetime,
) -> str:
    with factory() as session:
        principal = find_principal(session, request, credentials, now)
        return granted_camera(session, principal, camera_id).id


def existing_camera(
    camera_id: str,
    request: Request,
    factory: SessionFactoryDep,
    clock: ClockDep,
    credentials: AdminCredentials,
) -> str:
    """A camera the caller is granted (admins: any existing camera); the camera's id.

    Uses a session of its own, returned at once: a session from a yield dependency
    would stay checked out for as long as the response runs (an MJPEG stream: hours).
    """
    return _granted_camera(factory, request, credentials, camera_id, clock())


AdminCamera = Annotated[str, Depends(existing_camera)]


@router.post(
    "/api/cameras/{camera_id}/mjpeg-ticket",
    summary="A short-lived ticket that opens the camera's MJPEG stream without a header",
    responses=_CAMERA_ERRORS,
    tags=["cameras"],
)
def mjpeg_ticket(camera_id: AdminCamera, tickets: TicketsDep, clock: ClockDep) -> MjpegTicket:
    ticket = tickets.issue(camera_id, clock())
    return MjpegTicket(
        url=f"/api/cameras/{camera_id}/mjpeg?ticket={ticket.value}", expires_at=ticket.expires_at
    )


def mjpeg_viewer(
    camera_id: str,
    request: Request,
    factory: SessionFactoryDep,
    tickets: TicketsDep,
    clock: ClockDep,
    credentials: AdminCredentials,
    ticket: Annotated[
        str | None, Query(description="From POST /api/cameras/{id}/mjpeg-ticket.")
    ] = None,
) -> str:
    """A valid ticket for this camera, or a caller granted the camera (header or cookie).

    Tickets are only issued to callers granted the camera, and name it in their MAC.
    """
    if ticket is None:
        return _granted_camera(factory, request, credentials, camera_id, clock())
    if not tickets.verify(ticket, camera_id, clock()):
        raise unauthorized(
            "invalid_ticket",
            "The MJPEG ticket is invalid, expired or for another camera; get a new one "
            "from POST /api/cameras/{id}/mjpeg-ticket.",
        )
    with factory() as session:
        return get_camera_or_404(session, camera_id).id


@router.get(
    "/api/cameras/{camera_id}/mjpeg",
    summary="The camera as an MJPEG stream (multipart/x-mixed-replace)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {MJPEG_CONTENT_TYPE: {}}, "description": "JPEGs as they arrive"},
        401: {"model": ErrorResponse, "description": "Bad ticket or admin key"},
        404: {"model": ErrorResponse, "description": "No such camera"},
    },
    tags=["cameras"],
)
async def mjpeg(
    camera_id: Annotated[str, Depends(mjpeg_viewer)], media: MediaDep
) -> StreamingResponse:
    return StreamingResponse(
        _mjpeg_parts(media, camera_id),
        media_type=MJPEG_CONTENT_TYPE,
        # X-Accel-Buffering: nginx must pass each part on at once.
        headers={**_NO_STORE, "X-Accel-Buffering": "no"},
    )


async def _mjpeg_parts(media: MediaRelay, camera_id: str) -> AsyncIterator[bytes]:
    async with media.watch(camera_id) as viewer:
        while True:
            jpeg = await viewer.next()
            if jpeg is None:
                return
            yield multipart_part(jpeg)


@router.get(
    "/api/cameras/{camera_id}/snapshot.jpg",
    summary="The camera's newest picture (fresh from the edge when it is connected)",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {}},
            "description": "JPEG; X-Snapshot-Age says how old it is, in seconds",
        },
        **_CAMERA_ERRORS,
        404: {"model": ErrorResponse, "description": "No such camera, or no picture yet"},
    },
    tags=["cameras"],
)
async def snapshot(camera_id: AdminCamera, media: MediaDep) -> Response:
    jpeg = await media.snapshot(camera_id)
    if jpeg is None:
        raise ApiError(
            404,
            "no_snapshot",
            f"Camera {camera_id!r} has not sent a picture yet; try again once it is online.",
        )
    age = jpeg.age_s(time.time())
    return Response(
        jpeg.data,
        media_type="image/jpeg",
        headers={
            **_NO_STORE,
            "Last-Modified": email.utils.formatdate(jpeg.received_at, usegmt=True),
            "X-Snapshot-Age": f"{age:.1f}",
        },
    )


# -- the edge's control websocket ---------------------------------------------------------


def _edge_camera_id(factory: SessionFactory, authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with factory() as session:
        camera = find_edge_camera(session, token.strip())
        return camera.id if camera is not None else None


@router.websocket("/api/edge/ws")
async def edge_socket(websocket: WebSocket) -> None:
    """Zones and JPEG demand to the edge (JSON text), JPEGs from it (binary, one JPEG each).

    The camera's zones go first on every connect (the edge must not analyse with stale
    masks), then the demand; both again whenever they change.
    """
    factory: SessionFactory = websocket.app.state.session_factory
    camera_id = await run_in_threadpool(
        _edge_camera_id, factory, websocket.headers.get("authorization")
    )
    if camera_id is None:
        await _refuse(websocket)
        return
    media: MediaRelay = websocket.app.state.media
    notifier: ZonesNotifier = websocket.app.state.zones_notifier
    await websocket.accept()
    # Watch before the first read: a change made meanwhile is sent again, never missed.
    zones_watch = notifier.watch(camera_id)
    send_lock = asyncio.Lock()  # two senders share the socket
    link = media.attach_edge(camera_id)
    client = websocket.client
    log.info(
        "edge control connected",
        extra={"camera": camera_id, "peer": f"{client.host}:{client.port}" if client else "-"},
    )
    received = 0
    senders: list[asyncio.Task[None]] = []
    try:
        try:
            await _send_zones(websocket, factory, camera_id, send_lock)
        except Exception as exc:  # gone already, or the database failed: the edge retries
            log.warning(
                "could not send zones to edge", extra={"camera": camera_id, "error": repr(exc)}
            )
            return
        senders = [
            asyncio.create_task(_send_demands(websocket, link, send_lock)),
            asyncio.create_task(_follow_zones(websocket, factory, zones_watch, send_lock)),
        ]
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is not None and media.publish(camera_id, data):
                received += 1
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        notifier.unwatch(zones_watch)
        media.detach_edge(link)
        log.info("edge control disconnected", extra={"camera": camera_id, "jpegs": received})


def _read_zones(factory: SessionFactory, camera_id: str) -> list[dict[str, Any]]:
    with factory() as session:
        return load_zones(session, camera_id)[0]


async def _send_zones(
    websocket: WebSocket, factory: SessionFactory, camera_id: str, send_lock: asyncio.Lock
) -> None:
    zones = await run_in_threadpool(_read_zones, factory, camera_id)
    async with send_lock:
        await websocket.send_json(zones_message(zones))
    log.info("zones sent to edge", extra={"camera": camera_id, "polygons": len(zones)})


async def _follow_zones(
    websocket: WebSocket, factory: SessionFactory, watch: ZonesWatch, send_lock: asyncio.Lock
) -> None:
    while True:
        await watch.changed.wait()
        watch.changed.clear()
        try:
            await _send_zones(websocket, factory, watch.camera_id, send_lock)
        except Exception as exc:  # the receive loop notices a closed socket and ends
            log.warning(
                "could not send zones to edge",
                extra={"camera": watch.camera_id, "error": repr(exc)},
            )


async def _send_demands(websocket: WebSocket, link: EdgeLink, send_lock: asyncio.Lock) -> None:
    async for demand in link.demands():
        async with send_lock:
            await websocket.send_json(demand.message())
    if link.close_code is not None:
        log.info(
            "closing edge control link",
            extra={"camera": link.camera_id, "reason": link.close_reason},
        )
        with contextlib.suppress(RuntimeError):
            await websocket.close(link.close_code, link.close_reason)


async def _refuse(websocket: WebSocket) -> None:
    """HTTP 401 where the server can send it, else close code 4401 after accepting."""
    log.warning("edge control refused", extra={"reason": "invalid edge credential"})
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            error_response(
                401,
                "invalid_edge_credential",
                INVALID_EDGE_CREDENTIAL,
                headers={"WWW-Authenticate": "Bearer"},
            )
        )
    else:
        await websocket.accept()
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid edge credential")
