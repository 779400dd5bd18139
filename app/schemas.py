"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.presence import CameraState, PublisherState
from app.tokens import MintedToken

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"

CameraName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CameraId = Annotated[str, StringConstraints(pattern=CAMERA_ID_PATTERN)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["camera_not_found"])
    message: str = Field(examples=["No camera with id 'door'."])


class ErrorResponse(BaseModel):
    error: ErrorDetail


# --- cameras -------------------------------------------------------------------------


class CameraCreate(BaseModel):
    # Admin requests are strict: a misspelt field is an error, not silently dropped.
    # (Edge bodies ignore unknown keys on purpose, so newer edges work with older servers.)
    model_config = ConfigDict(extra="forbid")

    name: CameraName
    id: CameraId | None = Field(
        default=None,
        description="Slug; generated (8 lowercase letters and digits) when omitted.",
        examples=["front-door"],
    )


class CameraUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: CameraName


class CameraOut(BaseModel):
    id: str
    name: str
    room: str = Field(description="LiveKit room the camera publishes into.")
    created_at: datetime
    online: bool = Field(description="Publishing, and heard from within the heartbeat timeout.")
    state: CameraState = Field(
        description="Last reported state (the edge's publisher state, or offline)."
    )
    last_seen: datetime | None
    last_snapshot_at: datetime | None = Field(
        default=None,
        description="When the newest picture kept for GET …/snapshot.jpg arrived (null: none yet).",
    )


class EnrollmentOut(BaseModel):
    code: str = Field(description="One-time code for the edge.", examples=["K7QM-3XHT-9WZB"])
    expires_at: datetime


class CameraCreated(BaseModel):
    camera: CameraOut
    enrollment: EnrollmentOut


class MjpegTicket(BaseModel):
    url: str = Field(
        description="Path of the MJPEG stream with its ticket; usable as <img src>.",
        examples=["/api/cameras/front-door/mjpeg?ticket=v1.1893456000.Qm9…"],
    )
    expires_at: datetime = Field(description="Open the stream before this; it may run longer.")


class CameraStatus(BaseModel):
    id: str
    online: bool
    state: CameraState
    state_at: datetime | None
    last_seen: datetime | None
    heartbeat: dict[str, Any] | None = Field(description="The last heartbeat the edge sent.")


class CredentialsRevoked(BaseModel):
    camera_id: str
    revoked: int = Field(description="How many active credentials were revoked.")


class TokenOut(BaseModel):
    url: str = Field(description="LiveKit URL to connect to.")
    token: str
    room: str
    identity: str
    expires_at: datetime

    @classmethod
    def of(cls, minted: MintedToken) -> TokenOut:
        """The response for a token from app.tokens."""
        return cls(
            url=minted.url,
            token=minted.token,
            room=minted.room,
            identity=minted.identity,
            expires_at=minted.expires_at,
        )


# --- edge ----------------------------------------------------------------------------


class EnrollRequest(BaseModel):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class EnrollResponse(BaseModel):
    camera_id: str
    credential: str = Field(description="Keep secret; send as `Authorization: Bearer …`.")
    room: str


NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

_MAX_TEXT = 1000


