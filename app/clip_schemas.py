"""Bodies of the clip upload API (contract 5) and the clip ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schemas import EVENT_ID_PATTERN, ClipOut

SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
#: A clip longer than a day is not an event clip.
MAX_CLIP_SECONDS = 86400.0


class UploadStart(BaseModel):
    """``POST /api/edge/uploads``: start or resume the upload of one event's clip."""

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(pattern=EVENT_ID_PATTERN, description="An event of this camera.")
    kind: Literal["clip"]
    size: Annotated[int, Field(strict=True, ge=1)] = Field(description="Bytes of the file.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="SHA-256 of the whole file (hex).")
    content_type: Literal["video/mp4"]
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_s: float = Field(ge=0, le=MAX_CLIP_SECONDS, allow_inf_nan=False)

    @field_validator("event_id", "sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _ordered(self) -> UploadStart:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at must not be before started_at")
        return self


class UploadStarted(BaseModel):
    upload_id: str = Field(description="Opaque; PUT the chunks to /api/edge/uploads/<id>.")
    offset: int = Field(description="Bytes the server already has: send from here.")
    complete: bool = Field(description="The clip is already stored: nothing to send.")


class UploadProgress(BaseModel):
    offset: int = Field(description="Bytes the server has durably.")
    complete: bool = Field(description="The clip is stored and attached to its event.")
    clip: ClipOut | None = Field(
        default=None,
        description="The stored clip (only in the answer to the last chunk).",
        exclude_if=lambda v: v is None,
    )


class ClipTicket(BaseModel):
    url: str = Field(
        description="Path of the clip with its ticket; usable as <video src> (seeking "
        "works: Range requests carry the ticket too).",
        examples=["/api/events/2b7c…/clip.mp4?ticket=v1.1893456000.Qm9…"],
    )
    expires_at: datetime = Field(description="Requests (seeks too) work until then.")
