"""Web Push notifications: an event's start becomes "Person at Front door" on every
subscribed browser that wants it.

    event bus ─▶ PushDispatcher ─ first sight of an event id ─▶ claim it in push_notices
      (once per event, across restarts and replicas) ─▶ subscriptions that want its camera
      and label and are not in quiet hours ─▶ per-subscriber rate limit ─▶ one delivery
      task each: bounded concurrency, a timeout, retries with backoff on 429/5xx/no answer,
      the subscription deleted on 404/410

Nothing here can hold up event ingest: the bus never blocks its publisher, and a slow
push service only occupies its own delivery slot for at most the timeout.

Payload (JSON, at most 3 KB, what assets/sw.js shows):

    {"title": "Person at Front door", "body": "12:03:44 · Driveway · 87 %",
     "tag": "<camera id>:<label>", "url": "/#/events/<id>",
     "image": "/api/events/<id>/snapshot.jpg?ticket=…" | null,
     "event_id", "camera_id", "label", "at": "<ISO start>"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.db import SessionFactory
from app.eventbus import BusSubscription, EventBus
from app.models import PushNotice, PushSubscription
from app.push_prefs import LABELS, Preferences, endpoint_host
from app.push_sender import PushResponse, PushSender, SendError, Target, WebPushSender
from app.push_vapid import VapidKey
from app.settings import Settings
from app.tickets import EVENT_SNAPSHOT_TICKET_TTL_S, TicketSigner, issue_event_snapshot_ticket

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 3072
#: Event ids remembered in memory as already handled (the database remembers the rest).
SEEN_CACHE = 4096
#: push_notices rows are kept this long (and at least twice the maximum event age).
NOTICE_RETENTION = timedelta(days=2)
MAX_RETRY_DELAY_S = 300.0

_HINTS = {
    400: "the push service refused the request",
    401: "the VAPID key changed since the browser subscribed; it must subscribe again",
    403: "the VAPID key changed since the browser subscribed; it must subscribe again",
    413: "the payload is too large for the push service",
}


@dataclass(frozen=True, slots=True)
class PushConfig:
    """Dispatcher settings (see app/settings.py for the environment variables)."""

    subject: str = "mailto:admin@localhost"
    ttl_s: int = 3600
    min_interval_s: float = 60.0
    max_per_hour: int = 30
    concurrency: int = 8
    timeout_s: float = 10.0
    retries: int = 3
    retry_delay_s: float = 2.0
    max_event_age_s: float = 900.0
    ticket_ttl_s: int = EVENT_SNAPSHOT_TICKET_TTL_S
    max_pending: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConfig:
        return cls(
            subject=settings.vapid_subject,
            ttl_s=settings.push_ttl,
            min_interval_s=settings.push_min_interval,
            max_per_hour=settings.push_max_per_hour,
            concurrency=settings.push_concurrency,
            timeout_s=settings.push_timeout,
            retries=settings.push_retries,
            retry_delay_s=settings.push_retry_delay,
            max_event_age_s=settings.push_max_event_age,
        )


@dataclass(slots=True)
class PushStats:
    """Counters since start (GET /api/push/stats)."""

    events: int = 0
    notified_events: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    removed: int = 0
    quiet: int = 0
    rate_limited: int = 0
    stale: int = 0
    overflow: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EventInfo:
    """The fields of an event (contract 4 JSON) that a notification needs."""

    id: str
    camera_id: str
    camera_name: str
    label: str
    object: str | None
    score: float | None
    zones: tuple[str, ...]
    started_at: datetime
    has_snapshot: bool

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> EventInfo:
        """Reads an event dict; raises ValueError naming the first bad field."""
        event_id, camera_id = event.get("id"), event.get("camera_id")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
            raise ValueError("id must be a non-empty string")
        if not isinstance(camera_id, str) or not camera_id:
            raise ValueError("camera_id must be a non-empty string")
        label = event.get("label")
        if label not in LABELS:
            raise ValueError(f"label must be one of {list(LABELS)}, got {label!r}")
        name = event.get("camera_name")
        obj = event.get("object")
        score = event.get("score")
        zones = event.get("zones") or []
        started = event.get("started_at")
        if not isinstance(started, str):
            raise ValueError("started_at must be an ISO-8601 string")
        try:
            started_at = datetime.fromisoformat(started)
        except ValueError:
            raise ValueError(f"started_at is not ISO-8601: {started!r}") from None
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=UTC)
        return cls(
            id=event_id,
            camera_id=camera_id,
            camera_name=name if isinstance(name, str) and name else camera_id,
            label=str(label),
            object=obj if isinstance(obj, str) and obj else None,
            score=float(score) if isinstance(score, int | float) else None,
            zones=tuple(z for z in zones if isinstance(z, str)) if isinstance(zones, list) else (),
            started_at=started_at,
            has_snapshot=event.get("has_snapshot") is True,
        )


def headline(label: str, obj: str | None) -> str:
    """What was seen, capitalised: "Person", "Car", "Dog", "Motion"."""
    if label in ("person", "motion") or not obj:
        return "Something" if label == "other" else label.capitalize()
    return obj[:1].upper() + obj[1:]


def notification(event: EventInfo, *, zone: ZoneInfo | None, image: str | None) -> dict[str, Any]:
    """The notification for ``event``, with times on the wall clock of ``zone`` (None: UTC)."""
    local = event.started_at.astimezone(zone or UTC)
    parts = [local.strftime("%H:%M:%S") + ("" if zone else " UTC")]
    if event.zones:
        parts.append(", ".join(event.zones))
    if event.label != "motion" and event.score is not None:
        parts.append(f"{round(event.score * 100)} %")
    return {
        "title": f"{headline(event.label, event.object)} at {event.camera_name}",
        "body": " · ".join(parts),
        "tag": f"{event.camera_id}:{event.label}",
        "url": f"/#/events/{quote(event.id, safe='')}",
        "image": image,
        "event_id": event.id,
        "camera_id": event.camera_id,
        "label": event.label,
        "at": event.started_at.isoformat(),
    }


def encode_payload(payload: dict[str, Any]) -> str:
    """``payload`` as JSON within MAX_PAYLOAD_BYTES: the body and then the title are
    shortened (ending in "…") if long zone or camera names would push it over."""
    data = dict(payload)
    for key in ("body", "title"):
        while True:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            excess = len(text.encode()) - MAX_PAYLOAD_BYTES
            if excess <= 0:
                return text
            raw = str(data[key]).removesuffix("…").encode()
            if not raw:
                break
            # Cut bytes, not characters (UTF-8); escapes may need another round.
            cut = max(0, len(raw) - excess - len("…".encode()))
            data[key] = raw[:cut].decode(errors="ignore") + "…"
    raise ValueError("notification payload too large")


class RateLimiter:
    """Per subscriber: at most one notification per (camera, label) every
    ``min_interval_s``, and at most ``max_per_hour`` in any 60 minutes."""

    def __init__(self, min_interval_s: float, max_per_hour: int) -> None:
        self.min_interval_s = min_interval_s
        self.max_per_hour = max_per_hour
        self._last: dict[tuple[str, str, str], float] = {}
        self._recent: dict[str, deque[float]] = {}

    def allow(self, subscriber: str, camera_id: str, label: str, now: float) -> str | None:
        """None (and counts it) when a notification may go now; else why not."""
        key = (subscriber, camera_id, label)
        last = self._last.get(key)
        if last is not None and now - last < self.min_interval_s:
            return "interval"
        recent = self._recent.setdefault(subscriber, deque())
        while recent and now - recent[0] >= 3600:
            recent.popleft()
        if len(recent) >= self.max_per_hour:
            return "hourly"
        recent.append(now)
        self._last[key] = now
        return None

    def forget(self, subscriber: str) -> None:
        """Drops a deleted subscriber's state."""
        self._recent.pop(subscriber, None)
        for key in [k for k in self._last if k[0] == subscriber]:
            del self._last[key]