class Heartbeat(BaseModel):
    """Health report from an edge. Unknown keys are ignored, so edges may send more."""

    model_config = ConfigDict(extra="ignore")

    publisher_state: PublisherState
    fps: NonNegativeFloat = 0.0
    bitrate_kbps: NonNegativeFloat = 0.0
    cpu_percent: NonNegativeFloat | None = None
    temperature_c: float | None = None
    width: NonNegativeInt | None = None
    height: NonNegativeInt | None = None
    frames_sent: NonNegativeInt = 0
    frames_dropped: NonNegativeInt = 0
    keyframe_requests: NonNegativeInt = 0
    jpeg_frames_sent: NonNegativeInt = Field(
        default=0, description="JPEGs sent over the control websocket since the edge started."
    )
    uptime_s: NonNegativeFloat = 0.0
    source: str = ""
    error: str | None = None
    version: str = ""
    # Detection and the event outbox (edge/events): the health page shows them.
    detect: Literal["off", "motion", "objects"] | None = Field(
        default=None, description="What the edge detects: nothing, motion only, or objects."
    )
    motion: bool | None = None
    motion_ms: NonNegativeFloat | None = Field(
        default=None, description="Motion analysis time per picture (p50, ms)."
    )
    detect_ms: NonNegativeFloat | None = Field(
        default=None, description="Object detection time per run (p50, ms)."
    )
    events_queued: NonNegativeInt | None = Field(
        default=None, description="Event messages waiting in the edge's outbox."
    )
    events_oldest_s: NonNegativeFloat | None = None
    events_dead: NonNegativeInt | None = None
    events_paused: bool | None = None
    events_active: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None, max_length=16, description="Labels with an event in progress."
    )
    # Recording and clip uploads (edge/record, edge/uploads).
    recording: bool | None = Field(default=None, description="Continuous recording is on.")
    record_bytes: NonNegativeInt | None = Field(
        default=None, description="Bytes of recordings and clips on the edge's disk."
    )
    record_free_bytes: NonNegativeInt | None = Field(
        default=None, description="Free bytes on the edge's recording disk."
    )
    record_disk_full: bool | None = None
    record_dropped: NonNegativeInt | None = Field(
        default=None, description="Access units the recorder could not keep up with."
    )
    record_error: str | None = None
    uploads_queued: NonNegativeInt | None = Field(
        default=None, description="Clips waiting to be uploaded."
    )
    uploads_bytes_left: NonNegativeInt | None = None
    uploads_dead: NonNegativeInt | None = None
    uploads_paused: bool | None = None
    upload_event: str | None = Field(default=None, description="The event whose clip is sent.")
    upload_sent: NonNegativeInt | None = None
    upload_size: NonNegativeInt | None = None
    upload_kbps: NonNegativeFloat | None = None

    @field_validator("source", "error", "version", "record_error", "upload_event")
    @classmethod
    def _truncate(cls, value: str | None) -> str | None:
        # A long error text (a traceback) must not cost the edge its heartbeat.
        return value[:_MAX_TEXT] if value is not None else None


class HeartbeatAck(BaseModel):
    ok: Literal[True] = True
    server_time: datetime
    mjpeg_wanted: bool = Field(
        default=False,
        description="Whether JPEGs are wanted (an MJPEG viewer, or a recent snapshot request); "
        "the control websocket carries the same demand.",
    )


# --- health --------------------------------------------------------------------------


class LiveKitHealth(BaseModel):
    ok: bool
    url: str
    latency_ms: float | None
    error: str | None


class DatabaseHealth(BaseModel):
    ok: bool
    error: str | None


class CameraCounts(BaseModel):
    online: int
    total: int


class ClusterHealth(BaseModel):
    """This replica's Redis link (absent with one API process)."""

    ok: bool = Field(description="Subscribed to the replicas' Redis channel")
    node: str = Field(description="This replica's id in the cluster's messages")
    sent: int
    received: int


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    livekit: LiveKitHealth
    db: DatabaseHealth
    cameras: CameraCounts
    cluster: ClusterHealth | None = None


class WebhookAck(BaseModel):
    ok: Literal[True] = True


# --- events (contracts 3 and 4) ------------------------------------------------------

