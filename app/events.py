"""Events: applying what edges report, querying them, and pruning old ones.

Ingest (``POST /api/edge/events``, contract 3) is idempotent and order-independent:

* A message is applied only if its ``seq`` is above the highest one stored for the
  event, so a retry or a late, older message changes nothing ("duplicate"), and the
  event always ends up in the state of its newest message, whatever order they came in.
* What does not depend on order is merged from every message: the highest score, the
  union of the zones, and the snapshot sent with the highest score.
* Every applied change first bumps the ``events`` counter row. That single row lock
  serialises event writes on PostgreSQL and takes SQLite's write lock up front (no
  "database is locked" surprise half-way through), so two deliveries of the same new
  event cannot both insert, and ``version`` is handed out in commit order. A nothing-
  changed message rolls the bump back.
* After the commit, the event JSON (contract 4) goes to the in-process EventBus (SSE,
  Web Push, the LiveKit room relay subscribe there), in version order.

Snapshots are files (app/event_snapshots.py). Retention (``EventPruner``) deletes events
older than ``LIVECAM_EVENT_RETENTION_DAYS`` with their files.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import threading
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVarTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, Select, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import Clock
from app.db import SessionFactory
from app.errors import ApiError, unauthorized
from app.event_snapshots import EventSnapshotStore
from app.eventbus import EventBus
from app.models import Camera, Clip, Counter, Event, EventZone
from app.schemas import ClipOut, EventIn, EventOut

log = logging.getLogger(__name__)

Ts = TypeVarTuple("Ts")

COUNTER = "events"
MAX_PAGE = 200
_APPLY_ATTEMPTS = 3


# --- the event JSON (contract 4) ---------------------------------------------------------


def snapshot_url(event_id: str) -> str:
    """Where an event's snapshot is served."""
    return f"/api/events/{event_id}/snapshot.jpg"


def clip_url(event_id: str) -> str:
    """Where an event's clip plays (Range requests supported)."""
    return f"/api/events/{event_id}/clip.mp4"


def clip_out(clip: Clip) -> ClipOut:
    """The clip JSON (contract 5) of a stored clip."""
    return ClipOut(
        url=clip_url(clip.event_id),
        size=clip.size,
        sha256=clip.sha256,
        content_type=clip.content_type,
        started_at=clip.started_at,
        ended_at=clip.ended_at,
        duration_s=clip.duration_s,
    )


def event_json(event: Event, camera_name: str) -> dict[str, Any]:
    """The event as every API surface shows it (GET, SSE, room data, the bus)."""
    has_snapshot = event.snapshot is not None
    out = EventOut(
        id=event.id,
        camera_id=event.camera_id,
        camera_name=camera_name,
        label=cast(Any, event.label),
        object=event.object,
        score=event.best_score,
        box=list(event.box) if event.box is not None else None,
        zones=list(event.zones),
        started_at=event.started_at,
        updated_at=event.updated_at,
        ended_at=event.ended_at,
        active=event.ended_at is None,
        has_snapshot=has_snapshot,
        snapshot_url=snapshot_url(event.id) if has_snapshot else None,
        version=event.version,
        clip=clip_out(event.clip) if event.clip is not None else None,
    )
    return out.model_dump(mode="json")


# --- ingest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one message did: ``stored`` (with the new event JSON) or ``duplicate``."""

    status: Literal["stored", "duplicate"]
    event_id: str
    event: dict[str, Any] | None = None


def event_conflict(event_id: str) -> ApiError:
    return ApiError(
        409,
        "event_conflict",
        f"Event {event_id!r} belongs to another camera; an edge must make its own event ids.",
    )


