"""Event clips in the database: attaching an uploaded clip to its event, finding one for
playback, detaching one (retention).

A clip row points at its bytes in the media store (``storage_key``); the event JSON
shows it as ``"clip"`` (app/events.py). Attaching or detaching is an event change: the
event gets a new version and its JSON goes out on the event bus (SSE, the LiveKit room),
through ``EventIngest.change``, so every open dashboard learns of it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import SessionFactory
from app.events import EventIngest
from app.models import Clip, Event

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Every clip key is in this folder of the media store (retention looks nowhere else).
CLIPS_FOLDER = "clips"


def storage_key(camera_id: str, event_id: str, started_at: datetime, sha256: str) -> str:
    """Where a clip's bytes go in the media store. The SHA-256 is part of the key, so a
    re-cut clip gets a new object and the old one is deleted only once the new one is in."""
    if not (_SAFE_ID.match(camera_id) and _SAFE_ID.match(event_id)):
        raise ValueError(f"unsafe clip key part: {camera_id!r}/{event_id!r}")
    return (
        f"{CLIPS_FOLDER}/{camera_id}/{started_at.strftime('%Y-%m-%d')}/{event_id}.{sha256[:16]}.mp4"
    )


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """What serving or deleting a clip needs (detached from the session)."""

    id: int
    event_id: str
    camera_id: str
    storage_key: str
    size: int
    sha256: str
    content_type: str
    started_at: datetime
    upload_id: str

    @classmethod
    def of(cls, row: Clip) -> ClipInfo:
        return cls(
            row.id,
            row.event_id,
            row.camera_id,
            row.storage_key,
            row.size,
            row.sha256,
            row.content_type,
            row.started_at,
            row.upload_id,
        )


@dataclass(frozen=True, slots=True)
class NewClip:
    """A clip whose bytes are in the store, to be recorded for its event."""

    camera_id: str
    event_id: str
    storage_key: str
    size: int
    sha256: str
    content_type: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    upload_id: str


@dataclass(frozen=True, slots=True)
class Attached:
    """The event JSON after attaching, and the key of the clip it replaced (if any)."""

    event: dict[str, Any]
    replaced_key: str | None


def find_clip(session: Session, event_id: str) -> ClipInfo | None:
    """The event's clip, or None."""
    row = session.scalars(select(Clip).where(Clip.event_id == event_id)).one_or_none()
    return None if row is None else ClipInfo.of(row)


def find_clip_by_upload(session: Session, upload_id: str) -> ClipInfo | None:
    """The clip a (finished) upload delivered, or None."""
    row = session.scalars(select(Clip).where(Clip.upload_id == upload_id).limit(1)).first()
    return None if row is None else ClipInfo.of(row)


def event_of_camera(session: Session, camera_id: str, event_id: str) -> bool:
    """Whether ``event_id`` exists and belongs to ``camera_id``."""
    row = session.get(Event, event_id)
    return row is not None and row.camera_id == camera_id


def attach_clip(ingest: EventIngest, clip: NewClip, now: datetime) -> Attached | None:
    """Records ``clip`` as its event's clip (replacing an older one) and announces the
    event change. None when the event is gone or belongs to another camera (blocking)."""
    replaced: list[str] = []

    def mutate(session: Session, event: Event) -> bool:
        if event.camera_id != clip.camera_id:
            return False
        row = session.scalars(select(Clip).where(Clip.event_id == event.id)).one_or_none()
        if row is None:
            row = Clip(event_id=event.id, camera_id=clip.camera_id)
            session.add(row)
        elif row.storage_key != clip.storage_key:
            replaced.append(row.storage_key)
        row.storage_key = clip.storage_key
        row.size = clip.size
        row.sha256 = clip.sha256
        row.content_type = clip.content_type
        row.started_at = clip.started_at
        row.ended_at = clip.ended_at
        row.duration_s = clip.duration_s
        row.upload_id = clip.upload_id
        row.created_at = now
        return True

    event = ingest.change(clip.event_id, mutate)
    if event is None:
        return None
    return Attached(event, replaced[0] if replaced else None)


def detach_clip(ingest: EventIngest, clip: ClipInfo) -> bool:
    """Removes the clip row (if it is still this clip) and announces the event change;
    whether it was removed. The caller deletes the bytes from the store (blocking)."""

    def mutate(session: Session, event: Event) -> bool:
        row = session.get(Clip, clip.id)
        if row is None or row.storage_key != clip.storage_key:
            return False  # already gone, or replaced meanwhile by a newer upload
        session.delete(row)
        return True

    return ingest.change(clip.event_id, mutate) is not None


def clips_before(factory: SessionFactory, cutoff: datetime, limit: int) -> list[ClipInfo]:
    """Up to ``limit`` clips that started before ``cutoff``, oldest first."""
    with factory() as session:
        rows = session.scalars(
            select(Clip).where(Clip.started_at < cutoff).order_by(Clip.started_at).limit(limit)
        ).all()
        return [ClipInfo.of(r) for r in rows]


def oldest_clips(factory: SessionFactory, limit: int) -> list[ClipInfo]:
    """The ``limit`` oldest clips."""
    with factory() as session:
        rows = session.scalars(select(Clip).order_by(Clip.started_at, Clip.id).limit(limit)).all()
        return [ClipInfo.of(r) for r in rows]


def total_clip_bytes(factory: SessionFactory) -> int:
    """The bytes of every clip the database knows."""
    with factory() as session:
        return int(session.scalar(select(func.coalesce(func.sum(Clip.size), 0))) or 0)


def stored_keys(factory: SessionFactory) -> set[str]:
    """Every storage key the database points at."""
    with factory() as session:
        return set(session.scalars(select(Clip.storage_key)))
