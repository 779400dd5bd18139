"""The camera's control websocket to the server: JPEG demand and zones in, JPEGs out.

    GET /api/edge/ws   Authorization: Bearer <edge credential>

The server sends JSON text messages, once on connect and whenever they change:

    {"type": "jpeg", "want": true, "fps": 5, "max_width": 640}
    {"type": "zones", "zones": [{"id": "z1", "name": "Driveway", "kind": "zone",
                                 "points": [[x, y], ...], "labels": ["person"]}, ...]}

and the edge answers with binary messages, each one complete JPEG, for as long as
``want`` is true. Zones and privacy masks go to the camera's ZoneState (edge.detect.zones),
which validates them and keeps the previous ones when a message is bad.

The link is kept up with jittered backoff (the server restarts, the network drops);
while it is down the JPEG tap is told nobody wants JPEGs, so none are made. A refused
credential (HTTP 401/403, or close code 4401) is retried once a minute.

Outgoing JPEGs wait in a one-slot buffer: when the link is slower than the camera, the
older JPEG is dropped and the newest goes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from edge.backoff import Backoff
from edge.jpeg import JpegTap

log = logging.getLogger("edge.control")

PATH = "/api/edge/ws"
#: Close code the server uses for a credential it does not (or no longer) accept.
CLOSE_UNAUTHORIZED = 4401
REFUSED_RETRY_S = 60.0


@dataclass
class ControlStats:
    """Counters since start; the heartbeat reports ``jpeg_frames_sent``."""

    connects: int = 0
    jpeg_frames_sent: int = 0
    jpeg_frames_dropped: int = 0  # replaced by a newer JPEG, or made while the link was down
    demand_messages: int = 0
    zones_messages: int = 0


class Refused(Exception):
    """The server does not accept this edge's credential."""


class ControlChannel:
    """Keeps one camera's control websocket up and feeds its JpegTap."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        headers: dict[str, str],
        tap: JpegTap,
        *,
        open_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        on_zones: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.url = url
        self.tap = tap
        self.stats = ControlStats()
        self.connected = False
        self.retry_in_s: float | None = None  # the wait before the next attempt, once known
        self._headers = headers
        self._open_timeout_s = open_timeout_s
        self._on_zones = on_zones
        self._backoff = backoff or Backoff(first=0.5, cap=10.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: bytes | None = None
        self._pending_ready = asyncio.Event()

    # -- the tap's output (its worker thread) --------------------------------------------

    def offer_jpeg(self, jpeg: bytes, capture_us: int) -> None:
        """Queue a JPEG for sending (thread-safe); dropped while the link is down."""
        loop = self._loop
        if loop is None or not self.connected:
            self.stats.jpeg_frames_dropped += 1
            return
        try:
            loop.call_soon_threadsafe(self._put, jpeg)
        except RuntimeError:  # the loop is closing
            self.stats.jpeg_frames_dropped += 1

    def _put(self, jpeg: bytes) -> None:
        if not self.connected:
            self.stats.jpeg_frames_dropped += 1
            return
        if self._pending is not None:
            self.stats.jpeg_frames_dropped += 1
        self._pending = jpeg
        self._pending_ready.set()

    # -- asyncio side --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop``."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            delay: float | None = None
            try:
                await self._session(stop)
                failures = 0
            except Refused as exc:
                log.error(
                    "control link refused camera=%s error=%s action='re-enroll the camera'",
                    self.camera_id,
                    exc,
                )
                delay = REFUSED_RETRY_S
            except (OSError, TimeoutError, WebSocketException) as exc:
                failures += 1
                # First failure, then about once a minute: the video goes on regardless.
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "control link failed camera=%s failures=%d error=%r",
                        self.camera_id,
                        failures,
                        exc,
                    )
            finally:
                self._link_down()
            if stop.is_set():
                break
            if delay is None:
                delay = self._backoff.next()
            self.retry_in_s = delay
            log.debug("control link retry camera=%s in_s=%.1f", self.camera_id, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _link_down(self) -> None:
        if self.connected:
            log.info("control link down camera=%s", self.camera_id)
        self.connected = False
        self._pending = None
        self._pending_ready.clear()
        self.tap.set_wanted(False)

    async def _session(self, stop: asyncio.Event) -> None:
        try:
            ws = await connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout_s,
                compression=None,  # JPEGs do not compress; deflate would only cost CPU
                max_size=1024 * 1024,  # small JSON only (a zones message may hold 64 polygons)
                close_timeout=2.0,
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise Refused(f"HTTP {exc.response.status_code}") from exc
            raise
        async with ws:
            self.connected = True
            self.stats.connects += 1
            self._backoff.reset()
            log.info("control link up camera=%s url=%s", self.camera_id, self.url)
            tasks = [
                asyncio.create_task(self._read(ws)),
                asyncio.create_task(self._write(ws)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, str):
                    self._on_message(message)
        except ConnectionClosed:
            pass
        if ws.close_code == CLOSE_UNAUTHORIZED:
            raise Refused(ws.close_reason or "credential refused")
        log.info(
            "control link closed camera=%s code=%s reason=%s",
            self.camera_id,
            ws.close_code,
            ws.close_reason or "-",
        )

    def _on_message(self, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            log.warning("control message is not JSON camera=%s", self.camera_id)
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "zones" and self._on_zones is not None:
            self.stats.zones_messages += 1
            self._on_zones(message)
            return
        if kind != "jpeg":
            log.debug("control message ignored camera=%s message=%.100s", self.camera_id, text)
            return
        self.stats.demand_messages += 1
        fps = message.get("fps")
        max_width = message.get("max_width")
        self.tap.set_wanted(
            bool(message.get("want")),
            fps=float(fps) if isinstance(fps, int | float) and fps > 0 else None,
            max_width=int(max_width) if isinstance(max_width, int) and max_width > 0 else None,
        )

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            await self._pending_ready.wait()
            self._pending_ready.clear()
            jpeg, self._pending = self._pending, None
            if jpeg is None:
                continue
            await ws.send(jpeg)
            self.stats.jpeg_frames_sent += 1
