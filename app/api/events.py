"""Events (admin): the timeline, one event, its snapshot, per-day counts, and the live
stream of changes.

    GET  /api/events                      ?camera=&label=&zone=&since=&until=&active=&limit=&cursor=
    GET  /api/events/days                 ?camera=&label=&tz=Europe/Berlin → counts per local day
    POST /api/events/stream-ticket        → {"url": "/api/events/stream?ticket=…", "expires_at"}
    GET  /api/events/stream               SSE; admin header or ?ticket=; Last-Event-ID replay
    GET  /api/events/{id}
    GET  /api/events/{id}/snapshot.jpg    admin header, or ?ticket= from a push notification
    POST /api/events/{id}/clip-ticket     admin → {"url": ".../clip.mp4?ticket=…", "expires_at"}
    GET  /api/events/{id}/clip.mp4        admin header or ?ticket= (the snapshot's); Range

Edges post events to ``POST /api/edge/events`` (app/api/edge.py).
"""

from __future__ import annotations

import email.utils
import logging
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from app.api.deps import (
    AdminCredentials,
    ClockDep,
    CurrentPrincipal,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    TicketsDep,
    find_principal,
)
from app.auth.principals import Principal, scoped_cameras
from app.byte_ranges import RangeNotSatisfiable, parse_range
from app.clip_schemas import ClipTicket
from app.clips import ClipInfo, find_clip
from app.db import SessionFactory
from app.errors import ApiError, unauthorized
from app.event_snapshots import EventSnapshotStore
from app.event_stream import event_stream
from app.eventbus import EventBus
from app.events import EventFilter, day_counts, get_event, list_events
from app.media_store import MediaNotFound, MediaStore, MediaStoreError
from app.models import Event
from app.schemas import (
    ErrorResponse,
    EventDay,
    EventDays,
    EventLabel,
    EventOut,
    EventPage,
    StreamTicket,
)
from app.tickets import issue_event_snapshot_ticket, verify_event_snapshot_ticket

log = logging.getLogger(__name__)

#: Ticket scope of the event stream (the MJPEG and snapshot tickets have their own).
EVENT_STREAM_SCOPE = "event-stream"
_STREAM_SUBJECT = "events"

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin key"},
}
_EVENT_ERRORS: dict[int | str, dict[str, object]] = {
    **_AUTH_ERRORS,
    404: {"model": ErrorResponse, "description": "No such event"},
}

router = APIRouter(prefix="/api/events", tags=["events"])

Cameras = Annotated[list[str], Query(alias="camera", description="Camera id; repeat for several.")]
Labels = Annotated[
    list[EventLabel], Query(alias="label", description="Event label; repeat for several.")
]


def event_not_found(event_id: str) -> ApiError:
    return ApiError(404, "event_not_found", f"No event with id {event_id!r}.")


def _check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and until <= since:
        raise ApiError(422, "validation_error", "Invalid request: until must be after since.")