def _bump_counter(session: Session) -> int:
    """The next change version. Takes the write lock (SQLite) / row lock (PostgreSQL)."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Counter).where(Counter.name == COUNTER).values(value=Counter.value + 1)
        ),
    )
    if result.rowcount == 0:
        # The migration seeds the row; this only helps a database made some other way.
        session.add(Counter(name=COUNTER, value=1))
        session.flush()
        return 1
    value = session.scalar(select(Counter.value).where(Counter.name == COUNTER))
    assert value is not None
    return value


def current_version(session: Session) -> int:
    """The latest committed change version: every change up to it is committed and
    visible (versions are handed out under the counter's row lock, in commit order)."""
    return session.scalar(select(Counter.value).where(Counter.name == COUNTER)) or 0


class EventIngest:
    """Applies edge messages to the database and announces the changes on the bus."""

    def __init__(self, factory: SessionFactory, store: EventSnapshotStore, bus: EventBus) -> None:
        self._factory = factory
        self.store = store
        self._bus = bus
        # Writes are serialised by the database anyway; holding this across commit and
        # publish also keeps the bus in version order within this process.
        self._lock = threading.Lock()
        self.stored = 0
        self.duplicates = 0

    def apply(
        self, camera_id: str, message: EventIn, snapshot: bytes | None, now: datetime
    ) -> ApplyResult:
        """Applies one message from ``camera_id``'s edge (blocking: call from a thread).

        Raises ApiError 409 when the event id belongs to another camera, 401 when the
        camera no longer exists.
        """
        with self._lock:
            for attempt in range(1, _APPLY_ATTEMPTS + 1):
                try:
                    result = self._apply_once(camera_id, message, snapshot, now)
                except IntegrityError:
                    # Another writer (another API replica) inserted the event first: the
                    # next attempt sees its row.
                    if attempt == _APPLY_ATTEMPTS:
                        raise
                    log.info(
                        "event insert raced; retrying",
                        extra={"camera": camera_id, "event": message.event_id, "try": attempt},
                    )
                    continue
                if result.status == "stored":
                    self.stored += 1
                else:
                    self.duplicates += 1
                return result
        raise AssertionError("unreachable")

    def _apply_once(
        self, camera_id: str, msg: EventIn, snapshot: bytes | None, now: datetime
    ) -> ApplyResult:
        with self._factory() as session:
            version = _bump_counter(session)
            camera = session.get(Camera, camera_id)
            if camera is None:
                raise unauthorized(
                    "invalid_edge_credential", "The camera of this edge credential was deleted."
                )
            row = session.get(Event, msg.event_id)
            if row is not None and row.camera_id != camera_id:
                log.warning(
                    "event id belongs to another camera",
                    extra={"camera": camera_id, "event": msg.event_id, "owner": row.camera_id},
                )
                raise event_conflict(msg.event_id)
            snapshot_wins = snapshot is not None and (
                row is None
                or row.snapshot is None
                or row.snapshot_score is None
                or msg.score > row.snapshot_score
            )
            if row is None:
                row = Event(
                    id=msg.event_id,
                    camera_id=camera_id,
                    label=msg.label,
                    object=msg.object,
                    score=msg.score,
                    best_score=msg.score,
                    box=list(msg.box) if msg.box is not None else None,
                    zones=list(msg.zones),
                    started_at=msg.started_at,
                    updated_at=msg.at,
                    ended_at=msg.ended_at,
                    last_seq=msg.seq,
                    created_at=now,
                    received_at=now,
                    version=version,
                )
                session.add(row)
                new_zones = list(msg.zones)
                changed = True
            else:
                new_zones = [z for z in msg.zones if z not in row.zones]
                changed = self._merge(row, msg, new_zones) or snapshot_wins
            if not changed:
                log.debug(
                    "event message already applied",
                    extra={"camera": camera_id, "event": msg.event_id, "seq": msg.seq},
                )
                return ApplyResult("duplicate", msg.event_id)  # closing rolls the bump back
            old_file: str | None = None
            if snapshot_wins:
                assert snapshot is not None
                relative = self.store.relative_path(camera_id, row.id, row.started_at)
                self.store.write(relative, snapshot)
                old_file = row.snapshot if row.snapshot != relative else None
                row.snapshot = relative
                row.snapshot_score = msg.score
                row.snapshot_at = now
            session.add_all(EventZone(event_id=row.id, zone=z) for z in new_zones)
            row.version = version
            row.received_at = now
            session.commit()
            if old_file is not None:
                self.store.remove(old_file)
            event = event_json(row, camera.name)
            self._bus.publish(event)
        log.info(
            "event stored",
            extra={
                "camera": camera_id,
                "event": msg.event_id,
                "seq": msg.seq,
                "phase": msg.phase,
                "label": msg.label,
                "score": msg.score,
                "snapshot": "kept" if snapshot_wins else ("ignored" if snapshot else "none"),
                "version": version,
            },
        )
        return ApplyResult("stored", msg.event_id, event)

    def change(
        self, event_id: str, mutate: Callable[[Session, Event], bool]
    ) -> dict[str, Any] | None:
        """Applies a server-side change to one event (its clip came or went) as a new
        version, and announces it on the bus like an edge message would (blocking: call
        from a thread).

        ``mutate(session, event)`` makes the change in the open transaction and returns
        whether anything changed; it may raise to abort. Returns the new event JSON, or
        None when the event does not exist or nothing changed (then nothing is written).
        """
        with self._lock, self._factory() as session:
            version = _bump_counter(session)
            row = session.get(Event, event_id)
            if row is None or not mutate(session, row):
                return None  # closing rolls the bump back
            row.version = version
            session.commit()
            # The clip relationship is read-only: load what the transaction left.
            session.expire(row, ["clip"])
            camera = session.get(Camera, row.camera_id)
            event = event_json(row, camera.name if camera is not None else row.camera_id)
            self._bus.publish(event)
            return event

    @staticmethod
    def _merge(row: Event, msg: EventIn, new_zones: list[str]) -> bool:
        """Merges ``msg`` into ``row``; whether anything changed."""
        changed = False
        if msg.seq > row.last_seq:
            # The newest message carries the event's current state.
            row.last_seq = msg.seq
            row.label = msg.label
            row.object = msg.object
            row.score = msg.score
            row.box = list(msg.box) if msg.box is not None else None
            row.updated_at = msg.at
            row.ended_at = msg.ended_at
            changed = True
        if msg.started_at < row.started_at:
            row.started_at = msg.started_at
            changed = True
        if msg.score > row.best_score:
            row.best_score = msg.score
            changed = True
        if new_zones:
            row.zones = [*row.zones, *new_zones]  # a new list: JSON columns track assignment
            changed = True
        return changed


# --- queries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What GET /api/events and the SSE stream may filter on."""

    cameras: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    zone: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    active: bool | None = None

    def apply(self, query: Select[*Ts]) -> Select[*Ts]:
        """``query`` (over Event) narrowed by this filter."""
        if self.cameras:
            query = query.where(Event.camera_id.in_(self.cameras))
        if self.labels:
            query = query.where(Event.label.in_(self.labels))
        if self.zone is not None:
            query = query.where(
                Event.id.in_(select(EventZone.event_id).where(EventZone.zone == self.zone))
            )
        if self.since is not None:
            query = query.where(Event.started_at >= self.since)
        if self.until is not None:
            query = query.where(Event.started_at < self.until)
        if self.active is True:
            query = query.where(Event.ended_at.is_(None))
        elif self.active is False:
            query = query.where(Event.ended_at.is_not(None))
        return query

    def matches(self, event: dict[str, Any]) -> bool:
        """The same test on an event's JSON (for events arriving on the bus)."""
        if self.cameras and event.get("camera_id") not in self.cameras:
            return False
        if self.labels and event.get("label") not in self.labels:
            return False
        if self.zone is not None and self.zone not in (event.get("zones") or ()):
            return False
        return self.active is None or event.get("active") is self.active


def invalid_cursor() -> ApiError:
    return ApiError(
        422, "invalid_cursor", "The cursor is not one this server gave out; start without one."
    )


def encode_cursor(started_at: datetime, event_id: str) -> str:
    """An opaque cursor for the position after (started_at, id)."""
    raw = json.dumps([started_at.isoformat(), event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(started_at, id) of a cursor; ApiError 422 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, event_id = json.loads(raw)
        when = datetime.fromisoformat(started)
    except (ValueError, TypeError, binascii.Error):
        raise invalid_cursor() from None
    if when.tzinfo is None or not isinstance(event_id, str) or len(event_id) > 64:
        raise invalid_cursor()
    return when, event_id


def _with_camera() -> Select[Event, str]:
    return select(Event, Camera.name).join(Camera, Camera.id == Event.camera_id)


def list_events(
    session: Session, flt: EventFilter, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first by (started_at, id), and the cursor of the next page.

    Keyset pagination: a page starts strictly after the previous page's last row, so
    events inserted meanwhile never shift later pages (each event shows up once).
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = flt.apply(_with_camera())
    if cursor is not None:
        after_started, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Event.started_at < after_started,
                and_(Event.started_at == after_started, Event.id < after_id),
            )
        )
    rows = session.execute(
        query.order_by(Event.started_at.desc(), Event.id.desc()).limit(limit + 1)
    ).all()
    page = [event_json(event, name) for event, name in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = encode_cursor(last.started_at, last.id)
    return page, next_cursor


def get_event(session: Session, event_id: str) -> dict[str, Any] | None:
    """One event's JSON, or None."""
    row = session.execute(_with_camera().where(Event.id == event_id)).first()
    return None if row is None else event_json(row[0], row[1])


def events_after_version(
    session: Session, version: int, flt: EventFilter, limit: int = MAX_PAGE
) -> list[dict[str, Any]]:
    """Events whose latest change is newer than ``version``, oldest change first (replay)."""
    query = flt.apply(_with_camera()).where(Event.version > version)
    rows = session.execute(query.order_by(Event.version).limit(limit)).all()
    return [event_json(event, name) for event, name in rows]


def day_counts(
    session: Session, flt: EventFilter, tz: ZoneInfo, max_rows: int = 200_000
) -> list[tuple[str, int, dict[str, int]]]:
    """Per local day (newest first): (date, total, {label: count})."""
    query = flt.apply(select(Event.started_at, Event.label))
    per_day: dict[str, Tally[str]] = {}
    for started_at, label in session.execute(query.limit(max_rows)):
        day = started_at.astimezone(tz).date().isoformat()
        per_day.setdefault(day, Tally())[label] += 1
    return [
        (day, sum(labels.values()), dict(sorted(labels.items())))
        for day, labels in sorted(per_day.items(), reverse=True)
    ]


# --- deletion and retention --------------------------------------------------------------


def forget_camera_events(store: EventSnapshotStore, camera_id: str) -> int:
    """A camera was deleted (its rows went with it by cascade): delete its snapshot files."""
    removed = store.remove_camera(camera_id)
    if removed:
        log.info("camera's event snapshots deleted", extra={"camera": camera_id, "files": removed})
    return removed


@dataclass(frozen=True, slots=True)
class PruneResult:
    events: int
    files: int


def prune_events(
    factory: SessionFactory,
    store: EventSnapshotStore,
    cutoff: datetime,
    batch: int = 500,
) -> PruneResult:
    """Deletes events that started before ``cutoff`` and their snapshots, in batches;
    also removes snapshot directories of deleted cameras and of days before ``cutoff``."""
    events = files = 0
    while True:
        with factory() as session:
            rows: Sequence[tuple[str, str | None]] = cast(
                Sequence[tuple[str, str | None]],
                session.execute(
                    select(Event.id, Event.snapshot).where(Event.started_at < cutoff).limit(batch)
                ).all(),
            )
            if not rows:
                break
            session.execute(delete(Event).where(Event.id.in_([r[0] for r in rows])))
            session.commit()
        events += len(rows)
        files += sum(1 for _, snap in rows if snap is not None and store.remove(snap))
        if len(rows) < batch:
            break
    files += _sweep(factory, store, cutoff)
    return PruneResult(events, files)


def _sweep(factory: SessionFactory, store: EventSnapshotStore, cutoff: datetime) -> int:
    """Files the rows no longer point at: cameras deleted, days wholly past retention."""
    with factory() as session:
        cameras = set(session.scalars(select(Camera.id)))
    removed = 0
    oldest_day = cutoff.date().isoformat()
    for camera_id in store.camera_dirs():
        if camera_id not in cameras:
            removed += store.remove_camera(camera_id)
            continue
        for day in sorted((store.directory / camera_id).iterdir()):
            if day.is_dir() and day.name < oldest_day:
                for jpg in day.glob("*.jpg"):
                    with contextlib.suppress(OSError):
                        jpg.unlink()
                        removed += 1
                for leftover in day.iterdir():
                    with contextlib.suppress(OSError):
                        leftover.unlink()
                with contextlib.suppress(OSError):
                    day.rmdir()
    return removed


class EventPruner:
    """Runs ``prune_events`` at start and every ``interval_s`` (off the event loop).

    ``before``: other retention passes run first on each round (clip retention: a clip
    leaves the media store before its event's row can take the clip row with it).
    """

    def __init__(
        self,
        factory: SessionFactory,
        store: EventSnapshotStore,
        clock: Clock,
        retention_days: int,
        interval_s: float,
        before: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> None:
        self._factory = factory
        self._store = store
        self._clock = clock
        self.retention = timedelta(days=retention_days)
        self.interval_s = interval_s
        self._before = list(before)
        self._task: asyncio.Task[None] | None = None

    def cutoff(self) -> datetime:
        """Events that started before this are pruned."""
        return self._clock() - self.retention

    async def prune_now(self) -> PruneResult:
        """One pass (also what the periodic task does)."""
        cutoff = self.cutoff()
        result = await asyncio.to_thread(prune_events, self._factory, self._store, cutoff)
        if result.events or result.files:
            log.info(
                "old events pruned",
                extra={
                    "events": result.events,
                    "files": result.files,
                    "cutoff": cutoff.isoformat(timespec="seconds"),
                    "retention_days": self.retention.days,
                },
            )
        return result

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-pruner")

    async def _run(self) -> None:
        while True:
            for other in self._before:
                try:
                    await other()
                except Exception:
                    log.exception("a retention pass failed; trying again later")
            try:
                await self.prune_now()
            except Exception:
                log.exception("pruning old events failed; trying again later")
            await asyncio.sleep(self.interval_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