@dataclass(frozen=True, slots=True)
class Recipient:
    target: Target
    zone: ZoneInfo | None


@dataclass(slots=True)
class _Selection:
    recipients: list[Recipient] = field(default_factory=list)
    quiet: int = 0


def display_zone(row: PushSubscription) -> ZoneInfo | None:
    """The zone a subscription reads times in: its own, else its quiet hours', else None."""
    name = row.tz or (row.quiet_hours or {}).get("tz")
    try:
        return ZoneInfo(name) if name else None
    except (ValueError, OSError):
        return None


def target_of(row: PushSubscription) -> Target:
    return Target(row.id, row.endpoint, row.p256dh, row.auth)


class PushDispatcher:
    """Turns event starts from the bus into Web Push deliveries."""

    def __init__(
        self,
        session_factory: SessionFactory,
        vapid: VapidKey,
        tickets: TicketSigner,
        config: PushConfig,
        clock: Callable[[], datetime],
        sender: PushSender | None = None,
    ) -> None:
        self._factory = session_factory
        self._tickets = tickets
        self.config = config
        self._clock = clock
        self._sender: PushSender = sender or WebPushSender(
            vapid, config.subject, config.timeout_s, config.concurrency
        )
        self._limiter = RateLimiter(config.min_interval_s, config.max_per_hour)
        self._slots_by_loop: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._last_prune: datetime | None = None
        self.stats = PushStats()

    @property
    def _slots(self) -> asyncio.Semaphore:
        # One semaphore per event loop: an app may be served by more than one (tests).
        loop = asyncio.get_running_loop()
        if self._slots_by_loop is None or self._slots_by_loop[0] is not loop:
            self._slots_by_loop = (loop, asyncio.Semaphore(self.config.concurrency))
        return self._slots_by_loop[1]

    @property
    def pending(self) -> int:
        """Deliveries under way (sending or waiting to retry)."""
        return len(self._deliveries)

    def start(self, bus: EventBus) -> None:
        """Starts following ``bus`` (call from the running loop). Events published from
        this call on are seen."""
        if self._runner is None:
            subscription = bus.subscribe(max_queue=1024)
            self._runner = asyncio.create_task(self._run(subscription), name="push-dispatcher")

    async def _run(self, subscription: BusSubscription) -> None:
        async with subscription:
            log.info("push dispatcher started", extra={"concurrency": self.config.concurrency})
            async for event in subscription:
                try:
                    await self.handle(event)
                except Exception:
                    log.exception("push dispatch failed", extra={"event": event.get("id")})

    async def aclose(self) -> None:
        """Stops following the bus and cancels deliveries still under way."""
        tasks = [t for t in (self._runner, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._runner = None
        await self._sender.aclose()

    def _remember(self, event_id: str) -> bool:
        """False when the event was handled already; otherwise remembers it."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return False
        self._seen[event_id] = None
        while len(self._seen) > SEEN_CACHE:
            self._seen.popitem(last=False)
        return True

    async def handle(self, event: Mapping[str, Any]) -> list[asyncio.Task[None]]:
        """Dispatches ``event`` (contract 4 JSON) if it is the first sight of its id;
        returns the delivery tasks started (tests await them)."""
        try:
            return await self._handle(event)
        finally:
            # Counted once handled: every delivery it makes is then in `pending`.
            self.stats.events += 1

    async def _handle(self, event: Mapping[str, Any]) -> list[asyncio.Task[None]]:
        try:
            info = EventInfo.parse(event)
        except ValueError as exc:
            log.warning("push ignored a malformed event", extra={"error": str(exc)})
            return []
        if not self._remember(info.id):
            return []
        now = self._clock()
        age_s = (now - info.started_at).total_seconds()
        if age_s > self.config.max_event_age_s:
            # An outbox draining after an outage: "Person at Front door" hours later is noise.
            self.stats.stale += 1
            log.info(
                "push skipped an old event",
                extra={"event": info.id, "camera": info.camera_id, "age_s": round(age_s)},
            )
            return []
        try:
            selection = await asyncio.to_thread(self._select, info, now)
        except Exception:
            self._seen.pop(info.id, None)  # the next update of the event tries again
            raise
        if selection is None:
            return []
        self.stats.notified_events += 1
        self.stats.quiet += selection.quiet
        image = None
        if info.has_snapshot:
            ticket = issue_event_snapshot_ticket(
                self._tickets, info.id, now, ttl_s=self.config.ticket_ttl_s
            )
            image = f"/api/events/{quote(info.id, safe='')}/snapshot.jpg?ticket={ticket.value}"
        urgency = "high" if info.label == "person" else "normal"
        tasks: list[asyncio.Task[None]] = []
        limited = 0
        for recipient in selection.recipients:
            reason = self._limiter.allow(
                recipient.target.subscription_id, info.camera_id, info.label, now.timestamp()
            )
            if reason is not None:
                limited += 1
                log.info(
                    "push rate limited",
                    extra={
                        "subscription": recipient.target.subscription_id,
                        "event": info.id,
                        "camera": info.camera_id,
                        "label": info.label,
                        "limit": reason,
                    },
                )
                continue
            if len(self._deliveries) >= self.config.max_pending:
                self.stats.overflow += 1
                log.warning(
                    "push dropped: too many notifications pending",
                    extra={"subscription": recipient.target.subscription_id, "event": info.id},
                )
                continue
            data = encode_payload(notification(info, zone=recipient.zone, image=image))
            task = asyncio.create_task(
                self._deliver(recipient.target, data, urgency, info),
                name=f"push-{recipient.target.subscription_id}",
            )
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            tasks.append(task)
        self.stats.rate_limited += limited
        log.info(
            "push dispatch",
            extra={
                "event": info.id,
                "camera": info.camera_id,
                "label": info.label,
                "recipients": len(tasks),
                "quiet": selection.quiet,
                "rate_limited": limited,
            },
        )
        return tasks

    def _select(self, info: EventInfo, now: datetime) -> _Selection | None:
        """Claims the event (None if someone already did) and picks its recipients."""
        with self._factory() as session:
            session.add(
                PushNotice(
                    event_id=info.id, camera_id=info.camera_id, label=info.label, created_at=now
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
            self._prune(session, now)
            selection = _Selection()
            for row in session.scalars(select(PushSubscription).order_by(PushSubscription.id)):
                try:
                    prefs = Preferences.of(row.cameras, row.labels, row.quiet_hours)
                except (ValueError, KeyError, TypeError):
                    log.warning(
                        "push subscription has unreadable preferences; skipped",
                        extra={"subscription": row.id},
                    )
                    continue
                if not prefs.wants(info.camera_id, info.label):
                    continue
                if prefs.is_quiet(now):
                    selection.quiet += 1
                    log.debug("push quiet hours", extra={"subscription": row.id, "event": info.id})
                    continue
                selection.recipients.append(Recipient(target_of(row), display_zone(row)))
            return selection

    def _prune(self, session: Any, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        keep = max(NOTICE_RETENTION, timedelta(seconds=2 * self.config.max_event_age_s))
        session.execute(delete(PushNotice).where(PushNotice.created_at < now - keep))
        session.commit()

    def _retry_delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return retry_after_s
        return float(min(self.config.retry_delay_s * 2**attempt, MAX_RETRY_DELAY_S))

    async def _deliver(self, target: Target, data: str, urgency: str, info: EventInfo) -> None:
        context = {
            "subscription": target.subscription_id,
            "push_host": endpoint_host(target.endpoint),
            "event": info.id,
            "camera": info.camera_id,
            "label": info.label,
        }
        problem = ""
        status: int | None = None
        for attempt in range(self.config.retries + 1):
            response: PushResponse | None = None
            try:
                async with self._slots:
                    response = await self._sender.send(
                        target, data, ttl=self.config.ttl_s, urgency=urgency
                    )
            except SendError as exc:
                problem, status = str(exc), None
            else:
                problem, status = f"HTTP {response.status}", response.status
            if response is not None and response.ok:
                self.stats.sent += 1
                log.info("push sent", extra={**context, "status": status, "attempts": attempt + 1})
                await asyncio.to_thread(self._record, target.subscription_id, None)
                return
            if status in (404, 410):
                await asyncio.to_thread(self._remove, target.subscription_id)
                self._limiter.forget(target.subscription_id)
                self.stats.removed += 1
                log.info("push subscription gone; deleted it", extra={**context, "status": status})
                return
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt == self.config.retries:
                break
            delay = self._retry_delay(attempt, response.retry_after_s if response else None)
            self.stats.retried += 1
            log.info(
                "push failed; will retry",
                extra={**context, "error": problem, "attempt": attempt + 1, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
        self.stats.failed += 1
        hint = _HINTS.get(status or 0, "")
        log.warning("push failed", extra={**context, "error": problem, "hint": hint})
        await asyncio.to_thread(
            self._record, target.subscription_id, (problem + "; " + hint).strip("; ")
        )

    def _record(self, subscription_id: str, error: str | None) -> None:
        with self._factory() as session:
            row = session.get(PushSubscription, subscription_id)
            if row is None:
                return
            if error is None:
                row.last_sent_at = self._clock()
                row.last_error = None
            else:
                row.last_error = error[:200]
            session.commit()

    def _remove(self, subscription_id: str) -> None:
        with self._factory() as session:
            session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))
            session.commit()

    async def send_test(self, row: PushSubscription, device: str) -> PushResponse:
        """Sends one test notification to ``row`` now (no filters, limits or retries);
        raises SendError when the push service gives no answer."""
        payload = {
            "title": "livecam",
            "body": f"Notifications work on {device}.",
            "tag": "livecam:test",
            "url": "/#/",
            "image": None,
            "event_id": None,
            "camera_id": None,
            "label": None,
            "at": self._clock().isoformat(),
        }
        async with self._slots:
            response = await self._sender.send(
                target_of(row), encode_payload(payload), ttl=self.config.ttl_s, urgency="normal"
            )
        host = endpoint_host(row.endpoint)
        log.info(
            "push test",
            extra={"subscription": row.id, "push_host": host, "status": response.status},
        )
        if response.status in (404, 410):
            await asyncio.to_thread(self._remove, row.id)
            self.stats.removed += 1
        return response

    def forget(self, subscription_id: str) -> None:
        """Drops the rate-limit state of a deleted subscription."""
        self._limiter.forget(subscription_id)


def new_subscription_id() -> str:
    """A random id for a push subscription."""
    return "ps_" + secrets.token_urlsafe(12)


def start_push(app: FastAPI) -> None:
    """Starts ``app.state.push`` on ``app.state.event_bus`` (in the app's lifespan)."""
    bus = getattr(app.state, "event_bus", None)
    if bus is None:
        log.warning("no event bus on the app; push notifications are off")
        return
    dispatcher: PushDispatcher = app.state.push
    dispatcher.start(bus)
