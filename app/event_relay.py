"""Relays every event change into its camera's LiveKit room (contract 5), for the live
overlay: topic ``livecam.event``, payload the event JSON (UTF-8), reliable.

The relay is an EventBus subscriber with a bounded queue, so ingest never waits for
LiveKit: a slow or unreachable LiveKit costs the overlay its oldest messages, never an
edge its reply time. Failures are logged at most once a minute (with a count), and once
more when sending works again. A room nobody is in does not exist in LiveKit; sending
into it is skipped quietly (nobody would see it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from app.eventbus import BusSubscription, EventBus
from app.models import room_name
from app.rooms import RoomDataSender, describe_error, is_missing_room

log = logging.getLogger(__name__)

TOPIC = "livecam.event"


class RoomEventRelay:
    """Bus → LiveKit room data, one message at a time, in order."""

    def __init__(
        self,
        sender: RoomDataSender,
        *,
        timeout_s: float = 2.0,
        max_queue: int = 512,
        log_every_s: float = 60.0,
    ) -> None:
        self.sender = sender
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        self.log_every_s = log_every_s
        self.sent = 0
        self.failed = 0
        self.no_room = 0
        self._failing_since_log = 0
        self._last_log = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def start(self, bus: EventBus) -> None:
        """Starts following ``bus`` (from the running loop); subscribes at once."""
        if self._task is None:
            subscription = bus.subscribe(self.max_queue)
            self._task = asyncio.create_task(self._run(subscription), name="event-room-relay")

    async def _run(self, subscription: BusSubscription) -> None:
        async with subscription:
            async for event in subscription:
                await self.relay(event)

    async def relay(self, event: dict[str, Any]) -> bool:
        """Sends one event into its camera's room; whether it was delivered to LiveKit."""
        camera_id = event.get("camera_id")
        if not isinstance(camera_id, str):
            return False
        room = room_name(camera_id)
        data = json.dumps(event, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.sender.send_data(room, data, TOPIC)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_missing_room(exc):
                self.no_room += 1
                log.debug("nobody in the room; event not relayed", extra={"room": room})
                return False
            self._failed(room, exc)
            return False
        self.sent += 1
        if self._failing_since_log or self._last_log > float("-inf"):
            self._recovered()
        return True

    def _failed(self, room: str, exc: BaseException) -> None:
        self.failed += 1
        self._failing_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            log.warning(
                "could not relay events into LiveKit rooms",
                extra={
                    "room": room,
                    "failures": self._failing_since_log,
                    "error": describe_error(exc, self.timeout_s),
                },
            )
            self._failing_since_log = 0
            self._last_log = now

    def _recovered(self) -> None:
        log.info(
            "relaying events into LiveKit rooms again",
            extra={"failures_since_last_log": self._failing_since_log},
        )
        self._failing_since_log = 0
        self._last_log = float("-inf")

    async def aclose(self) -> None:
        """Stops relaying and closes the sender."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.sender.aclose()