@router.get("", summary="Events, newest first (cursor pagination)", responses=_AUTH_ERRORS)
def events(
    principal: CurrentPrincipal,
    session: SessionDep,
    cameras: Cameras = [],  # noqa: B006 (FastAPI copies query defaults)
    labels: Labels = [],  # noqa: B006
    zone: Annotated[str | None, Query(max_length=100, description="Zone name.")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Started at or after (ISO-8601 with zone).")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Started before.")] = None,
    active: Annotated[bool | None, Query(description="true: ongoing; false: ended.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> EventPage:
    _check_range(since, until)
    visible = scoped_cameras(principal.camera_ids, cameras)
    flt = EventFilter(visible, tuple(labels), zone, since, until, active)
    page, next_cursor = list_events(session, flt, limit, cursor)
    return EventPage(events=[EventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@router.get(
    "/days",
    summary="Event counts per local day and label (for the timeline's day headers)",
    responses=_AUTH_ERRORS,
)
def days(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    cameras: Cameras = [],  # noqa: B006
    labels: Labels = [],  # noqa: B006
    tz: Annotated[str, Query(max_length=64, description="IANA time zone.")] = "UTC",
    since: Annotated[
        AwareDatetime | None, Query(description="Default: the retention period.")
    ] = None,
    until: AwareDatetime | None = None,
) -> EventDays:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            422, "validation_error", f"Invalid request: tz {tz!r} is not an IANA time zone."
        ) from None
    _check_range(since, until)
    if since is None:
        since = clock() - timedelta(days=settings.event_retention_days)
    visible = scoped_cameras(principal.camera_ids, cameras)
    flt = EventFilter(visible, tuple(labels), since=since, until=until)
    rows = day_counts(session, flt, zone)
    return EventDays(
        tz=tz, days=[EventDay(date=d, total=total, labels=counts) for d, total, counts in rows]
    )


# --- the stream ----------------------------------------------------------------------


def _stream_subject(granted: str | None) -> str:
    # A viewer's ticket is bound to their cameras: the list is in the URL and in the MAC.
    return _STREAM_SUBJECT if granted is None else f"{_STREAM_SUBJECT}|{granted}"


@router.post(
    "/stream-ticket",
    summary="A short-lived ticket that opens the event stream without a header (EventSource)",
    responses=_AUTH_ERRORS,
)
def stream_ticket(
    principal: CurrentPrincipal, tickets: TicketsDep, clock: ClockDep
) -> StreamTicket:
    granted = None if principal.camera_ids is None else ",".join(sorted(principal.camera_ids))
    ticket = tickets.issue(_stream_subject(granted), clock(), scope=EVENT_STREAM_SCOPE)
    url = f"/api/events/stream?ticket={ticket.value}"
    if granted is not None:
        url += f"&granted={granted}"
    return StreamTicket(url=url, expires_at=ticket.expires_at)


def _caller_cameras(
    factory: SessionFactory, request: Request, credentials: AdminCredentials, now: datetime
) -> frozenset[str] | None:
    with factory() as session:
        return find_principal(session, request, credentials, now).camera_ids


async def stream_viewer(
    request: Request,
    factory: SessionFactoryDep,
    tickets: TicketsDep,
    clock: ClockDep,
    credentials: AdminCredentials,
    ticket: Annotated[
        str | None, Query(max_length=200, description="From POST /api/events/stream-ticket.")
    ] = None,
    granted: Annotated[
        str | None, Query(max_length=4000, description="From POST /api/events/stream-ticket.")
    ] = None,
) -> frozenset[str] | None:
    """A valid stream ticket, or a signed-in caller; the cameras they may see (None: all).

    Checked with a session of its own, closed at once: the stream runs for hours.
    """
    if ticket is None:
        return await run_in_threadpool(_caller_cameras, factory, request, credentials, clock())
    if not tickets.verify(ticket, _stream_subject(granted), clock(), scope=EVENT_STREAM_SCOPE):
        raise unauthorized(
            "invalid_ticket",
            "The event stream ticket is invalid or expired; get a new one from "
            "POST /api/events/stream-ticket.",
        )
    return None if granted is None else frozenset(c for c in granted.split(",") if c)


def _last_event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not value.isdigit() or len(value) > 18:
        raise ApiError(
            422,
            "validation_error",
            f"Invalid request: Last-Event-ID must be an id this stream sent, got {raw!r:.40}.",
        )
    return int(value)


@router.get(
    "/stream",
    summary="Server-Sent Events of new and changed events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: event` messages (id = the event's version); "
            "`: keepalive` comments",
        },
        401: {"model": ErrorResponse, "description": "Bad ticket or admin key"},
    },
)
async def stream(
    request: Request,
    visible: Annotated[frozenset[str] | None, Depends(stream_viewer)],
    factory: SessionFactoryDep,
    settings: SettingsDep,
    cameras: Cameras = [],  # noqa: B006
    labels: Labels = [],  # noqa: B006
    zone: Annotated[str | None, Query(max_length=100)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(alias="last_event_id", description="Resume after this id (as the header)."),
    ] = None,
) -> StreamingResponse:
    after = _last_event_id(last_event_id, last_event_id_query)
    bus: EventBus = request.app.state.event_bus
    flt = EventFilter(scoped_cameras(visible, cameras), tuple(labels), zone)
    client = request.client
    log.info(
        "event stream opened",
        extra={
            "peer": f"{client.host}:{client.port}" if client else "-",
            "last_event_id": after if after is not None else "-",
        },
    )
    return StreamingResponse(
        event_stream(bus, factory, flt, after, settings.event_stream_keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- one event -----------------------------------------------------------------------


@router.get("/{event_id}", summary="One event", responses=_EVENT_ERRORS)
def event(event_id: str, principal: CurrentPrincipal, session: SessionDep) -> EventOut:
    found = get_event(session, event_id)
    if found is None or not principal.may_see(str(found["camera_id"])):
        raise event_not_found(event_id)
    return EventOut.model_validate(found)


def _visible_event(session: Session, principal: Principal | None, event_id: str) -> Event:
    """The event, if the caller may see its camera (None: a ticket vouched for it)."""
    row = session.get(Event, event_id)
    if row is None or (principal is not None and not principal.may_see(row.camera_id)):
        raise event_not_found(event_id)
    return row


def snapshot_viewer(
    event_id: str,
    request: Request,
    factory: SessionFactoryDep,
    tickets: TicketsDep,
    clock: ClockDep,
    credentials: AdminCredentials,
    ticket: Annotated[
        str | None, Query(max_length=200, description="From a push notification's image URL.")
    ] = None,
) -> str | None:
    """A caller granted the event's camera, or a snapshot ticket for this event; the
    event's snapshot path."""
    with factory() as session:
        principal = None
        if ticket is None:
            principal = find_principal(session, request, credentials, clock())
        elif not verify_event_snapshot_ticket(tickets, ticket, event_id, clock()):
            raise unauthorized(
                "invalid_ticket", "The snapshot ticket is invalid, expired or for another event."
            )
        return _visible_event(session, principal, event_id).snapshot


@router.get(
    "/{event_id}/snapshot.jpg",
    summary="The event's snapshot (the picture with the highest score, box drawn)",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "JPEG"},
        304: {"description": "Not modified (If-None-Match)"},
        401: {"model": ErrorResponse, "description": "Missing or invalid admin key or ticket"},
        404: {"model": ErrorResponse, "description": "No such event, or it has no snapshot"},
    },
)
async def snapshot(
    event_id: str,
    request: Request,
    relative: Annotated[str | None, Depends(snapshot_viewer)],
) -> Response:
    store: EventSnapshotStore = request.app.state.event_snapshots
    found = None if relative is None else await run_in_threadpool(store.read, relative)
    if found is None:
        raise ApiError(404, "no_snapshot", f"Event {event_id!r} has no snapshot.")
    data, mtime = found
    etag = f'"{event_id}-{int(mtime * 1000)}-{len(data)}"'
    headers = {
        "ETag": etag,
        "Last-Modified": email.utils.formatdate(mtime, usegmt=True),
        # The snapshot can still improve while the event is active: revalidate.
        "Cache-Control": "private, no-cache",
    }
    match = request.headers.get("if-none-match")
    if match is not None and etag in [m.strip() for m in match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


# --- the clip ------------------------------------------------------------------------


@router.post(
    "/{event_id}/clip-ticket",
    summary="A ticket that opens the event's clip without a header (<video src>, download)",
    responses=_EVENT_ERRORS,
)
def clip_ticket(
    event_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    tickets: TicketsDep,
    clock: ClockDep,
) -> ClipTicket:
    # The event-scoped ticket of the snapshot: a <video> seeks with new requests long
    # after the page was opened, so it lives as long (24 h).
    _visible_event(session, principal, event_id)
    ticket = issue_event_snapshot_ticket(tickets, event_id, clock())
    return ClipTicket(
        url=f"/api/events/{event_id}/clip.mp4?ticket={ticket.value}", expires_at=ticket.expires_at
    )


def clip_viewer(
    event_id: str,
    request: Request,
    factory: SessionFactoryDep,
    tickets: TicketsDep,
    clock: ClockDep,
    credentials: AdminCredentials,
    ticket: Annotated[
        str | None, Query(max_length=200, description="From POST /api/events/{id}/clip-ticket.")
    ] = None,
) -> ClipInfo:
    """A caller granted the event's camera, or an event ticket for this event (as for the
    snapshot); the clip."""
    with factory() as session:
        principal = None
        if ticket is None:
            principal = find_principal(session, request, credentials, clock())
        elif not verify_event_snapshot_ticket(tickets, ticket, event_id, clock()):
            raise unauthorized(
                "invalid_ticket", "The clip ticket is invalid, expired or for another event."
            )
        _visible_event(session, principal, event_id)
        clip = find_clip(session, event_id)
    if clip is None:
        raise ApiError(404, "no_clip", f"Event {event_id!r} has no clip.")
    return clip


@router.head("/{event_id}/clip.mp4", include_in_schema=False)
@router.get(
    "/{event_id}/clip.mp4",
    summary="The event's clip (MP4); Range requests for seeking",
    response_class=Response,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole clip"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        304: {"description": "Not modified (If-None-Match)"},
        401: {"model": ErrorResponse, "description": "Missing or invalid admin key or ticket"},
        404: {"model": ErrorResponse, "description": "No such event, or it has no clip"},
        416: {"description": "Range not satisfiable (Content-Range: bytes */size)"},
    },
)
async def clip(
    event_id: str, request: Request, found: Annotated[ClipInfo, Depends(clip_viewer)]
) -> Response:
    store: MediaStore = request.app.state.media_store
    etag = f'"{found.sha256}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        # The URL (with its ticket) is private; a re-cut clip has a new ETag.
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'inline; filename="{found.camera_id}-{event_id}.mp4"',
    }
    match = request.headers.get("if-none-match")
    if match is not None and etag in [m.strip() for m in match.split(",")]:
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is of another clip: send it whole
    try:
        wanted = parse_range(range_header, found.size)
    except RangeNotSatisfiable:
        return Response(
            status_code=416, headers={**headers, "Content-Range": f"bytes */{found.size}"}
        )
    start, end = (wanted.start, wanted.end) if wanted else (0, found.size - 1)
    status = 206 if wanted else 200
    headers["Content-Length"] = str(end - start + 1)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range()
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=found.content_type)
    try:
        chunks = await run_in_threadpool(store.open_range, found.storage_key, start, end)
    except MediaNotFound:
        log.error(
            "clip missing from media storage",
            extra={"event": event_id, "key": found.storage_key, "store": store.kind},
        )
        raise ApiError(404, "no_clip", f"The clip of event {event_id!r} is missing.") from None
    except MediaStoreError as exc:
        log.error(
            "clip could not be read",
            extra={"event": event_id, "key": found.storage_key, "error": str(exc)},
        )
        raise ApiError(503, "storage_unavailable", "The media storage failed; retry.") from None
    close = getattr(chunks, "close", None)
    return StreamingResponse(
        chunks,
        status_code=status,
        headers=headers,
        media_type=found.content_type,
        background=BackgroundTask(close) if close is not None else None,
    )