#: An event's ``label``: a detection kind, or "motion" for a motion-only event.
EventLabel = Literal["person", "vehicle", "pet", "motion", "other"]
EVENT_LABELS: tuple[str, ...] = ("person", "vehicle", "pet", "motion", "other")
EVENT_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: A COCO class name ("person", "car", "traffic light", ...).
COCO_NAME_PATTERN = r"^[a-z][a-z ]{0,39}$"
MAX_SEQ = 2**31 - 1

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
ZoneName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class EventIn(BaseModel):
    """One phase of an event from an edge (``POST /api/edge/events``, contract 3).

    Unknown keys are ignored, so newer edges may send more.
    """

    model_config = ConfigDict(extra="ignore")

    key: str = Field(max_length=80, description="`<event_id>:<seq>`: the idempotency key.")
    event_id: str = Field(pattern=EVENT_ID_PATTERN, description="A UUID made on the edge.")
    seq: Annotated[int, Field(strict=True, ge=0, le=MAX_SEQ)] = Field(
        description="0, 1, 2, … per event; the highest seq is the newest state."
    )
    phase: Literal["start", "update", "end"]
    label: EventLabel
    object: str | None = Field(
        default=None,
        pattern=COCO_NAME_PATTERN,
        description="The COCO class name; null for a motion event.",
    )
    score: Unit
    box: tuple[Unit, Unit, Unit, Unit] | None = Field(
        default=None, description="[x0, y0, x1, y1], normalised 0..1, x0 < x1 and y0 < y1."
    )
    zones: list[ZoneName] = Field(default_factory=list, max_length=64)
    started_at: AwareDatetime
    at: AwareDatetime = Field(description="When this phase happened.")
    ended_at: AwareDatetime | None = None
    snapshot: str | None = Field(
        default=None, description="Base64 JPEG (with the box drawn), or null."
    )

    @field_validator("event_id")
    @classmethod
    def _lower_id(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _consistent(self) -> EventIn:
        if self.key.lower() != f"{self.event_id}:{self.seq}":
            raise ValueError(f"key must be '<event_id>:<seq>' ({self.event_id}:{self.seq})")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError("box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if self.label == "motion" and self.object is not None:
            raise ValueError("object must be null for a motion event")
        if self.label != "motion" and self.object is None:
            raise ValueError(f"object (the COCO class name) is required for a {self.label} event")
        if (self.phase == "end") != (self.ended_at is not None):
            raise ValueError("ended_at must be set for phase 'end', and only for it")
        if self.at < self.started_at:
            raise ValueError("at must not be before started_at")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at must not be before started_at")
        # One zone named twice is the same zone.
        self.zones = list(dict.fromkeys(self.zones))
        return self


class EventStored(BaseModel):
    status: Literal["stored", "duplicate"] = Field(
        description="`duplicate`: this seq (or a newer one) was already applied; nothing changed."
    )
    event_id: str


class ClipOut(BaseModel):
    """An event's video clip (contract 5): where it plays and what it is."""

    url: str = Field(
        description="`/api/events/<id>/clip.mp4`: admin key, or `?ticket=` from "
        "POST /api/events/<id>/clip-ticket; supports Range requests."
    )
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="SHA-256 of the file (hex); also its ETag.")
    content_type: str
    started_at: datetime = Field(description="First frame (with the pre-roll).")
    ended_at: datetime
    duration_s: float


class EventOut(BaseModel):
    """An event as the API, the SSE stream and the camera's room data show it (contract 4)."""

    id: str
    camera_id: str
    camera_name: str
    label: EventLabel
    object: str | None
    score: float = Field(description="The highest score any message of the event carried.")
    box: list[float] | None = Field(description="The newest box, normalised 0..1.")
    zones: list[str] = Field(description="Every zone the event was seen in.")
    started_at: datetime
    updated_at: datetime = Field(description="When the edge sent the newest state.")
    ended_at: datetime | None
    active: bool = Field(description="Not ended yet.")
    has_snapshot: bool
    snapshot_url: str | None = Field(
        description="`/api/events/<id>/snapshot.jpg`; null while there is no snapshot."
    )
    version: int = Field(
        description="Grows with every change of any event (the SSE id); a client keeping "
        "events by id can ignore a state older than the one it has."
    )
    clip: ClipOut | None = Field(
        default=None, description="The event's uploaded clip; null while there is none."
    )


class EventPage(BaseModel):
    events: list[EventOut] = Field(description="Newest first (by started_at, then id).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class EventDay(BaseModel):
    date: str = Field(description="Local date (YYYY-MM-DD) in the requested time zone.")
    total: int
    labels: dict[str, int]


class EventDays(BaseModel):
    tz: str
    days: list[EventDay] = Field(description="Newest day first; days without events omitted.")


class StreamTicket(BaseModel):
    url: str = Field(
        description="Path of the event stream with its ticket, for EventSource; "
        "append &camera=…&label=… to filter.",
        examples=["/api/events/stream?ticket=v1.1893456000.Qm9…"],
    )
    expires_at: datetime = Field(description="Open the stream before this; it may run longer.")


# --- zones and privacy masks (contract 2) ----------------------------------------------

ZoneLabel = Literal["person", "vehicle", "pet", "motion", "other"]
MAX_ZONES = 32
MAX_ZONE_POINTS = 64


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Stable id; the server assigns `z1`, `z2`, … when omitted.",
    )
    name: ZoneName
    kind: Literal["zone", "mask"]
    points: list[tuple[Unit, Unit]] = Field(
        min_length=3,
        max_length=MAX_ZONE_POINTS,
        description="[[x, y], …] normalised 0..1 of the picture, a simple polygon.",
    )
    labels: list[ZoneLabel] | None = Field(
        default=None,
        description="Zones only: which event labels alert in this zone (empty or omitted: all).",
    )


class ZonesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zones: list[ZoneIn] = Field(max_length=MAX_ZONES)


class ZoneOut(BaseModel):
    id: str
    name: str
    kind: Literal["zone", "mask"]
    points: list[list[float]]
    labels: list[str] | None = Field(
        default=None, description="Zones only; absent for masks.", exclude_if=lambda v: v is None
    )


class ZonesOut(BaseModel):
    camera_id: str
    zones: list[ZoneOut]
    updated_at: datetime | None = Field(description="Last change; null: never set.")
