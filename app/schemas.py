"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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
    name: CameraName
    id: CameraId | None = Field(
        default=None,
        description="Slug; generated (8 lowercase letters and digits) when omitted.",
        examples=["front-door"],
    )


class CameraUpdate(BaseModel):
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

    @field_validator("source", "error", "version")
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


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    livekit: LiveKitHealth
    db: DatabaseHealth
    cameras: CameraCounts


class WebhookAck(BaseModel):
    ok: Literal[True] = True
