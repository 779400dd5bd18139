"""Delivers a camera's outbox to the server, oldest first, one at a time, at least once.

* 2xx (``stored`` or ``duplicate``): the row is deleted.
* Network errors, 5xx, 429 and replies that are not JSON: the same row is retried with
  exponential backoff and jitter (capped at ``cap_s``, or the server's Retry-After), for
  as long as it takes: an edge offline for hours loses nothing.
* 401/403 (the credential was revoked or the camera deleted): delivery pauses, says so,
  and tries again every ``refused_retry_s``; the rows wait.
* 413: the row is retried once without its snapshot.
* Any other 4xx (422 malformed, 409 conflict, ...): the server will never take it; the
  row moves to the outbox's ``dead`` table with the server's message, and the next goes.

The body of a row never changes between attempts (same ``key``, same ``seq``), so the
server's idempotency makes retries after a lost reply harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge.backoff import Backoff
from edge.events.message import with_snapshot
from edge.events.outbox import Outbox, QueuedMessage
from edge.uplink import CredentialRejected, ServerError

log = logging.getLogger("edge.delivery")

PostEvent = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class DeliveryStats:
    """Counters since start."""

    delivered: int = 0  # 2xx "stored"
    duplicates: int = 0  # 2xx "duplicate": the server had it (a retry after a lost reply)
    retries: int = 0
    dead: int = 0
    paused: bool = False  # the credential was refused
    last_error: str | None = None


class EventDelivery:
    """The delivery task of one camera's outbox."""

    def __init__(
        self,
        camera_id: str,
        outbox: Outbox,
        post: PostEvent,
        *,
        first_s: float = 1.0,
        cap_s: float = 60.0,
        refused_retry_s: float = 60.0,
    ) -> None:
        self.camera_id = camera_id
        self.outbox = outbox
        self.stats = DeliveryStats()
        self._post = post
        self.cap_s = cap_s
        self._backoff = Backoff(first=first_s, cap=cap_s)
        self.refused_retry_s = refused_retry_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Something was enqueued (any thread): look now instead of at the next poll."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._wake.set)

    async def _sleep(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._wake.clear()

    async def run(self, stop: asyncio.Event, *, idle_poll_s: float = 30.0) -> None:
        """Deliver until ``stop``; rows left over are sent on the next start."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            row = await asyncio.to_thread(self.outbox.oldest)
            if row is None:
                await self._sleep(stop, idle_poll_s, wakeable=True)
                continue
            delay = await self._deliver(row)
            if delay:
                await self._sleep(stop, delay, wakeable=False)

    async def _deliver(self, row: QueuedMessage) -> float:
        """One attempt; returns how long to wait before the next one (0: go on)."""
        body = with_snapshot(row.body, row.snapshot)
        try:
            reply = await self._post(body)
        except CredentialRejected as exc:
            if not self.stats.paused:
                log.error(
                    "event delivery paused camera=%s error=%s queued_key=%s "
                    "action='re-enroll the camera; events wait in the outbox'",
                    self.camera_id,
                    exc,
                    row.key,
                )
            self.stats.paused = True
            self.stats.last_error = str(exc)
            return self.refused_retry_s
        except ServerError as exc:
            return await self._failed(row, exc)
        if self.stats.paused:
            log.info("event delivery resumed camera=%s", self.camera_id)
            self.stats.paused = False
        await asyncio.to_thread(self.outbox.delete, row.id)
        if self._backoff.attempt:
            log.info(
                "event delivery recovered camera=%s key=%s after_attempts=%d",
                self.camera_id,
                row.key,
                self._backoff.attempt,
            )
        self._backoff.reset()
        if reply.get("status") == "duplicate":
            self.stats.duplicates += 1
        else:
            self.stats.delivered += 1
        log.debug("event delivered camera=%s key=%s reply=%s", self.camera_id, row.key, reply)
        return 0.0

    async def _failed(self, row: QueuedMessage, exc: ServerError) -> float:
        status = exc.status
        self.stats.last_error = str(exc)
        if status == 413 and row.snapshot is not None:
            log.warning(
                "event too large camera=%s key=%s snapshot_bytes=%d action='sending it "
                "without the snapshot'",
                self.camera_id,
                row.key,
                len(row.snapshot),
            )
            await asyncio.to_thread(self.outbox.drop_snapshot, row.id)
            return 0.0
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            self.stats.dead += 1
            log.error(
                "event refused camera=%s key=%s status=%d error=%s action='moved to the "
                "outbox dead table'",
                self.camera_id,
                row.key,
                status,
                exc,
            )
            await asyncio.to_thread(self.outbox.bury, row.id, status, str(exc))
            self._backoff.reset()
            return 0.0
        self.stats.retries += 1
        await asyncio.to_thread(self.outbox.failed, row.id, str(exc))
        delay = self._backoff.next()
        if exc.retry_after_s is not None:
            delay = min(max(delay, exc.retry_after_s), max(self.cap_s, 1.0) * 5)
        attempts = self._backoff.attempt
        # The first failure, then about every tenth: an outage is one line a minute or so.
        if attempts == 1 or attempts % 10 == 0:
            log.warning(
                "event delivery failed camera=%s key=%s attempts=%d error=%s retry_s=%.1f",
                self.camera_id,
                row.key,
                attempts,
                exc,
                delay,
            )
        return delay
